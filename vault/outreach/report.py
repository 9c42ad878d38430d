"""Contact-pressure reports: contacts per touchpoint, phase, brand and channel in a basket
month, how many customers are near (>= 80 %) or at their monthly limit, the agreed
follow-ups settled in the month, and the customers' own preferences (how many state any, and
what they refused).

Aggregates only: no subject ids and no contact data leave this module. Every read is a
DPO view and audited like the others, in the same transaction as the read: no event, no
report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.errors import InvalidInput
from vault.outreach.followups import FollowupStatus, missed_at
from vault.storage.audit_tables import audit_events
from vault.storage.outreach_tables import (
    contact_budgets,
    contact_preferences,
    contacts,
    followups,
)
from vault.storage.tables import subjects
from vault.subjects.decision import DenyReason

MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
NEAR_LIMIT = 0.8


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    contacts: int
    points: float


@dataclass(frozen=True, slots=True)
class FollowupBucket:
    """Follow-ups settled in a month, per touchpoint where they were agreed."""

    key: str
    kept: int
    missed: int
    cancelled: int


@dataclass(frozen=True, slots=True)
class PreferenceReport:
    """Aggregates for the contact report: how many customers state preferences, and how
    many outbound contacts the preferences refused in the month, by reason."""

    customers: int
    customers_with_preferences: int
    denials_by_reason: dict[str, int]

    @property
    def share(self) -> float:
        return self.customers_with_preferences / self.customers if self.customers else 0.0


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


async def followup_report(conn: AsyncConnection, ctx: Any, month: str) -> list[FollowupBucket]:
    """Follow-ups settled in `month`, per touchpoint where they were agreed: kept and
    cancelled by when that happened, missed by the end of the window (swept or not)."""
    now = ctx.clock.now()
    bounds = ctx.pressure_rules.month_bounds(month)
    if bounds is None:
        return []  # a month the calendar cannot hold: no follow-up falls in it
    start, end = bounds
    closed_in = and_(followups.c.closed_at >= start, followups.c.closed_at < end)
    ended_in = and_(followups.c.due_until >= start, followups.c.due_until < end, missed_at(now))

    kept_c = and_(followups.c.status == FollowupStatus.KEPT.value, closed_in)
    cancelled_c = and_(followups.c.status == FollowupStatus.CANCELLED.value, closed_in)
    rows = (
        await conn.execute(
            select(
                followups.c.touchpoint,
                func.sum(case((kept_c, 1), else_=0)),
                func.sum(case((ended_in, 1), else_=0)),
                func.sum(case((cancelled_c, 1), else_=0)),
            )
            .where(or_(closed_in, ended_in))
            .group_by(followups.c.touchpoint)
        )
    ).all()
    buckets = [FollowupBucket(r[0], int(r[1] or 0), int(r[2] or 0), int(r[3] or 0)) for r in rows]
    buckets = [b for b in buckets if b.kept or b.missed or b.cancelled]
    return sorted(buckets, key=lambda b: (-(b.kept + b.missed + b.cancelled), b.key))


async def preference_report(conn: AsyncConnection, ctx: Any, month: str) -> PreferenceReport:
    """Counts only (no subject ids): customers not erased, those with any preference, and
    the month's denials by `contact_quiet_hours` / `contact_cap_reached` (from the audit
    trail, so lookups, batch lookups and recorded contacts all count)."""
    customers = (
        await conn.execute(
            select(func.count()).select_from(subjects).where(subjects.c.status != "erased")
        )
    ).scalar_one()
    with_prefs = (
        await conn.execute(
            select(func.count())
            .select_from(
                contact_preferences.join(
                    subjects, subjects.c.id == contact_preferences.c.subject_id
                )
            )
            .where(
                subjects.c.status != "erased",
                or_(
                    contact_preferences.c.channels != "{}",
                    contact_preferences.c.quiet != "{}",
                    contact_preferences.c.monthly_cap_tenths.is_not(None),
                ),
            )
        )
    ).scalar_one()
    reasons = (DenyReason.CONTACT_QUIET_HOURS.value, DenyReason.CONTACT_CAP_REACHED.value)
    denials = {r: 0 for r in reasons}
    bounds = ctx.pressure_rules.month_bounds(month)
    if bounds is None:
        return PreferenceReport(int(customers), int(with_prefs), denials)
    start, end = bounds
    rows = (
        await conn.execute(
            select(audit_events.c.reason, func.count())
            .where(
                and_(
                    audit_events.c.at >= start,
                    audit_events.c.at < end,
                    audit_events.c.reason.in_(reasons),
                )
            )
            .group_by(audit_events.c.reason)
        )
    ).all()
    denials.update({r[0]: int(r[1]) for r in rows})
    return PreferenceReport(int(customers), int(with_prefs), denials)


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
