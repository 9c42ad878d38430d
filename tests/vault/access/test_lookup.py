"""The purpose-checked lookup on both databases: identifiers, narrowing, time, denials, and its
audit event."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from tests.support.db import audit_trail
from tests.support.factories import NEWSLETTER_EVIDENCE, WRITER, outbox_links, person
from tests.support.privacy import audit_rows
from vault.access.lookup import LookupDenied, LookupNotFound, lookup
from vault.audit.events import Actor, AuditAction
from vault.bases.consents import Evidence, confirm, record_basis, withdraw
from vault.errors import InvalidInput
from vault.outreach.basket import ContactSpec
from vault.storage.tables import subjects
from vault.subjects.decision import DenyReason
from vault.subjects.store import create_subject

SHOP = Actor("client", "shop", "req-1")
ALL = frozenset(
    {"order.delivery", "newsletter.email", "offers.sms", "invoice.postal", "account.service"}
)
EXPLICIT = Evidence(
    touchpoint="shop.counter",
    method="signature",
    notice_version="2026-10",
    language="de",
    explicit=True,
)


async def _lookup(vault, purpose: str, kind: str, value: str, *, fields=None, allowed=ALL):
    """A lookup that announces a tresor contact where the purpose needs one (marketing)."""
    known = vault.catalogue.get(purpose)
    return await lookup(
        vault,
        SHOP,
        allowed,
        purpose_id=purpose,
        identifier_kind=kind,
        identifier=value,
        fields=fields,
        contact=ContactSpec(brand="tresor") if known and known.needs_contact else None,
    )


async def _denied(vault, purpose: str, kind: str, value: str, **kw) -> str:
    with pytest.raises(LookupDenied) as info:
        await _lookup(vault, purpose, kind, value, **kw)
    return info.value.reason


async def _customer(vault, seed: int) -> tuple[dict[str, Any], str, str]:
    """A subject with an active order.delivery contract: (person, subject id, basis id)."""
    p = person(seed)
    sid = await create_subject(vault, WRITER, p)
    basis = await record_basis(vault, WRITER, sid, "order.delivery", reference=f"Bestellung {seed}")
    return p, sid, basis.id


# --- identifiers -----------------------------------------------------------------------


async def test_lookup_by_subject_id_returns_the_purpose_fields_and_basis(vault):
    """Lookup by subject id reveals exactly the purpose's fields and names the basis relied on."""
    p, sid, basis_id = await _customer(vault, 1)
    out = await _lookup(vault, "order.delivery", "subject_id", sid)
    assert out.subject_id == sid and out.purpose == "order.delivery"
    assert out.fields == {
        "name": p["name"],
        "postal_address": p["postal_address"],
        "phone": p["phone"],
    }
    assert (out.basis_id, out.basis_type, out.basis_expires_at) == (basis_id, "contract", None)


@pytest.mark.parametrize(
    "spelling", [lambda e: e, lambda e: e.upper(), lambda e: f"  {e.title()}\t"]
)
async def test_lookup_by_email_in_any_case_and_spacing(vault, spelling):
    """An e-mail address finds its subject whatever its case and surrounding spaces."""
    p = person(2)
    sid = await create_subject(vault, WRITER, p)
    await record_basis(vault, WRITER, sid, "account.service", reference="Konto 2")
    out = await _lookup(vault, "account.service", "email", spelling(p["email"]))
    assert out.subject_id == sid and out.fields["email"] == p["email"].lower()


async def test_lookup_by_phone_in_national_format(vault):
    """A phone number typed nationally (030 ...) finds the subject stored in E.164."""
    p, sid, _ = await _customer(vault, 3)
    national = "0" + p["phone"][3:5] + " " + p["phone"][5:]
    assert (await _lookup(vault, "order.delivery", "phone", national)).subject_id == sid


async def test_lookup_by_external_ref(vault):
    """A customer number finds its subject."""
    p, sid, _ = await _customer(vault, 4)
    assert (
        await _lookup(vault, "order.delivery", "external_ref", p["external_ref"])
    ).subject_id == sid


async def test_invalid_identifier_is_refused_before_anything_is_read(vault):
    """A malformed e-mail or an unknown identifier kind is InvalidInput and is not a lookup
    event."""
    with pytest.raises(InvalidInput):
        await _lookup(vault, "order.delivery", "email", "not-an-address")
    with pytest.raises(InvalidInput):
        await _lookup(vault, "order.delivery", "iban", "DE89370400440532013000")
    with pytest.raises(InvalidInput):
        await _lookup(vault, "order.delivery", "subject_id", str(uuid.uuid4()), fields=[])
    assert await audit_trail(vault, AuditAction.LOOKUP) == []


# --- fields ----------------------------------------------------------------------------


async def test_fields_narrow_the_answer(vault):
    """Naming fields returns only those, and the audit event names only those."""
    p, sid, _ = await _customer(vault, 5)
    out = await _lookup(vault, "order.delivery", "subject_id", sid, fields=["phone"])
    assert out.fields == {"phone": p["phone"]}
    (event,) = await audit_trail(vault, AuditAction.LOOKUP)
    assert event.fields == "phone"


async def test_only_the_ciphertexts_of_revealable_fields_are_read(vault, monkeypatch):
    """Data minimisation below the decision: the read fetches the sealed columns of the
    fields asked for (within the purpose) and no others, on both databases."""
    _, sid, _ = await _customer(vault, 7)
    seen: list[set[str]] = []
    read_rows = vault.reads.rows

    async def spy(statement, params):
        rows = await read_rows(statement, params)
        seen.extend({k for k in dict(r._mapping if hasattr(r, "_mapping") else r)} for r in rows)
        return rows

    monkeypatch.setattr(vault.reads, "rows", spy)
    await _lookup(vault, "order.delivery", "subject_id", sid, fields=["phone", "name"])
    assert seen and all(
        {c for c in cols if c.endswith("_ct")} == {"phone_ct", "name_ct"} for cols in seen
    )
    seen.clear()
    await _lookup(vault, "order.delivery", "subject_id", sid)
    assert seen and all(
        {c for c in cols if c.endswith("_ct")} == {"phone_ct", "name_ct", "postal_address_ct"}
        for cols in seen
    )


async def test_field_outside_the_purpose_is_denied(vault):
    """Asking order.delivery for the e-mail is field_not_covered, audited with the requested
    fields."""
    _, sid, _ = await _customer(vault, 6)
    assert await _denied(vault, "order.delivery", "subject_id", sid, fields=["email"]) == (
        DenyReason.FIELD_NOT_COVERED
    )
    (event,) = await audit_trail(vault, AuditAction.LOOKUP)
    assert (event.decision, event.reason, event.fields) == ("deny", "field_not_covered", "email")


async def test_missing_fields_are_left_out(vault):
    """A purpose field the subject has no value for is absent from the answer and the audit."""
    sid = await create_subject(vault, WRITER, {"name": "Erika Mustermann"})
    await record_basis(vault, WRITER, sid, "order.delivery", reference="Bestellung 7")
    out = await _lookup(vault, "order.delivery", "subject_id", sid)
    assert out.fields == {"name": "Erika Mustermann"}
    (event,) = await audit_trail(vault, AuditAction.LOOKUP)
    assert event.fields == "name"


# --- time, withdrawal, subject status --------------------------------------------------


async def test_expiry_is_decided_at_read_time(vault, clock):
    """A consent allows until its expiry on the injected clock, and is consent_expired from then
    on."""
    p = person(8)
    sid = await create_subject(vault, WRITER, p)
    await record_basis(
        vault,
        WRITER,
        sid,
        "offers.sms",
        evidence=EXPLICIT,
        expires_at=clock.now() + timedelta(days=10),
    )
    clock.advance(timedelta(days=10, microseconds=-1))
    assert (await _lookup(vault, "offers.sms", "phone", p["phone"])).fields["phone"] == p["phone"]
    clock.advance(timedelta(microseconds=1))
    assert await _denied(vault, "offers.sms", "phone", p["phone"]) == DenyReason.CONSENT_EXPIRED


async def test_withdrawal_is_effective_at_once(vault, clock):
    """The first lookup after a withdrawal is consent_withdrawn."""
    sid = await create_subject(vault, WRITER, person(9))
    rec = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    await _lookup(vault, "offers.sms", "subject_id", sid)
    await withdraw(vault, WRITER, sid, rec.id)
    assert await _denied(vault, "offers.sms", "subject_id", sid) == DenyReason.CONSENT_WITHDRAWN


async def test_double_opt_in_is_unconfirmed_until_confirmed(vault):
    """A pending newsletter consent is consent_unconfirmed; after confirmation the e-mail is
    revealed."""
    p = person(10)
    sid = await create_subject(vault, WRITER, p)
    await record_basis(
        vault, WRITER, sid, "newsletter.email", evidence=Evidence(**NEWSLETTER_EVIDENCE)
    )
    assert await _denied(vault, "newsletter.email", "email", p["email"]) == (
        DenyReason.CONSENT_UNCONFIRMED
    )
    (token,) = outbox_links(vault.settings.outbox_dir)
    await confirm(vault, token, Actor("subject", "confirmation-link"))
    assert (await _lookup(vault, "newsletter.email", "email", p["email"])).subject_id == sid


async def test_no_basis_is_no_consent(vault):
    """A subject without any record for the purpose is no_consent."""
    sid = await create_subject(vault, WRITER, person(11))
    assert await _denied(vault, "offers.sms", "subject_id", sid) == DenyReason.NO_CONSENT


async def test_restricted_subject_is_denied_except_for_legal_obligations(vault):
    """A restricted subject is subject_restricted for a contract purpose but still readable for
    invoices."""
    _, sid, _ = await _customer(vault, 12)
    await record_basis(vault, WRITER, sid, "invoice.postal", reference="Rechnung 12")
    async with vault.engine.begin() as conn:
        await conn.execute(update(subjects).where(subjects.c.id == sid).values(status="restricted"))
    assert await _denied(vault, "order.delivery", "subject_id", sid) == (
        DenyReason.SUBJECT_RESTRICTED
    )
    out = await _lookup(vault, "invoice.postal", "subject_id", sid)
    assert set(out.fields) == {"name", "postal_address", "external_ref"}


async def test_erased_subject_is_denied(vault):
    """An erased subject is subject_erased."""
    _, sid, _ = await _customer(vault, 13)
    async with vault.engine.begin() as conn:
        await conn.execute(update(subjects).where(subjects.c.id == sid).values(status="erased"))
    assert await _denied(vault, "order.delivery", "subject_id", sid) == DenyReason.SUBJECT_ERASED


# --- client and purpose ----------------------------------------------------------------


async def test_purpose_not_allowed_to_the_client(vault):
    """A client asking for a purpose outside its allowed purposes is purpose_not_allowed."""
    _, sid, _ = await _customer(vault, 14)
    reason = await _denied(
        vault, "order.delivery", "subject_id", sid, allowed=frozenset({"newsletter.email"})
    )
    assert reason == DenyReason.PURPOSE_NOT_ALLOWED
    (event,) = await audit_trail(vault, AuditAction.LOOKUP)
    assert event.subject_id == sid and event.purpose == "order.delivery"


async def test_unknown_purpose_is_audited_as_unknown(vault):
    """An unknown purpose is denied and audited as "<unknown>", never as the raw string the client
    sent."""
    p, sid, _ = await _customer(vault, 15)
    raw = f"leak.{p['email']}"
    assert await _denied(vault, raw, "subject_id", sid, allowed=ALL | {raw}) == (
        DenyReason.UNKNOWN_PURPOSE
    )
    (event,) = await audit_trail(vault, AuditAction.LOOKUP)
    assert event.purpose == "<unknown>" and event.reason == "unknown_purpose"
    assert all(p["email"] not in str(v) for v in event._mapping.values())


# --- not found and ambiguous -----------------------------------------------------------


async def test_subject_not_found_is_raised_and_audited(vault):
    """No match raises LookupNotFound and writes a deny event with reason subject_not_found and no
    identifier."""
    await _customer(vault, 16)
    with pytest.raises(LookupNotFound):
        await _lookup(vault, "order.delivery", "email", "niemand@example.org")
    missing = str(uuid.uuid4())
    with pytest.raises(LookupNotFound):
        await _lookup(vault, "order.delivery", "subject_id", missing)
    with pytest.raises(LookupNotFound):
        await _lookup(vault, "order.delivery", "subject_id", "niemand@example.org")
    events = await audit_trail(vault, AuditAction.LOOKUP)
    assert [(e.decision, e.reason) for e in events] == [("deny", "subject_not_found")] * 3
    assert [e.subject_id for e in events] == [None, missing, None]
    assert all("niemand" not in str(v) for e in events for v in e._mapping.values())


async def test_shared_phone_is_ambiguous(vault):
    """Two subjects sharing a phone number make a phone lookup ambiguous_identifier, revealing
    neither."""
    a, _, _ = await _customer(vault, 17)
    await create_subject(vault, WRITER, {**person(18), "phone": a["phone"]})
    assert await _denied(vault, "order.delivery", "phone", a["phone"]) == (
        DenyReason.AMBIGUOUS_IDENTIFIER
    )
    (event,) = await audit_trail(vault, AuditAction.LOOKUP)
    assert (event.decision, event.reason, event.subject_id) == (
        "deny",
        "ambiguous_identifier",
        None,
    )


# --- the audit event -------------------------------------------------------------------


async def test_every_lookup_writes_exactly_one_audit_event(vault, clock):
    """Allowed, denied and not-found lookups each write one event with decision, reason, consent and
    fields."""
    p, sid, basis_id = await _customer(vault, 19)
    await _lookup(
        vault, "order.delivery", "external_ref", p["external_ref"], fields=["name", "phone"]
    )
    with pytest.raises(LookupDenied):
        await _lookup(vault, "offers.sms", "subject_id", sid, fields=["phone"])
    with pytest.raises(LookupNotFound):
        await _lookup(vault, "order.delivery", "external_ref", "K-00000000")

    allowed, denied, missing = await audit_trail(vault, AuditAction.LOOKUP)
    assert (allowed.decision, allowed.reason, allowed.consent_id) == ("allow", None, basis_id)
    assert (allowed.subject_id, allowed.purpose, allowed.fields) == (
        sid,
        "order.delivery",
        "name,phone",
    )
    assert (allowed.actor_type, allowed.actor_id, allowed.request_id) == ("client", "shop", "req-1")
    assert allowed.at is not None and '"by": "external_ref"' in allowed.detail

    assert (denied.decision, denied.reason, denied.consent_id) == ("deny", "no_consent", None)
    assert (denied.subject_id, denied.purpose, denied.fields) == (sid, "offers.sms", "phone")

    assert (missing.decision, missing.reason, missing.subject_id) == (
        "deny",
        "subject_not_found",
        None,
    )
    for event in (allowed, denied, missing):
        for value in event._mapping.values():
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            assert p["name"] not in text and p["phone"] not in text
            assert p["external_ref"] not in text and "K-00000000" not in text


# --- an announced contact, through the interface the lookup declares --------------------


class _Held:
    """A reservation as `OutboundContact.reserve` reports one."""

    contact_id, month, preferred_channel = "c-1", "2026-11", None
    points, used, basket = 2.0, 2.0, 25.0


class _Contact:
    """An `OutboundContact` that is not the basket's: it records what the lookup asked of it
    and answers `outcome` to the reservation."""

    brand, channel, type, priority, touchpoint = "tresor", "letter", "service", "normal", None

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.calls: list[tuple[str, Any]] = []

    def resolve(self, ctx, purpose):
        self.calls.append(("resolve", purpose.id))
        return self

    def check_grant(self, ctx, client, client_purposes, checked):
        self.calls.append(("check_grant", client))
        return checked

    async def reserve(self, conn, ctx, *, subject_id, purpose_id, actor, now, with_followup=True):
        self.calls.append(("reserve", (subject_id, purpose_id, actor.id, with_followup)))
        return self.outcome


async def test_a_contact_is_reserved_through_the_lookups_own_interface(vault):
    """The lookup reserves an announced contact only through `OutboundContact` (any
    implementation, not the basket's class): it resolves and grant-checks it first, reserves
    it for the allowed subject in the read's transaction, and reveals the data with that
    reservation, or denies with the reservation's reason and reveals nothing."""
    from vault.subjects.decision import Deny

    p, sid, _ = await _customer(vault, 61)
    held = _Contact(_Held())
    result = await lookup(
        vault,
        SHOP,
        ALL,
        purpose_id="order.delivery",
        identifier_kind="subject_id",
        identifier=sid,
        contact=held,
    )
    assert result.fields["name"] == p["name"] and result.contact is held.outcome
    assert held.calls == [
        ("resolve", "order.delivery"),
        ("check_grant", "shop"),
        ("reserve", (sid, "order.delivery", "shop", True)),
    ]
    full = _Contact(Deny(DenyReason.CONTACT_BUDGET_EXHAUSTED))
    with pytest.raises(LookupDenied) as denied:
        await lookup(
            vault,
            SHOP,
            ALL,
            purpose_id="order.delivery",
            identifier_kind="subject_id",
            identifier=sid,
            contact=full,
        )
    assert denied.value.reason == "contact_budget_exhausted"
    last = (await audit_trail(vault, AuditAction.LOOKUP))[-1]
    assert (last.decision, last.reason, last.fields) == ("deny", "contact_budget_exhausted", None)


async def test_a_marketing_lookup_without_a_contact_is_denied_contact_required(vault):
    """The basket is not voluntary: an offers.sms lookup without `contact` is denied
    contact_required and audited with nothing revealed; with a contact it reveals and
    reserves its points."""
    p = person(61)
    sid = await create_subject(vault, WRITER, p)
    await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    with pytest.raises(LookupDenied) as info:
        await lookup(
            vault, SHOP, ALL, purpose_id="offers.sms", identifier_kind="subject_id",
            identifier=sid,
        )  # fmt: skip
    assert info.value.reason == DenyReason.CONTACT_REQUIRED
    events = [e for e in await audit_rows(vault) if e["action"] == AuditAction.LOOKUP]
    assert [(e["decision"], e["reason"], e["subject_id"]) for e in events] == [
        ("deny", "contact_required", sid)
    ]
    got = await lookup(
        vault, SHOP, ALL, purpose_id="offers.sms", identifier_kind="subject_id",
        identifier=sid, contact=ContactSpec(brand="tresor"),
    )  # fmt: skip
    assert got.fields["phone"] == p["phone"] and got.contact is not None
    assert got.contact.points == 20


async def test_a_purpose_marked_contact_required_needs_a_contact_too(vault, monkeypatch):
    """A service purpose marked `contact_required` in the catalogue is denied without one."""
    _, sid, _ = await _customer(vault, 62)
    marked = dataclasses.replace(vault.catalogue.purposes["order.delivery"], contact_required=True)
    monkeypatch.setitem(vault.catalogue.purposes, "order.delivery", marked)
    with pytest.raises(LookupDenied) as info:
        await lookup(
            vault, SHOP, ALL, purpose_id="order.delivery", identifier_kind="subject_id",
            identifier=sid,
        )  # fmt: skip
    assert info.value.reason == DenyReason.CONTACT_REQUIRED
    got = await lookup(
        vault, SHOP, ALL, purpose_id="order.delivery", identifier_kind="subject_id",
        identifier=sid, contact=ContactSpec(brand="tresor"),
    )  # fmt: skip
    assert got.contact is not None


async def test_a_consent_for_one_brand_does_not_cover_another(vault, monkeypatch):
    """offers.sms scoped to brands = ["tresor"]: a contact for tresor_finance is denied
    brand_not_covered (audited, no points), one for tresor passes."""
    sid = await create_subject(vault, WRITER, person(63))
    await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    scoped = dataclasses.replace(vault.catalogue.purposes["offers.sms"], brands=("tresor",))
    monkeypatch.setitem(vault.catalogue.purposes, "offers.sms", scoped)

    async def announce(brand: str):
        return await lookup(
            vault, SHOP, ALL, purpose_id="offers.sms", identifier_kind="subject_id",
            identifier=sid, contact=ContactSpec(brand=brand),
        )  # fmt: skip

    with pytest.raises(LookupDenied) as info:
        await announce("tresor_finance")
    assert info.value.reason == DenyReason.BRAND_NOT_COVERED
    assert (await announce("tresor")).contact.used == 20
    events = [e for e in await audit_rows(vault) if e["action"] == AuditAction.LOOKUP]
    assert [(e["decision"], e["reason"]) for e in events] == [
        ("deny", "brand_not_covered"),
        ("allow", None),
    ]
