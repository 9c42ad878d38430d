"""Contact-pressure reports: contacts per touchpoint, phase, brand and channel in a basket
month, and how many customers are near (>= 80 %) or at their monthly limit.

Aggregates only: no subject ids and no contact data leave this module. Every read is a
DPO view and audited like the others, in the same transaction as the read: no event, no
report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.errors import InvalidInput
from vault.outreach.followups import FollowupBucket
from vault.outreach.followups import report as followup_report
from vault.outreach.preferences import PreferenceReport
from vault.outreach.preferences import report as preference_report
from vault.storage.outreach_tables import contact_budgets, contacts

MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
NEAR_LIMIT = 0.8


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    contacts: int
    points: float


@dataclass(frozen=True, slots=True)
class ContactReport:
    month: str
    basket: float
    total_contacts: int
    total_points: float
    by_touchpoint: list[Bucket]
    by_phase: list[Bucket]
    by_brand: list[Bucket]
    by_channel: list[Bucket]
    by_type: list[Bucket]
    customers_contacted: int
    customers_near_limit: int
    customers_at_limit: int
    #: Agreed follow-ups settled in the month, per touchpoint where they were agreed:
    #: kept (used inside the window), missed (window passed unused), cancelled.
    followups_by_touchpoint: tuple[FollowupBucket, ...] = ()
    #: Customers' own preferences: share of customers with any, and the month's denials
    #: by preference reason (vault.outreach.preferences).
    preferences: PreferenceReport | None = None


def _buckets(rows: Any) -> dict[str, tuple[int, int]]:
    return {(r[0] or "none"): (int(r[1]), int(r[2] or 0)) for r in rows}


def _sorted(counts: dict[str, tuple[int, int]]) -> list[Bucket]:
    return [
        Bucket(k, n, tenths / 10)
        for k, (n, tenths) in sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[0]))
    ]


async def contact_report(ctx: Any, actor: Actor, month: str | None = None) -> ContactReport:
    """The report for `month` (YYYY-MM; default: the current basket month), read by
    `actor` (the API client or the console's DPO) and audited with the month."""
    rules = ctx.pressure_rules
    if month is None:
        month = rules.month_of(ctx.clock.now())
    elif not MONTH_RE.match(month):
        raise InvalidInput("bad month", {"month": "must be YYYY-MM"})
    basket = rules.basket_tenths
    async with ctx.transaction() as conn:

        async def group(column: Any) -> dict[str, tuple[int, int]]:
            rows = await conn.execute(
                select(column, func.count(), func.sum(contacts.c.points_tenths))
                .where(contacts.c.month == month)
                .group_by(column)
            )
            return _buckets(rows.all())

        by_tp = await group(contacts.c.touchpoint)
        by_brand = await group(contacts.c.brand)
        by_channel = await group(contacts.c.channel)
        by_type = await group(contacts.c.type)
        near = int(basket * NEAR_LIMIT)
        row = (
            await conn.execute(
                select(
                    func.count(),
                    func.sum(case((contact_budgets.c.used_tenths >= basket, 1), else_=0)),
                    func.sum(
                        case(
                            (
                                (contact_budgets.c.used_tenths >= near)
                                & (contact_budgets.c.used_tenths < basket),
                                1,
                            ),
                            else_=0,
                        )
                    ),
                )
                .select_from(contact_budgets)
                .where(contact_budgets.c.month == month, contact_budgets.c.used_tenths > 0)
            )
        ).one()
        # Service messages draw from their own reserve and leave the basket counter at 0:
        # "contacted" counts every customer with a contact this month.
        contacted = (
            await conn.execute(
                select(func.count(func.distinct(contacts.c.subject_id))).where(
                    contacts.c.month == month
                )
            )
        ).scalar_one()
        followup_buckets = await followup_report(conn, ctx, month)
        preference_stats = await preference_report(conn, ctx, month)
        await audit.record(
            conn,
            at=ctx.clock.now(),
            actor=actor,
            action=AuditAction.DPO_CONTACT_REPORT,
            decision=Decision.ALLOW,
            detail={"month": month},
        )
    phases: dict[str, tuple[int, int]] = {}
    for tp, (n, tenths) in by_tp.items():
        known = ctx.touchpoints.get(tp)
        phase = known.phase if known else "unknown"
        old = phases.get(phase, (0, 0))
        phases[phase] = (old[0] + n, old[1] + tenths)
    total_n = sum(n for n, _ in by_brand.values())
    total_t = sum(t for _, t in by_brand.values())
    return ContactReport(
        month=month,
        basket=basket / 10,
        total_contacts=total_n,
        total_points=total_t / 10,
        by_touchpoint=_sorted(by_tp),
        by_phase=_sorted(phases),
        by_brand=_sorted(by_brand),
        by_channel=_sorted(by_channel),
        by_type=_sorted(by_type),
        customers_contacted=int(contacted or 0),
        customers_near_limit=int(row[2] or 0),
        customers_at_limit=int(row[1] or 0),
        followups_by_touchpoint=tuple(followup_buckets),
        preferences=preference_stats,
    )
