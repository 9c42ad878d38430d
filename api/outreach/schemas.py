"""Bodies of the outreach area's routes: recorded contacts, preferences, follow-ups and
the contact report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from litestar.openapi.spec import OpenAPIType, Schema
from msgspec import Meta, Struct

from api.bases.schemas import EvidenceIn
from api.rights.schemas import PurposeTitle
from api.schemas import ContactChannel, ContactType, Short, Uuid, WordId
from api.subjects.schemas import ContactReservationOut
from vault.catalogue.loader import Policies
from vault.outreach.preferences import all_zone_names

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


TimeOfDay = Annotated[
    str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, 24-hour")
]


class ContactRecordIn(Struct, forbid_unknown_fields=True):
    """A contact made without a lookup (e.g. at the shop counter or by the call centre),
    for a `purpose` the client may use; channel and type must fit the purpose."""

    __purpose_fit__: ClassVar[tuple[str, ...]] = ("",)

    subject_id: Uuid
    brand: WordId
    channel: ContactChannel
    type: ContactType
    purpose: Short
    priority: WordId = "normal"
    touchpoint: Short | None = None
    #: An agreed follow-up this contact keeps (for its purpose); costs no points.
    followup: Uuid | None = None
    #: `inbound`: the customer started the contact (a call, a reply); recorded at 0 points.
    direction: Literal["outbound", "inbound"] = "outbound"


class ContactRecorded(Struct):
    subject_id: str
    contact: ContactReservationOut


def _times_differ() -> Schema:
    """`start` differs from `end`, which JSON Schema can say without comparing the two: in
    one of the four digit places of HH:MM, `start` has some digit and `end` another."""
    return Schema(
        any_of=[
            Schema(
                properties={
                    "start": Schema(pattern=f"^.{{{place}}}{digit}"),
                    "end": Schema(pattern=f"^.{{{place}}}[^{digit}]"),
                }
            )
            for place in (0, 1, 3, 4)
            for digit in range(10)
        ]
    )


class QuietTimesIn(Struct, forbid_unknown_fields=True):
    """Quiet times of one channel in the customer's time zone: a daily window (`start` after
    `end` spans midnight, e.g. 22:00-07:00) and/or whole weekdays. `start` and `end` come
    together (both or neither) and differ (whole days are `days`)."""

    #: Both or neither: a time given (not null) needs the other one given; and both given,
    #: they differ.
    __openapi__: ClassVar[dict[str, Any]] = {
        "all_of": [
            *(
                Schema(
                    schema_if=Schema(
                        required=[given], properties={given: Schema(type=OpenAPIType.STRING)}
                    ),
                    then=Schema(
                        required=[other], properties={other: Schema(type=OpenAPIType.STRING)}
                    ),
                )
                for given, other in (("start", "end"), ("end", "start"))
            ),
            Schema(
                schema_if=Schema(
                    required=["start", "end"],
                    properties={
                        "start": Schema(type=OpenAPIType.STRING),
                        "end": Schema(type=OpenAPIType.STRING),
                    },
                ),
                then=_times_differ(),
            ),
        ]
    }

    start: TimeOfDay | None = None
    end: TimeOfDay | None = None
    days: Annotated[list[Weekday], Meta(max_length=7)] = msgspec.field(default_factory=list)


#: An IANA time zone name of the pinned tzdata release: the enum is the server's own list.
ZoneName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        description="IANA time zone (the tzdata release the server pins)",
        extra_json_schema={"extra": {"enum": all_zone_names()}, "examples": ["Europe/Berlin"]},
    ),
]


def _cap_within_basket(policies: Policies) -> list[Schema]:
    """An own cap can only lower the company basket (policies/contact-pressure.toml)."""
    basket = Schema(maximum=policies.pressure_rules.basket_points)
    return [Schema(properties={"monthly_cap_points": basket})]


class PreferencesIn(Struct, forbid_unknown_fields=True):
    """The customer's contact preferences, replacing the previous ones as a whole.
    `monthly_cap_points` can only lower the company basket: a higher value is rejected."""

    __catalogue_openapi__: ClassVar[Callable[[Policies], list[Schema]]] = staticmethod(
        _cap_within_basket
    )

    timezone: ZoneName
    preferred_channels: dict[ContactType, ContactChannel] = msgspec.field(default_factory=dict)
    quiet: dict[ContactChannel, QuietTimesIn] = msgspec.field(default_factory=dict)
    #: Points in tenths (the preferences check refuses a second decimal with a 422; in the
    #: document only, as msgspec's own check would answer a 400).
    monthly_cap_points: (
        Annotated[float, Meta(ge=0, le=100000, extra_json_schema={"extra": {"multipleOf": 0.1}})]
        | None
    ) = None


class PreferencesUpdate(PreferencesIn, forbid_unknown_fields=True):
    """Preferences set by a writer client on the customer's instruction, with evidence of
    that instruction (like a consent: touchpoint from the catalogue, notice, method)."""

    #: The server refuses an update without evidence (422): required and not null.
    __openapi__: ClassVar[dict[str, Any]] = {
        "all_of": [
            Schema(
                required=["evidence"],
                properties={"evidence": Schema(schema_not=Schema(type=OpenAPIType.NULL))},
            )
        ]
    }
    evidence: EvidenceIn | None = None


class QuietTimesOut(Struct):
    start: str | None
    end: str | None
    days: list[str]


class PreferenceHistoryOut(Struct):
    version: int
    at: datetime
    actor: str
    source: str
    touchpoint: str | None
    method: str | None
    notice_version: str | None
    language: str | None
    preferences: dict[str, Any]


class PreferencesOut(Struct):
    """The customer's preferences (`version` 0 and no time zone: never set) and their
    history, newest first; `basket_points` is the company basket the own cap may lower."""

    subject_id: str
    version: int
    timezone: str | None
    preferred_channels: dict[str, str]
    quiet: dict[str, QuietTimesOut]
    monthly_cap_points: float | None
    basket_points: float
    updated_at: datetime | None
    history: list[PreferenceHistoryOut]


class ContactBucketOut(Struct):
    key: str
    contacts: int
    points: float


class ContactReportOut(Struct):
    """Contacts of one basket month by touchpoint, phase, brand, channel and type, and how
    many customers are near (>= 80 %) or at their monthly limit. Aggregates only."""

    month: str
    basket: float
    total_contacts: int
    total_points: float
    by_touchpoint: list[ContactBucketOut]
    by_phase: list[ContactBucketOut]
    by_brand: list[ContactBucketOut]
    by_channel: list[ContactBucketOut]
    by_type: list[ContactBucketOut]
    customers_contacted: int
    customers_near_limit: int
    customers_at_limit: int
    #: Agreed follow-ups settled in the month per touchpoint where they were agreed.
    followups_by_touchpoint: list[FollowupBucketOut] = msgspec.field(default_factory=list)
    #: Customers' own contact preferences: how many state any, and the month's denials by
    #: preference reason (`contact_quiet_hours`, `contact_cap_reached`).
    preferences: PreferenceStatsOut | None = None


class PreferenceStatsOut(Struct):
    customers: int
    customers_with_preferences: int
    share: float
    denials_by_reason: dict[str, int]


FollowupNote = Literal[
    "callback_requested",
    "contract_question",
    "order_question",
    "billing_question",
    "offer_requested",
    "complaint",
    "appointment",
]


AwareDateTime = Annotated[datetime, Meta(tz=True, description="date and time with a time zone")]

#: A client or team name (the shape of a client name), never free text.
Assignee = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=100,
        pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$",
        description="the client or team that is to make the contact, e.g. crm or service-team",
    ),
]

#: How the CRM settled a follow-up it closes (vault.outreach.followup_changes.CLOSE_OUTCOMES).
FollowupOutcome = Literal[
    "reached_otherwise",
    "resolved_in_writing",
    "customer_called_in",
    "no_longer_needed",
    "not_reachable",
]


#: The document's names for a follow-up window's ends (RFC 3339 date-times with a time
#: zone): the rules are relative to the server's clock and to each other, which no JSON
#: Schema keyword says, so each end has a format the description spells out.
DUE_FROM_FORMAT = "followup-due-from"
DUE_UNTIL_FORMAT = "followup-due-until"
DueFrom = Annotated[
    datetime,
    Meta(
        tz=True,
        description="RFC 3339 date-time with a time zone; format `followup-due-from`: not in "
        "the past (5 minutes of clock skew allowed), at most 366 days ahead",
        extra_json_schema={"extra": {"format": DUE_FROM_FORMAT}},
    ),
]
DueUntil = Annotated[
    datetime,
    Meta(
        tz=True,
        description="RFC 3339 date-time with a time zone; format `followup-due-until`: in the "
        "future, after `due_from` and at most 31 days after it",
        extra_json_schema={"extra": {"format": DUE_UNTIL_FORMAT}},
    ),
]


class FollowupCreate(Struct, forbid_unknown_fields=True):
    """A contact the customer asked for. `channel` and `type` default to the purpose's;
    `touchpoint` is where it was agreed; `note` is a kind, never free text."""

    __purpose_fit__: ClassVar[tuple[str, ...]] = ("",)

    subject_id: Uuid
    purpose: Short
    brand: WordId
    touchpoint: Short
    due_from: DueFrom
    due_until: DueUntil
    channel: ContactChannel | None = None
    type: ContactType | None = None
    note: FollowupNote | None = None
    assignee: Assignee | None = None


class FollowupReschedule(Struct, forbid_unknown_fields=True):
    """A new window for an open follow-up (the rules of a new one), and optionally who is
    to make the contact from now on."""

    due_from: DueFrom
    due_until: DueUntil
    assignee: Assignee | None = None


class FollowupClose(Struct, forbid_unknown_fields=True):
    """How an open follow-up was settled without the contact it promised."""

    outcome: FollowupOutcome


class FollowupOut(Struct):
    """An agreed follow-up; `status` is open, kept, missed (window passed unused),
    cancelled (by the customer) or closed (by the CRM, with its `outcome`)."""

    id: str
    subject_id: str
    purpose: str
    channel: str
    type: str
    brand: str
    touchpoint: str
    note: str | None
    due_from: datetime
    due_until: datetime
    status: str
    created_at: datetime
    closed_at: datetime | None
    assignee: str | None = None
    outcome: str | None = None


class FollowupPageOut(Struct):
    items: list[FollowupOut]
    next_cursor: str | None


class SelfFollowup(Struct):
    """One of my agreed follow-ups; `cancellable` while it is open."""

    id: str
    purpose: str
    title: PurposeTitle
    channel: str
    type: str
    touchpoint: str
    note: str | None
    due_from: datetime
    due_until: datetime
    status: str
    cancellable: bool


class SelfFollowupList(Struct):
    items: list[SelfFollowup]


class FollowupBucketOut(Struct):
    key: str
    kept: int
    missed: int
    cancelled: int


class ContactHistoryEntryOut(Struct):
    """One contact made: `outbound` (it reserved its `points`) or `inbound` (the customer
    called or replied, 0 points); `client` is the system that recorded it."""

    id: str
    at: datetime
    direction: str
    brand: str
    channel: str
    type: str
    priority: str
    points: float
    purpose: str | None
    touchpoint: str | None
    client: str | None


class ContactHistoryPageOut(Struct):
    items: list[ContactHistoryEntryOut]
    next_cursor: str | None
