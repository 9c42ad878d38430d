"""Reports for tuning the contact-pressure method (issue 21 item 4): who hears too much from
us, who hears nothing, and who leaves after a contact.

- `basket_use`: the distribution of a basket month's use over the active customers in
  bands (none, under half, half to 80 %, 80 % to full, full), and the missed chances:
  customers with a live basis (for one purpose, or any) who were not contacted in the
  last N basket months.
- `opt_outs`: withdrawals, objections to marketing and erasures within N days after a
  contact of a basket month, by brand, type, channel, touchpoint and by how full the
  customer's basket was in that month; next to each, how many customers were contacted.

Counts of customers only, never a subject id; the API and console show each below k as
"< k" (`vault.campaigns.masking`). Each answer also names the cells to show as "hidden":
those beside a masked one in a grouping with a visible total, and those that differ by
fewer than k customers from the same cell of an answer that nests with it (basket use with
another `months` or no `purpose`; opt-outs with fewer filters or another window of
`DAYS`), computed in the same transaction. Every read is audited in the transaction that reads:
no event, no report. The contacted totals are counted in the database by group; only
the contacts of customers who opted out in the period are read row by row (to compare
each contact's time with the opt-out's), since the day arithmetic is not portable SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, func, or_, select

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.campaigns.masking import complementary, differenced
from vault.campaigns.opt_out_events import (
    DAYS,
    DIMENSIONS,
    OPT_OUTS,
    band_of,
    count_contacted,
    opt_out_pairs,
    opted_out,
)
from vault.errors import InvalidInput
from vault.storage.outreach_tables import contact_budgets, contacts
from vault.storage.tables import consents, subjects
from vault.subjects.decision import BasisStatus

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Basket-use bands, in order.
BANDS = ("none", "under_half", "half_to_80", "near_full", "full")
MAX_MONTHS = 24
MONTH_RE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
#: The opt-out report's filters.
FILTERS = ("brand", "type", "channel", "touchpoint")


@dataclass(frozen=True, slots=True)
class BasketUse:
    month: str
    basket: float
    customers: int
    bands: dict[str, int]
    #: Customers with a live basis but no outbound contact in the last `months` months.
    missed: int
    months: int
    purpose: str | None
    #: Bands hidden beside a masked one, and whether `missed` is hidden
    #: (`vault.campaigns.masking` rules 2 and 3).
    hidden_bands: frozenset[str] = frozenset()
    missed_hidden: bool = False


@dataclass(frozen=True, slots=True)
class OptOutRow:
    dimension: str
    value: str
    contacted: int
    #: Customers who opted out (per kind) within `days` days after such a contact.
    opted_out: dict[str, int]


@dataclass(frozen=True, slots=True)
class OptOutFilters:
    brand: str | None = None
    type: str | None = None
    channel: str | None = None
    touchpoint: str | None = None

    def given(self) -> dict[str, str]:
        return {n: v for n in FILTERS if (v := getattr(self, n)) is not None}


@dataclass(frozen=True, slots=True)
class OptOuts:
    month: str
    days: int
    rows: list[OptOutRow]
    #: (dimension, value, column) of the cells hidden by `vault.campaigns.masking` rules 2
    #: and 3; a column is `contacted` or an opt-out kind.
    hidden: frozenset[tuple[str, str, str]] = frozenset()


def month_range(ctx: VaultContext, month: str) -> tuple[datetime, datetime] | None:
    """The basket month's [start, end) instants; None for a month the calendar cannot hold
    (year 0, see `month_bounds`), in which nothing falls. `InvalidInput` naming `month`
    unless it reads YYYY-MM."""
    if not MONTH_RE.fullmatch(month):
        raise InvalidInput("bad month", {"month": "must be a basket month YYYY-MM"})
    return ctx.pressure_rules.month_bounds(month)


def months_back(month: str, n: int) -> str:
    """The basket month `n - 1` months before `month` (YYYY-MM): the first of n months."""
    year, mon = int(month[:4]), int(month[5:7])
    index = year * 12 + (mon - 1) - (n - 1)
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


async def basket_use(
    ctx: VaultContext, actor: Actor, month: str, *, months: int = 3, purpose: str | None = None
) -> BasketUse:
    """The basket-use distribution of `month` over the active customers, and the missed
    chances of the last `months` months (see the module docstring); audited. A purpose
    nobody has a basis for counts no missed chance (a filter, like a brand nobody uses)."""
    month_range(ctx, month)
    if not 1 <= months <= MAX_MONTHS:
        raise InvalidInput("bad months", {"months": f"must be 1 to {MAX_MONTHS}"})
    now = ctx.clock.now()
    basket = ctx.pressure_rules.basket_tenths
    used = func.coalesce(contact_budgets.c.used_tenths, 0)
    band = band_of(used, basket).label("band")
    bands_q = (
        select(band, func.count())
        .select_from(
            subjects.outerjoin(
                contact_budgets,
                and_(
                    contact_budgets.c.subject_id == subjects.c.id,
                    contact_budgets.c.month == month,
                ),
            )
        )
        .where(subjects.c.status == "active")
        .group_by(band)
    )
    async with ctx.transaction() as conn:
        bands = dict.fromkeys(BANDS, 0) | {
            str(r[0]): int(r[1]) for r in await conn.execute(bands_q)
        }
        last = {p: await _last_contacted(conn, month, now, p) for p in {purpose, None}}
        await _audited(conn, ctx, actor, "basket_use", month, purpose)
    k = ctx.pressure_rules.report_min_count
    missed = _missed(last[purpose], month, months)
    # Every other answer the reader may ask for that nests with this one: other `months`,
    # and no `purpose`.
    others = (_missed(last[p], month, n) for p in last for n in range(1, MAX_MONTHS + 1))
    return BasketUse(
        month=month, basket=basket / 10, customers=sum(bands.values()), bands=bands,
        missed=missed, months=months, purpose=purpose,
        hidden_bands=frozenset(complementary(bands, k)),
        missed_hidden=differenced(missed, others, k),
    )  # fmt: skip


async def _last_contacted(
    conn: Any, month: str, now: datetime, purpose: str | None
) -> dict[str | None, int]:
    """Active customers without an objection who have a live basis (for `purpose`, or
    any), by the last basket month up to `month` in which they had an outbound contact
    (None: never)."""
    live = [
        consents.c.subject_id == subjects.c.id,
        consents.c.status.in_((BasisStatus.GRANTED.value, BasisStatus.ACTIVE.value)),
        or_(consents.c.expires_at.is_(None), consents.c.expires_at > now),
    ]
    if purpose is not None:
        live.append(consents.c.purpose == purpose)
    last = (
        select(func.max(contacts.c.month))
        .where(
            contacts.c.subject_id == subjects.c.id,
            contacts.c.direction == "outbound",
            contacts.c.month <= month,
        )
        .scalar_subquery()
    )
    inner = (
        select(last.label("last"))
        .where(
            subjects.c.status == "active",
            subjects.c.marketing_objection_at.is_(None),
            exists().where(*live),
        )
        .subquery()
    )
    q = select(inner.c.last, func.count()).group_by(inner.c.last)
    return {r[0]: int(r[1]) for r in await conn.execute(q)}


def _missed(last: dict[str | None, int], month: str, months: int) -> int:
    """Customers whose last contact was before the `months` basket months up to `month`."""
    first = months_back(month, months)
    return sum(n for m, n in last.items() if m is None or m < first)


async def opt_outs(
    ctx: VaultContext,
    actor: Actor,
    month: str,
    *,
    days: int = 30,
    filters: OptOutFilters = OptOutFilters(),
) -> OptOuts:
    """Opt-outs within `days` days after the outbound contacts of `month` (narrowed by
    `filters`), by brand, type, channel, touchpoint and basket band; audited.

    The same report is counted for every coarser combination of the filters and every
    window of `DAYS`, in the same transaction, so that a cell whose difference from one
    of those is a group of fewer than k customers is hidden, and so is a cell whose
    grouping could recover a masked one (`vault.campaigns.masking` rules 2 and 3)."""
    bounds = month_range(ctx, month)
    if days not in DAYS:
        raise InvalidInput("bad days", {"days": "must be one of " + ", ".join(map(str, DAYS))})
    if bounds is None:
        async with ctx.transaction() as conn:
            await _audited(conn, ctx, actor, "opt_outs", month, None)
        return OptOuts(month=month, days=days, rows=[])
    given = filters.given()
    subsets = [
        frozenset(c) for r in range(len(given) + 1) for c in combinations(sorted(given.items()), r)
    ]
    full = frozenset(given.items())
    async with ctx.transaction() as conn:
        pairs = await opt_out_pairs(conn, ctx, month, bounds)
        contacted = {s: await count_contacted(conn, ctx, month, dict(s)) for s in subsets}
        await _audited(conn, ctx, actor, "opt_outs", month, None)
    out = {s: opted_out(pairs, dict(s)) for s in subsets}
    k = ctx.pressure_rules.report_min_count
    hidden: set[tuple[str, str, str]] = set()
    for (dim, value), n in contacted[full].items():
        if differenced(n, (contacted[s].get((dim, value), 0) for s in subsets if s != full), k):
            hidden.add((dim, value, "contacted"))
        for kind in OPT_OUTS:
            others = (
                out[s].get((dim, value, kind, d), 0)
                for s in subsets
                for d in DAYS
                if (s, d) != (full, days)
            )  # fmt: skip
            if differenced(out[full].get((dim, value, kind, days), 0), others, k):
                hidden.add((dim, value, kind))
    for dim in DIMENSIONS:
        values = [v for d, v in contacted[full] if d == dim]
        grouped = {v: contacted[full][(dim, v)] for v in values}
        hidden |= {(dim, v, "contacted") for v in complementary(grouped, k)}
        for kind in OPT_OUTS:
            grouped = {v: out[full].get((dim, v, kind, days), 0) for v in values}
            hidden |= {(dim, v, kind) for v in complementary(grouped, k)}
    rows = [
        OptOutRow(
            dimension=dim,
            value=value,
            contacted=n,
            opted_out={kd: out[full].get((dim, value, kd, days), 0) for kd in OPT_OUTS},
        )  # fmt: skip
        for (dim, value), n in sorted(contacted[full].items(), key=_order)
    ]
    return OptOuts(month=month, days=days, rows=rows, hidden=frozenset(hidden))


def _order(item: tuple[tuple[str, str], int]) -> tuple[int, str]:
    (dim, value), _ = item
    return DIMENSIONS.index(dim), value


async def _audited(
    conn: Any, ctx: VaultContext, actor: Actor, report: str, month: str, purpose: str | None
) -> None:
    """Put a report read on the trail like every DPO read (in the reading transaction)."""
    await audit.record(
        conn, at=ctx.clock.now(), actor=actor, action=AuditAction.CAMPAIGN_REPORT,
        decision=Decision.ALLOW, purpose=purpose,
        detail={"report": {"name": report, "month": month}},
    )  # fmt: skip
