"""Booking a calamity campaign holds the campaigns planned into its cool-down, on both
databases: the members it reaches cannot be contacted under a held campaign until the
cool-down ends or the calamity campaign is cancelled, the held bookings keep their
points, and every answer tells who holds whom with counts."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.support.factories import WRITER, person
from tests.vault.campaigns.test_booking import EXPLICIT, MARKETER, _holds, _send
from vault.bases.consents import record_basis
from vault.campaigns import booking, holds
from vault.campaigns.audience import set_audience
from vault.campaigns.calendar import calendar
from vault.campaigns.records import CampaignDraft, create, get
from vault.outreach.basket import Reservation
from vault.storage.outreach_tables import contact_budgets
from vault.subjects.decision import Deny, DenyReason
from vault.subjects.store import create_subject

REACHED = 8


async def _customers(vault, n: int) -> list[str]:
    ids = []
    for i in range(n):
        sid = await create_subject(vault, WRITER, person(300 + i))
        await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
        await record_basis(vault, WRITER, sid, "incident.notice", reference="recall duty")
        ids.append(sid)
    return ids


async def _plan(vault, sids: list[str]) -> tuple[str, str]:
    """An SMS offer sending from an hour ago, and a recall whose window (and cool-down)
    started two hours ago, for the first REACHED of the offer's customers."""
    now = vault.clock.now()
    offer = await create(vault, MARKETER, frozenset(), CampaignDraft(
        name="Offer", brand="tresor", purpose="offers.sms",
        window_start=now - timedelta(hours=1), window_end=now + timedelta(days=5)))  # fmt: skip
    await set_audience(vault, MARKETER, offer.id, [("subject_id", s) for s in sids])
    recall = await create(vault, MARKETER, frozenset({"incident.notice"}), CampaignDraft(
        name="Recall", brand="tresor", purpose="incident.notice", type="calamity",
        window_start=now - timedelta(hours=2), window_end=now + timedelta(hours=6)))  # fmt: skip
    await set_audience(vault, MARKETER, recall.id, [("subject_id", s) for s in sids[:REACHED]])
    return offer.id, recall.id


async def test_booking_a_calamity_campaign_holds_the_offer_for_the_members_it_reaches(vault):
    """The recall's preview and booking answer list the offer it holds (8 members); a
    lookup for the offer is denied the calamity cool-down for those 8 and passes for the
    others, the held bookings keep their points, and the hold ends with the cool-down."""
    sids = await _customers(vault, 12)
    offer, recall = await _plan(vault, sids)
    assert (await booking.book(vault, MARKETER, offer)).booked == 12
    _, told = await booking.preview(vault, MARKETER, recall)
    assert [(h.campaign_id, h.name, h.count) for h in told.holds] == [(offer, "Offer", REACHED)]
    done = await booking.book(vault, MARKETER, recall)
    assert [(h.campaign_id, h.count) for h in done.holds] == [(offer, REACHED)]
    reached = await _send(vault, sids[0], offer)
    assert isinstance(reached, Deny) and reached.reason == DenyReason.CONTACT_BLOCKED_BY_CALAMITY
    assert isinstance(await _send(vault, sids[REACHED], offer), Reservation)
    assert (await _holds(vault))[(offer, sids[0])] == "booked"  # the points stay reserved
    async with vault.engine.connect() as conn:
        booked = (
            await conn.execute(
                contact_budgets.select().where(contact_budgets.c.subject_id == sids[0])
            )
        ).one()
    recall_points = booking.cost_tenths(vault, await get(vault, recall))
    assert booked.booked_tenths == 200 + recall_points  # the offer's 20 points and the recall's
    vault.clock.advance(timedelta(hours=69))  # 71 h after the recall's start
    assert isinstance(await _send(vault, sids[1], offer), Deny)
    vault.clock.advance(timedelta(hours=2))  # 73 h after it: the 72 h cool-down is over
    assert isinstance(await _send(vault, sids[1], offer), Reservation)


async def test_cancelling_the_calamity_campaign_lifts_the_hold(vault):
    """After the recall is cancelled, the offer reaches the customers it held."""
    sids = await _customers(vault, 10)
    offer, recall = await _plan(vault, sids)
    await booking.book(vault, MARKETER, offer)
    await booking.book(vault, MARKETER, recall)
    assert isinstance(await _send(vault, sids[0], offer), Deny)
    await booking.cancel(vault, MARKETER, recall)
    assert isinstance(await _send(vault, sids[0], offer), Reservation)
    camp = await get(vault, offer)
    assert (await holds.held_by_all(vault, [camp]))[offer] == []


async def test_a_held_campaign_shows_who_holds_it_in_its_booking_and_the_calendar(vault):
    """An offer booked after the recall is told in its booking answer that the recall
    holds 8 of its members; the calendar marks the hold as in force."""
    sids = await _customers(vault, 12)
    offer, recall = await _plan(vault, sids)
    await booking.book(vault, MARKETER, recall)
    done = await booking.book(vault, MARKETER, offer)
    assert [(h.campaign_id, h.name, h.count) for h in done.held_by] == [(recall, "Recall", REACHED)]
    cal = await calendar(vault, MARKETER, "2026-11")
    assert [(h.calamity.id, h.held.id, h.members, h.in_force) for h in cal.holds] == [
        (recall, offer, REACHED, True)
    ]


async def test_contacts_racing_the_calamity_booking_are_held_once_it_commits(vault):
    """Twelve lookups for the offer race the recall's booking: every one that is denied
    is denied the cool-down, and once the booking committed each reached member is held."""
    sids = await _customers(vault, 12)
    offer, recall = await _plan(vault, sids)
    await booking.book(vault, MARKETER, offer)
    raced = await asyncio.gather(
        booking.book(vault, MARKETER, recall), *[_send(vault, s, offer) for s in sids]
    )
    for r in raced[1:]:
        assert isinstance(r, Reservation) or r.reason == DenyReason.CONTACT_BLOCKED_BY_CALAMITY
    after = await _holds(vault)
    for sid in sids[:REACHED]:
        again = await _send(vault, sid, offer)
        if after[(offer, sid)] == "booked":
            assert isinstance(again, Deny)
            assert again.reason == DenyReason.CONTACT_BLOCKED_BY_CALAMITY
    assert all(isinstance(r, Reservation) for r in raced[1 + REACHED :])
