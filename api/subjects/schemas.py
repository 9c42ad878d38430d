"""Bodies of the subjects area's routes: contact data, the lookup, bulk and dry run,
identity changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from litestar.openapi.spec import OpenAPIType, Schema
from msgspec import UNSET, Meta, Struct, UnsetType

from api.openapi_schema import at_least_one, exactly_one
from api.schemas import (
    CONTACT_TEXT_FORMAT,
    ContactChannel,
    ContactShort,
    ContactText200,
    ContactType,
    EmailText,
    FieldName,
    PhoneText,
    Short,
    Uuid,
    WordId,
)

IdentityChangeStatusName = Literal["pending", "effective", "confirmed", "objected"]


#: A postal code: contact text of at most 20 characters.
PostalCode = Annotated[
    str,
    Meta(min_length=1, max_length=20, extra_json_schema={"extra": {"format": CONTACT_TEXT_FORMAT}}),
]


class PostalAddressIn(Struct, forbid_unknown_fields=True):
    street: ContactText200
    postal_code: PostalCode
    city: ContactShort
    country: Annotated[
        str,
        Meta(
            min_length=2,
            max_length=2,
            description="ISO 3166-1 alpha-2",
            extra_json_schema={"extra": {"pattern": "^[A-Za-z]{2}$"}, "examples": ["DE"]},
        ),
    ]
    addition: ContactText200 | None = None


class SubjectCreate(Struct, forbid_unknown_fields=True):
    """A new subject's contact data; at least one field."""

    __openapi__: ClassVar[dict[str, Any]] = {
        **at_least_one("email", "phone", "name", "postal_address", "external_ref"),
        "examples": [{"email": "anna@example.org", "name": "Anna Beispiel"}],
    }

    email: EmailText | None = None
    phone: PhoneText | None = None
    name: ContactText200 | None = None
    postal_address: PostalAddressIn | None = None
    external_ref: ContactShort | None = None


class SubjectCreated(Struct):
    subject_id: str


class ContactPatch(Struct, forbid_unknown_fields=True):
    """Rectification: a field given replaces the stored value; `null` removes it."""

    __openapi__: ClassVar[dict[str, Any]] = {
        "min_properties": 1,
        "examples": [{"name": "Anna Beispiel-Neu", "phone": None}],
    }

    email: EmailText | None | UnsetType = UNSET
    phone: PhoneText | None | UnsetType = UNSET
    name: ContactText200 | None | UnsetType = UNSET
    postal_address: PostalAddressIn | None | UnsetType = UNSET
    external_ref: ContactShort | None | UnsetType = UNSET


class ContactPatched(Struct):
    subject_id: str
    changed: list[str]


class ContactIn(Struct, forbid_unknown_fields=True):
    """An outbound contact the looked-up data is for: revealing the data reserves its
    contact-pressure points. `channel` and `type` default to the purpose's; a given `channel`
    must be one of the purpose's channels, a given `type` its type; `brand` and `priority`
    come from policies/contact-pressure.toml."""

    brand: WordId
    channel: ContactChannel | None = None
    type: ContactType | None = None
    priority: WordId = "normal"
    touchpoint: Short | None = None
    #: An agreed follow-up this contact keeps (`POST /v1/followups`): inside its window
    #: it is allowed even with a full basket and costs no points; single lookups only.
    followup: Uuid | None = None
    #: A booked campaign this contact is sent for (`POST /v1/campaigns`): the contact uses
    #: the points its booking holds for the customer (`campaign_not_booked` if none).
    campaign: Uuid | None = None


class ContactReservationOut(Struct, omit_defaults=True):
    """Points reserved for the contact; `used` and `basket` are this month's totals of the
    pool it drew from (the basket, or the service reserve for a service message)."""

    id: str
    month: str
    points: float
    used: float
    basket: float
    #: The channel used and charged: the customer's preferred one when the purpose allows
    #: it, else the announced one (absent for a follow-up kept or an inbound contact).
    channel: ContactChannel | None = None


class LookupRequest(Struct, forbid_unknown_fields=True):
    """A purpose plus exactly one identifier; `fields` narrows what is returned;
    `contact` reserves contact-pressure points for an outbound contact."""

    __purpose_fit__: ClassVar[tuple[str, ...]] = ("contact",)
    __openapi__: ClassVar[dict[str, Any]] = {
        **exactly_one("subject_id", "email", "phone", "external_ref"),
        "examples": [{"purpose": "newsletter", "email": "anna@example.org", "fields": ["email"]}],
    }

    purpose: Short
    subject_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    email: EmailText | None = None
    phone: PhoneText | None = None
    external_ref: ContactShort | None = None
    fields: Annotated[list[FieldName], Meta(min_length=1, max_length=5)] | None = None
    contact: ContactIn | None = None


class BasisOut(Struct):
    id: str
    type: str
    expires_at: datetime | None


class LookupResponse(Struct, omit_defaults=True):
    subject_id: str
    purpose: str
    fields: dict[str, Any]
    basis: BasisOut
    contact: ContactReservationOut | None = None
    #: The customer's preferred channel for the contact's communication type, when the
    #: purpose allows several channels and the preferred one is among them.
    preferred_channel: ContactChannel | None = None


class IdentityChangeOut(Struct):
    """A change of an identifying address, for the DPO. `pending`: in its cooling-off;
    `effective`: the cooling-off passed unanswered; `objected`: the previous address said
    it was not them (see `request_id`)."""

    change_id: str
    subject_id: str
    kind: str
    status: str
    changed_at: datetime
    changed_by: str
    cooling_off_until: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    request_id: str | None


class IdentityChangeList(Struct):
    items: list[IdentityChangeOut]


#: One identifier of a batch. Loose on purpose: a malformed value is not a reason to reject
#: the whole batch, it gets its own line with reason `invalid_identifier`.
BatchIdentifier = Annotated[str, Meta(min_length=1, max_length=320)]


BatchIdentifiers = Annotated[list[BatchIdentifier], Meta(min_length=1, max_length=10_000)]


class BatchLookupRequest(Struct, forbid_unknown_fields=True):
    """A purpose plus exactly one list of identifiers (at most 10,000)."""

    __purpose_fit__: ClassVar[tuple[str, ...]] = ("contact",)
    __openapi__: ClassVar[dict[str, Any]] = {
        **exactly_one("subject_ids", "emails", "phones", "external_refs"),
        # A follow-up is kept by one contact with one customer: the server refuses
        # `contact.followup` in a batch (422), and so does the document.
        "schema_not": Schema(
            required=["contact"],
            properties={
                "contact": Schema(
                    type=OpenAPIType.OBJECT,
                    required=["followup"],
                    properties={"followup": Schema(schema_not=Schema(type=OpenAPIType.NULL))},
                )
            },
        ),
        "examples": [{"purpose": "newsletter", "emails": ["anna@example.org"]}],
    }

    purpose: Short
    subject_ids: BatchIdentifiers | None = None
    emails: BatchIdentifiers | None = None
    phones: BatchIdentifiers | None = None
    external_refs: BatchIdentifiers | None = None
    fields: Annotated[list[FieldName], Meta(min_length=1, max_length=5)] | None = None
    #: One outbound contact per identifier: each revealed line reserves its points.
    contact: ContactIn | None = None


class BatchLine(Struct, omit_defaults=True):
    """One NDJSON line: `i` is the identifier's index in the request (the identifier itself
    is never echoed). Allowed: `subject_id`, `fields`, `basis`. Denied or not found:
    `reason` and `status` (403, 404, 422). A final line with `error` (status 503, `from_i`)
    means the stream stopped there and nothing from `from_i` on was revealed."""

    i: int | None = None
    subject_id: str | None = None
    fields: dict[str, Any] | None = None
    basis: BasisOut | None = None
    contact: ContactReservationOut | None = None
    #: As in the single lookup: the customer's preferred channel for the contact's type.
    preferred_channel: ContactChannel | None = None
    reason: str | None = None
    status: int | None = None
    error: str | None = None
    detail: str | None = None
    from_i: int | None = None


class DryRunRequest(Struct, forbid_unknown_fields=True):
    """A purpose, optionally the channel it is meant for, and exactly one identifier list."""

    __purpose_fit__: ClassVar[tuple[str, ...]] = ("", "contact")
    __openapi__: ClassVar[dict[str, Any]] = {
        **exactly_one("subject_ids", "emails", "phones", "external_refs"),
        "examples": [{"purpose": "newsletter", "channel": "email", "emails": ["anna@example.org"]}],
    }

    purpose: Short
    channel: ContactChannel | None = None
    subject_ids: BatchIdentifiers | None = None
    emails: BatchIdentifiers | None = None
    phones: BatchIdentifiers | None = None
    external_refs: BatchIdentifiers | None = None
    #: The contact the campaign would make: the counts then include basket, calamity and
    #: the customers' own limits (rehearsed, nothing is reserved).
    contact: ContactIn | None = None


class DryRunResponse(Struct):
    """Counts for groups only: a bucket (the reachable ones, or one reason) with fewer
    members than `min_audience` is not shown; its members are counted in `suppressed`
    (`reachable` is null then)."""

    total: int
    reachable: int | None
    unreachable: dict[str, int]
    suppressed: int
    min_audience: int
