"""Bodies of the planning reports (`/v1/reports/basket-use`, `/opt-outs`, `/what-if`) and
the calendar (`/v1/calendar`). Every count is a number, or "< k" below the policy's
`report_min_count`: no answer singles out a customer."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from api.campaigns.schemas import MaskedCount
from api.schemas import WordId

Month = Annotated[str, Meta(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", max_length=7)]
Points = Annotated[int, Meta(ge=0, le=1000)]
Factor = Annotated[float, Meta(ge=0, le=100)]


class BandOut(Struct):
    band: Literal["none", "under_half", "half_to_80", "near_full", "full"]
    customers: MaskedCount


class BasketUseOut(Struct):
    """The basket month's use over the active customers, in bands, and the missed chances."""

    month: str
    basket: float
    months: int
    purpose: str | None
    customers: MaskedCount
    bands: list[BandOut]
    missed: MaskedCount
    min_count: int


class OptOutRowOut(Struct):
    dimension: Literal["brand", "type", "channel", "touchpoint", "band"]
    value: str
    contacted: MaskedCount
    withdrawals: MaskedCount
    objections: MaskedCount
    erasures: MaskedCount


class OptOutsOut(Struct):
    """Customers who opted out within `days` days after a contact of the month, by group."""

    month: str
    days: int
    rows: list[OptOutRowOut]
    min_count: int


class RuleChangesIn(Struct, forbid_unknown_fields=True):
    """Changes to the rules in force; anything not named stays as it is. Keys must be the
    rules' own communication types, channels and priorities (else 422)."""

    points: dict[WordId, Points] = {}
    channel_factors: dict[WordId, Factor] = {}
    basket_points: Annotated[int, Meta(ge=1, le=1000)] | None = None
    service_reserve_points: Annotated[int, Meta(ge=1, le=1000)] | None = None
    overdraft_points: dict[WordId, Points] = {}


class WhatIfIn(Struct, forbid_unknown_fields=True):
    """The basket month to replay and the changed rules."""

    month: Month
    rules: RuleChangesIn


class WhatIfCellOut(Struct):
    brand: str
    type: str
    now_allowed: MaskedCount
    now_blocked: MaskedCount
    whatif_allowed: MaskedCount
    whatif_blocked: MaskedCount


class WhatIfOut(Struct):
    """Contacts of the month allowed and blocked per brand and type: now and what-if."""

    month: str
    contacts: MaskedCount
    cells: list[WhatIfCellOut]
    min_count: int


class CalendarCampaignOut(Struct):
    """A planned or booked campaign in the calendar, with its forecast."""

    id: str
    name: str
    brand: str
    channel: str
    type: str
    priority: str
    rank: int
    state: Literal["draft", "booked"]
    window_start: str
    window_end: str
    audience: MaskedCount
    reachable: MaskedCount
    blocked_by_basket: MaskedCount
    blocked_by_preferences: MaskedCount
    blocked_by_quiet_hours: MaskedCount
    missing_basis: MaskedCount


class CalendarWeekOut(Struct):
    """One ISO week: the campaigns sending in it, how many brands, and the overlap."""

    week: str
    monday: str
    campaigns: list[str]
    brands: int
    overlap: MaskedCount


class CalendarHoldOut(Struct):
    """A planned campaign a calamity campaign's cool-down would hold."""

    calamity: str
    calamity_name: str
    held: str
    held_name: str
    members: MaskedCount


class CalendarOut(Struct):
    """A basket month's planned and booked campaigns by ISO week."""

    month: str
    campaigns: list[CalendarCampaignOut]
    weeks: list[CalendarWeekOut]
    holds: list[CalendarHoldOut]
    min_count: int
