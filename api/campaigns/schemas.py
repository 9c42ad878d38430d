"""Bodies of the campaign routes. Counts in forecasts and booking answers are numbers, "< k"
below the policy's `report_min_count`, or "hidden" where the shown rest of the answer, or
another campaign's answer, would give a masked count away: no answer singles out a
customer (`vault.campaigns.masking`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from msgspec import Meta, Struct

from api.schemas import ContactChannel, ContactType, Short, Text200, WordId

#: A send window must end after it starts and within the basket month of its start
#: (`vault.campaigns.records`): a rule between two fields and the rules' month boundaries,
#: which no JSON Schema keyword says, so each end has a format its description spells out.
WINDOW_START_FORMAT = "campaign-window-start"
WINDOW_END_FORMAT = "campaign-window-end"
WindowStart = Annotated[
    datetime,
    Meta(
        tz=True,
        description="RFC 3339 date-time with a time zone; format `campaign-window-start`: the "
        "send window's start, whose basket month is the month the booking uses",
        extra_json_schema={"extra": {"format": WINDOW_START_FORMAT}},
    ),
]
WindowEnd = Annotated[
    datetime,
    Meta(
        tz=True,
        description="RFC 3339 date-time with a time zone; format `campaign-window-end`: after "
        "`window_start` and within the same basket month",
        extra_json_schema={"extra": {"format": WINDOW_END_FORMAT}},
    ),
]

#: A count, or "< k" when it is below the reporting threshold k.
MaskedCount = Annotated[
    int | str,
    Meta(
        description='a count, "< k" when fewer than k (report_min_count), or "hidden" when '
        "showing it would let a masked count be derived by subtraction"
    ),
]
#: Why every count of an answer is hidden: its audience differs from another campaign's by
#: 1 to k - 1 customers, so subtracting the two answers would show their status.
HiddenReason = Annotated[
    Literal["near_audience"] | None,
    Meta(
        description="`near_audience`: the audience differs from another campaign's by fewer "
        "than k customers, so every count of at least k is hidden; null otherwise"
    ),
]


class CampaignIn(Struct, forbid_unknown_fields=True):
    """A campaign to plan. `channel` and `type` default to the purpose's and must fit it;
    `priority` is one of the rules' (above `normal` only when granted to the caller) and
    `rank` orders campaigns within one priority (1 is served first). The send window must
    lie within one basket month. `audience`: `list` (upload members with `PUT
    .../audience`) or `basis` (everyone with a basis for the purpose when booked)."""

    __purpose_fit__: ClassVar[tuple[str, ...]] = ("",)

    name: Text200
    brand: WordId
    purpose: Short
    window_start: WindowStart
    window_end: WindowEnd
    channel: ContactChannel | None = None
    type: ContactType | None = None
    priority: WordId = "normal"
    rank: Annotated[int, Meta(ge=1, le=9999)] = 1
    touchpoint: Short | None = None
    audience: Literal["list", "basis"] = "list"


class HoldOut(Struct):
    """A calamity campaign's cool-down hold: the campaign held (in `holds`) or the
    calamity campaign holding (in `held_by`), and how many members it concerns. Held
    members cannot be contacted under the held campaign until the cool-down ends; its
    booked points stay reserved."""

    campaign: str
    name: str
    count: MaskedCount


class CampaignOut(Struct):
    id: str
    name: str
    brand: str
    type: str
    channel: str
    priority: str
    rank: int
    purpose: str
    touchpoint: str | None
    window_start: str
    window_end: str
    month: str
    audience: str
    owner: str
    state: Literal["draft", "booked", "sent", "cancelled"]
    held_by: Annotated[
        list[HoldOut],
        Meta(description="Booked calamity campaigns whose cool-down holds this campaign."),
    ]


class CampaignListOut(Struct):
    items: list[CampaignOut]


class AudienceIn(Struct, forbid_unknown_fields=True):
    """An audience file's text: NDJSON (one `{"subject_id": ...}` or `{"external_ref": ...}`
    per line) or CSV (header `subject_id` or `external_ref`, one value per row)."""

    format: Literal["ndjson", "csv"]
    file: Annotated[str, Meta(min_length=1, max_length=64_000_000)]


class AudienceOut(Struct):
    """Counts of an upload; values are never echoed."""

    lines: int
    members: int
    unmatched: int


class DisplacementOut(Struct):
    campaign: str
    name: str
    count: MaskedCount


class BookingOut(Struct):
    """What a booking did (or, from the preview, would do)."""

    campaign: str
    audience: MaskedCount
    booked: MaskedCount
    blocked_by_basket: MaskedCount
    missing_basis: MaskedCount
    displaced: list[DisplacementOut]
    holds: Annotated[
        list[HoldOut],
        Meta(description="For a calamity campaign: the planned campaigns its cool-down holds."),
    ]
    held_by: Annotated[
        list[HoldOut],
        Meta(description="Booked calamity campaigns whose cool-down holds this campaign."),
    ]
    hidden_reason: HiddenReason = None


class BookIn(Struct, forbid_unknown_fields=True):
    """`confirm_displacement`: book even though bookings of campaigns served later are
    displaced (see the preview); without it such a booking is refused with 409."""

    confirm_displacement: bool = False


class ReleasedOut(Struct):
    campaign: str
    state: Literal["cancelled", "sent"]
    released: MaskedCount


class ForecastOut(Struct):
    """Of the campaign's audience: reachable, or the first reason it is not."""

    campaign: str
    state: str
    audience: MaskedCount
    reachable: MaskedCount
    blocked_by_basket: MaskedCount
    blocked_by_preferences: MaskedCount
    blocked_by_quiet_hours: MaskedCount
    missing_basis: MaskedCount
    min_count: int
    hidden_reason: HiddenReason = None
