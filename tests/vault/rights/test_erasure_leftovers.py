"""What an erasure leaves on both databases: retained keys re-wrapped by a KEK rotation,
nothing of the subject in the database file or dump, and no contact preferences, their
history or follow-ups."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.support.dsar import (
    DPO,
    SELF,
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
    trail_text,
)
from tests.support.factories import NEWSLETTER_EVIDENCE, WRITER
from tests.support.privacy import (
    CANARY,
    CANARY_AGENT,
    CANARY_IP,
    found_canaries,
    raw_database_bytes,
)
from vault.access.lookup import LookupDenied
from vault.admin.keys import retained_versions_in_use, rewrap_retained, rotate
from vault.bases.consents import Evidence
from vault.outreach import followup_changes, followups, preference_changes
from vault.rights import requests as dsar
from vault.rights.export import build_export
from vault.rights.retention import run_retention
from vault.storage.audit_tables import audit_events
from vault.storage.outreach_tables import contact_preference_history, contact_preferences
from vault.storage.outreach_tables import followups as followups_table
from vault.storage.rights_tables import dsar_requests


async def test_kek_rotation_rewraps_retained_keys_too(vault, clock):
    """Retained keys are wrapped by the KEK: `tresor keys rotate` moves them to the new version
    too, and retiring cannot remove a version a retained key still needs."""
    sid, data = await new_subject(vault, 12)
    await invoice(vault, sid)
    await erase(vault, DPO, sid)
    assert await retained_versions_in_use(vault) == {1: 1}
    report = await rotate(vault, DPO)
    assert report.remaining == 0 and report.rewrapped >= 1
    assert await rewrap_retained(vault, DPO) == 0
    assert await retained_versions_in_use(vault) == {2: 1}
    vault.deks.forget(f"retained:{(await retained_rows(vault, sid))[0].id}")
    doc = await build_export(vault, DPO, sid)
    assert doc["retention"]["retained_after_erasure"][0]["fields"]["name"] == data["name"]


async def test_database_holds_no_ciphertext_digest_or_plaintext_of_the_erased_subject(vault):
    """After erasure, the SQLite file (with its WAL) or a PostgreSQL dump contains none of the
    subject's ciphertexts, blind-index digests, sealed evidence or plaintext — except the
    invoice fields, which are kept sealed under their own key."""
    sid, _ = await new_subject(vault, 13, **CANARY)
    await contract(vault, sid)
    await newsletter(
        vault, sid, Evidence(**NEWSLETTER_EVIDENCE, ip=CANARY_IP, user_agent=CANARY_AGENT)
    )
    await invoice(vault, sid)
    await dsar.create_request(
        vault,
        DPO,
        subject_id=sid,
        type="rectification",
        channel="letter",
        payload={"changes": {"name": "Kanarienvogel Umbenannt"}},
    )
    before = await subject_row(vault, sid)
    secrets = (
        [
            getattr(before, f"{f}_ct")
            for f in ("email", "phone", "name", "postal_address", "external_ref")
        ]
        + [before.wrapped_dek]
        + [r.evidence_ct for r in await consent_rows(vault, sid) if r.evidence_ct]
    )
    secrets += [r.payload_ct for r in await rows(vault, dsar_requests)]
    digests = [before.email_bidx, before.phone_bidx, before.external_ref_bidx]
    # The search finds them before the erasure (so its silence afterwards means something).
    dump = await raw_database_bytes(vault)
    for blob in secrets:
        assert bytes(blob) in dump or bytes(blob).hex().encode() in dump
    assert all(d.encode() in dump for d in digests)
    await erase(vault, DPO, sid)
    dump = await raw_database_bytes(vault)
    for blob in secrets:
        assert bytes(blob) not in dump
        assert bytes(blob).hex().encode() not in dump  # bytea in a dump is hex
    for digest in digests:
        assert digest.encode() not in dump
    assert found_canaries(dump) == []
    assert found_canaries(await trail_text(vault)) == []
    (kept,) = await retained_rows(vault, sid)
    assert bytes(kept.fields_ct) in dump or bytes(kept.fields_ct).hex().encode() in dump
    assert json.dumps(CANARY["postal_address"]).encode() not in dump


# ---------------------------------------------------------------- preferences and follow-ups

PREFERENCE_TABLES = (contact_preferences, contact_preference_history, followups_table)
FOLLOWUP_PURPOSES = frozenset({"account.service", "order.delivery"})


async def _preferences_and_followups(vault, clock, sid, zone):
    """Two preference changes (the first with sealed IP and user agent), one open and one
    cancelled follow-up; returns the two follow-ups."""
    raw = {
        "timezone": zone,
        "preferred_channels": {"commercial": "letter"},
        "quiet": {"phone": {"start": "21:00", "end": "07:30", "days": ["sun"]}},
        "monthly_cap_points": 7.5,
    }
    evidence = Evidence(
        "hotline.inbound",
        "recorded_call",
        "prefs-2026-11",
        "de",
        ip=CANARY_IP,
        user_agent=CANARY_AGENT,
    )
    await preference_changes.set_preferences(
        vault, WRITER, sid, raw, source="client", evidence=evidence
    )
    await preference_changes.set_preferences(
        vault, WRITER, sid, {**raw, "monthly_cap_points": 4}, source="client", evidence=evidence
    )
    made = []
    for days in (2, 3):
        start = clock.now() + timedelta(days=days)
        made.append(
            await followups.create(
                vault,
                WRITER,
                FOLLOWUP_PURPOSES,
                subject_id=sid,
                purpose="account.service",
                brand="tresor",
                touchpoint="hotline.inbound",
                note="callback_requested",
                due_from=start,
                due_until=start + timedelta(hours=3),
            )
        )
    await followup_changes.cancel_by_subject(vault, SELF, sid, made[1].id)
    return made


async def _rows_of(vault, sid):
    return [r for t in PREFERENCE_TABLES for r in await rows(vault, t, t.c.subject_id == sid)]


async def test_erasure_deletes_preferences_their_history_and_followups(vault, clock):
    """Erasure deletes the subject's preference row, every history row with its sealed
    evidence and every follow-up (open or closed), leaves another subject's alone, counts
    what went in its audit event without a value, and lookups still deny `subject_erased`."""
    sid, _ = await new_subject(vault, 14)
    other, _ = await new_subject(vault, 15)
    await contract(vault, sid)
    await _preferences_and_followups(vault, clock, sid, "Pacific/Chatham")
    theirs = await _preferences_and_followups(vault, clock, other, "America/Halifax")
    sealed = [
        r.evidence_ct
        for r in await rows(
            vault, contact_preference_history, contact_preference_history.c.subject_id == sid
        )
    ]
    assert len(sealed) == 2 and all(sealed)
    assert len(await _rows_of(vault, sid)) == 1 + 2 + 2
    dump = await raw_database_bytes(vault)
    assert b"Pacific/Chatham" in dump and all(
        bytes(b) in dump or bytes(b).hex().encode() in dump for b in sealed
    )

    await erase(vault, DPO, sid)

    assert await _rows_of(vault, sid) == []
    (kept_prefs,) = await rows(vault, contact_preferences)
    assert kept_prefs.subject_id == other and kept_prefs.timezone == "America/Halifax"
    assert len(await rows(vault, contact_preference_history)) == 2
    assert {f.id for f in await rows(vault, followups_table)} == {f.id for f in theirs}
    dump = await raw_database_bytes(vault)
    assert b"Pacific/Chatham" not in dump and b"America/Halifax" in dump
    for blob in sealed:
        assert bytes(blob) not in dump and bytes(blob).hex().encode() not in dump
    (event,) = await rows(vault, audit_events, audit_events.c.action == "dpo:subject:erase")
    detail = json.loads(event.detail)
    assert detail["preferences_deleted"] is True
    assert detail["preference_history_deleted"] == 2
    assert (detail["followups_deleted"], detail["open_followups_cancelled"]) == (2, 1)
    assert "Chatham" not in event.detail and "21:00" not in event.detail
    with pytest.raises(LookupDenied) as denied:
        await look(vault, "order.delivery", "subject_id", sid)
    assert denied.value.reason == "subject_erased"
    doc = await build_export(vault, DPO, sid)
    assert (doc["contact_preferences"], doc["contact_preference_history"], doc["followups"]) == (
        {},
        [],
        [],
    )


async def test_retention_erasure_deletes_preferences_and_followups_too(vault, clock):
    """The sweeper's automatic erasure (same `erase_in`) also deletes the preferences, their
    history and the follow-ups once the last basis has outlived its retention."""
    from vault.bases.consents import withdraw

    sid, _ = await new_subject(vault, 16)
    deal = await contract(vault, sid)
    await _preferences_and_followups(vault, clock, sid, "Pacific/Chatham")
    await withdraw(vault, WRITER, sid, deal.id)
    clock.advance(timedelta(days=91))
    assert len(await _rows_of(vault, sid)) == 5
    report = await run_retention(vault)
    assert report.erased == 1 and (await subject_row(vault, sid)).status == "erased"
    assert await _rows_of(vault, sid) == []
    with pytest.raises(LookupDenied) as denied:
        await look(vault, "order.delivery", "subject_id", sid)
    assert denied.value.reason == "subject_erased"
