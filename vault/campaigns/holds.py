"""Which planned campaigns a calamity campaign's cool-down holds, with counts, for the
planners (issue 21 item 3): the calendar, the booking answer and the campaign pages.

The rule and its enforcement at contact time are `vault.outreach.calamity_holds`: a
booked (or sent) calamity campaign holds every draft or booked campaign whose window
starts inside its cool-down (type not exempt, priority not unlimited), for the members it
reaches; a draft calamity campaign *would* hold them. Counted members: for a booked or sent
calamity campaign, those of the held campaign's audience its holds reach (booked or used);
for a draft, the audiences' intersection, or the whole held audience while an "everyone
with a basis" audience is not resolved. Counts only, never members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.campaigns.records import AudienceKind, Campaign, CampaignState, from_row
from vault.catalogue.purposes import CommunicationType
from vault.clock import as_utc
from vault.outreach.calamity_holds import (
    HOLDING_STATES,
    REACHING,
    calamities_covering,
    can_be_held,
)
from vault.storage.campaign_tables import campaign_audience, campaign_bookings, campaigns

if TYPE_CHECKING:
    from vault.context import VaultContext

#: States of campaigns that can be held (planned ones).
HELD_STATES = (CampaignState.DRAFT.value, CampaignState.BOOKED.value)


@dataclass(frozen=True, slots=True)
class Hold:
    calamity: Campaign
    held: Campaign
    #: Members of the held campaign the calamity campaign reaches.
    members: int

    @property
    def in_force(self) -> bool:
        """Booked or sent: the hold applies to contacts; a draft only would hold."""
        return self.calamity.state in HOLDING_STATES


def covers(ctx: VaultContext, cal: Campaign, camp: Campaign) -> bool:
    """Whether the calamity campaign's cool-down holds `camp` (window start inside it)."""
    rules = ctx.pressure_rules
    if cal.type != CommunicationType.CALAMITY.value or cal.id == camp.id:
        return False
    if not can_be_held(rules, type=camp.type, priority=camp.priority):
        return False
    start = as_utc(cal.window_start)
    return start <= as_utc(camp.window_start) < start + rules.cooldown


async def members_reached(conn: AsyncConnection, cal: Campaign, held: Campaign) -> int:
    """Members of `held` the calamity campaign reaches (module docstring)."""
    held_members = select(campaign_audience.c.subject_id).where(
        campaign_audience.c.campaign_id == held.id
    )
    if cal.state in HOLDING_STATES:
        b = campaign_bookings
        q = select(func.count()).where(
            b.c.campaign_id == cal.id,
            b.c.status.in_(REACHING),
            b.c.subject_id.in_(held_members),
        )
    elif cal.audience_kind == AudienceKind.BASIS and not await _resolved(conn, cal):
        q = select(func.count()).select_from(held_members.subquery())
    else:
        q = select(func.count()).where(
            campaign_audience.c.campaign_id == cal.id,
            campaign_audience.c.subject_id.in_(held_members),
        )
    return int((await conn.execute(q)).scalar_one())


async def _resolved(conn: AsyncConnection, cal: Campaign) -> bool:
    """Whether the calamity campaign's audience has members (a resolved basis audience,
    e.g. inside a booking preview)."""
    q = select(campaign_audience.c.subject_id).where(campaign_audience.c.campaign_id == cal.id)
    return (await conn.execute(q.limit(1))).first() is not None


async def holds_of(conn: AsyncConnection, ctx: VaultContext, cal: Campaign) -> list[Hold]:
    """The planned campaigns the calamity campaign holds (or would hold), with counts."""
    if cal.type != CommunicationType.CALAMITY.value:
        return []
    start = as_utc(cal.window_start)
    rows = await conn.execute(
        select(campaigns)
        .where(
            campaigns.c.state.in_(HELD_STATES),
            campaigns.c.window_start >= start,
            campaigns.c.window_start < start + ctx.pressure_rules.cooldown,
        )
        .order_by(campaigns.c.order_key, campaigns.c.id)
    )
    held = [c for c in map(from_row, rows.all()) if covers(ctx, cal, c)]
    return [Hold(cal, c, await members_reached(conn, cal, c)) for c in held]


async def held_by(conn: AsyncConnection, ctx: VaultContext, camp: Campaign) -> list[Hold]:
    """The booked or sent calamity campaigns that hold `camp`, with counts."""
    rules = ctx.pressure_rules
    if camp.state not in HELD_STATES or not can_be_held(
        rules, type=camp.type, priority=camp.priority
    ):
        return []
    rows = await conn.execute(
        select(campaigns)
        .where(
            campaigns.c.state.in_(HOLDING_STATES),
            calamities_covering(rules, camp.window_start),
        )
        .order_by(campaigns.c.window_start, campaigns.c.id)
    )
    cals = [c for c in map(from_row, rows.all()) if covers(ctx, c, camp)]
    return [Hold(c, camp, await members_reached(conn, c, camp)) for c in cals]


async def held_by_all(ctx: VaultContext, camps: list[Campaign]) -> dict[str, list[Hold]]:
    """`held_by` for each of the campaigns (campaign id → holds), one transaction."""
    async with ctx.transaction() as conn:
        return {c.id: await held_by(conn, ctx, c) for c in camps}
