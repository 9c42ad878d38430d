"""What-if: replay a basket month's recorded contacts under changed rules (issue 21 item 4).

Every outbound contact of the month is replayed, in the order it was made, through two
baskets per customer: the rules in force now and the rules with the changes (points per
type, factors per channel, basket size, service reserve, overdraft per priority). A
contact passes a basket when its priority is unlimited or its type never fails on a full
basket, or when the customer's use so far plus its cost stays within the basket (the
service reserve for service messages, where configured) plus the priority's overdraft;
only a passing contact uses points. The answer counts allowed and blocked contacts per
brand and type, now and what-if. Contacts the customer started cost nothing and are not
replayed; calamity cool-downs, preferences and bookings are not part of the replay (it
tunes the basket, not the calendar).

Streaming: the contacts are read once, ordered by customer and time, through a
server-side cursor in chunks, and only one customer's two counters (and which cells and
outcomes they touched) are held at a time, so memory does not grow with the month
(`bench/plan.py` replays 1,000,000 contacts). Counts of contacts with the customers
behind them; the API shows a count from fewer than k customers as "< k", and the what-if
counts of a cell where fewer than k customers' contacts change outcome as "hidden"
(today's counts and those would otherwise differ by those customers). The read is
audited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.campaigns.reports import month_range
from vault.catalogue.contact_pressure import PressureRules
from vault.catalogue.purposes import CommunicationType
from vault.errors import InvalidInput
from vault.storage.outreach_tables import contacts

if TYPE_CHECKING:
    from vault.context import VaultContext

CHUNK = 20_000
MAX_POINTS = 1000


@dataclass(frozen=True, slots=True)
class RuleChanges:
    """Changes to the rules in force; anything not named stays as it is."""

    points: Mapping[str, int] = field(default_factory=dict)
    channel_factors: Mapping[str, float] = field(default_factory=dict)
    basket_points: int | None = None
    service_reserve_points: int | None = None
    overdraft_points: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Cell:
    brand: str
    type: str
    now_allowed: int
    now_blocked: int
    whatif_allowed: int
    whatif_blocked: int
    #: The customers behind each of the four counts, in the same order: a count of
    #: contacts is shown only when at least k customers are behind it.
    customers: tuple[int, int, int, int] = (0, 0, 0, 0)
    #: Customers with a contact allowed now and blocked what-if, or the other way round:
    #: the what-if counts differ from today's by their contacts, so fewer than k of them
    #: hide the what-if counts (`vault.campaigns.masking` rule 3).
    flipped: int = 0


@dataclass(frozen=True, slots=True)
class WhatIf:
    month: str
    contacts: int
    cells: list[Cell]


@dataclass(slots=True)
class _Model:
    """One rule set as the replay needs it: costs in tenths, limits, exemptions."""

    points: dict[str, int]
    factors: dict[str, float]
    basket: int
    reserve: int | None
    overdraft: dict[str, int]
    unlimited: frozenset[str]
    exempt: frozenset[str]
    costs: dict[tuple[str, str], int] = field(default_factory=dict)

    def cost(self, type: str, channel: str) -> int:
        key = (type, channel)
        found = self.costs.get(key)
        if found is None:
            found = round(self.points.get(type, 0) * self.factors.get(channel, 1.0) * 10)
            self.costs[key] = found
        return found


def _model(rules: PressureRules, changes: RuleChanges | None = None) -> _Model:
    c = changes or RuleChanges()
    reserve = rules.service_reserve_tenths
    if c.service_reserve_points is not None:
        reserve = c.service_reserve_points * 10
    return _Model(
        points=dict(rules.points) | dict(c.points),
        factors=dict(rules.channel_factors) | dict(c.channel_factors),
        basket=(c.basket_points * 10) if c.basket_points is not None else rules.basket_tenths,
        reserve=reserve,
        overdraft={p.name: p.overdraft_tenths for p in rules.priorities.values()}
        | {name: v * 10 for name, v in c.overdraft_points.items()},
        unlimited=frozenset(p.name for p in rules.priorities.values() if p.unlimited),
        exempt=rules.basket_exempt_types,
    )


def validate(rules: PressureRules, changes: RuleChanges) -> None:
    """`InvalidInput` naming every change the rules cannot take (by JSON pointer)."""
    errors: dict[str, str] = {}
    for name, value in changes.points.items():
        if name not in rules.points:
            errors[f"/rules/points/{name}"] = "is not a communication type of the rules"
        elif not 0 <= value <= MAX_POINTS:
            errors[f"/rules/points/{name}"] = f"must be 0 to {MAX_POINTS}"
    for name, factor in changes.channel_factors.items():
        if name not in rules.channel_factors:
            errors[f"/rules/channel_factors/{name}"] = "is not a channel of the rules"
        elif not 0 <= factor <= 100:
            errors[f"/rules/channel_factors/{name}"] = "must be 0 to 100"
    for name, value in changes.overdraft_points.items():
        if name not in rules.priorities:
            errors[f"/rules/overdraft_points/{name}"] = "is not a priority of the rules"
        elif not 0 <= value <= MAX_POINTS:
            errors[f"/rules/overdraft_points/{name}"] = f"must be 0 to {MAX_POINTS}"
    for key, basket in (
        ("basket_points", changes.basket_points),
        ("service_reserve_points", changes.service_reserve_points),
    ):
        if basket is not None and not 1 <= basket <= MAX_POINTS:
            errors[f"/rules/{key}"] = f"must be 1 to {MAX_POINTS}"
    if errors:
        raise InvalidInput("rules the replay cannot use", errors)


async def what_if(ctx: VaultContext, actor: Actor, month: str, changes: RuleChanges) -> WhatIf:
    """Replay `month`'s outbound contacts now and under `changes` (module docstring)."""
    month_range(ctx, month)
    validate(ctx.pressure_rules, changes)
    now_model = _model(ctx.pressure_rules)
    new_model = _model(ctx.pressure_rules, changes)
    service = CommunicationType.SERVICE.value
    tally: dict[tuple[str, str], list[int]] = {}
    total = 0
    query = (
        select(
            contacts.c.subject_id,
            contacts.c.brand,
            contacts.c.type,
            contacts.c.channel,
            contacts.c.priority,
        )  # fmt: skip
        .where(contacts.c.month == month, contacts.c.direction == "outbound")
        .order_by(contacts.c.subject_id, contacts.c.at, contacts.c.id)
        .execution_options(yield_per=CHUNK)
    )
    async with ctx.transaction() as conn:
        current = None
        # [basket used, reserve used] per model, for the customer being replayed.
        now_used = [0, 0]
        new_used = [0, 0]
        # The customer's outcomes per cell, as bits (see `_OUTCOME_BITS`).
        seen: dict[tuple[str, str], int] = {}
        stream = await conn.stream(query)
        async for chunk in stream.partitions(CHUNK):
            for subject_id, brand, type_, channel, priority in chunk:
                total += 1
                if subject_id != current:
                    _count_customer(seen, tally)
                    current = subject_id
                    now_used = [0, 0]
                    new_used = [0, 0]
                key = (brand, type_)
                cell = tally.get(key)
                if cell is None:
                    cell = tally[key] = [0] * 9
                pool = 1 if type_ == service else 0
                now = _passes(now_model, now_used, pool, type_, channel, priority)
                new = _passes(new_model, new_used, pool, type_, channel, priority)
                bits = (1 if now else 2) | (4 if new else 8) | (16 if now != new else 0)
                cell[0 if now else 1] += 1
                cell[2 if new else 3] += 1
                seen[key] = seen.get(key, 0) | bits
        _count_customer(seen, tally)
        await audit.record(
            conn, at=ctx.clock.now(), actor=actor, action=AuditAction.CAMPAIGN_REPORT,
            decision=Decision.ALLOW,
            detail={"report": {"name": "what_if", "month": month, "contacts": total}},
        )  # fmt: skip
    cells = [
        Cell(b, t, c[0], c[1], c[2], c[3], customers=(c[4], c[5], c[6], c[7]), flipped=c[8])
        for (b, t), c in sorted(tally.items())
    ]
    return WhatIf(month=month, contacts=total, cells=cells)


#: Per cell of the tally: contacts now allowed, now blocked, what-if allowed, what-if
#: blocked, then customers (same order), then customers with a changed outcome.
_OUTCOME_BITS = ((1, 4), (2, 5), (4, 6), (8, 7), (16, 8))


def _count_customer(
    seen: dict[tuple[str, str], int], tally: dict[tuple[str, str], list[int]]
) -> None:
    """Add the customer just replayed to the customer counts of the cells they touched."""
    for key, bits in seen.items():
        cell = tally[key]
        for bit, slot in _OUTCOME_BITS:
            if bits & bit:
                cell[slot] += 1
    seen.clear()


def _passes(
    model: _Model, used: list[int], pool: int, type_: str, channel: str, priority: str
) -> bool:
    """Whether one contact passes the model's basket; a passing one uses its points."""
    cost = model.cost(type_, channel)
    if pool == 1 and model.reserve is None:
        pool = 0
    if priority in model.unlimited or type_ in model.exempt:
        used[pool] += cost
        return True
    limit = (model.reserve if pool == 1 else model.basket) or 0
    if used[pool] + cost <= limit + model.overdraft.get(priority, 0):
        used[pool] += cost
        return True
    return False
