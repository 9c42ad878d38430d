"""Channels the rules declare (issue 21): a field-sales visit is charged at its own factor
and reveals what the purpose allows, social media reveals no contact field (and so reaches
customers without any), and a customer's opt-out of a declared channel (quiet every day)
is honoured. Both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.support.factories import WRITER, person
from vault.access import dry_run
from vault.access.lookup import LookupDenied, lookup
from vault.audit.events import Actor
from vault.bases.consents import Evidence, record_basis
from vault.errors import InvalidInput
from vault.outreach import preference_changes
from vault.outreach.basket import ContactSpec
from vault.storage.outreach_tables import contact_budgets, contacts
from vault.subjects.decision import DenyReason
from vault.subjects.store import create_subject

SHOP = Actor("client", "shop", "req-channels")
ALLOWED = frozenset({"offers.visit", "offers.social", "offers.post"})
CONSENT = Evidence(
    touchpoint="shop.counter",
    method="signature",
    notice_version="2026-11",
    language="de",
    explicit=True,
)
PREFS = Evidence(
    touchpoint="hotline.inbound",
    method="recorded_call",
    notice_version="prefs-2026-11",
    language="de",
)


async def _customer(vault, seed: int, *purposes: str) -> str:
    sid = await create_subject(vault, WRITER, person(seed))
    for purpose in purposes:
        await record_basis(vault, WRITER, sid, purpose, evidence=CONSENT)
    return sid


async def _announce(vault, sid: str, purpose: str, channel: str | None = None):
    return await lookup(
        vault, SHOP, ALLOWED, purpose_id=purpose, identifier_kind="subject_id",
        identifier=sid, contact=ContactSpec(brand="tresor", channel=channel),
    )  # fmt: skip


async def _used_and_channels(vault) -> tuple[int, list[str]]:
    async with vault.engine.connect() as conn:
        used = (
            await conn.execute(select(func.coalesce(func.sum(contact_budgets.c.used_tenths), 0)))
        ).scalar_one()
        made = (await conn.execute(select(contacts.c.channel))).scalars().all()
    return int(used), list(made)


async def test_a_visit_is_charged_at_its_declared_factor(vault):
    """A commercial visit costs 10 points x the visit factor 2.5 = 25, is recorded on the
    visit channel, and reveals the purpose's name and postal address."""
    assert vault.pressure_rules.channel_factors["visit"] == 2.5
    sid = await _customer(vault, 3601, "offers.visit")
    got = await _announce(vault, sid, "offers.visit")
    assert got.contact is not None
    assert (got.contact.points, got.contact.used, got.contact.channel) == (25, 25, "visit")
    assert set(got.fields) == {"name", "postal_address"}
    assert await _used_and_channels(vault) == (250, ["visit"])
    # The basket of 25 is full: a second visit this month is refused and charges nothing.
    with pytest.raises(LookupDenied) as info:
        await _announce(vault, sid, "offers.visit")
    assert info.value.reason == DenyReason.CONTACT_BUDGET_EXHAUSTED
    assert await _used_and_channels(vault) == (250, ["visit"])


async def test_a_social_media_contact_reveals_no_contact_field(vault):
    """social declares reveals = []: the lookup answers the decision and the reservation
    (10 x 0.5 = 5 points) and no stored contact field at all."""
    sid = await _customer(vault, 3602, "offers.social")
    got = await _announce(vault, sid, "offers.social")
    assert got.fields == {}
    assert got.contact is not None and (got.contact.points, got.contact.channel) == (5, "social")
    assert await _used_and_channels(vault) == (50, ["social"])


async def test_a_print_mailing_is_cheaper_than_a_letter_for_the_same_purpose(vault):
    """offers.post allows print (factor 1) and letter (factor 1.5): each is charged at its
    own factor in the one basket."""
    sid = await create_subject(vault, WRITER, person(3603))
    await record_basis(vault, WRITER, sid, "offers.post", reference="customer since 2019")
    printed = await _announce(vault, sid, "offers.post")
    letter = await _announce(vault, sid, "offers.post", channel="letter")
    assert printed.contact is not None and letter.contact is not None
    assert (printed.contact.channel, printed.contact.points) == ("print", 10)
    assert (letter.contact.channel, letter.contact.points, letter.contact.used) == (
        "letter",
        15,
        25,
    )


async def test_opting_out_of_visits_is_honoured_and_charges_nothing(vault, clock):
    """A customer who is quiet for visits on every day is never visited (contact_quiet_hours,
    nothing reserved), while her social-media consent still works."""
    sid = await _customer(vault, 3604, "offers.visit", "offers.social")
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    await preference_changes.set_preferences(
        vault, WRITER, sid, {"timezone": "Europe/Berlin", "quiet": {"visit": {"days": every_day}}},
        source="client", evidence=PREFS,
    )  # fmt: skip
    with pytest.raises(LookupDenied) as info:
        await _announce(vault, sid, "offers.visit")
    assert info.value.reason == DenyReason.CONTACT_QUIET_HOURS
    assert await _used_and_channels(vault) == (0, [])
    assert (await _announce(vault, sid, "offers.social")).contact is not None


async def test_preferences_refuse_a_channel_the_rules_do_not_declare(vault):
    """Quiet times for an undeclared channel are refused (422 material) and nothing is stored."""
    sid = await _customer(vault, 3605)
    with pytest.raises(InvalidInput) as info:
        await preference_changes.set_preferences(
            vault, WRITER, sid, {"timezone": "UTC", "quiet": {"fax": {"days": ["mon"]}}},
            source="client", evidence=PREFS,
        )  # fmt: skip
    assert "quiet" in info.value.errors
    assert (await preference_changes.get_preferences(vault, WRITER, sid)).preferences is None


async def test_a_dry_run_counts_reach_by_the_declared_channels_fields(vault):
    """Ten customers with an e-mail address only: none is reachable by a visit (it needs the
    postal address: no_contact_data), all ten on social media (it needs no field)."""
    sids = []
    for n in range(10):
        sid = await create_subject(vault, WRITER, {"email": f"channel.dry{n}@example.org"})
        await record_basis(vault, WRITER, sid, "offers.visit", evidence=CONSENT)
        await record_basis(vault, WRITER, sid, "offers.social", evidence=CONSENT)
        sids.append(sid)

    async def count(purpose: str):
        return await dry_run.dry_run(
            vault, SHOP, ALLOWED, purpose_id=purpose, identifier_kind="subject_id",
            identifiers=sids,
        )  # fmt: skip

    visit, social = await count("offers.visit"), await count("offers.social")
    assert (visit.reachable, visit.unreachable) == (None, {"no_contact_data": 10})
    assert (social.reachable, social.unreachable) == (10, {})


def test_a_preference_never_switches_between_revealing_and_bare_channels(vault):
    """A purpose on e-mail and social media: a customer preferring social media cannot turn
    an e-mail contact (whose lookup reveals the address) into a social one, nor back."""
    from vault.catalogue.purposes import Purpose
    from vault.outreach.basket import _switchable

    mixed = Purpose(
        **{
            **{f: getattr(vault.catalogue.get("offers.email"), f) for f in Purpose.__slots__},
            "channels": ("email", "social", "print"),
        }
    )
    rules = vault.pressure_rules
    assert _switchable(rules, mixed, "email") == ("email", "print")
    assert _switchable(rules, mixed, "social") == ("social",)
