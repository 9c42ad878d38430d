"""Subjects on both databases: sealed storage, unique customer numbers, rectification, audit."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from tests.support.factories import WRITER, person
from vault.access.lookup import LookupNotFound, lookup
from vault.audit.events import AuditAction
from vault.bases.consents import record_basis
from vault.errors import Conflict, InvalidInput, NotFound
from vault.storage.audit_tables import audit_events
from vault.storage.tables import subjects
from vault.subjects.store import create_subject, decrypt_fields, rectify_contact

ACCOUNT = frozenset({"account.service", "order.delivery"})


def _plain_values(p: dict[str, Any]) -> list[bytes]:
    """Every plaintext value of a person, as the bytes that would betray it in a column."""
    values = [p["email"], p["email"].lower(), p["phone"], p["name"], p["external_ref"]]
    # Street and city; a five-digit postcode could turn up by chance in a random uuid.
    values += [p["postal_address"]["street"], p["postal_address"]["city"]]
    return [v.encode() for v in values]


async def _row(vault, subject_id: str):
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(subjects).where(subjects.c.id == subject_id))).one()


async def _audit(vault) -> list[Any]:
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(audit_events).order_by(audit_events.c.seq))).all()


def _column_bytes(row: Any) -> list[bytes]:
    out = []
    for value in row._mapping.values():
        if value is None:
            continue
        out.append(value if isinstance(value, bytes) else str(value).encode())
    return out


async def test_create_stores_only_ciphertext(vault):
    """A created subject's row holds ciphertexts and digests; no column contains a plaintext
    value."""
    p = person(11)
    sid = await create_subject(vault, WRITER, p)
    row = await _row(vault, sid)
    for field in ("email", "phone", "name", "postal_address", "external_ref"):
        assert getattr(row, f"{field}_ct"), field
    stored = _column_bytes(row)
    for secret in _plain_values(p):
        assert not any(secret in blob for blob in stored), secret
    assert row.status == "active" and row.wrapped_dek and row.kek_version


async def test_created_subject_decrypts_to_normalised_values(vault):
    """The sealed fields open to the normalised input: lower-cased e-mail, E.164 phone, address
    object."""
    p = person(12)
    p["email"] = "  " + p["email"].upper() + " "
    p["phone"] = "030 " + p["phone"][5:]
    sid = await create_subject(vault, WRITER, p)
    row = await _row(vault, sid)
    out = decrypt_fields(vault, row, ("email", "phone", "name", "postal_address", "external_ref"))
    assert out["email"] == p["email"].strip().lower()
    assert out["phone"] == "+4930" + p["phone"][4:]
    assert out["name"] == p["name"]
    assert out["postal_address"] == p["postal_address"]
    assert out["external_ref"] == p["external_ref"]


async def test_fields_not_given_stay_empty(vault):
    """A subject created with only some fields has no ciphertext or digest for the others."""
    sid = await create_subject(vault, WRITER, {"name": "Erika Mustermann"})
    row = await _row(vault, sid)
    assert row.name_ct and row.email_ct is None and row.email_bidx is None
    assert decrypt_fields(vault, row, ("email", "name")) == {"name": "Erika Mustermann"}


async def test_create_needs_at_least_one_field_and_valid_data(vault):
    """An empty body, an unknown field or an invalid value is refused and nothing is stored."""
    with pytest.raises(InvalidInput):
        await create_subject(vault, WRITER, {})
    with pytest.raises(InvalidInput) as info:
        await create_subject(vault, WRITER, {"email": "not-an-address", "iban": "DE00"})
    assert set(info.value.errors) == {"email", "iban"}
    assert "not-an-address" not in str(info.value.errors)
    async with vault.engine.connect() as conn:
        assert (await conn.execute(select(subjects))).all() == []
    assert await _audit(vault) == []


async def test_external_ref_is_unique(vault):
    """A second subject with the same customer number is a Conflict and is not stored."""
    p = person(13)
    await create_subject(vault, WRITER, p)
    other = person(14)
    other["external_ref"] = "  " + p["external_ref"] + " "
    with pytest.raises(Conflict):
        await create_subject(vault, WRITER, other)
    async with vault.engine.connect() as conn:
        assert len((await conn.execute(select(subjects))).all()) == 1
    assert len(await _audit(vault)) == 1


async def test_rectify_replaces_and_clears_fields(vault):
    """Rectification replaces given fields, clears those set to None and leaves the rest."""
    p = person(15)
    sid = await create_subject(vault, WRITER, p)
    changed = await rectify_contact(
        vault, WRITER, sid, {"email": "Neu.Adresse@Example.org", "phone": None}
    )
    assert changed == ["email", "phone"]
    row = await _row(vault, sid)
    assert row.phone_ct is None and row.phone_bidx is None
    out = decrypt_fields(vault, row, ("email", "phone", "name"))
    assert out == {"email": "neu.adresse@example.org", "name": p["name"]}


async def test_rectify_moves_the_blind_index(vault):
    """After rectifying the e-mail, lookup by the old address finds nothing and by the new one finds
    the subject."""
    p = person(16)
    sid = await create_subject(vault, WRITER, p)
    await record_basis(vault, WRITER, sid, "account.service", reference="Vertrag 1")
    await rectify_contact(vault, WRITER, sid, {"email": "erika.neu@example.org"})

    async def by_email(address: str):
        return await lookup(
            vault,
            WRITER,
            ACCOUNT,
            purpose_id="account.service",
            identifier_kind="email",
            identifier=address,
        )

    with pytest.raises(LookupNotFound):
        await by_email(p["email"])
    found = await by_email("ERIKA.NEU@example.org")
    assert found.subject_id == sid and found.fields["email"] == "erika.neu@example.org"


async def test_rectify_external_ref_to_a_taken_one_is_a_conflict(vault):
    """Rectifying a customer number to another subject's is a Conflict and changes nothing."""
    a, b = person(17), person(18)
    await create_subject(vault, WRITER, a)
    sid = await create_subject(vault, WRITER, b)
    with pytest.raises(Conflict):
        await rectify_contact(vault, WRITER, sid, {"external_ref": a["external_ref"], "name": "X"})
    row = await _row(vault, sid)
    assert decrypt_fields(vault, row, ("name",)) == {"name": b["name"]}


async def test_rectify_unknown_subject_is_not_found(vault):
    """Rectifying a subject that does not exist is NotFound, and the refused attempt is on
    record as one denial (`subject_not_found`) naming the field, never its value."""
    sid = str(uuid.uuid4())
    with pytest.raises(NotFound):
        await rectify_contact(vault, WRITER, sid, {"name": "Erika Mustermann"})
    (event,) = await _audit(vault)
    assert (event.action, event.subject_id, event.decision, event.reason, event.fields) == (
        "client:contact:rectify",
        sid,
        "deny",
        "subject_not_found",
        "name",
    )
    assert "Erika" not in repr(tuple(event))


async def test_rectify_with_nothing_to_change_is_refused(vault):
    """Rectification without any field is InvalidInput."""
    sid = await create_subject(vault, WRITER, person(19))
    with pytest.raises(InvalidInput):
        await rectify_contact(vault, WRITER, sid, {})


async def test_create_and_rectify_write_one_audit_event_each_without_values(vault):
    """Create and rectify each write one audit event naming the fields, never their values;
    an e-mail change adds its identity-change and notice events, also without values."""
    p = person(20)
    sid = await create_subject(vault, WRITER, p)
    events = await _audit(vault)
    assert len(events) == 1
    (created,) = events
    assert created.action == AuditAction.SUBJECT_CREATE and created.subject_id == sid
    assert created.decision == "allow"
    assert created.fields.split(",") == ["email", "external_ref", "name", "phone", "postal_address"]
    assert (created.actor_type, created.actor_id) == ("client", "crm")

    new_email = "geheim.neu@example.org"
    await rectify_contact(vault, WRITER, sid, {"email": new_email, "name": None})
    events = await _audit(vault)
    assert [e.action for e in events[1:]] == [
        AuditAction.CONTACT_RECTIFY,
        AuditAction.IDENTITY_CHANGE,
        AuditAction.IDENTITY_NOTICE_MAIL,
    ]
    rectified = events[1]
    assert rectified.action == AuditAction.CONTACT_RECTIFY and rectified.subject_id == sid
    assert rectified.fields == "email,name"

    for event in events:
        stored = _column_bytes(event)
        for secret in [*_plain_values(p), new_email.encode()]:
            assert not any(secret in blob for blob in stored), secret
        if event.detail:
            json.loads(event.detail)


async def test_of_two_concurrent_rectifications_of_one_revision_one_wins(vault):
    """Two writers rectify from the same revision at once: the locked row lets one through
    (revision 2) and refuses the other with `PreconditionFailed`, audited; a missing
    precondition (an empty set) is `PreconditionRequired`."""
    import asyncio

    from vault.errors import PreconditionRequired
    from vault.subjects.store import rectify_contact_if

    sid = await create_subject(vault, WRITER, {"name": "Erika"})
    outcomes = await asyncio.gather(
        rectify_contact_if(vault, WRITER, sid, {"name": "Eins"}, if_match=frozenset({1})),
        rectify_contact_if(vault, WRITER, sid, {"name": "Zwei"}, if_match=frozenset({1})),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["PreconditionFailed", "tuple"]
    (won,) = [o for o in outcomes if isinstance(o, tuple)]
    assert won == (["name"], 2)
    assert (await _row(vault, sid)).contact_revision == 2
    with pytest.raises(PreconditionRequired):
        await rectify_contact_if(vault, WRITER, sid, {"name": "Drei"}, if_match=frozenset())
    denials = [e.reason for e in await _audit(vault) if e.decision == "deny"]
    assert denials == ["precondition_failed", "precondition_required"]
