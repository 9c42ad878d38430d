"""Bookings by priority on both databases: the campaign served first keeps its points
whatever the order of booking and sending (also 20 tasks at once), displacement is told
before it happens, and no basket is ever overspent."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support.dsar import erase
from tests.support.factories import WRITER, person
from vault.audit.events import Actor, AuditAction
from vault.bases.consents import Evidence, record_basis
from vault.campaigns import basket_holds, booking
from vault.campaigns.audience import set_audience
from vault.campaigns.records import CampaignDraft, CampaignStateConflict, create
from vault.outreach.basket import Reservation, reserve
from vault.storage.audit_tables import audit_events
from vault.storage.campaign_tables import campaign_bookings
from vault.storage.outreach_tables import contact_budgets
from vault.subjects.decision import Deny, DenyReason
from vault.subjects.store import create_subject

MARKETER = Actor("client", "marketing")
EXPLICIT = Evidence(
    touchpoint="hotline.inbound", method="recorded_call", notice_version="2026-10",
    language="de", explicit=True,
)  # fmt: skip
BASKET = 250  # tenths


async def _customers(vault, n: int) -> list[str]:
    ids = []
    for i in range(n):
        sid = await create_subject(vault, WRITER, person(100 + i))
        await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
        ids.append(sid)
    return ids


async def _campaign(vault, name: str, rank: int, members: list[str]) -> str:
    now = vault.clock.now()
    camp = await create(
        vault, MARKETER, frozenset(),
        CampaignDraft(name=name, brand="tresor", purpose="offers.sms", rank=rank,
                      window_start=now - timedelta(hours=1), window_end=now + timedelta(days=2)),
    )  # fmt: skip
    await set_audience(vault, MARKETER, camp.id, [("subject_id", s) for s in members])
    return camp.id


async def _send(vault, sid: str, campaign: str | None, channel: str = "sms"):
    """A lookup's reservation for the campaign (None: a contact outside any booking)."""
    async with vault.transaction() as conn:
        return await reserve(
            conn, vault, subject_id=sid, channel=channel, type="commercial", brand="tresor",
            priority="normal", now=vault.clock.now(), purpose="offers.sms", client="crm",
            campaign=campaign,
        )  # fmt: skip


async def _holds(vault) -> dict[tuple[str, str], str]:
    async with vault.engine.connect() as conn:
        rows = await conn.execute(
            select(campaign_bookings.c.campaign_id, campaign_bookings.c.subject_id,
                   campaign_bookings.c.status)
        )  # fmt: skip
        return {(r[0], r[1]): r[2] for r in rows}


async def _never_overspent(vault) -> None:
    async with vault.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(contact_budgets.c.used_tenths, contact_budgets.c.booked_tenths)
            )
        ).all()
    assert rows and all(used + booked <= BASKET for used, booked in rows), rows


@pytest.mark.parametrize("high_first", [True, False])
async def test_higher_priority_is_served_first_whatever_the_booking_order(vault, high_first):
    """Two SMS offers (20 points each, a basket of 25) for the same 12 customers: the
    rank-1 campaign holds every basket, the rank-2 one none, in either booking order; when
    rank 1 books second it must confirm the displacement it was told about (12 of rank 2)."""
    sids = await _customers(vault, 12)
    high = await _campaign(vault, "Winter sale", 1, sids)
    low = await _campaign(vault, "Socks", 2, sids)
    first, second = (high, low) if high_first else (low, high)
    assert (await booking.book(vault, MARKETER, first)).booked == 12
    _, told = await booking.preview(vault, MARKETER, second)
    if high_first:
        assert (told.booked, told.blocked, told.displaced) == (0, 12, ())
        assert (await booking.book(vault, MARKETER, second)).blocked == 12
    else:
        assert told.booked == 12
        assert [(d.campaign_id, d.count) for d in told.displaced] == [(low, 12)]
        with pytest.raises(booking.DisplacementNotConfirmed) as refused:
            await booking.book(vault, MARKETER, second)
        assert refused.value.outcome.displaced[0].count == 12
        assert (await _holds(vault))[(low, sids[0])] == "booked"  # nothing changed
        done = await booking.book(vault, MARKETER, second, confirm_displacement=True)
        assert done.booked == 12 and done.displaced[0].count == 12
        async with vault.engine.connect() as conn:
            told_events = (
                (
                    await conn.execute(
                        select(audit_events.c.detail).where(
                            audit_events.c.action == str(AuditAction.CAMPAIGN_DISPLACED)
                        )
                    )
                )
                .scalars()
                .all()
            )
        assert len(told_events) == 1 and low in told_events[0] and "12" in told_events[0]
    holds = await _holds(vault)
    assert all(holds[(high, s)] == "booked" for s in sids)
    assert all(holds[(low, s)] in ("blocked", "displaced") for s in sids)
    await _never_overspent(vault)
    # Sending: rank 2 is refused, rank 1 spends its hold, nothing outside fits meanwhile.
    for sid in sids[:3]:
        denied = await _send(vault, sid, low)
        assert isinstance(denied, Deny) and denied.reason is DenyReason.CAMPAIGN_NOT_BOOKED
        outside = await _send(vault, sid, None, channel="sms")
        assert isinstance(outside, Deny) and outside.reason is DenyReason.CONTACT_BUDGET_EXHAUSTED
        made = await _send(vault, sid, high)
        assert isinstance(made, Reservation) and (made.points, made.used) == (20, 20)
        again = await _send(vault, sid, high)
        assert isinstance(again, Deny) and again.reason is DenyReason.CAMPAIGN_NOT_BOOKED
    await _never_overspent(vault)
    with pytest.raises(CampaignStateConflict):
        await booking.book(vault, MARKETER, high)


async def test_contacts_outside_bookings_only_use_unbooked_points(vault):
    """With 20 of 25 points booked, an e-mail offer (10) outside the booking is refused
    and an editorial e-mail (5) still fits; cancelling the campaign frees the points."""
    (sid,) = await _customers(vault, 1)
    camp = await _campaign(vault, "Only one", 1, [sid])
    await booking.book(vault, MARKETER, camp)
    outside = await _send(vault, sid, None, channel="email")
    assert isinstance(outside, Deny) and outside.reason is DenyReason.CONTACT_BUDGET_EXHAUSTED
    assert await booking.cancel(vault, MARKETER, camp) == 1
    assert isinstance(await _send(vault, sid, None, channel="email"), Reservation)
    await _never_overspent(vault)


async def test_twenty_way_concurrency_keeps_priority_and_the_basket(vault):
    """20 tasks at once (both bookings among 18 outside contacts), then 20 sends at once in
    random order: no basket is overspent, the rank-2 campaign never holds or sends where the
    rank-1 one could not, and rank 1 sends to every customer it holds."""
    sids = await _customers(vault, 6)
    high = await _campaign(vault, "High", 1, sids)
    low = await _campaign(vault, "Low", 2, sids)
    rng = random.Random(21)
    tasks = [booking.book(vault, MARKETER, high, confirm_displacement=True),
             booking.book(vault, MARKETER, low, confirm_displacement=True)]  # fmt: skip
    tasks += [_send(vault, rng.choice(sids), None, channel="email") for _ in range(18)]
    rng.shuffle(tasks)
    await asyncio.gather(*tasks)
    await _never_overspent(vault)
    holds = await _holds(vault)
    for sid in sids:
        if holds[(low, sid)] == "booked":
            assert holds[(high, sid)] == "booked", sid
    sends = [_send(vault, sid, c) for sid in sids for c in (high, low)]
    sends += [_send(vault, rng.choice(sids), None, channel="email") for _ in range(20 - len(sends))]
    rng.shuffle(sends)
    results = await asyncio.gather(*sends)
    await _never_overspent(vault)
    after = await _holds(vault)
    for sid in sids:
        assert after[(high, sid)] == (
            "used" if holds[(high, sid)] == "booked" else holds[(high, sid)]
        )
        assert after[(low, sid)] != "used" or holds[(high, sid)] == "used"
    assert sum(isinstance(r, Reservation) and r.points == 20 for r in results) == sum(
        1 for sid in sids if holds[(high, sid)] == "booked" or holds[(low, sid)] == "booked"
    )


async def test_erasure_releases_the_holds_and_leaves_the_audience(vault):
    """Erasing a booked member gives its held points back and removes it from the
    campaign's audience and bookings; the other members' holds stay."""
    keep, gone = await _customers(vault, 2)
    camp = await _campaign(vault, "Two", 1, [keep, gone])
    await booking.book(vault, MARKETER, camp)
    await erase(vault, Actor("dpo", "dpo"), gone)
    holds = await _holds(vault)
    assert holds == {(camp, keep): "booked"}
    async with vault.engine.connect() as conn:
        booked = dict(
            (await conn.execute(
                select(contact_budgets.c.subject_id, contact_budgets.c.booked_tenths)
            )).all()
        )  # fmt: skip
    assert booked == {keep: 200, gone: 0}


async def test_a_counter_row_created_while_booking_is_held_like_an_existing_one(vault, monkeypatch):
    """A contact that creates a member's counter row between the booking's reading of the
    audience and its writing of fresh rows (here: 23 of 25 points used) is not overwritten:
    the booking falls back to locking that row, blocks the member it no longer fits, and
    holds the others."""
    sids = await _customers(vault, 3)
    camp = await _campaign(vault, "Race", 1, sids)
    fill = basket_holds._fill

    async def fill_then_contact(conn, camp, now, audience=None):
        fresh = await fill(conn, camp, now, audience)
        await conn.execute(
            contact_budgets.insert().values(
                subject_id=sids[0], month=camp.month, used_tenths=230, updated_at=now
            )
        )
        return fresh

    monkeypatch.setattr(basket_holds, "_fill", fill_then_contact)
    done = await booking.book(vault, MARKETER, camp)
    assert (done.booked, done.blocked) == (2, 1)
    holds = await _holds(vault)
    assert holds[(camp, sids[0])] == "blocked"
    async with vault.engine.connect() as conn:
        result = await conn.execute(
            select(contact_budgets.c.subject_id, contact_budgets.c.booked_tenths)
        )
        rows = {r[0]: r[1] for r in result}
    assert rows == {sids[0]: 0, sids[1]: 200, sids[2]: 200}
    await _never_overspent(vault)


async def test_a_cheaper_campaign_displacing_a_dearer_one_gives_back_the_difference(vault):
    """A letter offer (15) served first displaces an SMS offer's hold (20) where both do
    not fit a basket of 25, leaving 15 booked on that counter row, while a member new to
    the month gets a fresh row holding 15; the outcome counts both as booked."""
    both, new = await _customers(vault, 2)
    for sid in (both, new):
        await record_basis(vault, WRITER, sid, "offers.post", reference="customer file")
    low = await _campaign(vault, "SMS", 2, [both])
    await booking.book(vault, MARKETER, low)
    now = vault.clock.now()
    high = await create(
        vault, MARKETER, frozenset(),
        CampaignDraft(name="Letter", brand="tresor", purpose="offers.post", channel="letter",
                      rank=1, window_start=now - timedelta(hours=1),
                      window_end=now + timedelta(days=2)),
    )  # fmt: skip
    await set_audience(vault, MARKETER, high.id, [("subject_id", s) for s in (both, new)])
    done = await booking.book(vault, MARKETER, high.id, confirm_displacement=True)
    assert (done.audience, done.booked, done.blocked) == (2, 2, 0)
    assert [(d.campaign_id, d.count) for d in done.displaced] == [(low, 1)]
    holds = await _holds(vault)
    assert holds[(low, both)] == "displaced"
    assert holds[(high.id, both)] == holds[(high.id, new)] == "booked"
    async with vault.engine.connect() as conn:
        result = await conn.execute(
            select(contact_budgets.c.subject_id, contact_budgets.c.booked_tenths)
        )
        assert {r[0]: r[1] for r in result} == {both: 150, new: 150}
    await _never_overspent(vault)


async def test_a_member_gets_room_from_several_later_holds_or_none_if_they_cannot_make_it(vault):
    """An SMS offer (20) at rank 2 over members holding print offers (10 each, basket 25):
    one with two later-served holds has both displaced (the latest-served first; one
    would not free enough) and its row keeps 20; one with a single later hold has it
    displaced, its row going from 10 to 20; one whose hold is served first is blocked and
    keeps its 10; one new to the month is booked. The preview told the same counts."""
    a, b, c, d = await _customers(vault, 4)
    for sid in (a, b, d):
        await record_basis(vault, WRITER, sid, "offers.post", reference="customer file")
    now = vault.clock.now()

    async def printed(name: str, rank: int, members: list[str]) -> str:
        camp = await create(
            vault, MARKETER, frozenset(),
            CampaignDraft(name=name, brand="tresor", purpose="offers.post", channel="print",
                          rank=rank, window_start=now - timedelta(hours=1),
                          window_end=now + timedelta(days=2)),
        )  # fmt: skip
        await set_audience(vault, MARKETER, camp.id, [("subject_id", s) for s in members])
        assert (await booking.book(vault, MARKETER, camp.id)).booked == len(members)
        return camp.id

    first = await printed("Served first", 1, [b])
    third = await printed("Third", 3, [a, d])
    last = await printed("Last", 4, [a])
    sms = await _campaign(vault, "SMS", 2, [a, b, c, d])
    _, told = await booking.preview(vault, MARKETER, sms)
    done = await booking.book(vault, MARKETER, sms, confirm_displacement=True)
    for outcome in (told, done):
        assert (outcome.audience, outcome.booked, outcome.blocked) == (4, 3, 1)
        assert sorted((x.campaign_id, x.count) for x in outcome.displaced) == sorted(
            [(third, 2), (last, 1)]
        )
    holds = await _holds(vault)
    assert holds[(third, a)] == holds[(last, a)] == holds[(third, d)] == "displaced"
    assert holds[(first, b)] == "booked" and holds[(sms, b)] == "blocked"
    assert holds[(sms, a)] == holds[(sms, c)] == holds[(sms, d)] == "booked"
    async with vault.engine.connect() as conn:
        result = await conn.execute(
            select(contact_budgets.c.subject_id, contact_budgets.c.booked_tenths)
        )
        assert {r[0]: r[1] for r in result} == {a: 200, b: 100, c: 200, d: 200}
    await _never_overspent(vault)
