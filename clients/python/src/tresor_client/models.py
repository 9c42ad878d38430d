"""Request and response bodies of the operations the client covers, as msgspec Structs.

Written on the committed document (`openapi/openapi.json`): each class carries the name of
its component schema and exactly its properties, and a field is optional here exactly when
the schema does not require it (tests/clients/test_contract.py checks both, and that the
schemas did not change since, by digest: see `tresor_client.contract`).

Request bodies leave an optional field `UNSET` (not sent) rather than `None`, because for
some of them `null` means something: in `ContactPatch`, `"name": null` removes the name.
Response bodies ignore properties they do not know, so a field added within `/v1` does
not break an older client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "UNSET",
    "BasisOut",
    "ConsentEvidenceIn",
    "BatchLine",
    "BatchLookupRequest",
    "Channel",
    "ConsentCreate",
    "ConsentCreated",
    "ConsentList",
    "ConsentOut",
    "ContactIn",
    "ContactPatch",
    "ContactPatched",
    "ContactReservationOut",
    "EvidenceIn",
    "EvidenceOut",
    "HistoryEntry",
    "LookupRequest",
    "LookupResponse",
    "PostalAddressIn",
    "PreferenceHistoryOut",
    "PreferencesOut",
    "PreferencesUpdate",
    "Problem",
    "ProblemError",
    "QuietTimesIn",
    "QuietTimesOut",
    "SubjectCreate",
    "SubjectCreated",
]

#: A contact channel: email, letter, sms, phone, or one the server's rules declare (e.g.
#: visit, print, social), so the server's document lists them, not this type.
Channel = str
#: The contact fields a lookup may ask for.
Field = Literal["email", "phone", "name", "postal_address", "external_ref"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A body the client sends; `UNSET` fields are left out of the JSON."""


class _Response(msgspec.Struct, kw_only=True):
    """A body the server sends; unknown properties are ignored (forward compatible)."""


# --- requests -------------------------------------------------------------------------------


class PostalAddressIn(_Request):
    street: str
    postal_code: str
    city: str
    country: str
    addition: str | None | UnsetType = UNSET


class SubjectCreate(_Request):
    """At least one of the fields (the server refuses an empty subject)."""

    email: str | None | UnsetType = UNSET
    phone: str | None | UnsetType = UNSET
    name: str | None | UnsetType = UNSET
    postal_address: PostalAddressIn | None | UnsetType = UNSET
    external_ref: str | None | UnsetType = UNSET


class EvidenceIn(_Request):
    """How a consent (or a preference) was given: touchpoint, method, notice, language."""

    touchpoint: str
    method: str
    notice_version: str
    language: str
    explicit: bool | UnsetType = UNSET
    ip: str | None | UnsetType = UNSET
    user_agent: str | None | UnsetType = UNSET
    notice_text_hash: str | None | UnsetType = UNSET


class ConsentEvidenceIn(EvidenceIn):
    """A consent's evidence: the common evidence plus the brands it was given for (left
    out: every brand the purpose covers; a lookup for another brand is `brand_not_covered`)."""

    brands: list[str] | None | UnsetType = UNSET


class ConsentCreate(_Request):
    """A consent (`evidence`) or another lawful basis (`reference`) for one purpose. Pass a
    `ConsentEvidenceIn` as `evidence` to scope the consent to brands."""

    purpose: str
    evidence: EvidenceIn | None | UnsetType = UNSET
    reference: str | None | UnsetType = UNSET
    expires_at: datetime | None | UnsetType = UNSET
    #: Fields of the purpose the person left out of the consent (some, never all).
    excluded_fields: list[str] | None | UnsetType = UNSET


class ContactIn(_Request):
    """A contact the lookup reserves in the monthly basket (brand, channel, touchpoint…)."""

    brand: str
    channel: Channel | None | UnsetType = UNSET
    type: Literal["service", "editorial", "commercial", "calamity"] | None | UnsetType = UNSET
    touchpoint: str | None | UnsetType = UNSET
    priority: str | UnsetType = UNSET
    followup: str | None | UnsetType = UNSET
    #: A booked campaign whose hold in the customer's basket this contact spends.
    campaign: str | None | UnsetType = UNSET


class LookupRequest(_Request):
    """Exactly one identifier (`subject_id`, `email`, `phone` or `external_ref`)."""

    purpose: str
    subject_id: str | None | UnsetType = UNSET
    email: str | None | UnsetType = UNSET
    phone: str | None | UnsetType = UNSET
    external_ref: str | None | UnsetType = UNSET
    fields: list[Field] | None | UnsetType = UNSET
    contact: ContactIn | None | UnsetType = UNSET


class BatchLookupRequest(_Request):
    """Exactly one list of identifiers (up to 10 000)."""

    purpose: str
    subject_ids: list[str] | None | UnsetType = UNSET
    emails: list[str] | None | UnsetType = UNSET
    phones: list[str] | None | UnsetType = UNSET
    external_refs: list[str] | None | UnsetType = UNSET
    fields: list[Field] | None | UnsetType = UNSET
    contact: ContactIn | None | UnsetType = UNSET


class ContactPatch(_Request):
    """The fields to change; `None` removes a field, `UNSET` leaves it as it is."""

    email: str | None | UnsetType = UNSET
    phone: str | None | UnsetType = UNSET
    name: str | None | UnsetType = UNSET
    postal_address: PostalAddressIn | None | UnsetType = UNSET
    external_ref: str | None | UnsetType = UNSET


class QuietTimesIn(_Request):
    """Hours (`HH:MM`) and days a channel must stay quiet, in the customer's time zone."""

    start: str | None | UnsetType = UNSET
    end: str | None | UnsetType = UNSET
    days: list[Weekday] | UnsetType = UNSET


class PreferencesUpdate(_Request):
    """The customer's preferences, set on their instruction (with `evidence`)."""

    timezone: str
    preferred_channels: dict[str, Channel] | UnsetType = UNSET
    quiet: dict[str, QuietTimesIn] | UnsetType = UNSET
    monthly_cap_points: float | None | UnsetType = UNSET
    evidence: EvidenceIn | None | UnsetType = UNSET


# --- responses ------------------------------------------------------------------------------


class SubjectCreated(_Response):
    subject_id: str


class ConsentCreated(_Response):
    consent_id: str
    status: str
    basis: str
    expires_at: datetime | None
    excluded_fields: list[str] = []


class EvidenceOut(_Response):
    touchpoint: str | None = None
    method: str | None = None
    notice_version: str | None = None
    notice_text_hash: str | None = None
    language: str | None = None
    collected_by: str | None = None
    brands: list[str] | None = None


class HistoryEntry(_Response):
    at: datetime
    event: str
    status: str
    actor: str
    expires_at: datetime | None = None


class ConsentOut(_Response):
    consent_id: str
    subject_id: str
    purpose: str
    basis: str
    status: str
    reference: str | None
    evidence: EvidenceOut
    created_at: datetime
    granted_at: datetime | None
    confirm_deadline: datetime | None
    expires_at: datetime | None
    withdrawn_at: datetime | None
    history: list[HistoryEntry]
    excluded_fields: list[str] = []


class ConsentList(_Response):
    items: list[ConsentOut]


class BasisOut(_Response):
    id: str
    type: str
    expires_at: datetime | None


class ContactReservationOut(_Response):
    id: str
    month: str
    points: float
    used: float
    basket: float
    #: The channel charged: the customer's preferred one when the purpose allows it.
    channel: Channel | None = None


class LookupResponse(_Response):
    subject_id: str
    purpose: str
    basis: BasisOut
    fields: dict[str, Any]
    contact: ContactReservationOut | None = None
    preferred_channel: Channel | None = None


class BatchLine(_Response):
    """One line of the batch answer: a resolved subject (`subject_id`, `fields`), a denial
    (`error`, `reason`, `status`), or a duplicate of an earlier line (`from_i`)."""

    i: int | None = None
    subject_id: str | None = None
    basis: BasisOut | None = None
    fields: dict[str, Any] | None = None
    contact: ContactReservationOut | None = None
    preferred_channel: Channel | None = None
    error: str | None = None
    reason: str | None = None
    detail: str | None = None
    status: int | None = None
    from_i: int | None = None


class ContactPatched(_Response):
    subject_id: str
    changed: list[str]


class QuietTimesOut(_Response):
    start: str | None
    end: str | None
    days: list[str]


class PreferenceHistoryOut(_Response):
    version: int
    at: datetime
    actor: str
    source: str
    preferences: dict[str, Any]
    touchpoint: str | None
    method: str | None
    notice_version: str | None
    language: str | None


class PreferencesOut(_Response):
    subject_id: str
    timezone: str | None
    preferred_channels: dict[str, str]
    quiet: dict[str, QuietTimesOut]
    monthly_cap_points: float | None
    basket_points: float
    updated_at: datetime | None
    version: int
    history: list[PreferenceHistoryOut]


class ProblemError(_Response):
    field: str
    message: str


class Problem(_Response):
    """An RFC 9457 problem (`application/problem+json`)."""

    type: str
    title: str
    status: int
    detail: str
    reason: str | None = None
    instance: str | None = None
    errors: list[ProblemError] | None = None
