"""The purpose check as data: given the facts, allow with a basis or deny with a reason.

A pure function with no I/O and the time passed in, so every reason code is tested directly.
Default deny: only a basis that is in force right now, for a purpose in the catalogue that
the client may use, covering every requested field, allows a read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from vault.catalogue.purposes import LawfulBasis, Purpose
from vault.clock import as_utc


class DenyReason(StrEnum):
    UNKNOWN_PURPOSE = "unknown_purpose"
    PURPOSE_NOT_ALLOWED = "purpose_not_allowed"
    FIELD_NOT_COVERED = "field_not_covered"
    SUBJECT_NOT_FOUND = "subject_not_found"
    AMBIGUOUS_IDENTIFIER = "ambiguous_identifier"
    SUBJECT_ERASED = "subject_erased"
    SUBJECT_RESTRICTED = "subject_restricted"
    NO_CONSENT = "no_consent"
    CONSENT_UNCONFIRMED = "consent_unconfirmed"
    CONSENT_EXPIRED = "consent_expired"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    BASIS_ENDED = "basis_ended"
    CONTACT_BUDGET_EXHAUSTED = "contact_budget_exhausted"
    CONTACT_BLOCKED_BY_CALAMITY = "contact_blocked_by_calamity"
    #: The customer's own preferences (vault.outreach.preferences): quiet hours, own monthly cap.
    CONTACT_QUIET_HOURS = "contact_quiet_hours"
    CONTACT_CAP_REACHED = "contact_cap_reached"
    #: An agreed follow-up (vault.outreach.followups) named by the contact: outside its due window,
    #: or not usable (unknown, another subject's, cancelled or already used).
    FOLLOWUP_NOT_IN_WINDOW = "followup_not_in_window"
    FOLLOWUP_NOT_USABLE = "followup_not_usable"
    #: A contact of a type (calamity) or priority the client was not granted
    #: (policies/contact-pressure.toml): refused, never silently downgraded.
    CONTACT_TYPE_NOT_GRANTED = "contact_type_not_granted"
    CONTACT_PRIORITY_NOT_GRANTED = "contact_priority_not_granted"
    #: An audience dry run with fewer distinct known subjects than the policy's minimum:
    #: it would answer for (nearly) one person (vault.access.dry_run.dry_run).
    AUDIENCE_TOO_SMALL = "audience_too_small"
    #: A revealing read for an editorial or commercial purpose (or one marked
    #: `contact_required`) that announces no contact: the basket is not voluntary.
    CONTACT_REQUIRED = "contact_required"
    #: A contact for a brand the purpose's consent does not cover (`brands` in the catalogue).
    BRAND_NOT_COVERED = "brand_not_covered"
    #: A contact naming a campaign (`contact.campaign`) that holds no booking for this
    #: customer now: unknown, not booked, another purpose or brand, outside its window,
    #: or the booking was displaced, blocked or already used.
    CAMPAIGN_NOT_BOOKED = "campaign_not_booked"
    #: Stored data failed an integrity check (a ciphertext would not open, a blind-index
    #: entry on the wrong row): refused and audited, answered 500 (`vault.subjects.integrity`).
    INTEGRITY_ERROR = "integrity_error"


class BasisStatus(StrEnum):
    """Stored statuses of a lawful-basis record (`expired` and `lapsed` are derived)."""

    PENDING_CONFIRMATION = "pending_confirmation"
    GRANTED = "granted"
    ACTIVE = "active"  # contract, legal obligation, legitimate interest
    WITHDRAWN = "withdrawn"
    ENDED = "ended"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"
    LAPSED = "lapsed"


@dataclass(frozen=True, slots=True)
class BasisFacts:
    """What the decision needs to know about one stored basis record."""

    id: str
    basis: str
    status: str
    expires_at: datetime | None
    confirm_deadline: datetime | None
    #: The fields the customer left out of this consent, as stored (comma-separated), or
    #: None: the basis covers all of its purpose's fields.
    excluded: str | None = None
    #: The brands this consent covers, as stored (comma-separated), or None: every brand
    #: its purpose covers.
    brands: str | None = None
    #: Since when an Art. 21(1) objection to this (legitimate-interest) basis waits for
    #: the DPO's decision, or None: meanwhile processing is restricted (Art. 18(1)(d)).
    objection_pending: datetime | None = None


def effective_status(facts: BasisFacts, now: datetime) -> BasisStatus:
    """The status in force at `now`: a granted consent past its expiry is expired, etc."""
    status = _STATUSES.get(facts.status) or BasisStatus(facts.status)  # dict: no enum call
    expires_at = as_utc(facts.expires_at)
    if status in (BasisStatus.GRANTED, BasisStatus.ACTIVE) and expires_at and now >= expires_at:
        return BasisStatus.EXPIRED
    deadline = as_utc(facts.confirm_deadline)
    if status is BasisStatus.PENDING_CONFIRMATION and deadline and now >= deadline:
        return BasisStatus.LAPSED
    return status


_STATUSES = {status.value: status for status in BasisStatus}


@dataclass(frozen=True, slots=True)
class Allow:
    fields: tuple[str, ...]
    basis: BasisFacts


@dataclass(frozen=True, slots=True)
class Deny:
    reason: DenyReason


_REASON_FOR_STATUS = {
    BasisStatus.WITHDRAWN: DenyReason.CONSENT_WITHDRAWN,
    BasisStatus.EXPIRED: DenyReason.CONSENT_EXPIRED,
    BasisStatus.PENDING_CONFIRMATION: DenyReason.CONSENT_UNCONFIRMED,
    BasisStatus.LAPSED: DenyReason.CONSENT_UNCONFIRMED,
    BasisStatus.ENDED: DenyReason.BASIS_ENDED,
}


def check_request(
    purpose: Purpose | None,
    purpose_id: str,
    client_purposes: frozenset[str],
    requested_fields: Sequence[str] | None,
) -> Deny | tuple[str, ...]:
    """Checks that need no subject: purpose known, allowed to this client, fields covered."""
    if purpose is None:
        return Deny(DenyReason.UNKNOWN_PURPOSE)
    if purpose_id not in client_purposes:
        return Deny(DenyReason.PURPOSE_NOT_ALLOWED)
    if requested_fields is None:
        return purpose.fields
    if any(f not in purpose.fields for f in requested_fields):
        return Deny(DenyReason.FIELD_NOT_COVERED)
    return tuple(dict.fromkeys(requested_fields))


def check_contact(
    purpose: Purpose | None,
    brand: str | None,
    checked: Deny | tuple[str, ...],
    *,
    reveals: bool = True,
) -> Deny | tuple[str, ...]:
    """`checked` (the purpose check's result), or a `Deny` for the contact the read
    announces: none although the purpose needs one and the read `reveals` data
    (`contact_required`: marketing contacts always reserve, issue 21), or one for a brand
    the purpose does not cover (`brand_not_covered`). `brand` is the contact's, None when
    no contact is announced."""
    if isinstance(checked, Deny) or purpose is None:
        return checked
    if brand is None:
        return Deny(DenyReason.CONTACT_REQUIRED) if reveals and purpose.needs_contact else checked
    if purpose.brands and brand not in purpose.brands:
        return Deny(DenyReason.BRAND_NOT_COVERED)
    return checked


def _covers(facts: BasisFacts, brand: str) -> bool:
    """Whether a consent scoped to brands (`facts.brands` as stored) covers `brand`."""
    return brand in (facts.brands or "").split(",")


def left_out(excluded: str, fields: tuple[str, ...]) -> bool:
    """Whether a read of `fields` (asked for, or the purpose's by default) would reveal a
    field the customer left out (`excluded` as stored): then it is not covered, the same
    as a field the purpose does not name. Only consents with left-out fields pay for it."""
    out = excluded.split(",")
    return any(f in out for f in fields)


def decide(
    purpose: Purpose,
    fields: tuple[str, ...],
    subject_status: str,
    bases: Sequence[BasisFacts],
    now: datetime,
    brand: str | None = None,
) -> Allow | Deny:
    """Decide a read for one subject. `bases` are that subject's records for the purpose,
    newest first; `brand` is the announced contact's (a consent scoped to other brands
    does not cover it)."""
    if subject_status == "erased":
        return Deny(DenyReason.SUBJECT_ERASED)
    if subject_status == "restricted" and purpose.lawful_basis is not LawfulBasis.LEGAL_OBLIGATION:
        return Deny(DenyReason.SUBJECT_RESTRICTED)
    if subject_status not in ("active", "restricted"):
        return Deny(DenyReason.SUBJECT_RESTRICTED)
    wanted = purpose.lawful_basis  # a StrEnum: equal to its stored string
    newest_reason: DenyReason | None = None
    for facts in bases:
        if facts.basis != wanted:
            continue
        status = effective_status(facts, now)
        if status in (BasisStatus.GRANTED, BasisStatus.ACTIVE):
            if facts.objection_pending is not None:
                return Deny(DenyReason.SUBJECT_RESTRICTED)
            if facts.excluded is not None and left_out(facts.excluded, fields):
                return Deny(DenyReason.FIELD_NOT_COVERED)
            if brand is not None and facts.brands is not None and not _covers(facts, brand):
                return Deny(DenyReason.BRAND_NOT_COVERED)
            return Allow(fields=fields, basis=facts)
        if status is BasisStatus.SUPERSEDED:
            continue
        if newest_reason is None:
            newest_reason = _REASON_FOR_STATUS.get(status, DenyReason.NO_CONSENT)
    return Deny(newest_reason or DenyReason.NO_CONSENT)
