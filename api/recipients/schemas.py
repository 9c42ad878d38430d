"""Bodies of the recipients area's routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, cast

import msgspec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Reference, Schema
from msgspec import Meta, Struct

from api.schemas import Short

#: The document's name for a webhook URL the server delivers to
#: (`vault.recipients.urls.validate_webhook_url`): the rules (a private range, named by a
#: literal address, is refused unless the server's settings allow it) are the server's.
WEBHOOK_URL_FORMAT = "webhook-url"
#: A NATS subject prefix (`vault.recipients.registry`): dot-separated tokens.
NATS_PREFIX_PATTERN = r"^[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*$"


def _when(name: str, value: str, then: dict[str, Schema | Reference]) -> Schema:
    return Schema(
        schema_if=Schema(properties={name: Schema(const=value)}, required=[name]),
        then=Schema(properties=then),
    )


EventTypeName = Literal[
    "consent.granted",
    "consent.withdrawn",
    "consent.expired",
    "basis.ended",
    "subject.rectified",
    "subject.restricted",
    "subject.restriction_lifted",
    "subject.objected",
    "subject.erased",
    "preferences.changed",
]


class SubscriptionIn(Struct, forbid_unknown_fields=True):
    event_type: EventTypeName
    #: A purpose id, or `*` for every purpose.
    purpose: Short = "*"
    scope: Literal["received", "all"] = "received"


class RecipientCreate(Struct, forbid_unknown_fields=True):
    """A recipient of notices. `target` is what `transport` needs: a webhook URL (format
    `webhook-url`: https, http only to a loopback address, no user name, password or
    fragment, no literal address in a private range unless the server allows private
    targets) or a NATS subject prefix (dot-separated tokens of `[A-Za-z0-9_-]`, at most 100
    characters). A client recipient is told only about subjects it received: scope
    `received`."""

    __openapi__: ClassVar[dict[str, Any]] = {
        "all_of": [
            _when(
                "transport",
                "webhook",
                # A format of our own: Litestar's enum lists only the standard ones.
                {"target": Schema(format=cast(OpenAPIFormat, WEBHOOK_URL_FORMAT))},
            ),
            _when(
                "transport",
                "nats",
                {"target": Schema(pattern=NATS_PREFIX_PATTERN, max_length=100)},
            ),
            _when(
                "kind",
                "client",
                {
                    "subscriptions": Schema(
                        type=OpenAPIType.ARRAY,
                        items=Schema(properties={"scope": Schema(const="received")}),
                    )
                },
            ),
        ]
    }

    name: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    kind: Literal["client", "external"]
    transport: Literal["webhook", "nats"]
    #: The webhook URL (https; http only to loopback) or the NATS subject prefix.
    target: Annotated[str, Meta(min_length=1, max_length=500)]
    #: Empty: every event type, for every purpose, about subjects it received.
    subscriptions: Annotated[list[SubscriptionIn], Meta(max_length=200)] = msgspec.field(
        default_factory=list
    )


class SubscriptionsPut(Struct, forbid_unknown_fields=True):
    subscriptions: Annotated[list[SubscriptionIn], Meta(min_length=1, max_length=200)]


class SubscriptionOut(Struct):
    event_type: str
    purpose: str
    scope: str


class RecipientOut(Struct):
    name: str
    kind: str
    transport: str
    target: str
    paused: bool
    created_at: datetime
    subscriptions: list[SubscriptionOut]


class RecipientCreated(Struct):
    recipient: RecipientOut
    #: The webhook signing secret (whsec_...), shown only here; null for NATS.
    secret: str | None


class RecipientList(Struct):
    items: list[RecipientOut]


class RotateIn(Struct, forbid_unknown_fields=True):
    #: How long the previous secret keeps signing too (0 to 30 days).
    overlap_hours: Annotated[int, Meta(gt=-1, le=720)] = 24  # gt=-1: Litestar drops a ge of 0


class SecretOut(Struct):
    secret: str


class ReplayIn(Struct, forbid_unknown_fields=True):
    since: datetime


class ReplayOut(Struct):
    queued: int


class NoticeOut(Struct):
    id: str
    recipient: str
    event_type: str
    subject_id: str
    occurred_at: datetime
    status: str
    attempts: int
    last_error: str | None
    delivered_at: datetime | None
    ack_outcome: str | None
    acked_at: datetime | None
    closed_reason: str | None


class DeliveryOverview(Struct):
    counts: dict[str, int]
    items: list[NoticeOut]


class AckIn(Struct, forbid_unknown_fields=True):
    outcome: Literal["deleted", "updated", "not_held"]


class CloseIn(Struct, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=500)]
