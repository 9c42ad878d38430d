"""Withdrawing and superseding consents on both databases, and their append-only,
audited history."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.consent_records import (
    EXPLICIT,
    NEWS,
    SUBJECT,
    basis_record,
    new_subject,
    table_rows,
)
from tests.support.factories import WRITER, outbox_links
from vault.audit.events import Actor, AuditAction
from vault.bases.consents import confirm, list_bases, record_basis, withdraw
from vault.errors import Conflict, NotFound
from vault.storage.audit_tables import audit_events
from vault.storage.tables import consent_history

# --- withdrawal, supersession, history -------------------------------------------------


async def test_withdrawal_is_immediate_and_only_once(vault, clock):
    """Withdrawal takes effect at once; withdrawing again is a Conflict."""
    sid = await new_subject(vault)
    rec = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    clock.advance(timedelta(minutes=5))
    out = await withdraw(vault, WRITER, sid, rec.id)
    assert out.status == "withdrawn" and out.withdrawn_at == clock.now()
    with pytest.raises(Conflict):
        await withdraw(vault, WRITER, sid, rec.id)


async def test_withdrawing_a_pending_consent_kills_its_link(vault):
    """A pending double opt-in can be withdrawn, after which its link no longer works."""
    sid = await new_subject(vault)
    rec = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    (token,) = outbox_links(vault.settings.outbox_dir)
    assert (await withdraw(vault, WRITER, sid, rec.id)).status == "withdrawn"
    with pytest.raises(NotFound):
        await confirm(vault, token, SUBJECT)


async def test_withdrawing_an_expired_consent_is_a_conflict(vault, clock):
    """An expired consent has nothing left to withdraw."""
    sid = await new_subject(vault)
    rec = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    clock.advance(timedelta(days=365))
    with pytest.raises(Conflict):
        await withdraw(vault, WRITER, sid, rec.id)


async def test_withdrawal_of_another_subjects_consent_is_not_found(vault):
    """A consent id only works together with its own subject."""
    a = await new_subject(vault, 1)
    b = await new_subject(vault, 2)
    rec = await record_basis(vault, WRITER, a, "offers.sms", evidence=EXPLICIT)
    with pytest.raises(NotFound):
        await withdraw(vault, WRITER, b, rec.id)
    assert (await basis_record(vault, a, rec.id)).status == "granted"


async def test_new_grant_supersedes_the_earlier_live_one(vault, clock):
    """A new grant for the same purpose supersedes the earlier live record, visible in its
    history."""
    sid = await new_subject(vault)
    old = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    clock.advance(timedelta(days=1))
    new = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    old_now = await basis_record(vault, sid, old.id)
    assert old_now.status == "superseded"
    assert [h["event"] for h in old_now.history] == ["recorded", "superseded"]
    assert old_now.history[-1]["at"] == clock.now()
    assert (await basis_record(vault, sid, new.id)).status == "granted"
    # Other purposes are untouched.
    other = await record_basis(vault, WRITER, sid, "offers.phone", evidence=EXPLICIT)
    assert (await basis_record(vault, sid, new.id)).status == "granted"
    assert (await basis_record(vault, sid, other.id)).status == "granted"


async def test_list_bases_gives_history_in_order_with_actors(vault, clock):
    """list_bases returns records newest first, each with its history in order and the acting
    party."""
    sid = await new_subject(vault)
    doi = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    (token,) = outbox_links(vault.settings.outbox_dir)
    clock.advance(timedelta(hours=1))
    await confirm(vault, token, SUBJECT)
    clock.advance(timedelta(hours=1))
    dpo = Actor("dpo", "anna")
    await withdraw(vault, dpo, sid, doi.id)
    clock.advance(timedelta(hours=1))
    contract = await record_basis(vault, WRITER, sid, "order.delivery", reference="Bestellung 9")

    records = await list_bases(vault, dpo, sid)
    assert [r.id for r in records] == [contract.id, doi.id]
    history = records[1].history
    assert [(h["event"], h["status"], h["actor"]) for h in history] == [
        ("confirmation_requested", "pending_confirmation", "client:crm"),
        ("confirmed", "granted", "subject:confirmation-link"),
        ("withdrawn", "withdrawn", "dpo:anna"),
    ]
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)
    listed = [
        e
        for e in await table_rows(vault, audit_events, audit_events.c.seq)
        if e.action == AuditAction.CONSENT_LIST
    ]
    assert len(listed) == 1 and listed[0].actor_id == "anna"


async def test_history_is_append_only(vault, clock):
    """Each change appends history rows; earlier rows are never changed."""
    sid = await new_subject(vault)
    rec = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    before = await table_rows(vault, consent_history, consent_history.c.id)
    assert len(before) == 1
    clock.advance(timedelta(days=1))
    await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    middle = await table_rows(vault, consent_history, consent_history.c.id)
    assert len(middle) == 3 and middle[:1] == before
    latest = (await list_bases(vault, WRITER, sid))[0]
    clock.advance(timedelta(days=1))
    await withdraw(vault, WRITER, sid, latest.id)
    after = await table_rows(vault, consent_history, consent_history.c.id)
    assert len(after) == 4 and after[:3] == middle
    assert rec.id in {h.consent_id for h in after}


async def test_every_change_is_audited(vault, clock):
    """Grant, confirmation mail, confirmation and withdrawal each write their audit event."""
    sid = await new_subject(vault)
    rec = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    (token,) = outbox_links(vault.settings.outbox_dir)
    await confirm(vault, token, SUBJECT)
    await withdraw(vault, WRITER, sid, rec.id)
    events = [e for e in await table_rows(vault, audit_events, audit_events.c.seq)][1:]
    assert [e.action for e in events] == [
        AuditAction.CONSENT_GRANT,
        AuditAction.DOI_MAIL,
        AuditAction.CONSENT_CONFIRM,
        AuditAction.CONSENT_WITHDRAW,
    ]
    assert all(e.consent_id == rec.id and e.subject_id == sid for e in events)
    assert all(e.purpose == "newsletter.email" for e in events)
