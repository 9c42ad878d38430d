"""The hot path: resolve contact data for a named purpose, audited in the same transaction.

One transaction reads the subject row and its basis records for the purpose, decides,
decrypts only the allowed fields, and appends the audit event; data leaves this function
only after that transaction committed. If the event cannot be written, nothing is revealed.

Stored data is checked before anything is reserved or revealed: a row found by e-mail,
phone or customer number must hold that value (its blind index is re-derived from the
decrypted field, which is not revealed unless the purpose allows it), and every ciphertext
must open at the row's revision. A failed check is a denial like any other, with the reason
`integrity_error`, audited in the same way; the caller gets `IntegrityFailure` (a 500).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, bindparam, select

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.crypto import IntegrityCheckFailed, KeyringError
from vault.errors import (
    AccessDenied,
    IntegrityFailure,
    InvalidInput,
    InvariantViolation,
    NotFound,
    Unavailable,
)
from vault.storage.rows import RowView, canonical_id
from vault.storage.tables import consents, subjects
from vault.subjects.decision import Allow, BasisFacts, Deny, DenyReason, check_request, decide
from vault.subjects.outbound import OutboundContact, Reservation
from vault.subjects.store import INDEXED, decrypt_fields, identifier_digest

if TYPE_CHECKING:
    from vault.context import VaultContext

IDENTIFIER_KINDS = ("subject_id", "email", "phone", "external_ref")


@dataclass(frozen=True, slots=True)
class LookupResult:
    subject_id: str
    purpose: str
    fields: dict[str, Any]
    basis_id: str
    basis_type: str
    basis_expires_at: datetime | None
    contact: Reservation | None = None
    #: The contact data's write counter: the `ETag` a rectification names in `If-Match`.
    contact_revision: int = 0


class LookupDenied(AccessDenied):
    """A denied lookup; the audit event recording the denial has been committed."""


class LookupNotFound(NotFound):
    """No subject matched; the audit event recording the miss has been committed."""

    reason = DenyReason.SUBJECT_NOT_FOUND


_MESSAGES = {
    DenyReason.UNKNOWN_PURPOSE: "the purpose is not in the purpose catalogue",
    DenyReason.PURPOSE_NOT_ALLOWED: "this client may not use this purpose",
    DenyReason.FIELD_NOT_COVERED: "a requested field is not covered by the purpose",
    DenyReason.AMBIGUOUS_IDENTIFIER: "the identifier matches more than one subject",
    DenyReason.SUBJECT_ERASED: "the subject's data was erased",
    DenyReason.SUBJECT_RESTRICTED: "processing of this subject's data is restricted",
    DenyReason.NO_CONSENT: "no lawful basis covers this purpose",
    DenyReason.CONSENT_UNCONFIRMED: "the consent awaits double opt-in confirmation",
    DenyReason.CONSENT_EXPIRED: "the consent has expired",
    DenyReason.CONSENT_WITHDRAWN: "the consent was withdrawn",
    DenyReason.BASIS_ENDED: "the lawful basis has ended",
    DenyReason.CONTACT_BUDGET_EXHAUSTED: "the customer's contact basket for this month is full",
    DenyReason.CONTACT_BLOCKED_BY_CALAMITY: (
        "a calamity message was sent recently; other contacts wait for the cool-down"
    ),
    DenyReason.CONTACT_QUIET_HOURS: "the customer asked not to be contacted on this channel now",
    DenyReason.CONTACT_CAP_REACHED: "the customer's own contact limit for this month is reached",
    DenyReason.FOLLOWUP_NOT_IN_WINDOW: "the agreed follow-up is not due now (outside its window)",
    DenyReason.FOLLOWUP_NOT_USABLE: (
        "the agreed follow-up cannot be used for this contact (unknown, cancelled or used)"
    ),
    DenyReason.CONTACT_TYPE_NOT_GRANTED: "this client may not announce calamity contacts",
    DenyReason.CONTACT_PRIORITY_NOT_GRANTED: "this client was not granted the contact's priority",
}


def deny_message(reason: DenyReason) -> str:
    return _MESSAGES.get(reason, "access denied")


async def lookup(
    ctx: VaultContext,
    actor: Actor,
    client_purposes: frozenset[str],
    *,
    purpose_id: str,
    identifier_kind: str,
    identifier: str,
    fields: Sequence[str] | None = None,
    contact: OutboundContact | None = None,
) -> LookupResult:
    """Resolve contact data for a purpose, or raise `LookupDenied` / `LookupNotFound`.

    With `contact`, revealing the data also reserves the contact's points in the same
    transaction (`OutboundContact.reserve`, the basket of `vault.outreach.basket`); a full
    basket or a calamity cool-down denies the lookup. Raises `Unavailable` (nothing
    revealed) when storage or the audit write fails.
    """
    if identifier_kind not in IDENTIFIER_KINDS:
        raise InvalidInput(
            "unknown identifier", {"identifier": "use one of " + ", ".join(IDENTIFIER_KINDS)}
        )
    if fields is not None and not fields:
        raise InvalidInput("fields must not be empty", {"fields": "name at least one field"})
    digest = None
    if identifier_kind != "subject_id":
        digest = identifier_digest(ctx, identifier_kind, identifier)  # raises InvalidInput
    purpose = ctx.catalogue.get(purpose_id)
    checked = check_request(purpose, purpose_id, client_purposes, fields)
    if contact is not None:
        contact = contact.resolve(ctx, purpose)  # raises InvalidInput
        checked = contact.check_grant(ctx, actor.id, client_purposes, checked)
    now = ctx.clock.now()
    event = _Events(
        actor,
        identifier_kind,
        # An unknown purpose string is client input and could carry anything.
        purpose_id if purpose is not None else "<unknown>",
        list(fields) if fields is not None else None,
        contact,
        now,
    )
    known_subject = identifier if identifier_kind == "subject_id" else None
    params = {"purpose": purpose_id, "ident": identifier if digest is None else digest}
    found_by = None if digest is None else (identifier_kind, digest)

    outcome: Any
    if ctx.audit_batcher is not None and contact is None:
        # Hot path: one read outside any write transaction (`VaultContext.read_rows`), and
        # the event in a shared commit (`vault.audit.batch`); the data leaves only once
        # that commit returned.
        if isinstance(checked, Deny):
            outcome = checked
            await ctx.audit_batcher.append(event.deny(_safe_id(known_subject), checked.reason))
        else:
            if purpose is None:
                raise InvariantViolation("purpose is unset")
            rows = await ctx.read_rows(_subject_with_bases(identifier_kind, checked), params)
            verdict, subject = _judge(rows, purpose, checked, known_subject, now)
            verdict, data = _open(ctx, subject, verdict, found_by)
            if isinstance(verdict, Allow):
                outcome = _result(subject, purpose_id, verdict, data, None)
                await ctx.audit_batcher.append(event.allow(outcome, verdict))
            else:
                outcome = verdict
                await ctx.audit_batcher.append(
                    event.deny(
                        subject.id if subject is not None else None,
                        verdict.reason,
                        fallback=known_subject,
                    )
                )
    else:
        async with ctx.transaction() as conn:
            if isinstance(checked, Deny):
                outcome = checked
                await audit.record_row(conn, event.deny(_safe_id(known_subject), checked.reason))
            else:
                if purpose is None:
                    raise InvariantViolation("purpose is unset")
                rows = (
                    (await conn.execute(_subject_with_bases(identifier_kind, checked), params))
                    .mappings()
                    .all()
                )
                verdict, subject = _judge(rows, purpose, checked, known_subject, now)
                verdict, data = _open(ctx, subject, verdict, found_by)
                reserved: Reservation | None = None
                if isinstance(verdict, Allow) and contact is not None:
                    if subject is None:
                        raise InvariantViolation("subject is unset")
                    held = await contact.reserve(
                        conn,
                        ctx,
                        subject_id=subject.id,
                        purpose_id=purpose_id,
                        actor=actor,
                        now=now,
                    )
                    if isinstance(held, Deny):
                        verdict = held
                    else:
                        reserved = held
                if isinstance(verdict, Allow):
                    outcome = _result(subject, purpose_id, verdict, data, reserved)
                    await audit.record_row(conn, event.allow(outcome, verdict))
                else:
                    outcome = verdict
                    await audit.record_row(
                        conn,
                        event.deny(
                            subject.id if subject is not None else None,
                            verdict.reason,
                            fallback=known_subject,
                        ),
                    )
    # The event has committed: only now may data (or a denial) leave.
    if isinstance(outcome, LookupResult):
        return outcome
    if outcome.reason is DenyReason.SUBJECT_NOT_FOUND:
        raise LookupNotFound("no subject matches the identifier")
    if outcome.reason is DenyReason.INTEGRITY_ERROR:
        raise IntegrityFailure()
    raise LookupDenied(outcome.reason, deny_message(outcome.reason))


class _Events:
    """Builds the lookup's audit event; ids, purpose and field names only, never values."""

    __slots__ = ("actor", "purpose", "requested", "detail", "now")

    def __init__(
        self,
        actor: Actor,
        identifier_kind: str,
        purpose: str,
        requested: list[str] | None,
        contact: OutboundContact | None,
        now: datetime,
    ) -> None:
        self.actor = actor
        self.purpose = purpose
        self.requested = requested
        detail: dict[str, Any] = {"by": identifier_kind}
        if contact is not None:
            detail["contact"] = {
                "brand": contact.brand,
                "channel": contact.channel,
                "type": contact.type,
                "priority": contact.priority,
            }
        self.detail = detail
        self.now = now

    def deny(
        self, subject_id: str | None, reason: str, *, fallback: str | None = None
    ) -> dict[str, object]:
        """A denial (or miss); a subject id only when one was resolved or is well formed."""
        if subject_id is None and reason not in (DenyReason.AMBIGUOUS_IDENTIFIER,):
            subject_id = _safe_id(fallback)
        return audit.event_row(
            at=self.now,
            actor=self.actor,
            action=AuditAction.LOOKUP,
            decision=Decision.DENY,
            subject_id=subject_id,
            purpose=self.purpose,
            fields=self.requested,
            reason=reason,
            detail=self.detail,
        )

    def allow(self, result: LookupResult, verdict: Allow) -> dict[str, object]:
        detail = self.detail
        if result.contact is not None:
            detail = {
                **detail,
                "contact": {
                    **detail["contact"],
                    "id": result.contact.contact_id,
                    "points": result.contact.points,
                },
            }
        return audit.event_row(
            at=self.now,
            actor=self.actor,
            action=AuditAction.LOOKUP,
            decision=Decision.ALLOW,
            subject_id=result.subject_id,
            purpose=self.purpose,
            fields=sorted(result.fields),
            consent_id=verdict.basis.id,
            detail=detail,
        )


def _judge(
    rows: Sequence[Any], purpose: Any, checked: Any, known_subject: str | None, now: datetime
) -> tuple[Allow | Deny, Any]:
    """The decision for the rows one identifier matched (pure): not found, ambiguous, or
    `decide()` over the subject's records for the purpose. Returns the subject row too."""
    if not rows:
        return Deny(DenyReason.SUBJECT_NOT_FOUND), None
    first = rows[0]
    if any(r["id"] != first["id"] for r in rows):
        return Deny(DenyReason.AMBIGUOUS_IDENTIFIER), None
    facts = [
        BasisFacts(r["b_id"], r["b_basis"], r["b_status"], r["b_expires_at"], r["b_deadline"])
        for r in rows
        if r["b_id"] is not None
    ]
    subject = RowView(first)
    return decide(purpose, checked, subject.status, facts, now), subject


def _open(
    ctx: VaultContext, subject: Any, verdict: Allow | Deny, found_by: tuple[str, str] | None
) -> tuple[Allow | Deny, dict[str, Any] | None]:
    """Check the stored data before anything is reserved or revealed: decrypt the fields an
    `Allow` reveals and, for a row found by a blind index, re-derive that index from the
    decrypted identifier (also for a denial: which denial a row gives is about that row).
    A failed check replaces the verdict with an `integrity_error` denial; a keyring that
    cannot unwrap the key is `Unavailable`."""
    wanted = verdict.fields if isinstance(verdict, Allow) else None
    if subject is None or (found_by is None and wanted is None):
        return verdict, None
    try:
        data = decrypt_fields(ctx, subject, wanted or (), found_by=found_by)
    except IntegrityCheckFailed:
        return Deny(DenyReason.INTEGRITY_ERROR), None
    except KeyringError as exc:
        raise Unavailable("keyring is unavailable; nothing was changed or revealed") from exc
    return verdict, data if wanted is not None else None


def _result(
    subject: Any,
    purpose_id: str,
    verdict: Allow,
    data: dict[str, Any] | None,
    reserved: Reservation | None,
) -> LookupResult:
    """The answer for an allowed lookup, from the fields `_open` decrypted."""
    if data is None:
        raise InvariantViolation("data is unset")
    return LookupResult(
        subject_id=subject.id,
        purpose=purpose_id,
        fields=data,
        basis_id=verdict.basis.id,
        basis_type=verdict.basis.basis,
        basis_expires_at=as_utc(verdict.basis.expires_at),
        contact=reserved,
        contact_revision=int(subject.contact_revision),
    )


def _build_subject_with_bases(where: Any, fields: tuple[str, ...]) -> Select[Any]:
    on = and_(consents.c.subject_id == subjects.c.id, consents.c.purpose == bindparam("purpose"))
    return (
        select(
            *(subjects.c[name] for name in _SUBJECT_COLUMNS),
            *(subjects.c[f"{field}_ct"] for field in fields),
            consents.c.id.label("b_id"),
            consents.c.basis.label("b_basis"),
            consents.c.status.label("b_status"),
            consents.c.expires_at.label("b_expires_at"),
            consents.c.confirm_deadline.label("b_deadline"),
        )
        .select_from(subjects.outerjoin(consents, on))
        .where(where)
        .order_by(subjects.c.id, consents.c.created_at.desc())
        .limit(500)
    )


#: The subject columns a lookup needs for the decision, the key and the revision its
#: ciphertexts are sealed at; of the sealed fields only those the request may reveal (and
#: the identifier it was found by, to check it) are read (ciphertexts of the others stay in
#: the database).
_SUBJECT_COLUMNS = (
    "id",
    "status",
    "kek_version",
    "wrapped_dek",
    "dek_version",
    "contact_revision",
)

_WHERE = {
    "subject_id": subjects.c.id == bindparam("ident"),
    **{kind: getattr(subjects.c, column) == bindparam("ident") for kind, column in INDEXED.items()},
}
#: One round trip: the subject row(s) joined with their records for the purpose, newest
#: record first (a subject without records comes back once with NULL record columns).
#: Built once per identifier kind and set of fields (sorted: at most 2^5 per kind); only
#: parameters change per lookup.
_STATEMENTS: dict[tuple[str, tuple[str, ...]], Select[Any]] = {}


def _subject_with_bases(kind: str, fields: tuple[str, ...]) -> Select[Any]:
    # A lookup by an indexed identifier also reads that field's ciphertext, to check the
    # row against the index it was found by (`_open`); it is revealed only if allowed.
    key = (kind, tuple(sorted({*fields, kind} if kind in INDEXED else fields)))
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = _STATEMENTS[key] = _build_subject_with_bases(_WHERE[kind], key[1])
    return statement


def _safe_id(value: str | None) -> str | None:
    """Only a well-formed subject id goes into the audit trail, never arbitrary input."""
    return canonical_id(value)
