"""k-anonymous counts for the marketing role: no report singles out a customer, neither by
narrowing filters nor by differencing two answers (issue 21 item 5).

Campaign forecasts, booking previews and the planning reports are read by marketers who
must never single out a customer. k is `report_min_count` in
policies/contact-pressure.toml (default 10). The rules, in the order they apply:

1. **Below k** (`masked`, `shown`): a count below k is shown as "< k". A count of 0 is
   masked too: "nobody" is as telling as "one person" when filters are narrowed. So the
   narrowest filter combination shows nothing but "< k". A count of events (contacts,
   consents) is shown only when at least k customers are behind it.
2. **Complementary cells** (`complementary`): where the cells of one grouping add up to a
   total the reader can also see or derive (the basket-use bands and the customers; an
   opt-out report's values of one dimension, whose sum another dimension shows; a what-if
   cell's allowed and blocked, which add up to its contacts), a masked cell could be
   recovered as the total minus the shown cells. So when a grouping has a masked cell, its
   smallest shown cells are hidden too, until the hidden and masked cells together hold
   at least 2k: the recovered remainder then spreads over at least k values.
3. **Differences between permitted answers** (`differenced`): a count is hidden when the
   same cell of another answer the reader may ask for, and that nests with it (the same
   report with fewer filters, another `days`, another `months`, no `purpose`), differs
   from it by 1 to k - 1: the difference would be a group of fewer than k customers. The
   what-if's counts of a cell are hidden when fewer than k customers change outcome, since
   today's counts and the what-if's would differ by just those.
   Two campaigns whose audiences differ by 1 to k - 1 members are such answers too:
   their forecasts are hidden (`vault.campaigns.audience.near_audience`).
4. **Periods** (`period_count`): a count over several months is shown only when it stems
   from at least k customers and no month inside it is thin (events from 1 to k - 1
   customers), so that no two overlapping periods differ by a thin month.

A hidden count is shown as "hidden" (`HIDDEN`): it may be large; only showing it would
reveal another. The checks compare answers the vault computes in the same transaction;
they do not audit linear combinations of three or more answers (inclusion and exclusion
over several filters), two what-if replays under different changes, or one basis
audience's forecasts on two days (docs/campaigns-masking.md): limits of k-thresholds
without noise.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

#: How a count hidden by rules 2 to 4 is shown.
HIDDEN = "hidden"
Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Tally:
    """Events of one cell and the customers behind them."""

    count: int
    customers: int


def masked(count: int, k: int) -> int | str:
    """`count`, or "< k" when it is below k."""
    return count if count >= k else f"< {k}"


def shown(count: int, k: int, hidden: bool = False) -> int | str:
    """`count`; "< k" below k; `HIDDEN` when another rule hides it."""
    if count < k:
        return f"< {k}"
    return HIDDEN if hidden else count


def complementary(
    counts: Mapping[Key, int], k: int, masked: Iterable[Key] | None = None
) -> set[Key]:
    """Rule 2: the shown cells of one grouping to hide as well, smallest first, until the
    masked and hidden cells together hold at least 2k (all of them if they never do).
    `masked`: the cells masked by rule 1 when that is not "below k" (counts of contacts
    masked by their customers); default: those below k."""
    below = set(masked) if masked is not None else {key for key, n in counts.items() if n < k}
    if not below:
        return set()
    held = sum(counts[key] for key in below)
    extra: set[Key] = set()
    for key in sorted((key for key in counts if key not in below), key=lambda c: counts[c]):
        if held >= 2 * k:
            break
        extra.add(key)
        held += counts[key]
    return extra


def differenced(count: int, others: Iterable[int], k: int) -> bool:
    """Rule 3: whether `count` differs from a nesting answer's count by 1 to k - 1."""
    return any(0 < abs(count - other) < k for other in others)


def period_count(total: Tally, months: Sequence[Tally], k: int) -> int | str:
    """Rule 4: the period's events; "< k" when fewer than k customers are behind them;
    `HIDDEN` when a month inside the period is thin."""
    if total.customers < k:
        return f"< {k}"
    if any(0 < m.customers < k for m in months):
        return HIDDEN
    return total.count


def partition(
    total: int, parts: Mapping[Key, int], k: int, hide: bool = False
) -> tuple[int | str, dict[Key, int | str]]:
    """Rules 1 and 2 for a total and the parts that add up to it (a forecast's audience
    and its reasons, a booking's audience and its outcomes): the total "< k" below k, each
    part "< k" below k or `HIDDEN` when the shown rest would give a masked one away.
    `hide`: every part of at least k is `HIDDEN` (another rule hides the whole answer)."""
    extra = complementary(parts, k)
    return masked(total, k), {key: shown(n, k, hide or key in extra) for key, n in parts.items()}
