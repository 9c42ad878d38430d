"""Spending a campaign's booking: the contact a booked campaign makes to one customer.

A campaign booking (`vault.campaigns.booking`) holds points in the customer's basket for
its month; a lookup or a recorded contact that names the campaign (`contact.campaign`)
turns exactly that hold into a contact instead of reserving anew. It runs in the caller's
transaction under the same counter-row lock as `vault.outreach.basket.reserve`, so a
booking is used once and the basket never overspends: the hold moves from
`booked_tenths` to `used_tenths`. The calamity cool-down and the customer's quiet hours
and the customer's own preferences (quiet hours, own cap) still decide: a booking holds
points, not the customer's evening.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.catalogue.contact_pressure import PressureRules
from vault.catalogue.purposes import CommunicationType
from vault.clock import as_utc
from vault.outreach import calamity_holds, preferences
from vault.storage.campaign_tables import campaign_audience, campaign_bookings, campaigns
from vault.storage.dialect import insert_ignoring_conflict
from vault.storage.outreach_tables import contact_budgets, contacts
from vault.subjects.decision import Deny, DenyReason

#: Campaign states and booking statuses shared with `vault.campaigns` (which sits above).
CAMPAIGN_BOOKED = "booked"
BOOKING_HELD = "booked"
BOOKING_USED = "used"


@dataclass(frozen=True, slots=True)
class BookedContact:
    """A campaign contact made from its booking (the `Reservation` shape of the basket)."""

    contact_id: str
    subject_id: str
    month: str
    points: float
    used: float
    basket: float
    preferred_channel: str | None = None
    channel: str | None = None


async def in_calamity_cooldown(
    conn: AsyncConnection,
    rules: PressureRules,
    *,
    subject_id: str,
    type: str,
    unlimited: bool,
    now: datetime,
) -> bool:
    """Whether an outbound calamity contact within the cool-down blocks a contact of
    `type` (exempt types and unlimited priorities pass)."""
    if not rules.cooldown or unlimited or type in rules.cooldown_exempt_types:
        return False
    recent = (
        await conn.execute(
            select(func.count())
            .select_from(contacts)
            .where(
                contacts.c.subject_id == subject_id,
                contacts.c.type == CommunicationType.CALAMITY.value,
                contacts.c.direction == "outbound",
                contacts.c.at > now - rules.cooldown,
                contacts.c.at <= now,
            )
        )
    ).scalar_one()
    return bool(recent)


async def use_booking(
    conn: AsyncConnection,
    ctx: Any,
    *,
    campaign_id: str,
    subject_id: str,
    brand: str,
    now: datetime,
    purpose: str | None,
    touchpoint: str | None,
    client: str | None,
    request_id: str | None,
    contact_id: str | None = None,
) -> BookedContact | Deny:
    """Make the campaign's contact to `subject_id` from its booking, or deny it:
    `campaign_not_booked` (no usable booking: unknown or unbooked campaign, another
    purpose or brand, outside the send window, displaced, blocked or used),
    `contact_blocked_by_calamity` (also while a booked calamity campaign holds the campaign:
    `vault.outreach.calamity_holds`), `contact_quiet_hours`. The contact is recorded with the
    campaign's channel, type and priority and the booked points."""
    rules: PressureRules = ctx.pressure_rules
    month = rules.month_of(now)
    camp = (await conn.execute(select(campaigns).where(campaigns.c.id == campaign_id))).first()
    if (
        camp is None
        or camp.state != CAMPAIGN_BOOKED
        or camp.purpose != purpose
        or camp.brand != brand
        or camp.month != month
        or not (as_utc(camp.window_start) <= now < as_utc(camp.window_end))
    ):
        return Deny(DenyReason.CAMPAIGN_NOT_BOOKED)
    # The counter row first, like `reserve`: every contact of this customer and month
    # queues on it, and bookings lock the same rows before they change holds.
    await conn.execute(
        insert_ignoring_conflict(conn, contact_budgets, ["subject_id", "month"]),
        {"subject_id": subject_id, "month": month, "used_tenths": 0, "updated_at": now},
    )
    used = (
        await conn.execute(
            select(contact_budgets.c.used_tenths)
            .where(contact_budgets.c.subject_id == subject_id, contact_budgets.c.month == month)
            .with_for_update()
        )
    ).scalar_one()
    points = (
        await conn.execute(
            select(campaign_bookings.c.points_tenths).where(
                campaign_bookings.c.campaign_id == campaign_id,
                campaign_bookings.c.subject_id == subject_id,
                campaign_bookings.c.month == month,
                campaign_bookings.c.status == BOOKING_HELD,
            )
        )
    ).scalar_one_or_none()
    if points is None:
        return Deny(DenyReason.CAMPAIGN_NOT_BOOKED)
    prio = rules.priorities[camp.priority]
    if await in_calamity_cooldown(
        conn, rules, subject_id=subject_id, type=camp.type, unlimited=prio.unlimited, now=now
    ):
        return Deny(DenyReason.CONTACT_BLOCKED_BY_CALAMITY)
    if await calamity_holds.held_for(conn, rules, campaign=camp, subject_id=subject_id, now=now):
        # A booked calamity campaign's cool-down holds this campaign for this customer.
        return Deny(DenyReason.CONTACT_BLOCKED_BY_CALAMITY)
    prefs = await preferences.load(conn, subject_id)
    verdict = preferences.check_contact(
        prefs, channel=camp.channel, type=camp.type,
        cap_exempt=prio.unlimited or camp.type in rules.basket_exempt_types,
        used_tenths=used, cost_tenths=points, now=now,
    )  # fmt: skip
    if verdict.deny is not None:
        return Deny(verdict.deny)
    taken = await conn.execute(
        update(campaign_bookings)
        .where(
            campaign_bookings.c.campaign_id == campaign_id,
            campaign_bookings.c.subject_id == subject_id,
            campaign_bookings.c.status == BOOKING_HELD,
        )
        .values(status=BOOKING_USED)
    )
    if taken.rowcount != 1:
        return Deny(DenyReason.CAMPAIGN_NOT_BOOKED)
    new_used = (
        await conn.execute(
            update(contact_budgets)
            .where(contact_budgets.c.subject_id == subject_id, contact_budgets.c.month == month)
            .values(
                used_tenths=contact_budgets.c.used_tenths + points,
                booked_tenths=contact_budgets.c.booked_tenths - points,
                updated_at=now,
            )
            .returning(contact_budgets.c.used_tenths)
        )
    ).scalar_one()
    contact_id = contact_id or str(uuid.uuid4())
    await conn.execute(
        insert(contacts).values(
            id=contact_id, subject_id=subject_id, at=now, month=month, brand=camp.brand,
            channel=camp.channel, type=camp.type, priority=camp.priority,
            points_tenths=points, touchpoint=touchpoint or camp.touchpoint, purpose=purpose,
            client=client, request_id=request_id,
        )
    )  # fmt: skip
    return BookedContact(
        contact_id=contact_id,
        subject_id=subject_id,
        month=month,
        points=points / 10,
        used=new_used / 10,
        basket=(rules.limit_tenths(camp.type) + prio.overdraft_tenths) / 10,
        channel=camp.channel,
    )


async def forget_subjects(conn: AsyncConnection, ids: list[str], now: datetime) -> Counter[str]:
    """On erasure (`vault.rights.erasure_batch`, in its transaction): give back what
    campaigns held in the baskets of the subjects `ids`, and drop them from every campaign's
    audience and bookings. Returns the holds released per subject."""
    b = campaign_bookings
    held = (
        await conn.execute(
            select(b.c.subject_id, b.c.month, func.sum(b.c.points_tenths))
            .where(b.c.subject_id.in_(ids), b.c.status == BOOKING_HELD)
            .group_by(b.c.subject_id, b.c.month)
        )
    ).all()
    if held:
        await conn.execute(
            update(contact_budgets)
            .where(
                contact_budgets.c.subject_id == bindparam("b_subject"),
                contact_budgets.c.month == bindparam("b_month"),
            )
            .values(
                booked_tenths=contact_budgets.c.booked_tenths - bindparam("b_points"),
                updated_at=now,
            ),
            [{"b_subject": s, "b_month": m, "b_points": p} for s, m, p in held],
        )
    released = Counter(
        str(s)
        for s in (
            await conn.execute(
                delete(b)
                .where(b.c.subject_id.in_(ids), b.c.status == BOOKING_HELD)
                .returning(b.c.subject_id)
            )
        ).scalars()
    )
    await conn.execute(delete(b).where(b.c.subject_id.in_(ids)))
    await conn.execute(delete(campaign_audience).where(campaign_audience.c.subject_id.in_(ids)))
    return released
