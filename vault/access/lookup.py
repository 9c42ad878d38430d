"""A single lookup: contact data for a named purpose, audited before anything leaves.

A lookup is the access pipeline (`vault.access.pipeline`) for a batch of one: one read of
the subject row and its records for the purpose, the decision, the allowed fields
decrypted and the row checked, and the audit event. Data leave this function only after
that event is durable. If the event cannot be written, nothing is revealed.

Without a contact the read runs outside any write transaction (`VaultContext.reads`) and
the event goes into the group commit (`VaultContext.audit_batcher`). With a contact,
reading, deciding, reserving (`OutboundContact.reserve`) and the event are one
transaction.

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

from vault.access.events import LookupEvents
from vault.access.judge import NOT_FOUND, Outcome, verdict_of
from vault.access.pipeline import Request, prepare, run_in_transaction
from vault.access.reveal import Opener
from vault.access.statements import subject_read
from vault.audit.events import Actor
from vault.catalogue.purposes import Purpose
from vault.clock import as_utc
from vault.errors import (
    AccessDenied,
    IntegrityFailure,
    InvalidInput,
    InvariantViolation,
    NotFound,
)
from vault.storage.ports import ReadPort
from vault.storage.rows import canonical_id
from vault.subjects.decision import Allow, Deny, DenyReason, check_contact, check_request
from vault.subjects.outbound import OutboundContact, Reservation
from vault.subjects.store import identifier_digest

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
    DenyReason.CONTACT_REQUIRED: (
        "a lookup for a marketing purpose must announce its contact (contact.brand)"
    ),
    DenyReason.BRAND_NOT_COVERED: "the purpose's consent does not cover the contact's brand",
    DenyReason.CAMPAIGN_NOT_BOOKED: "the campaign holds no booking for this customer now",
}


def deny_message(reason: DenyReason) -> str:
    return _MESSAGES.get(reason, "access denied")


def fields_for_channel(
    ctx: VaultContext, contact: OutboundContact | None, checked: Deny | tuple[str, ...]
) -> Deny | tuple[str, ...]:
    """`checked`, or no field at all for a contact on a channel that needs none (social
    media, `reveals = []` in the rules): the vault then answers only whether the contact
    may be made and reserves it, since nothing it stores reaches the customer there."""
    if contact is not None and not isinstance(checked, Deny):
        if ctx.pressure_rules.reveals_nothing(contact.channel):
            return ()
    return checked


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
    # A denial without a resolved subject records the input only if it is a subject id.
    fallback: list[str | None] = [None]
    if identifier_kind == "subject_id":
        # Only an id in its stored form can match; anything else is a miss, never a read.
        fallback[0] = canonical_id(identifier)
        key = identifier if fallback[0] == identifier else None
    else:
        key = identifier_digest(ctx, identifier_kind, identifier)  # raises InvalidInput
    purpose = ctx.catalogue.get(purpose_id)
    checked = check_request(purpose, purpose_id, client_purposes, fields)
    if contact is not None:
        contact = contact.resolve(ctx, purpose)  # raises InvalidInput
        checked = contact.check_grant(ctx, actor.id, client_purposes, checked)
    checked = check_contact(purpose, contact.brand if contact is not None else None, checked)
    checked = fields_for_channel(ctx, contact, checked)
    now = ctx.clock.now()
    events = LookupEvents(
        actor,
        # An unknown purpose string is client input and could carry anything.
        purpose_id if purpose is not None else "<unknown>",
        identifier_kind,
        list(fields) if fields is not None else None,
        now,
        contact,
        batch=False,
    )

    outcome: Outcome
    if isinstance(checked, Deny) or key is None:
        outcome = Outcome(checked.reason) if isinstance(checked, Deny) else NOT_FOUND
        await ctx.audit_batcher.append_record(events.records([outcome], 0, fallback)[0])
    else:
        if purpose is None:
            raise InvariantViolation("purpose is unset")
        req = Request(
            ctx, actor, purpose, checked, identifier_kind, now, events,
            Opener(ctx, identifier_kind, remember=True),
            contact.brand if contact is not None else None,
        )  # fmt: skip
        if contact is None:
            # Hot path: one read outside any write transaction, the event in a shared
            # commit (`vault.audit.batch`); the data leave only once that commit returned.
            outcomes, records = await prepare(req, ctx.reads, [key], 0, fallback)
            await ctx.audit_batcher.append_record(records[0])
        else:
            async with ctx.transaction() as conn:
                outcomes = await run_in_transaction(
                    req, conn, [key], 0, fallback, contact, set(), with_followup=True
                )
        outcome = outcomes[0]
    # The event has committed: only now may data (or a denial) leave.
    if outcome.allow is not None:
        return _result(outcome, purpose_id)
    if outcome.reason is DenyReason.SUBJECT_NOT_FOUND:
        raise LookupNotFound("no subject matches the identifier")
    if outcome.reason is DenyReason.INTEGRITY_ERROR:
        raise IntegrityFailure()
    reason = DenyReason(str(outcome.reason))
    raise LookupDenied(reason, deny_message(reason))


def _result(outcome: Outcome, purpose_id: str) -> LookupResult:
    """The answer for an allowed lookup, from the fields the pipeline decrypted."""
    allow, data = outcome.allow, outcome.data
    if allow is None or data is None:
        raise InvariantViolation("an allowed outcome without its data")
    return LookupResult(
        subject_id=outcome.row["id"],
        purpose=purpose_id,
        fields=data,
        basis_id=allow.basis.id,
        basis_type=allow.basis.basis,
        basis_expires_at=as_utc(allow.basis.expires_at),
        contact=outcome.reservation,
        contact_revision=int(outcome.row["contact_revision"]),
    )


async def judge_subject(
    reads: ReadPort,
    purpose: Purpose,
    fields: tuple[str, ...],
    subject_id: str,
    now: datetime,
    brand: str | None = None,
) -> Allow | Deny:
    """The lookup's decision for one subject by id, without revealing anything (a contact
    recorded without a lookup, `vault.outreach.basket.record_contact`)."""
    if canonical_id(subject_id) != subject_id:
        return Deny(DenyReason.SUBJECT_NOT_FOUND)
    rows = await reads.rows(
        subject_read("subject_id", (), array=reads.arrays, one=True),
        {"purpose": purpose.id, "key": subject_id},
    )
    if not rows:
        return Deny(DenyReason.SUBJECT_NOT_FOUND)
    return verdict_of(rows, purpose, fields, now, brand)
