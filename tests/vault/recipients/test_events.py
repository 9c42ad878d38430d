"""The transactional outbox on both databases: every change the issue lists writes its
domain event in its own transaction, a rolled-back change writes none, and no event holds
a contact value."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.support.dsar import (
    DPO,
    EXPLICIT,
    contract,
    erase,
    new_subject,
    newsletter,
    object_to_marketing,
    plaintext_values,
    rows,
    sms_offers,
)
from tests.support.factories import WRITER
from vault.bases.consents import Evidence, record_basis, withdraw
from vault.errors import Conflict
from vault.outreach.preference_changes import set_preferences
from vault.recipients import events as outbox
from vault.rights.restriction import lift_restriction, restrict
from vault.rights.retention import run_retention
from vault.storage.recipient_tables import domain_events
from vault.subjects.store import rectify_contact


async def _events(vault, sid=None):
    where = [domain_events.c.subject_id == sid] if sid else []
    return await rows(vault, domain_events, *where, order=domain_events.c.seq)


async def test_consent_changes_write_their_events(vault):
    """Granting, confirming and withdrawing a consent and ending a contract basis each
    write one event naming the subject and the purpose, never a value."""
    sid, data = await new_subject(vault, 1)
    basis = await contract(vault, sid)
    await newsletter(vault, sid)
    consent = await sms_offers(vault, sid)
    await withdraw(vault, WRITER, sid, consent.id)
    await withdraw(vault, WRITER, sid, basis.id)
    events = await _events(vault, sid)
    assert [(e.type, json.loads(e.purposes)) for e in events] == [
        ("consent.granted", ["newsletter.email"]),
        ("consent.granted", ["offers.sms"]),
        ("consent.withdrawn", ["offers.sms"]),
        ("basis.ended", ["order.delivery"]),
    ]
    text = json.dumps([dict(e._mapping) for e in events], default=str)
    assert not [v for v in plaintext_values(data) if v in text]


async def test_subject_changes_write_their_events(vault):
    """Rectification (field names only), restriction, its lifting, objection and erasure
    write their events, with every purpose the subject has a basis for."""
    sid, data = await new_subject(vault, 2)
    await contract(vault, sid)
    await newsletter(vault, sid)
    await rectify_contact(vault, WRITER, sid, {"email": "neu@example.org"})
    await restrict(vault, DPO, sid)
    await lift_restriction(vault, DPO, sid)
    await object_to_marketing(vault, DPO, sid)
    await erase(vault, DPO, sid)
    events = await _events(vault, sid)
    types = [e.type for e in events]
    # The contract basis is not a consent: only the newsletter's grant is an event.
    assert types[:4] == [
        "consent.granted",
        "subject.rectified",
        "subject.restricted",
        "subject.restriction_lifted",
    ]
    rectified = events[1]
    assert json.loads(rectified.fields) == ["email"]
    assert json.loads(rectified.purposes) == ["newsletter.email", "order.delivery"]
    # The objection ends the newsletter consent (its own event) and names the purpose.
    assert types[4:6] == ["consent.withdrawn", "subject.objected"]
    assert json.loads(events[5].purposes) == ["newsletter.email"]
    # Erasure ends the live contract and names every purpose.
    assert types[6:] == ["basis.ended", "subject.erased"]
    assert json.loads(events[-1].purposes) == ["newsletter.email", "order.delivery"]
    text = json.dumps([dict(e._mapping) for e in events], default=str)
    assert "neu@example.org" not in text
    assert not [v for v in plaintext_values(data) if v in text]


async def test_expiry_and_preferences_write_their_events(vault, clock):
    """The retention sweep's expiry of a consent and a change of preferences write
    `consent.expired` and `preferences.changed`."""
    sid, _ = await new_subject(vault, 3)
    await record_basis(
        vault,
        WRITER,
        sid,
        "offers.sms",
        evidence=EXPLICIT,
        expires_at=clock.now() + timedelta(days=1),
    )
    await set_preferences(
        vault,
        WRITER,
        sid,
        {"timezone": "Europe/Berlin"},
        source="client",
        evidence=Evidence(
            touchpoint="hotline.inbound",
            method="recorded_call",
            notice_version="prefs-2026-11",
            language="de",
        ),
    )
    clock.advance(timedelta(days=5))
    await run_retention(vault)
    types = [e.type for e in await _events(vault, sid)]
    assert "preferences.changed" in types
    assert types[-1] == "consent.expired"


async def test_a_rolled_back_change_writes_no_event(vault):
    """A change that fails after its event was written (the transaction rolls back)
    leaves no event behind; a refused change writes none either."""
    sid, _ = await new_subject(vault, 4)
    await contract(vault, sid)
    before = len(await _events(vault))

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with vault.transaction() as conn:
            await outbox.emit(
                conn, outbox.EventType.SUBJECT_RESTRICTED, subject_id=sid, at=vault.clock.now()
            )
            raise Boom
    await restrict(vault, DPO, sid)
    with pytest.raises(Conflict):
        await restrict(vault, DPO, sid)  # already restricted: refused, rolled back
    events = await _events(vault)
    assert len(events) == before + 1
    assert events[-1].type == "subject.restricted"
