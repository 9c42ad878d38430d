"""The hold a booked calamity campaign puts on the campaigns planned into its cool-down
(issue 21 item 3).

A calamity campaign's cool-down (`calamity_cooldown_hours`) starts at its window's start.
A campaign whose window starts inside it, whose type is not exempt from the cool-down and
whose priority is not unlimited, is *held* by the calamity campaign once that is booked
(or sent): to the members the calamity campaign reaches (its holds booked or used), the
held campaign's contacts are denied `contact_blocked_by_calamity` until the cool-down
ends. The customers who just got a recall do not get an offer an hour later, even when
the calamity message itself is sent late in its window.

The held campaign's booked points stay reserved: its window may outlast the cool-down,
and after it the campaign may still send (cancelling the calamity campaign lifts the hold
at once, nothing to give back). The hold is decided from the bookings when a contact is
made, under the counter-row lock the contact holds (`use_booking`), and booking the
calamity campaign locks the same rows: a contact either committed before the calamity
booking, or sees it. It lives here, below `vault.campaigns` (which lists the holds for
planners), because the contact path decides with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.catalogue.contact_pressure import PressureRules
from vault.catalogue.purposes import CommunicationType
from vault.clock import as_utc
from vault.storage.campaign_tables import campaign_bookings, campaigns

#: States of a calamity campaign that hold others (a cancelled one lifts its hold).
HOLDING_STATES = ("booked", "sent")
#: Statuses of a calamity campaign's bookings whose customers it reaches.
REACHING = ("booked", "used")


def can_be_held(rules: PressureRules, *, type: str, priority: str) -> bool:
    """Whether a cool-down blocks campaigns of this type and priority at all."""
    return (
        bool(rules.cooldown)
        and type != CommunicationType.CALAMITY.value
        and type not in rules.cooldown_exempt_types
        and not rules.priorities[priority].unlimited
    )


def calamities_covering(
    rules: PressureRules, start: datetime, *, at: datetime | None = None
) -> Any:
    """SQL condition on `campaigns`: a calamity campaign whose cool-down covers a window
    starting at `start` (and, with `at`, is still running at that time)."""
    start = as_utc(start)
    latest = start if at is None else min(start, as_utc(at))
    earliest = start if at is None else max(start, as_utc(at))
    return and_(
        campaigns.c.type == CommunicationType.CALAMITY.value,
        campaigns.c.window_start <= latest,
        campaigns.c.window_start > earliest - rules.cooldown,
    )


async def held_for(
    conn: AsyncConnection, rules: PressureRules, *, campaign: Any, subject_id: str, now: datetime
) -> bool:
    """Whether a booked calamity campaign holds `campaign` (a `campaigns` row) for this
    customer now: it reaches the customer and its cool-down, covering the campaign's
    window start, is running."""
    if not can_be_held(rules, type=campaign.type, priority=campaign.priority):
        return False
    b = campaign_bookings
    held = exists().where(
        campaigns.c.id == b.c.campaign_id,
        campaigns.c.id != campaign.id,
        campaigns.c.state.in_(HOLDING_STATES),
        calamities_covering(rules, campaign.window_start, at=now),
        b.c.subject_id == subject_id,
        b.c.status.in_(REACHING),
    )
    return bool((await conn.execute(select(held))).scalar())
