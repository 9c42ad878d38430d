"""Customer contact preferences stored and enforced on both databases: lookups inside quiet
hours denied, calamity exemptions, the own cap before the basket, preferred-channel answers,
history and audit of every change."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from tests.support.factories import WRITER
from tests.support.preference_cases import ALL_PURPOSES, EVIDENCE, LOOKUP, utc_time
from tests.support.privacy import audit_rows
from tests.support.self_service import seed_subject
from vault.access import lookup
from vault.access.lookup import LookupDenied
from vault.bases import consents
from vault.errors import InvalidInput
from vault.outreach import preference_changes
from vault.outreach.basket import ContactSpec, Reservation, reserve
from vault.storage.outreach_tables import contact_budgets, contacts
from vault.subjects.decision import Deny, DenyReason

# ---------------------------------------------------------------------------- storage


async def _subject(vault, seed: int = 7) -> str:
    sid, _ = await seed_subject(vault, seed)
    await consents.record_basis(vault, WRITER, sid, "incident.notice", reference="recall R-1")
    return sid


async def _set(vault, sid, raw, evidence=EVIDENCE, actor=WRITER, source="client"):
    return await preference_changes.set_preferences(
        vault, actor, sid, raw, source=source, evidence=evidence
    )


async def _lookup(vault, sid, purpose="order.delivery", **contact):
    spec = ContactSpec(brand="tresor", **contact)
    return await lookup.lookup(
        vault,
        LOOKUP,
        ALL_PURPOSES,
        purpose_id=purpose,
        identifier_kind="subject_id",
        identifier=sid,
        contact=spec,
    )


# ---------------------------------------------------------------------------- enforcement


async def test_lookup_inside_quiet_hours_is_denied_and_outside_allowed(vault, clock):
    """An SMS delivery notice at 23:00 Berlin is denied contact_quiet_hours (audited), at
    09:00 allowed; nothing is reserved for the denied one."""
    sid = await _subject(vault)
    await _set(
        vault,
        sid,
        {"timezone": "Europe/Berlin", "quiet": {"sms": {"start": "22:00", "end": "07:00"}}},
    )
    clock.set(utc_time(2026, 11, 23, 22, 0))  # 23:00 CET
    with pytest.raises(LookupDenied) as err:
        await _lookup(vault, sid, channel="sms")
    assert err.value.reason == DenyReason.CONTACT_QUIET_HOURS
    last = (await audit_rows(vault))[-1]
    assert last["decision"] == "deny" and last["reason"] == "contact_quiet_hours"
    async with vault.engine.connect() as conn:
        used = (
            await conn.execute(select(func.coalesce(func.sum(contact_budgets.c.used_tenths), 0)))
        ).scalar_one()
    assert used == 0
    # The letter channel has no quiet hours; the same instant passes.
    assert (await _lookup(vault, sid, channel="letter")).contact is not None
    clock.set(utc_time(2026, 11, 24, 8, 0))  # 09:00 CET
    assert (await _lookup(vault, sid, channel="sms")).contact is not None


async def test_calamity_notice_passes_quiet_hours_and_own_cap(vault, clock):
    """A recall warning reaches the customer inside quiet hours and with an own cap of 0."""
    sid = await _subject(vault)
    await _set(
        vault,
        sid,
        {
            "timezone": "UTC",
            "monthly_cap_points": 0,
            "quiet": {"email": {"start": "00:00", "end": "23:59"}},
        },
    )
    clock.set(utc_time(2026, 11, 23, 12, 0))
    result = await _lookup(vault, sid, purpose="incident.notice")
    assert result.contact is not None and result.contact.points == 20
    # A service letter passes the company cool-down (exempt type) but not the own cap of 0.
    with pytest.raises(LookupDenied) as err:
        await _lookup(vault, sid, channel="letter")
    assert err.value.reason == DenyReason.CONTACT_CAP_REACHED


async def test_own_cap_denies_before_the_basket_would(vault):
    """With an own cap of 5 points, a second SMS notice (4 + 4) is denied contact_cap_reached
    although the company basket of 25 would still hold it."""
    sid = await _subject(vault)
    await _set(vault, sid, {"timezone": "Europe/Berlin", "monthly_cap_points": 5})
    first = await _lookup(vault, sid, channel="sms")
    assert first.contact is not None and first.contact.used == 4
    with pytest.raises(LookupDenied) as err:
        await _lookup(vault, sid, channel="sms")
    assert err.value.reason == DenyReason.CONTACT_CAP_REACHED
    # Without the cap, the same contact fits the basket.
    await _set(vault, sid, {"timezone": "Europe/Berlin"})
    assert (await _lookup(vault, sid, channel="sms")).contact.used == 8


async def test_own_cap_never_lets_a_contact_pass_that_the_basket_refuses(vault):
    """A full basket still denies contact_budget_exhausted, whatever the own cap."""
    sid = await _subject(vault)
    await _set(vault, sid, {"timezone": "UTC", "monthly_cap_points": 25})
    async with vault.transaction() as conn:
        for _ in range(2):
            assert isinstance(
                await reserve(
                    conn,
                    vault,
                    subject_id=sid,
                    channel="email",
                    type="commercial",
                    brand="tresor",
                    priority="normal",
                    now=vault.clock.now(),
                ),
                Reservation,
            )
        outcome = await reserve(
            conn,
            vault,
            subject_id=sid,
            channel="email",
            type="commercial",
            brand="tresor",
            priority="normal",
            now=vault.clock.now(),
        )
    assert isinstance(outcome, Deny) and outcome.reason is DenyReason.CONTACT_BUDGET_EXHAUSTED


async def test_preferred_channel_is_answered_when_the_purpose_allows_several(vault):
    """order.delivery allows letter, SMS and phone: the customer's preferred service channel
    comes back; a one-channel purpose and an unset type carry none."""
    sid = await _subject(vault)
    await _set(
        vault,
        sid,
        {
            "timezone": "Europe/Berlin",
            "preferred_channels": {"service": "sms", "commercial": "email"},
        },
    )
    result = await _lookup(vault, sid)
    assert result.contact.preferred_channel == "sms"
    sms = await _lookup(vault, sid, purpose="offers.sms")  # one channel only
    assert sms.contact.preferred_channel is None
    calamity = await _lookup(vault, sid, purpose="incident.notice")  # no calamity preference
    assert calamity.contact.preferred_channel is None


async def test_the_preferred_channel_is_the_channel_charged(vault):
    """A delivery notice announced by letter (3 points) to a customer preferring SMS is sent,
    charged and recorded as SMS (4 points), also when the client names the letter; a
    preference the purpose does not allow leaves the announced channel."""
    sid = await _subject(vault)
    prefs = {"service": "sms", "commercial": "email"}
    await _set(vault, sid, {"timezone": "Europe/Berlin", "preferred_channels": prefs})
    for announced in (None, "letter"):
        got = (await _lookup(vault, sid, channel=announced)).contact
        assert (got.channel, got.points, got.preferred_channel) == ("sms", 4, "sms")
    offer = (await _lookup(vault, sid, purpose="offers.sms")).contact  # SMS only
    assert (offer.channel, offer.points) == ("sms", 20)
    async with vault.engine.connect() as conn:
        stored = (
            await conn.execute(
                select(contacts.c.channel, contacts.c.points_tenths).order_by(contacts.c.at)
            )
        ).all()
    assert sorted(stored) == [("sms", 40), ("sms", 40), ("sms", 200)]


async def test_batch_lines_answer_the_preferred_channel_like_the_single_lookup(vault):
    """A batch with a contact names each customer's preferred channel on their line."""

    from vault.access import bulk

    sid, other = await _subject(vault, 7), await _subject(vault, 8)
    for s in (sid, other):
        await consents.record_basis(vault, WRITER, s, "order.delivery", reference="Auftrag")
    await _set(vault, sid, {"timezone": "Europe/Berlin", "preferred_channels": {"service": "sms"}})
    lines = []
    async for blob in bulk.resolve_batch(
        vault,
        LOOKUP,
        ALL_PURPOSES,
        purpose_id="order.delivery",
        identifier_kind="subject_id",
        identifiers=[sid, other],
        contact=ContactSpec(brand="tresor"),
    ):
        lines.extend(json.loads(x) for x in blob.decode().splitlines())
    assert lines[0]["preferred_channel"] == "sms" and "fields" in lines[0]
    assert "preferred_channel" not in lines[1] and "fields" in lines[1]


async def test_a_contact_may_name_any_channel_of_its_purpose_only(vault):
    """order.delivery accepts phone; e-mail is not among its channels and is rejected."""
    sid = await _subject(vault)
    assert (await _lookup(vault, sid, channel="phone")).contact.points == 5
    with pytest.raises(InvalidInput) as err:
        await _lookup(vault, sid, channel="email")
    assert "contact.channel" in err.value.errors


async def test_quiet_hours_follow_dst_at_lookup(vault, clock):
    """06:30 local is quiet under 22:00-07:00 both before and after the March change in
    Berlin, though the UTC instants differ by an hour."""
    sid = await _subject(vault)
    await _set(
        vault,
        sid,
        {"timezone": "Europe/Berlin", "quiet": {"phone": {"start": "22:00", "end": "07:00"}}},
    )
    for instant in (utc_time(2026, 3, 28, 5, 30), utc_time(2026, 3, 29, 4, 30)):
        clock.set(instant)
        with pytest.raises(LookupDenied) as err:
            await _lookup(vault, sid, channel="phone")
        assert err.value.reason == DenyReason.CONTACT_QUIET_HOURS
    clock.set(utc_time(2026, 3, 29, 5, 30))  # 07:30 CEST
    assert (await _lookup(vault, sid, channel="phone")).contact is not None
