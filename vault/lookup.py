"""The hot path: resolve contact data for a named purpose, audited in the same transaction.

One transaction reads the subject row and its basis records for the purpose, decides,
decrypts only the allowed fields, and appends the audit event; data leaves this function
only after that transaction committed. If the event cannot be written, nothing is revealed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, select

from vault import audit, pressure
from vault.audit import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.context import VaultContext
from vault.decision import Allow, BasisFacts, Deny, DenyReason, check_request, decide
from vault.errors import AccessDenied, InvalidInput, NotFound
from vault.storage.tables import consents, subjects
from vault.subjects import INDEXED, decrypt_fields, identifier_digest

IDENTIFIER_KINDS = ("subject_id", "email", "phone", "external_ref")


@dataclass(frozen=True, slots=True)
class LookupResult:
    subject_id: str
    purpose: str
    fields: dict[str, Any]
    basis_id: str
    basis_type: str
    basis_expires_at: datetime | None
    contact: pressure.Reservation | None = None


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
    contact: pressure.ContactSpec | None = None,
) -> LookupResult:
    """Resolve contact data for a purpose, or raise `LookupDenied` / `LookupNotFound`.

    With `contact`, revealing the data also reserves the contact's points in the same
    transaction (see `vault.pressure.reserve`); a full basket or a calamity cool-down denies
    the lookup. Raises `Unavailable` (nothing revealed) when storage or the audit write fails.
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
    now = ctx.clock.now()
    requested = list(fields) if fields is not None else None

    async with ctx.transaction() as conn:

        async def _audit(
            decision: Decision,
            *,
            subject_id: str | None,
            reason: str | None = None,
            revealed: Sequence[str] | None = None,
            consent_id: str | None = None,
            reserved: pressure.Reservation | None = None,
        ) -> None:
            detail: dict[str, object] = {"by": identifier_kind}
            if contact is not None:
                detail["contact"] = {
                    "brand": contact.brand,
                    "channel": contact.channel,
                    "type": contact.type,
                    "priority": contact.priority,
                }
                if reserved is not None:
                    detail["contact"]["id"] = reserved.contact_id  # type: ignore[index]
                    detail["contact"]["points"] = reserved.points  # type: ignore[index]
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=AuditAction.LOOKUP,
                decision=decision,
                subject_id=subject_id,
                # An unknown purpose string is client input and could carry anything.
                purpose=purpose_id if purpose is not None else "<unknown>",
                fields=revealed if revealed is not None else requested,
                reason=reason,
                consent_id=consent_id,
                detail=detail,
            )

        known_subject = identifier if identifier_kind == "subject_id" else None
        if isinstance(checked, Deny):
            await _audit(Decision.DENY, subject_id=_safe_id(known_subject), reason=checked.reason)
            outcome: Any = checked
        else:
            assert purpose is not None
            params = {"purpose": purpose_id, "ident": identifier if digest is None else digest}
            rows = (await conn.execute(_SUBJECT_WITH_BASES[identifier_kind], params)).all()
            subject_ids = {r.id for r in rows}
            if not rows:
                await _audit(
                    Decision.DENY,
                    subject_id=_safe_id(known_subject),
                    reason=DenyReason.SUBJECT_NOT_FOUND,
                )
                outcome = None
            elif len(subject_ids) > 1:
                await _audit(Decision.DENY, subject_id=None, reason=DenyReason.AMBIGUOUS_IDENTIFIER)
                outcome = Deny(DenyReason.AMBIGUOUS_IDENTIFIER)
            else:
                row = rows[0]
                facts = [
                    BasisFacts(r.b_id, r.b_basis, r.b_status, r.b_expires_at, r.b_deadline)
                    for r in rows
                    if r.b_id is not None
                ]
                outcome = decide(purpose, checked, row.status, facts, now)
                reserved: pressure.Reservation | None = None
                if isinstance(outcome, Allow) and contact is not None:
                    assert contact.channel is not None and contact.type is not None
                    held = await pressure.reserve(
                        conn,
                        ctx,
                        subject_id=row.id,
                        channel=contact.channel,
                        type=contact.type,
                        brand=contact.brand,
                        priority=contact.priority,
                        now=now,
                        purpose=purpose_id,
                        touchpoint=contact.touchpoint,
                        client=actor.id,
                        request_id=actor.request_id,
                    )
                    if isinstance(held, Deny):
                        outcome = held
                    else:
                        reserved = held
                if isinstance(outcome, Allow):
                    data = decrypt_fields(ctx, row, outcome.fields)
                    await _audit(
                        Decision.ALLOW,
                        subject_id=row.id,
                        revealed=sorted(data),
                        consent_id=outcome.basis.id,
                        reserved=reserved,
                    )
                    outcome = LookupResult(
                        subject_id=row.id,
                        purpose=purpose_id,
                        fields=data,
                        basis_id=outcome.basis.id,
                        basis_type=outcome.basis.basis,
                        basis_expires_at=as_utc(outcome.basis.expires_at),
                        contact=reserved,
                    )
                else:
                    await _audit(Decision.DENY, subject_id=row.id, reason=outcome.reason)
    # The transaction has committed: only now may data (or a denial) leave.
    if isinstance(outcome, LookupResult):
        return outcome
    if outcome is None:
        raise LookupNotFound("no subject matches the identifier")
    raise LookupDenied(outcome.reason, deny_message(outcome.reason))


def _build_subject_with_bases(where: Any) -> Select[Any]:
    on = and_(
        consents.c.subject_id == subjects.c.id, consents.c.purpose == bindparam("purpose")
    )
    return (
        select(
            subjects,
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


#: One round trip: the subject row(s) joined with their records for the purpose, newest
#: record first (a subject without records comes back once with NULL record columns).
#: Built once per identifier kind; only parameters change per lookup.
_SUBJECT_WITH_BASES = {
    "subject_id": _build_subject_with_bases(subjects.c.id == bindparam("ident")),
    **{
        kind: _build_subject_with_bases(getattr(subjects.c, column) == bindparam("ident"))
        for kind, column in INDEXED.items()
    },
}


def _safe_id(value: str | None) -> str | None:
    """Only a well-formed subject id goes into the audit trail, never arbitrary input."""
    if value is None or len(value) != 36:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
