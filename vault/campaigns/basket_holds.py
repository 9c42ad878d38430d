"""Holding a campaign's points in its members' baskets: steps 2–4 of a booking
(`vault.campaigns.booking`), set-based, with the audience resolved once.

Booking a million customers must cost little more than writing a million holds (issue
21: ≥ 50,000 customers/s on PostgreSQL). So every member is read once into a scratch
table (`tmp_plan_members`, temporary: never logged, gone with the connection), with its
basis, whether it has a counter row for the month yet (`fresh`), and — after its counter
row is locked — its used and booked points. Every later statement reads the scratch table
instead of joining the audience, the counter rows and the consents again:

1. fresh members (no counter row: nobody used or booked anything of their basket, so
   there is nothing to displace) get their counter row inserted with the hold already in
   it — one write instead of insert, lock and update. If a contact created one of those
   rows meanwhile (the insert skipped it), the savepoint is rolled back and they are
   treated like the others;
2. (done first) the other members' counter rows are locked, in subject order, and read
   into the scratch table in the same statement; when that was every member (a second
   booking of the month), the audience is counted instead of searched for fresh ones;
3. where a member's free points are too few, holds of campaigns served later are
   displaced: the window function runs once, over the members that need room only, into
   a second scratch table (`tmp_plan_displaced`) from which the holds are marked and the
   displaced campaigns counted. What they free is summed per member and joined to the
   members once, into a third (`tmp_plan_holds`: the hold's status and the counter's
   change per member, `_plan`), so the later statements only scan it;
4. the campaign's holds are inserted, and each existing counter row whose booked points
   change is changed once: what the displaced holds freed given back, the new hold added
   (a hold displaced by one of the same points changes nothing).

Statuses and the arithmetic are the module's constants and `status_of`; the preview and
the forecast (`booking`, `forecast`) count the same way without writing.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    and_,
    case,
    exists,
    false,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.campaigns.audience import has_basis
from vault.campaigns.booking_outcome import BookingOutcome, Displacement, DisplacementNotConfirmed
from vault.campaigns.booking_scratch import (
    byte_order,
    displaced_holds,
    drop,
    members,
    planned,
    scratch,
)
from vault.campaigns.records import AudienceKind, Campaign, CampaignState
from vault.storage.campaign_tables import campaign_audience, campaign_bookings, campaigns
from vault.storage.dialect import analyze, insert_ignoring_conflict, set_based_joins
from vault.storage.outreach_tables import contact_budgets

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Booking statuses (see `vault.storage.tables.CampaignBooking`).
BOOKED = "booked"
USED = "used"
DISPLACED = "displaced"
BLOCKED = "blocked"
NO_BASIS = "no_basis"
RELEASED = "released"
#: A limit no basket reaches: unlimited priorities always fit.
_UNLIMITED = 2**30
#: Memory per sort or hash of a booking (PostgreSQL's `work_mem`, its transaction only,
#: set by `booking.book`): a million members' joins and sorts stay in memory instead of
#: spilling to disk. The widest, the displacement window's sort, takes about 200 MB for a
#: million members; at 128 MB it, the basis audience's and the plan's sorts were external
#: merges through temporary files. Only what a sort holds is taken, so smaller bookings
#: use less.
SORT_MEGABYTES = 384


def limit_tenths(ctx: VaultContext, camp: Campaign) -> int:
    """What a member's basket may hold with this campaign: the type's limit plus the
    priority's overdraft (unlimited priorities: no limit)."""
    rules = ctx.pressure_rules
    prio = rules.priorities[camp.priority]
    if prio.unlimited or camp.type in rules.basket_exempt_types:
        return _UNLIMITED
    return rules.limit_tenths(camp.type) + prio.overdraft_tenths


def cost_tenths(ctx: VaultContext, camp: Campaign) -> int:
    return ctx.pressure_rules.cost_tenths(camp.type, camp.channel)


def _need(ctx: VaultContext, camp: Campaign) -> Any:
    """Per scratch row of an existing counter row: tenths missing (≤ 0: it fits)."""
    m = members.c
    return m.used + m.booked + cost_tenths(ctx, camp) - limit_tenths(ctx, camp)


def status_of(ctx: VaultContext, camp: Campaign, freed: Any) -> Any:
    """The hold's status per scratch row, after displacement (`freed`: what the
    displaced holds give back, see `_with_freed`)."""
    m = members.c
    fits_empty = cost_tenths(ctx, camp) <= limit_tenths(ctx, camp)
    return case(
        (m.basis == false(), literal(NO_BASIS)),
        (m.fresh == true(), literal(BOOKED if fits_empty else BLOCKED)),
        (_need(ctx, camp) - freed <= 0, literal(BOOKED)),
        else_=literal(BLOCKED),
    )


def _with_freed(displacing: bool) -> tuple[Any, Any]:
    """(the scratch table joined with what displaced holds free per member, that
    amount): summed from `tmp_plan_displaced` when the booking displaces, else 0."""
    if not displacing:
        return members, literal(0)
    d = displaced_holds.c
    freed = (
        select(d.subject_id, func.sum(d.points).label("points"))
        .group_by(d.subject_id)
        .subquery("freed")
    )
    joined = members.outerjoin(freed, freed.c.subject_id == members.c.subject_id)
    return joined, func.coalesce(freed.c.points, 0)


def _basis(camp: Campaign, now: datetime) -> Any:
    """The member's basis: a basis audience was resolved a moment ago in this transaction
    from the same condition, so every member has one; a list is checked once, here."""
    if camp.audience_kind == AudienceKind.BASIS:
        return true()
    return has_basis(campaign_audience.c.subject_id, camp.purpose, camp.type, now)


async def _lock_existing(conn: AsyncConnection, camp: Campaign, now: datetime) -> int:
    """Step 2: the members with a counter row (not yet in the scratch table): rows
    locked in subject order and read into it, in one statement; returns how many."""
    a = campaign_audience.c
    cb = contact_budgets.c
    locked = await conn.execute(
        insert(members).from_select(
            ["subject_id", "basis", "fresh", "used", "booked"],
            select(a.subject_id, _basis(camp, now), false(), cb.used_tenths, cb.booked_tenths)
            .join(contact_budgets, and_(cb.subject_id == a.subject_id, cb.month == camp.month))
            .where(
                a.campaign_id == camp.id,
                ~exists().where(members.c.subject_id == a.subject_id),
            )
            .order_by(cb.subject_id)
            .with_for_update(of=contact_budgets),
        )
    )
    return int(locked.rowcount)


async def _fill(conn: AsyncConnection, camp: Campaign, now: datetime) -> int:
    """Step 0 and 2: the scratch table with every member once, those with a counter row
    locked and read; returns how many are fresh (no counter row). When every member has
    a counter row (a second booking of the month), the audience is only counted, not
    searched again for members missing from the scratch table."""
    await scratch(conn, members)
    a = campaign_audience.c
    audience = (
        await conn.execute(select(func.count()).where(a.campaign_id == camp.id))
    ).scalar_one()
    async with set_based_joins(conn, contact_budgets, audience):
        locked = await _lock_existing(conn, camp, now)
    fresh = 0
    if audience > locked:
        inserted = await conn.execute(
            insert(members).from_select(
                ["subject_id", "basis", "fresh"],
                select(a.subject_id, _basis(camp, now), true()).where(
                    a.campaign_id == camp.id,
                    ~exists().where(members.c.subject_id == a.subject_id),
                ),
            )
        )
        fresh = int(inserted.rowcount)
    await analyze(conn, members)
    return fresh


async def _fresh_rows(
    conn: AsyncConnection, ctx: VaultContext, camp: Campaign, now: datetime, fresh: int
) -> None:
    """Step 1: counter rows of fresh members, inserted with the hold in them."""
    if not fresh:
        return
    m = members.c
    fits_empty = cost_tenths(ctx, camp) <= limit_tenths(ctx, camp)
    held = case((m.basis == true(), cost_tenths(ctx, camp) if fits_empty else 0), else_=0)
    savepoint = await conn.begin_nested()
    inserted = await conn.execute(
        insert_ignoring_conflict(conn, contact_budgets, ["subject_id", "month"]).from_select(
            ["subject_id", "month", "used_tenths", "booked_tenths", "updated_at"],
            select(
                m.subject_id, literal(camp.month), literal(0), held,
                literal(now, contact_budgets.c.updated_at.type),
            ).where(m.fresh == true()),
        )
    )  # fmt: skip
    if inserted.rowcount == fresh:
        await savepoint.commit()
        return
    # A contact created some of these rows meanwhile: create the missing ones empty, and
    # lock and read them all like the members that had one.
    await savepoint.rollback()
    await conn.execute(
        insert_ignoring_conflict(conn, contact_budgets, ["subject_id", "month"]).from_select(
            ["subject_id", "month", "used_tenths", "booked_tenths", "updated_at"],
            select(
                m.subject_id, literal(camp.month), literal(0), literal(0),
                literal(now, contact_budgets.c.updated_at.type),
            ).where(m.fresh == true()),
        )
    )  # fmt: skip
    await conn.execute(members.delete().where(m.fresh == true()))
    await _lock_existing(conn, camp, now)


async def _displace(
    conn: AsyncConnection, ctx: VaultContext, camp: Campaign
) -> tuple[Displacement, ...]:
    """Step 3: mark the later-served holds that make room, note per member what they
    free (`_with_freed`), and count them per campaign."""
    m = members.c
    need = _need(ctx, camp)
    needy = and_(m.fresh == false(), m.basis == true(), need > 0)
    count = (await conn.execute(select(func.count()).where(needy))).scalar_one()
    if not count:
        return ()
    b = campaign_bookings.alias("held")
    ordering = (b.c.order_key.desc(), b.c.campaign_id.desc())
    inner = (
        select(
            b.c.campaign_id,
            b.c.subject_id,
            b.c.points_tenths,
            need.label("need"),
            func.sum(b.c.points_tenths)
            .over(partition_by=byte_order(conn, b.c.subject_id), order_by=ordering)
            .label("upto"),
            func.sum(b.c.points_tenths)
            .over(partition_by=byte_order(conn, b.c.subject_id))
            .label("total"),
        )
        .select_from(b.join(members, m.subject_id == b.c.subject_id))
        .where(
            needy,
            b.c.month == camp.month,
            b.c.status == BOOKED,
            b.c.order_key > camp.order_key,
            b.c.campaign_id != camp.id,
        )
        .subquery()
    )
    # A hold is displaced when the holds before it (in displacement order) do not yet
    # cover the need, and only where all of them together can.
    await scratch(conn, displaced_holds)
    async with set_based_joins(conn, campaign_bookings, count):
        await conn.execute(
            insert(displaced_holds).from_select(
                ["campaign_id", "subject_id", "points"],
                select(inner.c.campaign_id, inner.c.subject_id, inner.c.points_tenths).where(
                    inner.c.total >= inner.c.need,
                    inner.c.upto - inner.c.points_tenths < inner.c.need,
                ),
            )
        )
    await analyze(conn, displaced_holds)
    d = displaced_holds.c
    cb = campaign_bookings
    await conn.execute(
        update(cb)
        .where(cb.c.campaign_id == d.campaign_id, cb.c.subject_id == d.subject_id)
        .values(status=DISPLACED, displaced_by=camp.id)
    )
    rows = await conn.execute(
        select(d.campaign_id, campaigns.c.name, func.count())
        .join(campaigns, campaigns.c.id == d.campaign_id)
        .group_by(d.campaign_id, campaigns.c.name)
        .order_by(d.campaign_id)
    )
    return tuple(Displacement(r[0], r[1], int(r[2])) for r in rows)


async def _plan(
    conn: AsyncConnection, ctx: VaultContext, camp: Campaign, displacing: bool
) -> tuple[Any, bool]:
    """Per member: `fresh`, the hold's `status` and the change to its counter row's
    booked points (`delta`). Without displacement these are expressions over the scratch
    table. With it they need what the displaced holds free per member (an aggregate and a
    join), so they are computed once into `tmp_plan_holds`, in subject order, and the
    insert of the holds, the counter update and the counts only scan it. Returns (the
    rows, whether they are stored in subject order already)."""
    m = members.c
    source, freed = _with_freed(displacing)
    status = status_of(ctx, camp, freed)
    delta = case((status == BOOKED, cost_tenths(ctx, camp)), else_=0) - freed
    rows = select(m.subject_id, m.fresh, status.label("status"), delta.label("delta")).select_from(
        source
    )
    if not displacing:
        return rows.subquery("planned"), False
    await scratch(conn, planned)
    await conn.execute(
        insert(planned).from_select(
            ["subject_id", "fresh", "status", "delta"],
            rows.order_by(byte_order(conn, m.subject_id)),
        )
    )
    await analyze(conn, planned)
    return planned, True


async def _counts(
    conn: AsyncConnection, plan: Any, displaced: tuple[Displacement, ...]
) -> BookingOutcome:
    rows = await conn.execute(
        select(plan.c.status, func.count()).select_from(plan).group_by(plan.c.status)
    )
    counts = {r[0]: int(r[1]) for r in rows}
    return BookingOutcome(
        audience=sum(counts.values()),
        booked=counts.get(BOOKED, 0),
        blocked=counts.get(BLOCKED, 0),
        no_basis=counts.get(NO_BASIS, 0),
        displaced=displaced,
    )


async def hold(
    conn: AsyncConnection,
    ctx: VaultContext,
    camp: Campaign,
    now: datetime,
    confirm_displacement: bool,
) -> BookingOutcome:
    """Steps 1–4 (module docstring) in the caller's transaction, with the month and the
    campaign locked and a basis audience resolved; the campaign becomes `booked`. Raises
    `DisplacementNotConfirmed` when it would displace holds and that was not confirmed."""
    fresh = await _fill(conn, camp, now)
    await _fresh_rows(conn, ctx, camp, now, fresh)
    savepoint = await conn.begin_nested()
    displaced = await _displace(conn, ctx, camp)
    plan, in_order = await _plan(conn, ctx, camp, bool(displaced))
    if displaced and not confirm_displacement:
        outcome = await _counts(conn, plan, displaced)
        await savepoint.rollback()
        raise DisplacementNotConfirmed(outcome)
    await savepoint.commit()

    p = plan.c
    holds = select(
        literal(camp.id), p.subject_id, literal(camp.month),
        literal(cost_tenths(ctx, camp)), literal(camp.order_key), p.status,
    )  # fmt: skip
    cb = campaign_bookings
    await conn.execute(
        insert(cb).from_select(
            ["campaign_id", "subject_id", "month", "points_tenths", "order_key", "status"],
            # In primary-key order: the index grows at its end instead of at random.
            holds if in_order else holds.order_by(byte_order(conn, p.subject_id)),
        )
    )
    # Each existing counter row that changes, changes once: the new hold in, what
    # displacing freed out (a displacement by a hold of the same points changes nothing).
    budgets = contact_budgets.c
    await conn.execute(
        update(contact_budgets)
        .where(
            budgets.month == camp.month,
            budgets.subject_id == p.subject_id,
            p.fresh == false(),
            p.delta != 0,
        )
        .values(booked_tenths=budgets.booked_tenths + p.delta, updated_at=now)
    )
    await conn.execute(
        update(campaigns)
        .where(campaigns.c.id == camp.id)
        .values(state=str(CampaignState.BOOKED), updated_at=now)
    )
    outcome = await _counts(conn, plan, displaced)
    for table in (members, displaced_holds, planned):
        await drop(conn, table)
    return outcome
