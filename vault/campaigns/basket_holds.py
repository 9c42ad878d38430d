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
   booking of the month), the audience is counted (or its size taken from the caller)
   instead of searched for fresh ones; the members are then counted by what their hold
   will be (`_tally`), which with step 3's count makes the outcome;
3. where a member's free points are too few, holds of campaigns served later are
   displaced: the window function runs once, over the members that need room only, and
   its chosen holds are marked (on PostgreSQL in the same statement, by row address) and
   noted in a second scratch table (`tmp_plan_displaced`), from which the displaced
   campaigns are counted. Each member's last displaced hold carries what all of them
   free, so the later statements join one row per member and sum nothing;
4. the campaign's holds are inserted, and each existing counter row whose booked points
   change is changed once: what the displaced holds freed given back, the new hold added
   (a hold displaced by one of the same points changes nothing, so it is not written).

Statuses and the arithmetic are the module's constants and `status_of`; the preview and
the forecast (`booking`, `forecast`) count the same way without writing.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    scratch,
)
from vault.campaigns.records import AudienceKind, Campaign, CampaignState
from vault.storage.campaign_tables import campaign_audience, campaign_bookings, campaigns
from vault.storage.dialect import (
    analyze,
    insert_ignoring_conflict,
    row_address,
    set_based_joins,
    updates_in_one_statement,
)
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


def status_of(ctx: VaultContext, camp: Campaign, made_room: Any) -> Any:
    """The hold's status per scratch row, after displacement (`made_room`: the member's
    displaced holds free what it needs, see `_holds`)."""
    m = members.c
    fits_empty = cost_tenths(ctx, camp) <= limit_tenths(ctx, camp)
    return case(
        (m.basis == false(), literal(NO_BASIS)),
        (m.fresh == true(), literal(BOOKED if fits_empty else BLOCKED)),
        (_need(ctx, camp) <= 0, literal(BOOKED)),
        (made_room, literal(BOOKED)),
        else_=literal(BLOCKED),
    )


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


async def _fill(
    conn: AsyncConnection, camp: Campaign, now: datetime, audience: int | None = None
) -> int:
    """Step 0 and 2: the scratch table with every member once, those with a counter row
    locked and read; returns how many are fresh (no counter row). When every member has
    a counter row (a second booking of the month), the audience is only counted (or
    `audience`, the size the caller resolved it to, is taken), not searched again for
    members missing from the scratch table."""
    await scratch(conn, members)
    a = campaign_audience.c
    if audience is None:
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


@dataclass(frozen=True, slots=True)
class _Tally:
    """The members by what their hold will be, counted once from the scratch table before
    displacing: `fits` (an existing counter row with room) and `needy` (an existing row
    without) are members with a basis; `fresh` ones (no counter row) too."""

    audience: int
    no_basis: int
    fresh: int
    fits: int
    needy: int


async def _tally(conn: AsyncConnection, ctx: VaultContext, camp: Campaign) -> _Tally:
    m = members.c
    need = _need(ctx, camp)
    old = and_(m.basis == true(), m.fresh == false())
    row = (
        await conn.execute(
            select(
                func.count(),
                func.sum(case((m.basis == false(), 1), else_=0)),
                func.sum(case((and_(m.basis == true(), m.fresh == true()), 1), else_=0)),
                func.sum(case((and_(old, need <= 0), 1), else_=0)),
                func.sum(case((and_(old, need > 0), 1), else_=0)),
            )
        )
    ).one()
    return _Tally(*(int(v or 0) for v in row))


def _outcome(
    ctx: VaultContext, camp: Campaign, tally: _Tally, made_room: int, displaced: Any
) -> BookingOutcome:
    """The counts of `_tally` once `made_room` of the needy members got room by
    displacing: a fresh member is booked when the campaign fits an empty basket, a needy
    one when displacing made room, the others with room are booked."""
    fits_empty = cost_tenths(ctx, camp) <= limit_tenths(ctx, camp)
    fresh_booked = tally.fresh if fits_empty else 0
    return BookingOutcome(
        audience=tally.audience,
        booked=fresh_booked + tally.fits + made_room,
        blocked=tally.fresh - fresh_booked + tally.needy - made_room,
        no_basis=tally.no_basis,
        displaced=displaced,
    )


async def _displace(
    conn: AsyncConnection, ctx: VaultContext, camp: Campaign, needy: int
) -> tuple[tuple[Displacement, ...], int]:
    """Step 3: mark the later-served holds that make room for the `needy` members, note
    them in `tmp_plan_displaced` (each displaced member's last one in displacement order
    carrying what they all free: `freed`), and count them per campaign. Returns (the
    counts, how many members got room)."""
    if not needy:
        return (), 0
    m = members.c
    need = _need(ctx, camp)
    b = campaign_bookings.alias("held")
    ordering = (b.c.order_key.desc(), b.c.campaign_id.desc())
    inner = (
        select(
            row_address(conn, b).label("row"),
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
            m.fresh == false(),
            m.basis == true(),
            need > 0,
            b.c.month == camp.month,
            b.c.status == BOOKED,
            b.c.order_key > camp.order_key,
            b.c.campaign_id != camp.id,
        )
        .subquery()
    )
    # A hold is displaced when the holds before it (in displacement order) do not yet
    # cover the need, and only where all of them together can. The last of them (the one
    # whose running sum reaches the need) carries that sum: what the member gets back.
    chosen = (
        select(
            inner.c.row,
            inner.c.campaign_id,
            inner.c.subject_id,
            inner.c.points_tenths,
            case((inner.c.upto >= inner.c.need, inner.c.upto), else_=0).label("freed"),
        )
        .where(
            inner.c.total >= inner.c.need,
            inner.c.upto - inner.c.points_tenths < inner.c.need,
        )
        .subquery("chosen")
    )
    await scratch(conn, displaced_holds)
    async with set_based_joins(conn, campaign_bookings, needy):
        await _mark_displaced(conn, camp, chosen)
    d = displaced_holds.c
    rows = await conn.execute(
        select(
            d.campaign_id,
            campaigns.c.name,
            func.count(),
            func.sum(case((d.freed > 0, 1), else_=0)),
        )
        .join(campaigns, campaigns.c.id == d.campaign_id)
        .group_by(d.campaign_id, campaigns.c.name)
        .order_by(d.campaign_id)
    )
    counted = rows.all()
    await analyze(conn, displaced_holds)
    made_room = sum(int(r[3]) for r in counted)
    return tuple(Displacement(r[0], r[1], int(r[2])) for r in counted), made_room


async def _mark_displaced(conn: AsyncConnection, camp: Campaign, chosen: Any) -> None:
    """The chosen holds (`_displace`) marked displaced and noted in `tmp_plan_displaced`.
    On PostgreSQL in one statement: the window's rows update the holds they were read
    from by their row address (`ctid`), and the update's returned rows fill the scratch
    table, so the million holds are not read and joined a second time. SQLite has no
    updates inside a statement: the scratch table is filled, then the holds are updated
    from it by key."""
    cb = campaign_bookings
    columns = ["campaign_id", "subject_id", "points", "freed"]
    if updates_in_one_statement(conn):
        moved = (
            update(cb)
            .where(row_address(conn, cb) == chosen.c.row)
            .values(status=DISPLACED, displaced_by=camp.id)
            .returning(cb.c.campaign_id, cb.c.subject_id, cb.c.points_tenths, chosen.c.freed)
            .cte("moved")
        )
        await conn.execute(
            insert(displaced_holds).from_select(columns, select(*moved.c)).add_cte(moved)
        )
        return
    c = chosen.c
    await conn.execute(
        insert(displaced_holds).from_select(
            columns, select(c.campaign_id, c.subject_id, c.points_tenths, c.freed)
        )
    )
    d = displaced_holds.c
    await conn.execute(
        update(cb)
        .where(cb.c.campaign_id == d.campaign_id, cb.c.subject_id == d.subject_id)
        .values(status=DISPLACED, displaced_by=camp.id)
    )


def _holds(ctx: VaultContext, camp: Campaign, displacing: bool) -> Any:
    """Per member the hold to insert, in subject order: its status is `status_of`, where
    a needy member got room when it has a displaced hold carrying what was freed."""
    m = members.c
    source: Any = members
    made_room: Any = false()
    if displacing:
        d = displaced_holds.c
        source = members.outerjoin(displaced_holds, and_(d.subject_id == m.subject_id, d.freed > 0))
        made_room = d.subject_id.is_not(None)
    return select(
        literal(camp.id), m.subject_id, literal(camp.month),
        literal(cost_tenths(ctx, camp)), literal(camp.order_key),
        status_of(ctx, camp, made_room),
    ).select_from(source)  # fmt: skip


async def _count_points(
    conn: AsyncConnection, ctx: VaultContext, camp: Campaign, now: datetime, displacing: bool
) -> None:
    """Each existing counter row that changes, changes once: members with room get the
    new hold added; members that got room by displacing get it added and what their
    displaced holds freed given back (a displacement by a hold of the same points changes
    nothing, so it is not written)."""
    m = members.c
    budgets = contact_budgets.c
    cost = cost_tenths(ctx, camp)
    if cost:
        await conn.execute(
            update(contact_budgets)
            .where(
                budgets.month == camp.month,
                budgets.subject_id == m.subject_id,
                m.fresh == false(),
                m.basis == true(),
                _need(ctx, camp) <= 0,
            )
            .values(booked_tenths=budgets.booked_tenths + cost, updated_at=now)
        )
    if displacing:
        d = displaced_holds.c
        await conn.execute(
            update(contact_budgets)
            .where(
                budgets.month == camp.month,
                budgets.subject_id == d.subject_id,
                d.freed > 0,
                d.freed != cost,
            )
            .values(booked_tenths=budgets.booked_tenths + cost - d.freed, updated_at=now)
        )


async def hold(
    conn: AsyncConnection,
    ctx: VaultContext,
    camp: Campaign,
    now: datetime,
    confirm_displacement: bool,
    audience: int | None = None,
) -> BookingOutcome:
    """Steps 1–4 (module docstring) in the caller's transaction, with the month and the
    campaign locked and a basis audience resolved (`audience`: its size, when the caller
    knows it); the campaign becomes `booked`. Raises `DisplacementNotConfirmed` when it
    would displace holds and that was not confirmed."""
    fresh = await _fill(conn, camp, now, audience)
    await _fresh_rows(conn, ctx, camp, now, fresh)
    tally = await _tally(conn, ctx, camp)
    savepoint = await conn.begin_nested()
    displaced, made_room = await _displace(conn, ctx, camp, tally.needy)
    outcome = _outcome(ctx, camp, tally, made_room, displaced)
    if displaced and not confirm_displacement:
        await savepoint.rollback()
        raise DisplacementNotConfirmed(outcome)
    await savepoint.commit()

    await conn.execute(
        insert(campaign_bookings).from_select(
            ["campaign_id", "subject_id", "month", "points_tenths", "order_key", "status"],
            # In primary-key order: the index grows at its end instead of at random.
            _holds(ctx, camp, bool(displaced)).order_by(byte_order(conn, members.c.subject_id)),
        )
    )
    await _count_points(conn, ctx, camp, now, bool(displaced))
    await conn.execute(
        update(campaigns)
        .where(campaigns.c.id == camp.id)
        .values(state=str(CampaignState.BOOKED), updated_at=now)
    )
    for table in (members, displaced_holds):
        await drop(conn, table)
    return outcome
