"""Erasure by crypto-shredding on both databases: DEK, ciphertexts and blind indexes gone,
lookups denied or not found, Art. 17(3)(b) fields kept under their own key until their
retention ends, and erasure requests ending with the reason."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.dsar import (
    DPO,
    NEWS_WITH_SECRETS,
    SELF,
    actions,
    consent_rows,
    contract,
    erase,
    invoice,
    look,
    new_subject,
    newsletter,
    retained_rows,
    rows,
    subject_row,
)
from tests.support.factories import WRITER
from vault.access.lookup import LookupDenied, LookupNotFound
from vault.bases.consents import record_basis
from vault.clock import as_utc
from vault.context import VaultContext
from vault.errors import Conflict, NotFound
from vault.rights import requests as dsar
from vault.rights.export import build_export
from vault.rights.retention import run_retention
from vault.storage.audit_tables import audit_events
from vault.storage.rights_tables import dsar_requests
from vault.storage.tables import consent_history
from vault.subjects.store import rectify_contact

SUBJECT_COLUMNS_GONE = (
    "wrapped_dek",
    "kek_version",
    "email_ct",
    "phone_ct",
    "name_ct",
    "postal_address_ct",
    "external_ref_ct",
    "email_bidx",
    "phone_bidx",
    "external_ref_bidx",
)

TEN_YEARS = timedelta(days=3653)


async def test_erasure_destroys_key_ciphertexts_and_blind_indexes(vault, clock):
    """After erasure the row keeps only its id, status and times; every key, ciphertext and
    digest column is NULL and the subject is `erased`."""
    sid, _ = await new_subject(vault, 1)
    await contract(vault, sid)
    before = await subject_row(vault, sid)
    assert all(getattr(before, c) is not None for c in SUBJECT_COLUMNS_GONE)
    result = await erase(vault, DPO, sid)
    assert result.kept_purposes == [] and result.retained_until is None
    row = await subject_row(vault, sid)
    assert row.status == "erased" and as_utc(row.erased_at) == clock.now()
    for column in SUBJECT_COLUMNS_GONE:
        assert getattr(row, column) is None, column
    assert await retained_rows(vault, sid) == []


async def test_lookups_after_erasure_deny_by_id_and_find_nothing_by_address(vault):
    """By subject_id the lookup says `subject_erased`; by e-mail, phone or customer number
    nothing is found (404)."""
    sid, data = await new_subject(vault, 2)
    await contract(vault, sid)
    await newsletter(vault, sid)
    assert (await look(vault, "order.delivery", "subject_id", sid)).fields
    await erase(vault, DPO, sid)
    with pytest.raises(LookupDenied) as denied:
        await look(vault, "order.delivery", "subject_id", sid)
    assert denied.value.reason == "subject_erased"
    for kind in ("email", "phone", "external_ref"):
        with pytest.raises(LookupNotFound):
            await look(vault, "newsletter.email", kind, data[kind])


async def test_every_basis_ends_and_evidence_secrets_are_deleted(vault):
    """Consents become withdrawn, other bases ended, each with history `erased`; the sealed
    IP address and user agent of the evidence are deleted."""
    sid, _ = await new_subject(vault, 3)
    news = await newsletter(vault, sid, NEWS_WITH_SECRETS)
    deal = await contract(vault, sid)
    await erase(vault, DPO, sid)
    by_id = {r.id: r for r in await consent_rows(vault, sid)}
    assert by_id[news.id].status == "withdrawn" and by_id[deal.id].status == "ended"
    assert all(r.evidence_ct is None and r.confirm_token_hash is None for r in by_id.values())
    assert by_id[news.id].touchpoint == "web.newsletter_form"  # proof of lawful past use stays
    history = await rows(vault, consent_history, consent_history.c.subject_id == sid)
    assert {h.consent_id for h in history if h.event == "erased"} == {news.id, deal.id}


async def test_erasure_is_audited_and_earlier_events_stay(vault):
    """The erasure writes its own event; earlier (pseudonymous) events are kept."""
    sid, _ = await new_subject(vault, 4)
    await contract(vault, sid)
    await look(vault, "order.delivery", "subject_id", sid)
    before = len(await rows(vault, audit_events))
    await erase(vault, SELF, sid)
    events = await rows(vault, audit_events, order=audit_events.c.seq)
    assert len(events) == before + 1
    assert events[-1].action == "subject:subject:erase" and events[-1].subject_id == sid
    assert "client:contact:lookup" in await actions(vault)


async def test_erasing_twice_conflicts_and_unknown_subject_is_not_found(vault):
    """A second erasure is a Conflict; an unknown subject is NotFound; writes are refused."""
    sid, _ = await new_subject(vault, 5)
    await erase(vault, DPO, sid)
    with pytest.raises(Conflict):
        await erase(vault, DPO, sid)
    with pytest.raises(NotFound):
        await erase(vault, DPO, "00000000-0000-4000-8000-000000000000")
    with pytest.raises(Conflict):
        await rectify_contact(vault, WRITER, sid, {"name": "Wieder da"})
    with pytest.raises(Conflict):
        await record_basis(vault, WRITER, sid, "order.delivery", reference="x")


async def test_invoice_fields_survive_erasure_under_their_own_key(vault, clock):
    """A live invoice.postal basis keeps name, address and customer number under a new key of
    their own for ten years; the DEK and everything else is gone; lookups still deny."""
    sid, data = await new_subject(vault, 6)
    await invoice(vault, sid)
    await newsletter(vault, sid)
    result = await erase(vault, DPO, sid)
    assert result.kept_purposes == ["invoice.postal"]
    assert result.retained_until == clock.now() + TEN_YEARS
    (kept,) = await retained_rows(vault, sid)
    assert (
        kept.wrapped_key and kept.fields_ct and kept.kek_version == 1 and kept.shredded_at is None
    )
    assert (await subject_row(vault, sid)).wrapped_dek is None
    for needle in (data["name"], data["postal_address"]["street"], data["external_ref"]):
        assert needle.encode() not in kept.fields_ct
    with pytest.raises(LookupDenied) as denied:
        await look(vault, "invoice.postal", "subject_id", sid)
    assert denied.value.reason == "subject_erased"
    with pytest.raises(LookupNotFound):
        await look(vault, "invoice.postal", "external_ref", data["external_ref"])

    # A fresh process (empty key cache) still opens them through the export, and only them.
    fresh = VaultContext.open(vault.settings, clock=clock)
    try:
        doc = await build_export(fresh, DPO, sid)
    finally:
        await fresh.close()
    assert doc["contact_data"] == {}
    (retained,) = doc["retention"]["retained_after_erasure"]
    assert retained["purpose"] == "invoice.postal"
    assert retained["fields"] == {
        "name": data["name"],
        "postal_address": data["postal_address"],
        "external_ref": data["external_ref"],
    }
    assert "Art. 17(3)(b)" in retained["legal_ground"]


async def test_retained_fields_are_shredded_by_the_retention_run_after_retain_until(vault, clock):
    """The sweeper leaves retained fields alone until `retain_until`, then deletes key and
    ciphertext; the export then shows the shredding date and no fields."""
    sid, _ = await new_subject(vault, 7)
    await invoice(vault, sid)
    await erase(vault, DPO, sid)
    clock.advance(TEN_YEARS - timedelta(minutes=1))
    assert (await run_retention(vault)).shredded == 0
    assert (await retained_rows(vault, sid))[0].wrapped_key is not None
    clock.advance(timedelta(minutes=1))
    assert (await run_retention(vault)).shredded == 1
    (kept,) = await retained_rows(vault, sid)
    assert kept.wrapped_key is None and kept.fields_ct is None and kept.kek_version is None
    assert kept.shredded_at is not None
    assert "system:retained:shred" in await actions(vault)
    doc = await build_export(vault, DPO, sid)
    (retained,) = doc["retention"]["retained_after_erasure"]
    assert retained["fields"] == {} and retained["shredded_at"]
    assert (await run_retention(vault)).shredded == 0


async def test_ended_legal_obligation_keeps_nothing(vault):
    """Only a legal-obligation basis in force keeps fields; an ended one keeps nothing."""
    sid, _ = await new_subject(vault, 8)
    basis = await invoice(vault, sid)
    from vault.bases.consents import withdraw

    await withdraw(vault, WRITER, sid, basis.id)
    result = await erase(vault, DPO, sid)
    assert result.kept_purposes == [] and await retained_rows(vault, sid) == []


async def test_erasure_request_ends_partially_completed_with_the_art_17_3_reason(vault):
    """An approved erasure that had to keep invoice data closes partially_completed, naming
    Art. 17(3)(b) and the purpose."""
    sid, _ = await new_subject(vault, 9)
    await invoice(vault, sid)
    record = await dsar.create_request(vault, DPO, subject_id=sid, type="erasure", channel="letter")
    await dsar.verify(vault, DPO, record.id)
    done = await dsar.approve(vault, DPO, record.id)
    assert done.status == "partially_completed"
    assert "Art. 17(3)(b)" in (done.outcome_reason or "")
    assert "invoice.postal" in (done.outcome_reason or "")
    assert "2036-11-23" in (done.outcome_reason or "")
    assert (await subject_row(vault, sid)).status == "erased"


async def test_self_service_erasure_without_legal_hold_completes(vault):
    """A verified self-service erasure without legal obligations completes at once."""
    sid, _ = await new_subject(vault, 10)
    await contract(vault, sid)
    record = await dsar.create_request(
        vault, SELF, subject_id=sid, type="erasure", channel="self_service", verified=True
    )
    assert record.status == "completed" and "Art. 17(1)" in (record.outcome_reason or "")
    assert (await subject_row(vault, sid)).status == "erased"
    assert "subject:subject:erase" in await actions(vault)


async def test_pending_request_payloads_are_deleted_with_the_key(vault):
    """Sealed payloads of the subject's other requests are deleted by the erasure."""
    sid, _ = await new_subject(vault, 11)
    await dsar.create_request(
        vault,
        DPO,
        subject_id=sid,
        type="rectification",
        channel="letter",
        payload={"changes": {"name": "Anders Geschrieben"}},
    )
    await erase(vault, DPO, sid)
    assert all(r.payload_ct is None for r in await rows(vault, dsar_requests))
