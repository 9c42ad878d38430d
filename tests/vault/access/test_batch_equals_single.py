"""A batch line equals the single lookup for the same subject and purpose, on both databases:
the same answer (fields, basis) or the same denial reason, and the same audit event but for
the detail that names the line."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from tests.support.db import audit_trail
from tests.support.factories import NEWSLETTER_EVIDENCE, WRITER, person
from vault.access import bulk
from vault.access.lookup import LookupDenied, LookupNotFound, lookup
from vault.audit.events import Actor, AuditAction
from vault.bases.consents import Evidence, record_basis, withdraw
from vault.errors import IntegrityFailure, InvalidInput
from vault.outreach.basket import ContactSpec
from vault.storage.outreach_tables import contact_budgets, contacts
from vault.storage.tables import subjects
from vault.subjects.decision import DenyReason
from vault.subjects.store import create_subject

SHOP = Actor("client", "shop", "req-eq-1")
ALL = frozenset({"order.delivery", "newsletter.email", "offers.sms", "invoice.postal"})
EXPLICIT = Evidence(
    touchpoint="shop.counter",
    method="signature",
    notice_version="2026-10",
    language="de",
    explicit=True,
)
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
#: The event columns a line's event shares with the single lookup's (not `detail`, which
#: names the batch and the line, nor `seq`, `at` and the seal).
SAME = ("actor_type", "actor_id", "action", "subject_id", "purpose", "fields", "decision",
        "reason", "consent_id")  # fmt: skip


def _contact(vault, purpose: str) -> ContactSpec | None:
    """The contact a lookup for a marketing purpose must announce (none for the others)."""
    known = vault.catalogue.get(purpose)
    return ContactSpec(brand="tresor") if known and known.needs_contact else None


async def _single(vault, purpose: str, kind: str, value: str, fields, allowed) -> tuple[Any, ...]:
    try:
        out = await lookup(
            vault,
            SHOP,
            allowed,
            purpose_id=purpose,
            identifier_kind=kind,
            identifier=value,
            fields=fields,
            contact=_contact(vault, purpose),
        )
    except LookupNotFound:
        return ("deny", str(DenyReason.SUBJECT_NOT_FOUND))
    except IntegrityFailure:
        return ("deny", str(DenyReason.INTEGRITY_ERROR))
    except LookupDenied as denied:
        return ("deny", str(denied.reason))
    expires = out.basis_expires_at.isoformat() if out.basis_expires_at else None
    basis = {"id": out.basis_id, "type": out.basis_type, "expires_at": expires}
    return ("allow", out.subject_id, out.fields, basis)


async def _line(vault, purpose: str, kind: str, value: str, fields, allowed) -> tuple[Any, ...]:
    lines: list[dict[str, Any]] = []
    try:
        async for blob in bulk.resolve_batch(
            vault,
            SHOP,
            allowed,
            purpose_id=purpose,
            identifier_kind=kind,
            identifiers=[value],
            fields=fields,
            contact=_contact(vault, purpose),
        ):
            lines.extend(json.loads(x) for x in blob.decode().splitlines())
    except LookupDenied as denied:  # a denial for the whole batch: no line at all
        return ("deny", str(denied.reason))
    (line,) = lines
    if "reason" in line:
        return ("deny", line["reason"])
    return ("allow", line["subject_id"], line["fields"], line["basis"])


async def _last_lookup_event(vault) -> dict[str, Any]:
    return dict((await audit_trail(vault, AuditAction.LOOKUP))[-1]._mapping)


async def _same(
    vault, purpose: str, kind: str, value: str, *, fields=None, allowed=ALL
) -> tuple[Any, ...]:
    """Run the single lookup and a batch of that one identifier; assert they agree in the
    answer and the audit event; return the (shared) outcome."""
    single = await _single(vault, purpose, kind, value, fields, allowed)
    single_event = await _last_lookup_event(vault)
    async with vault.engine.begin() as conn:  # the batch decides on the same, empty basket
        await conn.execute(delete(contacts))
        await conn.execute(delete(contact_budgets))
    line = await _line(vault, purpose, kind, value, fields, allowed)
    line_event = await _last_lookup_event(vault)
    assert line == single
    assert {c: line_event[c] for c in SAME} == {c: single_event[c] for c in SAME}
    single_detail, line_detail = (
        json.loads(single_event["detail"]),
        json.loads(line_event["detail"]),
    )
    single_contact, line_contact = (
        single_detail.pop("contact", None),
        line_detail.pop("contact", None),
    )
    assert (single_contact is None) == (line_contact is None) == (_contact(vault, purpose) is None)
    assert single_detail == {"by": kind}
    assert line_detail == {"batch": SHOP.request_id, "by": kind, "i": 0}
    return single


async def _customer(vault, seed: int) -> tuple[dict[str, Any], str, str]:
    p = person(seed)
    sid = await create_subject(vault, WRITER, p)
    basis = await record_basis(vault, WRITER, sid, "order.delivery", reference=f"Bestellung {seed}")
    return p, sid, basis.id


async def _set(vault, sid: str, **values: Any) -> None:
    async with vault.engine.begin() as conn:
        await conn.execute(update(subjects).where(subjects.c.id == sid).values(**values))


async def test_allowed_by_every_identifier_kind_with_field_filtering(vault):
    """Allowed: the same fields (narrowed or the purpose's), subject and basis from a line as
    from the single lookup, by subject id, e-mail and phone."""
    p, sid, basis_id = await _customer(vault, 801)
    out = await _same(vault, "order.delivery", "subject_id", sid)
    assert out[0] == "allow" and set(out[2]) == {"name", "postal_address", "phone"}
    out = await _same(vault, "order.delivery", "email", p["email"], fields=["name"])
    assert out == ("allow", sid, {"name": p["name"]}, {"id": basis_id, "type": "contract",
                                                        "expires_at": None})  # fmt: skip
    out = await _same(vault, "order.delivery", "phone", p["phone"], fields=["phone", "name"])
    assert out[2] == {"phone": p["phone"], "name": p["name"]}


async def test_a_consent_with_an_expiry_is_the_same_basis_in_both(vault, clock):
    """An expiring consent: the same basis with the same expiry, then the same expiry denial."""
    p = person(802)
    sid = await create_subject(vault, WRITER, p)
    await record_basis(
        vault, WRITER, sid, "offers.sms", evidence=EXPLICIT,
        expires_at=clock.now() + timedelta(days=3),
    )  # fmt: skip
    out = await _same(vault, "offers.sms", "phone", p["phone"])
    assert out[0] == "allow" and out[3]["expires_at"] is not None
    clock.advance(timedelta(days=3))
    assert await _same(vault, "offers.sms", "phone", p["phone"]) == (
        "deny", str(DenyReason.CONSENT_EXPIRED))  # fmt: skip


async def test_a_field_the_customer_left_out_is_not_covered_in_both(vault):
    """A consent given without the name: asking for the phone alone passes; asking for the
    name, or for the purpose's default fields (which include it), is field_not_covered, the
    same in a line as in the single lookup."""
    p = person(803)
    sid = await create_subject(vault, WRITER, p)
    await record_basis(
        vault, WRITER, sid, "offers.sms", evidence=EXPLICIT, excluded_fields=["name"]
    )
    out = await _same(vault, "offers.sms", "phone", p["phone"], fields=["phone"])
    assert out[0] == "allow" and out[2] == {"phone": p["phone"]}
    not_covered = ("deny", str(DenyReason.FIELD_NOT_COVERED))
    assert await _same(vault, "offers.sms", "subject_id", sid, fields=["name"]) == not_covered
    assert await _same(vault, "offers.sms", "subject_id", sid) == not_covered


@pytest.mark.parametrize("left_out", [["email"], ["phone", "name"], ["phone", "phone"]])
async def test_only_some_of_the_purposes_own_fields_can_be_left_out(vault, left_out):
    """A field the purpose does not reveal, all of its fields, or a repeated one: refused,
    nothing recorded."""
    sid = await create_subject(vault, WRITER, person(804))
    with pytest.raises(InvalidInput):
        await record_basis(
            vault, WRITER, sid, "offers.sms", evidence=EXPLICIT, excluded_fields=left_out
        )
    assert await _same(vault, "offers.sms", "subject_id", sid, fields=["phone"]) == (
        "deny", str(DenyReason.NO_CONSENT))  # fmt: skip


@pytest.mark.parametrize("kind", ["subject_id", "email"])
async def test_not_found_is_the_same_miss(vault, kind):
    """An identifier that matches nobody is subject_not_found in both, with the same event."""
    value = UNKNOWN_ID if kind == "subject_id" else "nobody@example.org"
    assert await _same(vault, "order.delivery", kind, value) == (
        "deny", str(DenyReason.SUBJECT_NOT_FOUND))  # fmt: skip


async def test_basis_denials_are_the_same(vault):
    """No basis, an unconfirmed consent and a withdrawn one: the same reason from both."""
    p, sid, _ = await _customer(vault, 803)
    assert await _same(vault, "newsletter.email", "subject_id", sid) == (
        "deny", str(DenyReason.NO_CONSENT))  # fmt: skip
    await record_basis(
        vault, WRITER, sid, "newsletter.email", evidence=Evidence(**NEWSLETTER_EVIDENCE)
    )
    assert await _same(vault, "newsletter.email", "email", p["email"]) == (
        "deny", str(DenyReason.CONSENT_UNCONFIRMED))  # fmt: skip
    rec = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    await withdraw(vault, WRITER, sid, rec.id)
    assert await _same(vault, "offers.sms", "subject_id", sid) == (
        "deny", str(DenyReason.CONSENT_WITHDRAWN))  # fmt: skip


@pytest.mark.parametrize(
    ("status", "reason"),
    [("restricted", DenyReason.SUBJECT_RESTRICTED), ("erased", DenyReason.SUBJECT_ERASED)],
)
async def test_subject_status_denials_are_the_same(vault, status, reason):
    """A restricted or erased subject: the same denial from both, naming the subject."""
    _, sid, _ = await _customer(vault, 804)
    await _set(vault, sid, status=status)
    assert await _same(vault, "order.delivery", "subject_id", sid) == ("deny", str(reason))
    assert (await _last_lookup_event(vault))["subject_id"] == sid


@pytest.mark.parametrize(
    ("purpose", "fields", "allowed", "reason"),
    [
        ("order.delivery", ["email"], ALL, DenyReason.FIELD_NOT_COVERED),
        ("order.delivery", None, frozenset({"offers.sms"}), DenyReason.PURPOSE_NOT_ALLOWED),
        ("no.such.purpose", None, ALL, DenyReason.UNKNOWN_PURPOSE),
    ],
)
async def test_request_denials_are_the_same(vault, purpose, fields, allowed, reason):
    """Checks that need no subject deny the single lookup and the batch alike, each audited."""
    _, sid, _ = await _customer(vault, 805)
    got = await _same(vault, purpose, "subject_id", sid, fields=fields, allowed=allowed)
    assert got == ("deny", str(reason))


async def test_a_moved_index_is_the_same_integrity_denial(vault):
    """A blind index moved onto another row: integrity_error from both, on that row."""
    a, sid_a, _ = await _customer(vault, 806)
    _, sid_b, _ = await _customer(vault, 807)
    async with vault.engine.connect() as conn:
        digest = (
            await conn.execute(select(subjects.c.email_bidx).where(subjects.c.id == sid_a))
        ).scalar_one()
    await _set(vault, sid_a, email_bidx=None)
    await _set(vault, sid_b, email_bidx=digest)
    assert await _same(vault, "order.delivery", "email", a["email"]) == (
        "deny", str(DenyReason.INTEGRITY_ERROR))  # fmt: skip
    assert (await _last_lookup_event(vault))["subject_id"] == sid_b
