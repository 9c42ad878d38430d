"""Bodies of the self-service API (/self/v1): the privacy centre's sign-in, the subject's
own data, consents, requests and identity changes as the subject sees them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, get_args

from litestar.openapi.spec import OpenAPIType, Reference, Schema
from msgspec import Meta, Struct

from api.openapi_schema import exactly_one
from api.rights.schemas import WITH_PAYLOAD, PurposeTitle, when_type
from api.schemas import UUID_PATTERN, EmailText, PhoneText
from vault.catalogue.loader import Policies

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
        when_type(
            ["rectification"],
            Schema(
                type=OpenAPIType.OBJECT,
                required=["changes"],
                properties={"changes": Reference(ref="#/components/schemas/ContactPatch")},
                additional_properties=False,
            ),
            required=True,
        ),
        when_type(
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
        when_type(
            [t for t in get_args(SelfRequestType) if t not in WITH_PAYLOAD],
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
