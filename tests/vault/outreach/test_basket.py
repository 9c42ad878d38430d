"""The basket: its arithmetic, shared brands, priorities, the calamity cool-down and the
month roll-over, on both databases (the rules themselves: catalogue/test_contact_pressure.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.support.factories import WRITER, person
from vault.errors import InvalidInput
from vault.outreach.basket import Reservation, reserve
from vault.storage.outreach_tables import contact_budgets, contacts
from vault.subjects.decision import Deny, DenyReason
from vault.subjects.store import create_subject


async def _reserve(
    vault, sid, type="commercial", channel="email", brand="tresor", priority="normal", at=None
):
    async with vault.transaction() as conn:
        return await reserve(
            conn,
            vault,
            subject_id=sid,
            channel=channel,
            type=type,
            brand=brand,
            priority=priority,
            now=at or vault.clock.now(),
        )


def _ok(outcome) -> Reservation:
    assert isinstance(outcome, Reservation), outcome
    return outcome


def _denied(outcome, reason: DenyReason) -> None:
    assert isinstance(outcome, Deny) and outcome.reason is reason, outcome


async def test_basket_arithmetic_and_brands_share_one_basket(vault):
    """25 points: two commercial e-mails (20) from two brands, then a third brand's is
    refused; an editorial one (5) fills the basket exactly; service messages draw from their
    own reserve of 10 (e-mail 2, letter 3) until it is used, never from the basket."""
    sid = await create_subject(vault, WRITER, person(11))
    first = _ok(await _reserve(vault, sid, brand="tresor"))
    assert (first.points, first.used, first.basket, first.month) == (10, 10, 25, "2026-11")
    assert _ok(await _reserve(vault, sid, brand="tresor_outlet")).used == 20
    _denied(await _reserve(vault, sid, brand="tresor_finance"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    service = _ok(await _reserve(vault, sid, type="service"))
    assert (service.points, service.used, service.basket) == (2, 2, 10)
    assert _ok(await _reserve(vault, sid, type="editorial")).used == 25
    _denied(await _reserve(vault, sid, type="editorial"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    last = _ok(await _reserve(vault, sid, type="service", channel="letter", brand="tresor_finance"))
    assert (last.points, last.used) == (3, 5)
    assert _ok(await _reserve(vault, sid, type="service", channel="letter")).used == 8
    assert _ok(await _reserve(vault, sid, type="service")).used == 10
    _denied(await _reserve(vault, sid, type="service"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    async with vault.engine.connect() as conn:
        used = (await conn.execute(select(contact_budgets.c.used_tenths))).scalar_one()
        rows = (await conn.execute(select(func.sum(contacts.c.points_tenths)))).scalar_one()
    assert (used, rows) == (250, 350)
    other = await create_subject(vault, WRITER, person(12))
    assert _ok(await _reserve(vault, other)).used == 10  # each customer has a basket


async def test_priorities_high_may_overdraw_and_critical_always_passes(vault):
    sid = await create_subject(vault, WRITER, person(13))
    _ok(await _reserve(vault, sid))
    _ok(await _reserve(vault, sid))
    _denied(await _reserve(vault, sid), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    assert _ok(await _reserve(vault, sid, priority="high")).used == 30  # margin of 10
    _denied(await _reserve(vault, sid, priority="high"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    assert _ok(await _reserve(vault, sid, priority="critical", channel="phone")).used == 55
    with pytest.raises(InvalidInput) as err:
        await _reserve(vault, sid, priority="urgent", brand="acme", channel="fax")
    assert set(err.value.errors) == {"contact.priority", "contact.brand", "contact.channel"}


async def test_calamity_passes_a_full_basket_and_blocks_others_for_the_cool_down(vault, clock):
    sid = await create_subject(vault, WRITER, person(14))
    _ok(await _reserve(vault, sid))
    _ok(await _reserve(vault, sid))
    alarm = _ok(await _reserve(vault, sid, type="calamity"))  # 20 points over a full basket
    assert alarm.used == 40
    clock.advance(timedelta(hours=1))
    _denied(await _reserve(vault, sid, type="editorial"), DenyReason.CONTACT_BLOCKED_BY_CALAMITY)
    _denied(await _reserve(vault, sid, priority="high"), DenyReason.CONTACT_BLOCKED_BY_CALAMITY)
    _ok(await _reserve(vault, sid, type="calamity"))  # follow-ups pass
    _ok(await _reserve(vault, sid, type="service", priority="critical"))
    # service draws from its own reserve: the full basket does not stop it
    assert _ok(await _reserve(vault, sid, type="service")).used == 4
    other = await create_subject(vault, WRITER, person(15))
    _ok(await _reserve(vault, other, type="service"))  # service passes the cool-down
    _ok(await _reserve(vault, other, type="calamity"))
    _denied(await _reserve(vault, other, priority="high"), DenyReason.CONTACT_BLOCKED_BY_CALAMITY)
    clock.advance(timedelta(hours=72))  # the cool-down ended; still November, basket full
    _denied(await _reserve(vault, sid), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    _denied(await _reserve(vault, other), DenyReason.CONTACT_BUDGET_EXHAUSTED)  # 20 + 10
    assert _ok(await _reserve(vault, other, priority="high")).used == 30


async def test_the_month_rolls_over_by_the_clock(vault, clock):
    sid = await create_subject(vault, WRITER, person(16))
    _ok(await _reserve(vault, sid, channel="sms"))
    _denied(await _reserve(vault, sid, channel="letter"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    clock.advance(datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC) - clock.now())
    _denied(await _reserve(vault, sid, channel="letter"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    clock.advance(timedelta(seconds=1))
    december = _ok(await _reserve(vault, sid, channel="letter"))
    assert (december.month, december.used) == ("2026-12", 15)
    async with vault.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(contact_budgets.c.month, contact_budgets.c.used_tenths).order_by(
                    contact_budgets.c.month
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [("2026-11", 200), ("2026-12", 150)]


async def test_every_purpose_of_the_shipped_catalogue_passes_in_an_empty_month(vault):
    """Calibration (issue 21): each channel of each shipped purpose, offers.phone included,
    is reserved at normal priority for a customer nobody contacted this month."""
    tried = []
    for purpose in vault.catalogue.purposes.values():
        for channel in purpose.channels:
            sid = await create_subject(vault, WRITER, person(300 + len(tried)))
            got = await _reserve(vault, sid, type=purpose.communication_type.value, channel=channel)
            assert isinstance(got, Reservation), (purpose.id, channel, got)
            tried.append((purpose.id, channel))
    assert ("offers.phone", "phone") in tried and len(tried) >= len(vault.catalogue.purposes)


async def test_a_delivery_notice_passes_a_basket_marketing_filled(vault):
    """Service messages draw from their own reserve: with the basket full of commercial
    contacts, a delivery notice by SMS still passes and the basket counter stays at 25."""
    sid = await create_subject(vault, WRITER, person(17))
    _ok(await _reserve(vault, sid))
    _ok(await _reserve(vault, sid, channel="letter"))
    _denied(await _reserve(vault, sid), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    notice = _ok(await _reserve(vault, sid, type="service", channel="sms"))
    assert (notice.points, notice.used, notice.basket) == (4, 4, 10)
    async with vault.engine.connect() as conn:
        used = (await conn.execute(select(contact_budgets.c.used_tenths))).scalar_one()
    assert used == 250


async def test_an_inbound_contact_costs_nothing_and_starts_no_cool_down(vault, clock):
    """A contact the customer started is recorded at 0 points even on a full basket, and an
    inbound calamity report does not block the next outbound contact."""
    sid = await create_subject(vault, WRITER, person(18))
    _ok(await _reserve(vault, sid))
    _ok(await _reserve(vault, sid, channel="letter"))
    async with vault.transaction() as conn:
        for type in ("commercial", "calamity"):
            got = await reserve(
                conn, vault, subject_id=sid, channel="phone", type=type, brand="tresor",
                priority="normal", now=vault.clock.now(), inbound=True,
            )  # fmt: skip
            assert isinstance(got, Reservation) and (got.points, got.used) == (0, 25)
    clock.advance(timedelta(hours=1))
    assert _ok(await _reserve(vault, sid, type="service")).points == 2
    async with vault.engine.connect() as conn:
        stored = (
            await conn.execute(
                select(contacts.c.direction, contacts.c.points_tenths).order_by(contacts.c.at)
            )
        ).all()
    assert sorted(stored) == sorted(
        [("outbound", 100), ("outbound", 150), ("inbound", 0), ("inbound", 0), ("outbound", 20)]
    )
