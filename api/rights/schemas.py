"""Bodies of the rights area's routes: the self-service API (/self/v1) and the DPO's
request workflow.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, get_args

import msgspec
from litestar.openapi.spec import OpenAPIType, Reference, Schema
from msgspec import UNSET, Meta, Struct, UnsetType

from api.openapi_schema import exactly_one
from api.schemas import UUID_PATTERN, EmailText, PhoneText, Short, Uuid
from api.subjects.schemas import ContactPatch
from vault.catalogue.loader import Policies
from vault.catalogue.purposes import LawfulBasis
from vault.rights.free_text import FREE_TEXT_PATTERN

SelfRequestType = Literal[
    "access",
    "portability",
    "rectification",
    "restriction",
    "objection",
    "erasure",
    "consent_withdrawal",
]


class SelfSessionStart(Struct, forbid_unknown_fields=True):
    """Exactly one of `email` or `phone`: the address the vault knows the customer by."""

    __openapi__: ClassVar[dict[str, Any]] = {
        **exactly_one("email", "phone"),
        "examples": [{"email": "anna@example.org"}],
    }

    email: EmailText | None = None
    phone: PhoneText | None = None


class SelfSessionAccepted(Struct):
    status: str
    detail: str


class SelfSessionVerify(Struct, forbid_unknown_fields=True):
    """The same address as in the start call, and the code from the mail."""

    __openapi__: ClassVar[dict[str, Any]] = {
        **exactly_one("email", "phone"),
        "examples": [{"email": "anna@example.org", "code": "493817"}],
    }

    code: Annotated[str, Meta(min_length=1, max_length=20)]
    email: EmailText | None = None
    phone: PhoneText | None = None


class SelfSessionToken(Struct):
    token: str
    token_type: str
    expires_at: datetime


class PurposeTitle(Struct):
    de: str
    en: str


class SelfContact(Struct):
    email: str | None = None
    phone: str | None = None
    name: str | None = None
    postal_address: dict[str, str] | None = None
    external_ref: str | None = None


class SelfConsent(Struct):
    consent_id: str
    purpose: str
    title: PurposeTitle
    basis: str
    status: str
    touchpoint: str | None
    method: str | None
    given_at: datetime | None
    expires_at: datetime | None
    withdrawn_at: datetime | None
    withdrawable: bool


class SelfAccess(Struct):
    """One access of an internal system to the subject's data, allowed or denied: `kind`
    says what it was (`lookup`, `audience_check`: counted in a dry run, `contact_record`,
    `consents_read`, `preferences_read`, `followup_read`, `refused`: refused by role),
    `label` says it to the customer, naming the client and no value."""

    at: datetime
    client: str
    purpose: str | None
    title: PurposeTitle | None
    fields: list[str]
    decision: str
    reason: str | None
    kind: str
    label: LocalText


class SelfRequest(Struct):
    request_id: str
    type: str
    status: str
    channel: str
    received_at: datetime
    due_at: datetime
    extended_at: datetime | None = None
    extension_reason: str | None = None
    verified_at: datetime | None = None
    completed_at: datetime | None = None
    outcome_reason: str | None = None
    overdue: bool = False


class LocalText(Struct):
    de: str
    en: str


class SelfRestriction(Struct):
    """Why this session shows no contact data and may not act on the account: it was
    opened through an e-mail address whose change is not confirmed yet. `until` is when
    the cooling-off ends (null while an objection to the change stands)."""

    reason: str
    changed_at: datetime
    until: datetime | None
    message: LocalText


class SelfOverview(Struct):
    subject_id: str
    status: str
    contact: SelfContact
    consents: list[SelfConsent]
    access_log: list[SelfAccess]
    requests: list[SelfRequest]
    restriction: SelfRestriction | None = None


class IdentityTokenIn(Struct, forbid_unknown_fields=True):
    """The token from the link in the notice mailed to the previous address."""

    token: Annotated[str, Meta(min_length=1, max_length=200)]


class SelfIdentityChange(Struct):
    """The change(s) the link was about, after confirming or objecting."""

    status: str
    fields: list[str]
    changed_at: datetime
    cooling_off_until: datetime


_WITH_PAYLOAD = ("rectification", "consent_withdrawal", "legitimate_interest_objection")


def _when_type(types: list[str], payload: Schema, *, required: bool = False) -> Schema:
    """`if` the request is of one of `types`, `then` its payload is `payload`."""
    return Schema(
        schema_if=Schema(properties={"type": Schema(enum=types)}, required=["type"]),
        then=Schema(properties={"payload": payload}, required=["payload"] if required else None),
    )


def _legitimate_interest_purposes(policies: Policies) -> list[str]:
    return [
        p.id
        for p in policies.purposes.purposes.values()
        if p.lawful_basis is LawfulBasis.LEGITIMATE_INTEREST
    ]


def _objection_rules(policies: Policies) -> list[Schema]:
    """Art. 21(1): only purposes resting on legitimate interest can be objected to."""
    purposes = Schema(items=Schema(enum=_legitimate_interest_purposes(policies)))
    return [
        _when_type(["legitimate_interest_objection"], Schema(properties={"purposes": purposes}))
    ]


def _list_of(item: Schema) -> Schema:
    """An optional list of 1 to 100 items (`null` counts as absent)."""
    return Schema(
        one_of=[
            Schema(type=OpenAPIType.NULL),
            Schema(type=OpenAPIType.ARRAY, items=item, min_items=1, max_items=100),
        ]
    )


def _self_request_rules(policies: Policies) -> list[Schema]:
    """What each type takes as `payload` from the privacy centre
    (`vault.rights.requests.validation.validate_payload`)."""
    purposes = [p.id for p in policies.purposes.purposes.values()]
    return [
        _when_type(
            ["rectification"],
            Schema(
                type=OpenAPIType.OBJECT,
                required=["changes"],
                properties={"changes": Reference(ref="#/components/schemas/ContactPatch")},
                additional_properties=False,
            ),
            required=True,
        ),
        _when_type(
            ["consent_withdrawal"],
            Schema(
                one_of=[
                    Schema(type=OpenAPIType.NULL),
                    Schema(
                        type=OpenAPIType.OBJECT,
                        properties={
                            "consent_ids": _list_of(
                                Schema(type=OpenAPIType.STRING, pattern=UUID_PATTERN)
                            ),
                            "purposes": _list_of(Schema(type=OpenAPIType.STRING, enum=purposes)),
                        },
                        additional_properties=False,
                    ),
                ]
            ),
        ),
        _when_type(
            [t for t in get_args(SelfRequestType) if t not in _WITH_PAYLOAD],
            Schema(
                one_of=[
                    Schema(type=OpenAPIType.NULL),
                    Schema(type=OpenAPIType.OBJECT, max_properties=0),
                ]
            ),
        ),
    ]


class SelfRequestCreate(Struct, forbid_unknown_fields=True):
    """A request the verified subject makes. Only two types take a `payload`:
    rectification `{"changes": {"name": "…", …}}` and consent withdrawal
    `{"consent_ids": [...]}` or `{"purposes": [...]}` (none: every consent)."""

    __catalogue_openapi__: ClassVar[Callable[[Policies], list[Schema]]] = staticmethod(
        _self_request_rules
    )

    type: SelfRequestType
    payload: dict[str, Any] | None = None


RequestTypeName = Literal[
    "access",
    "portability",
    "rectification",
    "restriction",
    "objection",
    "legitimate_interest_objection",
    "erasure",
    "consent_withdrawal",
]


RequestStatusName = Literal[
    "received",
    "identity_verification",
    "in_review",
    "in_progress",
    "awaiting_recipients",
    "completed",
    "partially_completed",
    "rejected",
]


RequestChannelName = Literal["self_service", "letter", "phone", "email", "in_person"]


#: A DPO's free text: what `clean_text` accepts, stated in the document (no control or
#: format characters besides line feed and tab, not only white space).
ReasonText = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=1000,
        pattern=FREE_TEXT_PATTERN,
        description="Free text of at most 1000 characters: not only white space, no control "
        "or format characters besides line feed and tab.",
    ),
]


class RequestPayload(Struct, forbid_unknown_fields=True):
    """What the subject asked for. Rectification: `changes` (the corrected contact data;
    `null` removes a field). Consent withdrawal: `consent_ids` and/or `purposes` (neither:
    every consent). Objection under Art. 21(1) (`legitimate_interest_objection`): `purposes`
    (the legitimate-interest purposes objected to) and optional `grounds` (the subject's
    particular situation). Other types take no payload. Stored sealed; never in audit or
    history."""

    changes: ContactPatch | UnsetType = UNSET
    consent_ids: Annotated[list[Uuid], Meta(min_length=1, max_length=100)] | UnsetType = UNSET
    purposes: Annotated[list[Short], Meta(min_length=1, max_length=50)] | UnsetType = UNSET
    grounds: ReasonText | UnsetType = UNSET


class RequestCreate(Struct, forbid_unknown_fields=True):
    """A request received on the subject's behalf (letter, phone, e-mail, in person)."""

    __catalogue_openapi__: ClassVar[Callable[[Policies], list[Schema]]] = staticmethod(
        _objection_rules
    )

    __openapi__: ClassVar[dict[str, Any]] = {
        # What each type takes as `payload` (`vault.rights.requests.validation.validate_payload`).
        "all_of": [
            _when_type(
                ["rectification"],
                Schema(
                    type=OpenAPIType.OBJECT,
                    required=["changes"],
                    properties={"changes": Schema()},
                    additional_properties=False,
                ),
                required=True,
            ),
            _when_type(
                ["consent_withdrawal"],
                Schema(
                    one_of=[
                        Schema(type=OpenAPIType.NULL),
                        Schema(
                            type=OpenAPIType.OBJECT,
                            schema_not=Schema(
                                any_of=[Schema(required=["changes"]), Schema(required=["grounds"])]
                            ),
                        ),
                    ]
                ),
            ),
            _when_type(
                ["legitimate_interest_objection"],
                Schema(
                    type=OpenAPIType.OBJECT,
                    required=["purposes"],
                    properties={"purposes": Schema(), "grounds": Schema()},
                    additional_properties=False,
                ),
                required=True,
            ),
            _when_type(
                [t for t in get_args(RequestTypeName) if t not in _WITH_PAYLOAD],
                Schema(
                    one_of=[
                        Schema(type=OpenAPIType.NULL),
                        Schema(type=OpenAPIType.OBJECT, max_properties=0),
                    ]
                ),
            ),
        ],
        "examples": [
            {
                "subject_id": "6f1c2a8e-3b7d-4f0a-9c1e-2d5b8a7f4e10",
                "type": "rectification",
                "channel": "letter",
                "payload": {"changes": {"name": "Anna Beispiel-Neu"}},
            }
        ],
    }

    subject_id: Uuid
    type: RequestTypeName
    channel: RequestChannelName
    payload: RequestPayload | None = None


class RequestHistoryOut(Struct):
    at: datetime
    event: str
    status: str
    actor: str
    note: str | None = None


class RequestOut(Struct):
    request_id: str
    subject_id: str | None
    type: str
    status: str
    channel: str
    received_at: datetime
    due_at: datetime
    overdue: bool
    extended_at: datetime | None = None
    extension_reason: str | None = None
    verified_at: datetime | None = None
    completed_at: datetime | None = None
    outcome_reason: str | None = None
    history: list[RequestHistoryOut] = msgspec.field(default_factory=list)


class RequestList(Struct):
    """Overdue open requests first, then by due date ascending (items carry no history)."""

    items: list[RequestOut]


class RequestReason(Struct, forbid_unknown_fields=True):
    reason: ReasonText


class RequestExtend(Struct, forbid_unknown_fields=True):
    """Extend once, within the first month after receipt, by 1 or 2 months (Art. 12(3))."""

    reason: ReasonText
    months: Literal[1, 2] = 2


class RequestComplete(Struct, forbid_unknown_fields=True):
    note: ReasonText | None = None


class RestrictionLift(Struct, forbid_unknown_fields=True):
    """Why the restriction ends (Art. 18(3)); the customer is told it by e-mail."""

    reason: ReasonText


class RestrictionLifted(Struct):
    subject_id: str
    status: Literal["active"]
    #: Whether the notice went to the stored e-mail address (else tell the customer by letter).
    customer_mailed: bool
