"""Bodies of the planning reports (`/v1/reports/basket-use`, `/opt-outs`, `/what-if`,
`/touchpoints`) and the calendar (`/v1/campaigns/calendar`). Every count is a number, "< k"
below the policy's `report_min_count`, or "hidden" where showing it would let two answers
be subtracted down to fewer than k customers (`vault.campaigns.masking`): no answer singles
out a customer. Properties whose shared glossary text means something else elsewhere
(`days`, `months`) say here what they are."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from api.campaigns.schemas import HiddenReason, MaskedCount
from api.schemas import WordId

Month = Annotated[
    str,
    Meta(
        pattern=r"^\d{4}-(0[1-9]|1[0-2])$", max_length=7, description="The basket month (YYYY-MM)."
    ),
]
Points = Annotated[int, Meta(ge=0, le=1000)]
BasketPoints = Annotated[
    int, Meta(ge=1, le=1000, description="Points per month: the basket, or the service reserve.")
]
Factor = Annotated[float, Meta(ge=0, le=100)]
TypePoints = Annotated[
    int,
    Meta(ge=0, le=1000, description="Points of one contact of the type, instead of the rules'."),
]
ChannelFactor = Annotated[
    float, Meta(ge=0, le=100, description="The channel's factor, instead of the rules'.")
]


class BandOut(Struct):
    band: Annotated[
        Literal["none", "under_half", "half_to_80", "near_full", "full"],
        Meta(description="How much of the basket was used: none, under 50 %, 50 to under "
             "80 %, 80 % to nearly full, full (or beyond, by an overdraft)."),
    ]  # fmt: skip
    customers: MaskedCount


class BasketUseOut(Struct):
    """The basket month's use over the active customers, in bands, and the missed chances."""

    month: Annotated[str, Meta(description="The basket month (YYYY-MM).")]
    basket: Annotated[float, Meta(description="Points in the basket under the rules in force.")]
    months: Annotated[
        int, Meta(description="How many basket months up to `month` count for missed chances.")
    ]
    purpose: Annotated[
        str | None, Meta(description="The purpose missed chances were counted for; null: any.")
    ]
    customers: MaskedCount
    bands: Annotated[list[BandOut], Meta(description="The customers by basket use, in order.")]
    missed: MaskedCount
    min_count: Annotated[int, Meta(description="k: the smallest count shown as a number.")]


class OptOutRowOut(Struct):
    dimension: Annotated[
        Literal["brand", "type", "channel", "touchpoint", "band"],
        Meta(description="What the row groups by."),
    ]
    value: Annotated[
        str,
        Meta(
            description="The group: a brand, type, channel, touchpoint (`none`: without) or band."
        ),
    ]
    contacted: MaskedCount
    withdrawals: MaskedCount
    objections: MaskedCount
    erasures: MaskedCount


class OptOutsOut(Struct):
    """Customers who opted out within `days` days after a contact of the month, by group."""

    month: Annotated[str, Meta(description="The basket month of the contacts (YYYY-MM).")]
    days: Annotated[int, Meta(description="How many days after a contact an opt-out counts.")]
    rows: Annotated[list[OptOutRowOut], Meta(description="One row per group and value.")]
    min_count: Annotated[int, Meta(description="k: the smallest count shown as a number.")]


class TypePointsIn(Struct, forbid_unknown_fields=True):
    """Points per communication type, replacing the rules' (absent: as they are)."""

    service: TypePoints | None = None
    editorial: TypePoints | None = None
    commercial: TypePoints | None = None
    calamity: TypePoints | None = None


class ChannelFactorsIn(Struct, forbid_unknown_fields=True):
    """Factors per channel, replacing the rules' (absent: as they are)."""

    email: ChannelFactor | None = None
    letter: ChannelFactor | None = None
    sms: ChannelFactor | None = None
    phone: ChannelFactor | None = None


class OverdraftIn(Struct, forbid_unknown_fields=True):
    """How far contacts of one priority may go beyond the basket."""

    priority: WordId
    points: Annotated[Points, Meta(description="The overdraft in points.")]


class RuleChangesIn(Struct, forbid_unknown_fields=True):
    """Changes to the rules in force; anything not named stays as it is."""

    points: Annotated[TypePointsIn | None, Meta(description="Points per communication type.")] = (
        None
    )
    channel_factors: Annotated[
        ChannelFactorsIn | None, Meta(description="Factors per channel.")
    ] = None
    basket_points: BasketPoints | None = None
    service_reserve_points: BasketPoints | None = None
    overdraft: Annotated[
        list[OverdraftIn],
        Meta(max_length=20, description="Overdrafts per priority (a later one wins)."),
    ] = []


class WhatIfIn(Struct, forbid_unknown_fields=True):
    """The basket month to replay and the changed rules."""

    month: Month
    rules: Annotated[RuleChangesIn, Meta(description="The changes to replay the month under.")]


class WhatIfCellOut(Struct):
    brand: Annotated[str, Meta(description="The brand the contacts were made for.")]
    type: Annotated[str, Meta(description="The contacts' communication type.")]
    now_allowed: MaskedCount
    now_blocked: MaskedCount
    whatif_allowed: MaskedCount
    whatif_blocked: MaskedCount


class WhatIfOut(Struct):
    """Contacts of the month allowed and blocked per brand and type: now and what-if."""

    month: Annotated[str, Meta(description="The basket month replayed (YYYY-MM).")]
    contacts: MaskedCount
    cells: Annotated[list[WhatIfCellOut], Meta(description="Per brand and type.")]
    min_count: Annotated[int, Meta(description="k: the smallest count shown as a number.")]


class CalendarCampaignOut(Struct):
    """A planned or booked campaign in the calendar, with its forecast."""

    id: Annotated[str, Meta(description="The campaign's id.")]
    name: Annotated[str, Meta(description="The campaign's name.")]
    brand: Annotated[str, Meta(description="The brand it is sent for.")]
    channel: Annotated[str, Meta(description="The channel it is sent on.")]
    type: Annotated[str, Meta(description="Its communication type.")]
    priority: Annotated[str, Meta(description="Its priority (policies/contact-pressure.toml).")]
    rank: Annotated[int, Meta(description="Its order within the priority: 1 is served first.")]
    state: Annotated[Literal["draft", "booked"], Meta(description="Planned (draft) or booked.")]
    window_start: Annotated[str, Meta(description="When sending may start.")]
    window_end: Annotated[str, Meta(description="When sending must end.")]
    audience: MaskedCount
    reachable: MaskedCount
    blocked_by_basket: MaskedCount
    blocked_by_preferences: MaskedCount
    blocked_by_quiet_hours: MaskedCount
    missing_basis: MaskedCount
    hidden_reason: HiddenReason = None


class CalendarWeekOut(Struct):
    """One ISO week: the campaigns sending in it, how many brands, and the overlap."""

    week: Annotated[str, Meta(description="The ISO week, e.g. `2026-W48`.")]
    monday: Annotated[str, Meta(description="The week's Monday (a date).")]
    campaigns: Annotated[
        list[str], Meta(description="Ids of the campaigns whose window touches the week.")
    ]
    brands: Annotated[int, Meta(description="How many brands send in the week.")]
    overlap: MaskedCount


class CalendarHoldOut(Struct):
    """A planned campaign a calamity campaign's cool-down would hold."""

    calamity: Annotated[str, Meta(description="The calamity campaign's id.")]
    calamity_name: Annotated[str, Meta(description="The calamity campaign's name.")]
    held: Annotated[str, Meta(description="The id of the campaign its cool-down would hold.")]
    held_name: Annotated[str, Meta(description="That campaign's name.")]
    members: MaskedCount


class CalendarOut(Struct):
    """A basket month's planned and booked campaigns by ISO week."""

    month: Annotated[str, Meta(description="The basket month (YYYY-MM).")]
    campaigns: Annotated[
        list[CalendarCampaignOut], Meta(description="The month's drafts and booked campaigns.")
    ]
    weeks: Annotated[list[CalendarWeekOut], Meta(description="The ISO weeks, in order.")]
    holds: Annotated[
        list[CalendarHoldOut], Meta(description="What calamity campaigns' cool-downs would hold.")
    ]
    min_count: Annotated[int, Meta(description="k: the smallest count shown as a number.")]


class TouchpointCountsOut(Struct):
    """What happened at one touchpoint in the period. Each count is the number of events,
    shown only when at least k customers are behind it ("< k" otherwise) and no month of
    the period is thin ("hidden")."""

    consents_given: MaskedCount
    withdrawals: Annotated[
        MaskedCount, Meta(description="Consents given here and withdrawn in the period.")
    ]
    objections: Annotated[
        MaskedCount,
        Meta(description="Customers who objected to marketing after giving a consent here."),
    ]
    contacts_made: Annotated[MaskedCount, Meta(description="Outbound contacts recorded here.")]
    contacts_inbound: Annotated[
        MaskedCount, Meta(description="Contacts the customer started here (calls, replies).")
    ]
    followups_kept: MaskedCount
    followups_missed: MaskedCount
    complaint_followups: Annotated[
        MaskedCount,
        Meta(
            description="Follow-ups agreed here about a complaint: the one complaint signal "
            "the vault records (it records no complaints of its own)."
        ),
    ]


class TouchpointRowOut(Struct):
    """One touchpoint of the register with its register fields and its counts."""

    touchpoint: Annotated[
        str,
        Meta(
            description="The touchpoint's id; `none`: records without one; `unregistered`: "
            "ids the register does not hold."
        ),
    ]
    name_de: Annotated[str | None, Meta(description="Its name in German.")]
    name_en: Annotated[str | None, Meta(description="Its name in English.")]
    importance: Annotated[str | None, Meta(description="high, medium or low.")]
    status: Annotated[str | None, Meta(description="active, planned or retired.")]
    owner: Annotated[str | None, Meta(description="The team that answers for it.")]
    kind: Annotated[
        Literal["direct", "indirect"] | None,
        Meta(description="direct (our own contact) or indirect (reviews, recommendations)."),
    ]
    channel: Annotated[str | None, Meta(description="Its channel in the register.")]
    experience_de: Annotated[str | None, Meta(description="The intended experience, German.")]
    experience_en: Annotated[str | None, Meta(description="The intended experience, English.")]
    counts: TouchpointCountsOut


class TouchpointGroupOut(Struct):
    """The direct or indirect touchpoints, or (`other`) records outside the register."""

    kind: Annotated[Literal["direct", "indirect", "other"], Meta(description="The group.")]
    touchpoints: Annotated[list[TouchpointRowOut], Meta(description="Its touchpoints.")]


class TouchpointReportOut(Struct):
    """Per touchpoint of the register, what happened there over a period of basket months."""

    month: Annotated[str, Meta(description="The period's last basket month (YYYY-MM).")]
    first_month: Annotated[str, Meta(description="The period's first basket month (YYYY-MM).")]
    months: Annotated[int, Meta(description="How many basket months the period spans.")]
    groups: Annotated[list[TouchpointGroupOut], Meta(description="Direct, indirect, other.")]
    min_count: Annotated[int, Meta(description="k: the smallest count shown as a number.")]
