"""Bodies of the rights area's routes: the DPO's request workflow and the end of a
restriction, and what the other areas share with them (a purpose's titles, a DPO's free
text). The self-service API's bodies (/self/v1) are `api.rights.self_schemas`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, get_args

import msgspec
from litestar.openapi.spec import OpenAPIType, Schema
from msgspec import UNSET, Meta, Struct, UnsetType

from api.schemas import Short, Uuid
from api.subjects.schemas import ContactPatch
from vault.catalogue.loader import Policies
from vault.catalogue.purposes import LawfulBasis
from vault.rights.free_text import FREE_TEXT_PATTERN


class PurposeTitle(Struct):
    de: str
    en: str


#: The request types that take a `payload`; every other type takes none (or `{}`).
WITH_PAYLOAD = ("rectification", "consent_withdrawal", "legitimate_interest_objection")


def when_type(types: list[str], payload: Schema, *, required: bool = False) -> Schema:
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
    return [when_type(["legitimate_interest_objection"], Schema(properties={"purposes": purposes}))]


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
            when_type(
                ["rectification"],
                Schema(
                    type=OpenAPIType.OBJECT,
                    required=["changes"],
                    properties={"changes": Schema()},
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
                            schema_not=Schema(
                                any_of=[Schema(required=["changes"]), Schema(required=["grounds"])]
                            ),
                        ),
                    ]
                ),
            ),
            when_type(
                ["legitimate_interest_objection"],
                Schema(
                    type=OpenAPIType.OBJECT,
                    required=["purposes"],
                    properties={"purposes": Schema(), "grounds": Schema()},
                    additional_properties=False,
                ),
                required=True,
            ),
            when_type(
                [t for t in get_args(RequestTypeName) if t not in WITH_PAYLOAD],
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
