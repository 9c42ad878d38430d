"""The basket: its arithmetic, shared brands, priorities, the calamity cool-down and the
month roll-over, on both databases (the rules themselves: catalogue/test_contact_pressure.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.support.factories import WRITER, person
from vault.errors import InvalidInput
from vault.outreach.basket import Reservation, reserve
from vault.storage.tables import contact_budgets, contacts
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
    refused; a service e-mail (2) fits, an editorial one (5) not, a service letter (3) fills
    the basket exactly; then nothing."""
    sid = await create_subject(vault, WRITER, person(11))
    first = _ok(await _reserve(vault, sid, brand="tresor"))
    assert (first.points, first.used, first.basket, first.month) == (10, 10, 25, "2026-11")
    assert _ok(await _reserve(vault, sid, brand="tresor_outlet")).used == 20
    _denied(await _reserve(vault, sid, brand="tresor_finance"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    assert _ok(await _reserve(vault, sid, type="service")).used == 22
    _denied(await _reserve(vault, sid, type="editorial"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    last = _ok(await _reserve(vault, sid, type="service", channel="letter", brand="tresor_finance"))
    assert (last.points, last.used) == (3, 25)
    _denied(await _reserve(vault, sid, type="service"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    async with vault.engine.connect() as conn:
        used = (await conn.execute(select(contact_budgets.c.used_tenths))).scalar_one()
        rows = (await conn.execute(select(func.sum(contacts.c.points_tenths)))).scalar_one()
    assert used == rows == 250
    other = await create_subject(vault, WRITER, person(12))
    assert _ok(await _reserve(vault, other)).used == 10  # each customer has a basket


async def test_priorities_high_may_overdraw_and_critical_always_passes(vault):
    sid = await create_subject(vault, WRITER, person(13))
    _ok(await _reserve(vault, sid))
    _ok(await _reserve(vault, sid))
    _denied(await _reserve(vault, sid), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    assert _ok(await _reserve(vault, sid, priority="high")).used == 30  # margin of 10
    _denied(await _reserve(vault, sid, priority="high"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    assert _ok(await _reserve(vault, sid, priority="critical", channel="phone")).used == 60
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
    # service counts against the basket like anything else: the basket is full
    _denied(await _reserve(vault, sid, type="service"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    other = await create_subject(vault, WRITER, person(15))
    _ok(await _reserve(vault, other, type="service"))  # service passes the cool-down
    _ok(await _reserve(vault, other, type="calamity"))
    _denied(await _reserve(vault, other, priority="high"), DenyReason.CONTACT_BLOCKED_BY_CALAMITY)
    clock.advance(timedelta(hours=72))  # the cool-down ended; still November, basket full
    _denied(await _reserve(vault, sid), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    _denied(await _reserve(vault, other), DenyReason.CONTACT_BUDGET_EXHAUSTED)  # 22 + 10
    assert _ok(await _reserve(vault, other, priority="high")).used == 32


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
