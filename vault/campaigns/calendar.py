"""The campaign calendar (issue 21 item 3): a basket month's planned and booked campaigns
by ISO week across brands and channels, each with its forecast, the week's overlaps, and
what a calamity campaign's cool-down would hold.

- A campaign appears in every ISO week its send window touches.
- The overlap of a week counts the customers who are in the audiences of campaigns of at
  least three brands sending that week: the "three brands in one week" the method warns
  about. Counted in the database (one grouped statement per week), never listed.
- A calamity campaign starts a cool-down (`calamity_cooldown_hours`) at its window's start
  in which other contacts are blocked unless their type is exempt or their priority
  unlimited; the calendar lists each planned campaign whose window starts inside that
  cool-down, with how many of its audience the calamity campaign reaches: held once the
  calamity campaign is booked, else would be held (`vault.campaigns.holds`).

Only drafts and booked campaigns are planned; audiences "everyone with a basis" count
once booked (their members are resolved then). Counts only; the API shows each below k
as "< k". The calendar read is audited, and each forecast is audited by `forecast`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.campaigns import forecast as forecasting
from vault.campaigns.holds import Hold, covers, members_reached
from vault.campaigns.records import Campaign, CampaignState, list_campaigns
from vault.campaigns.reports import month_range
from vault.catalogue.purposes import CommunicationType
from vault.clock import as_utc
from vault.storage.campaign_tables import campaign_audience, campaigns

if TYPE_CHECKING:
    from vault.context import VaultContext

PLANNED = (CampaignState.DRAFT.value, CampaignState.BOOKED.value)
#: How many brands sending to one customer in one week make an overlap (the method's rule).
OVERLAP_BRANDS = 3


@dataclass(frozen=True, slots=True)
class Entry:
    campaign: Campaign
    forecast: forecasting.Forecast


@dataclass(frozen=True, slots=True)
class Week:
    #: ISO week, e.g. "2026-W48", and its Monday.
    week: str
    monday: date
    campaign_ids: tuple[str, ...]
    brands: int
    overlap: int


@dataclass(frozen=True, slots=True)
class Calendar:
    month: str
    entries: dict[str, Entry]
    weeks: list[Week]
    holds: list[Hold]


def iso_weeks(start: datetime, end: datetime) -> list[tuple[str, date]]:
    """The ISO weeks (label, Monday) an interval [start, end) touches, in order."""
    first = as_utc(start).date()
    last = (as_utc(end) - timedelta(microseconds=1)).date()
    monday = first - timedelta(days=first.weekday())
    out = []
    while monday <= last:
        year, week, _ = monday.isocalendar()
        out.append((f"{year}-W{week:02d}", monday))
        monday += timedelta(days=7)
    return out


async def calendar(ctx: VaultContext, actor: Actor, month: str) -> Calendar:
    """The calendar of a basket month (module docstring); audited."""
    month_range(ctx, month)
    planned = [c for c in await list_campaigns(ctx, month=month) if c.state in PLANNED]
    entries = {}
    for camp in planned:
        _, f = await forecasting.forecast(ctx, actor, camp.id)
        entries[camp.id] = Entry(camp, f)
    by_week: dict[tuple[str, date], list[Campaign]] = {}
    for camp in planned:
        for key in iso_weeks(camp.window_start, camp.window_end):
            by_week.setdefault(key, []).append(camp)
    weeks = []
    async with ctx.transaction() as conn:
        for (label, monday), camps in sorted(by_week.items(), key=lambda i: i[0][1]):
            brands = {c.brand for c in camps}
            overlap = 0
            if len(brands) >= OVERLAP_BRANDS:
                members = (
                    select(campaign_audience.c.subject_id)
                    .join(campaigns, campaigns.c.id == campaign_audience.c.campaign_id)
                    .where(campaign_audience.c.campaign_id.in_([c.id for c in camps]))
                    .group_by(campaign_audience.c.subject_id)
                    .having(func.count(func.distinct(campaigns.c.brand)) >= OVERLAP_BRANDS)
                    .subquery()
                )
                counted = await conn.execute(select(func.count()).select_from(members))
                overlap = int(counted.scalar_one())
            weeks.append(Week(label, monday, tuple(c.id for c in camps), len(brands), overlap))
        holds = []
        for cal in (c for c in planned if c.type == CommunicationType.CALAMITY.value):
            for held in (c for c in planned if covers(ctx, cal, c)):
                holds.append(Hold(cal, held, await members_reached(conn, cal, held)))
        await audit.record(
            conn, at=ctx.clock.now(), actor=actor, action=AuditAction.CAMPAIGN_REPORT,
            decision=Decision.ALLOW, detail={"report": {"name": "calendar", "month": month}},
        )  # fmt: skip
    return Calendar(month=month, entries=entries, weeks=weeks, holds=holds)
