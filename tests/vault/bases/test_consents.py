"""Recording consents and other lawful bases on both databases: expiry, evidence,
touchpoints, explicit consent, contract references."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta, timezone

import pytest
from sqlalchemy import update

from tests.support.consent_records import EXPLICIT, NEWS, basis_record, new_subject
from tests.support.db import count_rows
from tests.support.factories import WRITER
from vault.bases.consents import Evidence, record_basis, withdraw
from vault.errors import Conflict, InvalidInput, NotFound
from vault.storage.audit_tables import audit_events
from vault.storage.tables import consent_history, consents, subjects

# --- recording a consent ---------------------------------------------------------------


async def test_consent_defaults_to_the_purpose_duration(vault, clock):
    """A consent without its own expiry is granted at once and expires after the purpose's default
    duration."""
    sid = await new_subject(vault)
    rec = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    assert rec.status == "granted" and rec.basis == "consent"
    assert rec.granted_at == clock.now()
    assert rec.expires_at == clock.now() + timedelta(days=365)
    stored = await basis_record(vault, sid, rec.id)
    assert stored.expires_at == clock.now() + timedelta(days=365)
    assert stored.evidence["touchpoint"] == "hotline.inbound"
    assert stored.evidence["collected_by"] == "crm"


async def test_explicit_expiry_is_honoured_and_stored_as_utc(vault, clock):
    """An expiry the client names replaces the default, in any time zone, and is stored as UTC."""
    sid = await new_subject(vault)
    cet = timezone(timedelta(hours=1))
    wanted = (clock.now() + timedelta(days=30)).astimezone(cet)
    rec = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT, expires_at=wanted)
    stored = await basis_record(vault, sid, rec.id)
    assert stored.expires_at == wanted
    assert stored.expires_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(seconds=-1), timedelta(days=-400)])
async def test_expiry_not_in_the_future_is_refused(vault, clock, offset):
    """An expiry at or before now is refused and nothing is stored."""
    sid = await new_subject(vault)
    with pytest.raises(InvalidInput) as info:
        await record_basis(
            vault, WRITER, sid, "offers.sms", evidence=EXPLICIT, expires_at=clock.now() + offset
        )
    assert "expires_at" in info.value.errors
    assert await count_rows(vault, consents) == 0


@pytest.mark.parametrize("purpose", ["newsletter.email", "offers.sms", "offers.email"])
async def test_consent_without_evidence_is_refused(vault, purpose):
    """A consent without evidence (GDPR Art. 7(1) proof) is refused and nothing is stored."""
    sid = await new_subject(vault)
    with pytest.raises(InvalidInput) as info:
        await record_basis(vault, WRITER, sid, purpose)
    assert "evidence" in info.value.errors
    assert await count_rows(vault, consents) == 0


async def test_bad_evidence_fields_are_all_reported(vault):
    """Evidence with a blank touchpoint, unknown method, unknown language and bad hash is refused
    field by field."""
    sid = await new_subject(vault)
    bad = Evidence(
        touchpoint=" ",
        method="telepathy",
        notice_version="v1",
        language="fr",
        notice_text_hash="md5:abc",
    )
    with pytest.raises(InvalidInput) as info:
        await record_basis(vault, WRITER, sid, "newsletter.email", evidence=bad)
    assert set(info.value.errors) == {
        "evidence.touchpoint",
        "evidence.method",
        "evidence.language",
        "evidence.notice_text_hash",
    }


async def test_touchpoint_outside_the_catalogue_is_refused(vault):
    """Evidence naming a touchpoint not in policies/touchpoints.toml is refused naming the field,
    and nothing is stored or audited."""
    sid = await new_subject(vault)
    before = await count_rows(vault, audit_events)
    for unknown in ("shop.counter.berlin", "web.<b>form</b>", "Shop.Counter"):
        with pytest.raises(InvalidInput) as info:
            await record_basis(
                vault, WRITER, sid, "newsletter.email", evidence=replace(NEWS, touchpoint=unknown)
            )
        assert set(info.value.errors) == {"evidence.touchpoint"}
        assert "catalogue" in info.value.errors["evidence.touchpoint"]
    assert await count_rows(vault, consents) == 0
    assert await count_rows(vault, consent_history) == 0
    assert await count_rows(vault, audit_events) == before
    rec = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    assert rec.status == "pending_confirmation"  # the catalogue's ids pass


async def test_phone_offers_need_explicit_consent(vault):
    """offers.phone without evidence.explicit=true is refused (UWG §7); with it, it is granted."""
    sid = await new_subject(vault)
    implicit = replace(EXPLICIT, explicit=False)
    with pytest.raises(InvalidInput) as info:
        await record_basis(vault, WRITER, sid, "offers.phone", evidence=implicit)
    assert "evidence.explicit" in info.value.errors
    assert await count_rows(vault, consents) == 0
    rec = await record_basis(vault, WRITER, sid, "offers.phone", evidence=EXPLICIT)
    assert rec.status == "granted"


async def test_unknown_purpose_is_refused(vault):
    """Recording a basis for a purpose outside the catalogue is refused."""
    sid = await new_subject(vault)
    with pytest.raises(InvalidInput):
        await record_basis(vault, WRITER, sid, "offers.carrier_pigeon", evidence=EXPLICIT)


async def test_unknown_subject_is_not_found(vault):
    """Recording a basis for a subject that does not exist is NotFound."""
    with pytest.raises(NotFound):
        await record_basis(
            vault,
            WRITER,
            "00000000-0000-4000-8000-000000000000",
            "order.delivery",
            reference="Bestellung 1",
        )


async def test_erased_subject_gets_no_new_basis(vault):
    """An erased subject cannot receive a new basis."""
    sid = await new_subject(vault)
    async with vault.engine.begin() as conn:
        await conn.execute(update(subjects).where(subjects.c.id == sid).values(status="erased"))
    with pytest.raises(Conflict):
        await record_basis(vault, WRITER, sid, "order.delivery", reference="Bestellung 1")


# --- other lawful bases ----------------------------------------------------------------


@pytest.mark.parametrize("reference", [None, "", "   ", "x" * 201])
async def test_contract_basis_needs_a_reference(vault, reference):
    """A contract basis without a 1-200 character reference (e.g. the contract number) is
    refused."""
    sid = await new_subject(vault)
    with pytest.raises(InvalidInput) as info:
        await record_basis(vault, WRITER, sid, "order.delivery", reference=reference)
    assert "reference" in info.value.errors


async def test_contract_basis_is_active_without_or_with_end_date(vault, clock):
    """A contract basis is active at once, has no expiry unless given one, and needs no evidence."""
    sid = await new_subject(vault)
    rec = await record_basis(vault, WRITER, sid, "order.delivery", reference=" Bestellung 4711 ")
    assert rec.status == "active" and rec.basis == "contract" and rec.expires_at is None
    stored = await basis_record(vault, sid, rec.id)
    assert stored.reference == "Bestellung 4711"

    end = clock.now() + timedelta(days=90)
    rec2 = await record_basis(
        vault, WRITER, sid, "account.service", reference="Kundenkonto", expires_at=end
    )
    assert (await basis_record(vault, sid, rec2.id)).expires_at == end
    clock.set(end)
    assert (await basis_record(vault, sid, rec2.id)).status == "expired"


async def test_ending_a_contract_basis_gives_ended(vault):
    """Withdrawing a non-consent basis ends it (status ended, not withdrawn)."""
    sid = await new_subject(vault)
    rec = await record_basis(vault, WRITER, sid, "invoice.postal", reference="Rechnung 2026-1")
    assert rec.basis == "legal_obligation" and rec.status == "active"
    assert (await withdraw(vault, WRITER, sid, rec.id)).status == "ended"
