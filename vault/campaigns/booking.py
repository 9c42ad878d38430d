"""Booking a campaign: holding its points in every audience member's basket, by priority.

Set-based, a handful of statements for any audience size (no loop per customer), in one
transaction:

1. the basket month's `plan_months` row is locked: bookings, cancellations and sends of
   one month never interleave;
2. the members' counter rows are created if missing and locked (the same rows a contact
   locks in `vault.outreach.basket.reserve`), so no contact spends between the check and
   the hold;
3. where a member's free points (basket − used − booked) are too few, bookings of
   campaigns served later (`order_key` greater) are displaced, the latest-served first,
   just as many as needed, and only where that makes room;
4. the campaign's hold is inserted per member — `booked`, or `blocked` (no room even
   after displacing), or `no_basis` — and the held points added to `booked_tenths`.

Whatever the order of booking, the campaign served first keeps its points; whatever the
order of sending, a contact outside a booking only ever gets unbooked points. A
displacement must be confirmed: `preview` tells the counts per displaced campaign first,
and `book` refuses (`DisplacementNotConfirmed`) when there is any and it was not
confirmed. Each displaced campaign gets an audit event with its count.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    and_,
    case,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.campaigns import basket_holds, holds
from vault.campaigns.audience import basis_members, has_basis
from vault.campaigns.basket_holds import BOOKED, RELEASED, cost_tenths, limit_tenths
from vault.campaigns.booking_outcome import BookingOutcome, Displacement, HeldCampaign
from vault.campaigns.booking_outcome import (
    DisplacementNotConfirmed as DisplacementNotConfirmed,
)
from vault.campaigns.booking_scratch import byte_order
from vault.campaigns.records import (
    AudienceKind,
    Campaign,
    CampaignState,
    CampaignStateConflict,
    load,
)
from vault.storage.campaign_tables import (
    campaign_audience,
    campaign_bookings,
    campaigns,
    plan_months,
)
from vault.storage.dialect import insert_ignoring_conflict, roomy_sorts
from vault.storage.outreach_tables import contact_budgets

if TYPE_CHECKING:
    from vault.context import VaultContext


def _members(camp: Campaign) -> Any:
    return select(campaign_audience.c.subject_id).where(campaign_audience.c.campaign_id == camp.id)


def _need(ctx: VaultContext, camp: Campaign) -> Any:
    """Per member: tenths missing for this campaign (≤ 0: it fits without displacing)."""
    used = func.coalesce(contact_budgets.c.used_tenths, 0)
    booked = func.coalesce(contact_budgets.c.booked_tenths, 0)
    return used + booked + cost_tenths(ctx, camp) - limit_tenths(ctx, camp)


def _displaceable(ctx: VaultContext, camp: Campaign, now: datetime) -> Any:
    """Subquery of the holds this campaign would displace: per member with a basis whose
    need is positive, the holds of campaigns served later, latest-served first, as many
    as cover the need, and only where all of them together can."""
    b = campaign_bookings.alias("held")
    ordering = (b.c.order_key.desc(), b.c.campaign_id.desc())
    need = _need(ctx, camp)
    inner = (
        select(
            b.c.campaign_id,
            b.c.subject_id,
            b.c.points_tenths,
            need.label("need"),
            func.sum(b.c.points_tenths)
            .over(partition_by=b.c.subject_id, order_by=ordering)
            .label("upto"),
            func.sum(b.c.points_tenths).over(partition_by=b.c.subject_id).label("total"),
        )
        .select_from(
            b.join(
                campaign_audience,
                and_(
                    campaign_audience.c.subject_id == b.c.subject_id,
                    campaign_audience.c.campaign_id == camp.id,
                ),
            ).outerjoin(
                contact_budgets,
                and_(
                    contact_budgets.c.subject_id == b.c.subject_id,
                    contact_budgets.c.month == camp.month,
                ),
            )
        )
        .where(
            b.c.month == camp.month,
            b.c.status == BOOKED,
            b.c.order_key > camp.order_key,
            b.c.campaign_id != camp.id,
            has_basis(b.c.subject_id, camp.purpose, camp.type, now),
        )
        .subquery()
    )
    # A hold is displaced when the holds served before it (in displacement order) do not
    # yet cover the need: upto - points < need.
    return (
        select(inner.c.campaign_id, inner.c.subject_id, inner.c.points_tenths)
        .where(
            inner.c.need > 0,
            inner.c.total >= inner.c.need,
            inner.c.upto - inner.c.points_tenths < inner.c.need,
        )
        .subquery()
    )


async def _displacements(
    conn: AsyncConnection, ctx: VaultContext, camp: Campaign, now: datetime
) -> tuple[Displacement, ...]:
    d = _displaceable(ctx, camp, now)
    rows = await conn.execute(
        select(d.c.campaign_id, campaigns.c.name, func.count())
        .select_from(d.join(campaigns, campaigns.c.id == d.c.campaign_id))
        .group_by(d.c.campaign_id, campaigns.c.name)
        .order_by(d.c.campaign_id)
    )
    return tuple(Displacement(r[0], r[1], int(r[2])) for r in rows)


def fits_condition(ctx: VaultContext, camp: Campaign) -> Any:
    """SQL condition over `campaign_audience` outer-joined with the members' counter rows:
    the campaign fits the member's basket with what it may displace."""
    b = campaign_bookings
    displaceable = (
        select(func.coalesce(func.sum(b.c.points_tenths), 0))
        .where(
            b.c.subject_id == campaign_audience.c.subject_id,
            b.c.month == camp.month,
            b.c.status == BOOKED,
            b.c.order_key > camp.order_key,
            b.c.campaign_id != camp.id,
        )
        .scalar_subquery()
    )
    return _need(ctx, camp) <= displaceable


def members_with_budgets(camp: Campaign) -> Any:
    """`campaign_audience` outer-joined with its members' counter rows of the month."""
    return campaign_audience.outerjoin(
        contact_budgets,
        and_(
            contact_budgets.c.subject_id == campaign_audience.c.subject_id,
            contact_budgets.c.month == camp.month,
        ),
    )


async def _fits_counts(
    conn: AsyncConnection, ctx: VaultContext, camp: Campaign, now: datetime
) -> tuple[int, int, int, int]:
    """(audience, would book, blocked, no basis) before anything is changed: a member
    fits when its need is covered by free points plus what it may displace."""
    basis = has_basis(campaign_audience.c.subject_id, camp.purpose, camp.type, now)
    fits = fits_condition(ctx, camp)
    row = (
        await conn.execute(
            select(
                func.count(),
                func.sum(case((and_(basis, fits), 1), else_=0)),
                func.sum(case((and_(basis, ~fits), 1), else_=0)),
            )
            .select_from(
                campaign_audience.outerjoin(
                    contact_budgets,
                    and_(
                        contact_budgets.c.subject_id == campaign_audience.c.subject_id,
                        contact_budgets.c.month == camp.month,
                    ),
                )
            )
            .where(campaign_audience.c.campaign_id == camp.id)
        )
    ).one()
    total, booked, blocked = int(row[0]), int(row[1] or 0), int(row[2] or 0)
    return total, booked, blocked, total - booked - blocked


async def _lock_month(conn: AsyncConnection, month: str) -> None:
    await conn.execute(insert_ignoring_conflict(conn, plan_months, ["month"]), {"month": month})
    await conn.execute(
        select(plan_months.c.month).where(plan_months.c.month == month).with_for_update()
    )


async def _prepare(
    conn: AsyncConnection, ctx: VaultContext, campaign_id: str, now: datetime
) -> Campaign:
    """Lock the month and the campaign; a basis audience is (re)resolved now."""
    camp = await load(conn, campaign_id)
    await _lock_month(conn, camp.month)
    camp = await load(conn, campaign_id, lock=True)
    if camp.state != CampaignState.DRAFT:
        raise CampaignStateConflict(f"the campaign is {camp.state}, not a draft")
    return camp


async def preview(
    ctx: VaultContext, actor: Actor, campaign_id: str
) -> tuple[Campaign, BookingOutcome]:
    """What booking would do now, counts only, nothing changed; audited as a report read.
    A basis audience is counted as it would be resolved."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        camp = await _prepare(conn, ctx, campaign_id, now)
        # Nothing of the preview stays: a resolved basis audience is rolled back with the
        # savepoint, the audit event of the read is committed.
        savepoint = await conn.begin_nested()
        if camp.audience_kind == AudienceKind.BASIS:
            await resolve_basis(conn, camp, now)
        total, booked, blocked, no_basis = await _fits_counts(conn, ctx, camp, now)
        displaced = await _displacements(conn, ctx, camp, now)
        held, held_by = await _holds(conn, ctx, camp)
        await savepoint.rollback()
        outcome = BookingOutcome(total, booked, blocked, no_basis, displaced, held, held_by)
        await _report_read(conn, actor, camp, now, "preview")
    return camp, outcome


async def _holds(
    conn: AsyncConnection, ctx: VaultContext, camp: Campaign
) -> tuple[tuple[HeldCampaign, ...], tuple[HeldCampaign, ...]]:
    """(campaigns the calamity campaign holds, calamity campaigns holding this one)."""
    held = tuple(
        HeldCampaign(h.held.id, h.held.name, h.members)
        for h in await holds.holds_of(conn, ctx, camp)
    )
    held_by = tuple(
        HeldCampaign(h.calamity.id, h.calamity.name, h.members)
        for h in await holds.held_by(conn, ctx, camp)
    )
    return held, held_by


async def _report_read(
    conn: AsyncConnection, actor: Actor, camp: Campaign, now: datetime, what: str
) -> None:
    await audit.record(
        conn, at=now, actor=actor, action=AuditAction.CAMPAIGN_REPORT,
        decision=Decision.ALLOW, purpose=camp.purpose,
        detail={"campaign": {"id": camp.id, "report": what}},
    )  # fmt: skip


async def resolve_basis(conn: AsyncConnection, camp: Campaign, now: datetime) -> int:
    """Fill a basis campaign's audience with everyone who has a basis for it now.

    A plain insert, not one skipping conflicts (a third faster for a million members): a
    draft basis campaign has no audience rows, since no list can be set on it and previews
    and forecasts resolve it in a savepoint they roll back. Should a row exist after all,
    the primary key refuses the insert and the booking fails instead of miscounting.
    Returns how many members it has."""
    inserted = await conn.execute(
        insert(campaign_audience).from_select(
            ["campaign_id", "subject_id"],
            basis_members(camp.id, camp.purpose, camp.type, now, lambda c: byte_order(conn, c)),
        )
    )
    return int(inserted.rowcount)


async def book(
    ctx: VaultContext, actor: Actor, campaign_id: str, *, confirm_displacement: bool = False
) -> BookingOutcome:
    """Book a draft campaign (see the module's steps); the campaign becomes `booked`.
    Raises `CampaignNotFound`, `CampaignStateConflict`, or `DisplacementNotConfirmed`
    (nothing changed) when it would displace bookings and that was not confirmed."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        camp = await _prepare(conn, ctx, campaign_id, now)
        await roomy_sorts(conn, basket_holds.SORT_MEGABYTES)
        audience = None
        if camp.audience_kind == AudienceKind.BASIS:
            audience = await resolve_basis(conn, camp, now)
        outcome = await book_locked(conn, ctx, camp, now, confirm_displacement, audience)
        held, held_by = await _holds(conn, ctx, replace(camp, state=CampaignState.BOOKED.value))
        outcome = replace(outcome, holds=held, held_by=held_by)
        await audit.record(
            conn, at=now, actor=actor, action=AuditAction.CAMPAIGN_BOOK,
            decision=Decision.ALLOW, purpose=camp.purpose,
            detail={"campaign": {"id": camp.id, "month": camp.month,
                                 "audience": outcome.audience, "booked": outcome.booked,
                                 "blocked": outcome.blocked, "no_basis": outcome.no_basis,
                                 "holds": [{"id": h.campaign_id, "count": h.count}
                                           for h in held]}},
        )  # fmt: skip
        for d in outcome.displaced:
            await audit.record(
                conn, at=now, actor=actor, action=AuditAction.CAMPAIGN_DISPLACED,
                decision=Decision.ALLOW,
                detail={"campaign": {"id": d.campaign_id, "displaced_by": camp.id,
                                     "count": d.count}},
            )  # fmt: skip
    return outcome


async def book_locked(
    conn: AsyncConnection,
    ctx: VaultContext,
    camp: Campaign,
    now: datetime,
    confirm_displacement: bool,
    audience: int | None = None,
) -> BookingOutcome:
    """Steps 2–4 of the module docstring, in the caller's transaction, with the month and
    campaign locked (`_prepare`): `vault.campaigns.basket_holds`. `audience`: how many
    members the audience has when the caller just resolved it (else it is counted)."""
    return await basket_holds.hold(conn, ctx, camp, now, confirm_displacement, audience)


async def status_counts(conn: AsyncConnection, campaign_id: str) -> dict[str, int]:
    """Holds of a campaign per status."""
    b = campaign_bookings
    rows = await conn.execute(
        select(b.c.status, func.count()).where(b.c.campaign_id == campaign_id).group_by(b.c.status)
    )
    return {r[0]: int(r[1]) for r in rows}


async def _release(
    ctx: VaultContext, actor: Actor, campaign_id: str, to: CampaignState, allowed: tuple[str, ...]
) -> int:
    """Give back the campaign's unused holds and move it to state `to`; returns how many
    holds were released."""
    now = ctx.clock.now()
    b = campaign_bookings
    async with ctx.transaction() as conn:
        camp = await load(conn, campaign_id)
        await _lock_month(conn, camp.month)
        camp = await load(conn, campaign_id, lock=True)
        if camp.state not in allowed:
            raise CampaignStateConflict(f"the campaign is {camp.state}")
        held = select(b.c.subject_id).where(b.c.campaign_id == camp.id, b.c.status == BOOKED)
        await conn.execute(
            update(contact_budgets)
            .where(contact_budgets.c.month == camp.month, contact_budgets.c.subject_id.in_(held))
            .values(
                booked_tenths=contact_budgets.c.booked_tenths - cost_tenths(ctx, camp),
                updated_at=now,
            )
        )
        released = (
            await conn.execute(
                update(b)
                .where(b.c.campaign_id == camp.id, b.c.status == BOOKED)
                .values(status=RELEASED)
            )
        ).rowcount
        await conn.execute(
            update(campaigns).where(campaigns.c.id == camp.id).values(state=str(to), updated_at=now)
        )
        await audit.record(
            conn, at=now, actor=actor,
            action=AuditAction.CAMPAIGN_CANCEL if to == CampaignState.CANCELLED
            else AuditAction.CAMPAIGN_SENT,
            decision=Decision.ALLOW, purpose=camp.purpose,
            detail={"campaign": {"id": camp.id, "released": released}},
        )  # fmt: skip
    return int(released)


async def cancel(ctx: VaultContext, actor: Actor, campaign_id: str) -> int:
    """Cancel a draft or booked campaign, releasing its holds."""
    return await _release(
        ctx, actor, campaign_id, CampaignState.CANCELLED,
        (CampaignState.DRAFT, CampaignState.BOOKED),
    )  # fmt: skip


async def mark_sent(ctx: VaultContext, actor: Actor, campaign_id: str) -> int:
    """Close a booked campaign as sent: holds no contact used are released."""
    return await _release(ctx, actor, campaign_id, CampaignState.SENT, (CampaignState.BOOKED,))
