"""Planning reports for marketers and the DPO (issue 21 item 4): basket use and missed
chances, what-if replays under changed rules, opt-out attribution.

Counts only, each below k (`report_min_count`) shown as "< k", and every read audited
(`vault.campaigns.reports`, `vault.campaigns.whatif`). The opt-out report's filters can
narrow a group down to one customer, whose count is then shown as "< k" like any other.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import JSONBody, Parameter

from api.auth import actor_of, roles
from api.campaigns.report_schemas import (
    BandOut,
    BasketUseOut,
    CalendarCampaignOut,
    CalendarHoldOut,
    CalendarOut,
    CalendarWeekOut,
    OptOutRowOut,
    OptOutsOut,
    RuleChangesIn,
    WhatIfCellOut,
    WhatIfIn,
    WhatIfOut,
)
from api.deps import Vault
from api.openapi_docs import AUTHED, problems
from api.query_params import query, reject_unknown_query
from api.schemas import ContactChannel, ContactType
from vault.admin.clients import Role
from vault.campaigns import calendar, reports, whatif
from vault.campaigns.masking import masked
from vault.context import VaultContext
from vault.errors import InvalidInput

READERS = (Role.MARKETING, Role.DPO)
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
WORD = r"^[a-z][a-z0-9_]*$"


def month_or_now(vault: VaultContext, month: str | None) -> str:
    return month or vault.pressure_rules.month_of(vault.clock.now())


def basket_use_out(vault: VaultContext, r: reports.BasketUse) -> BasketUseOut:
    k = vault.pressure_rules.report_min_count
    return BasketUseOut(
        month=r.month, basket=r.basket, months=r.months, purpose=r.purpose,
        customers=masked(r.customers, k),
        bands=[BandOut(band, masked(n, k)) for band, n in r.bands.items()],  # type: ignore[arg-type]
        missed=masked(r.missed, k), min_count=k,
    )  # fmt: skip


def opt_outs_out(vault: VaultContext, r: reports.OptOuts) -> OptOutsOut:
    k = vault.pressure_rules.report_min_count
    rows = [
        OptOutRowOut(
            dimension=row.dimension,  # type: ignore[arg-type]
            value=row.value,
            contacted=masked(row.contacted, k),
            withdrawals=masked(row.opted_out["withdrawal"], k),
            objections=masked(row.opted_out["objection"], k),
            erasures=masked(row.opted_out["erasure"], k),
        )  # fmt: skip
        for row in r.rows
    ]
    return OptOutsOut(month=r.month, days=r.days, rows=rows, min_count=k)


def what_if_out(vault: VaultContext, r: whatif.WhatIf) -> WhatIfOut:
    k = vault.pressure_rules.report_min_count
    cells = [
        WhatIfCellOut(
            brand=c.brand,
            type=c.type,
            now_allowed=masked(c.now_allowed, k),
            now_blocked=masked(c.now_blocked, k),
            whatif_allowed=masked(c.whatif_allowed, k),
            whatif_blocked=masked(c.whatif_blocked, k),
        )  # fmt: skip
        for c in r.cells
    ]
    return WhatIfOut(month=r.month, contacts=masked(r.contacts, k), cells=cells, min_count=k)


def calendar_out(vault: VaultContext, cal: calendar.Calendar) -> CalendarOut:
    k = vault.pressure_rules.report_min_count
    camps = []
    for entry in cal.entries.values():
        c, f = entry.campaign, entry.forecast
        camps.append(
            CalendarCampaignOut(
                id=c.id,
                name=c.name,
                brand=c.brand,
                channel=c.channel,
                type=c.type,
                priority=c.priority,
                rank=c.rank,
                state=c.state,  # type: ignore[arg-type]
                window_start=c.window_start.isoformat(),
                window_end=c.window_end.isoformat(),
                audience=masked(f.audience, k),
                reachable=masked(f.reachable, k),
                blocked_by_basket=masked(f.blocked_by_basket, k),
                blocked_by_preferences=masked(f.blocked_by_preferences, k),
                blocked_by_quiet_hours=masked(f.blocked_by_quiet_hours, k),
                missing_basis=masked(f.missing_basis, k),
            )  # fmt: skip
        )
    weeks = [
        CalendarWeekOut(
            week=w.week,
            monday=w.monday.isoformat(),
            campaigns=list(w.campaign_ids),
            brands=w.brands,
            overlap=masked(w.overlap, k),
        )  # fmt: skip
        for w in cal.weeks
    ]
    holds = [
        CalendarHoldOut(
            calamity=h.calamity.id,
            calamity_name=h.calamity.name,
            held=h.held.id,
            held_name=h.held.name,
            members=masked(h.members, k),
        )  # fmt: skip
        for h in cal.holds
    ]
    return CalendarOut(month=cal.month, campaigns=camps, weeks=weeks, holds=holds, min_count=k)


def _given(struct: Any) -> dict[str, Any]:
    """The fields of a changes Struct that were given (None: as the rules are)."""
    if struct is None:
        return {}
    return {f: v for f in struct.__struct_fields__ if (v := getattr(struct, f)) is not None}


def rule_changes(vault: VaultContext, rules: RuleChangesIn) -> whatif.RuleChanges:
    """The body's changes for the replay; a priority the rules do not have is a 422 naming
    its entry by JSON pointer."""
    errors = {
        f"/rules/overdraft/{i}/priority": "is not a priority of the rules"
        for i, o in enumerate(rules.overdraft)
        if o.priority not in vault.pressure_rules.priorities
    }
    if errors:
        raise InvalidInput("unknown priority", errors)
    return whatif.RuleChanges(
        points=_given(rules.points), channel_factors=_given(rules.channel_factors),
        basket_points=rules.basket_points, service_reserve_points=rules.service_reserve_points,
        overdraft_points={o.priority: o.points for o in rules.overdraft},
    )  # fmt: skip


class PlanningReportController(Controller):
    path = "/v1/reports"
    tags = ["campaigns"]
    opt = roles(*READERS)
    before_request = staticmethod(reject_unknown_query)

    @get(
        "/basket-use",
        operation_id="basketUseReport",
        summary="Over- and under-contacted customers: basket use in bands, missed chances",
        description=(
            "For one basket month (default: the current one): the active customers by how "
            "much of the basket they used, and how many with a live basis (for `purpose`, "
            "or any) had no contact in the last `months` months. Counts below k are shown "
            'as "< k". Audited.'
        ),
        opt=query("month", "months", "purpose"),
        responses=problems(*AUTHED, 422),
    )
    async def basket_use(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        month: str | None = Parameter(
            required=False, pattern=MONTH, max_length=7, description="basket month, YYYY-MM"
        ),
        months: int = Parameter(
            required=False,
            default=3,
            ge=1,
            le=reports.MAX_MONTHS,
            description="how many basket months up to `month` count for missed chances",
        ),  # fmt: skip
        purpose: str | None = Parameter(
            required=False,
            min_length=1,
            max_length=100,
            description="count missed chances only for a basis for this purpose",
        ),  # fmt: skip
    ) -> BasketUseOut:
        r = await reports.basket_use(
            vault, actor_of(request), month_or_now(vault, month), months=months, purpose=purpose
        )
        return basket_use_out(vault, r)

    @get(
        "/opt-outs",
        operation_id="optOutReport",
        summary="Opt-outs within N days after a contact, by brand, type, channel, touchpoint",
        description=(
            "Customers contacted in one basket month (default: the current one), and of "
            "them those who withdrew a consent, objected to marketing or were erased within "
            "`days` days after such a contact, by brand, type, channel, touchpoint and by "
            "how full their basket was. Filters narrow the contacts; counts below k are "
            'shown as "< k". Audited.'
        ),
        opt=query("month", "days", "brand", "type", "channel", "touchpoint"),
        responses=problems(*AUTHED, 422),
    )
    async def opt_outs(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        month: str | None = Parameter(
            required=False, pattern=MONTH, max_length=7, description="basket month, YYYY-MM"
        ),
        days: int = Parameter(
            required=False,
            default=30,
            ge=1,
            le=reports.MAX_DAYS,
            description="how many days after a contact an opt-out counts",
        ),  # fmt: skip
        brand: str | None = Parameter(
            required=False, pattern=WORD, max_length=64, description="only this brand"
        ),
        type: ContactType | None = Parameter(
            required=False, description="only this communication type"
        ),
        channel: ContactChannel | None = Parameter(required=False, description="only this channel"),
        touchpoint: str | None = Parameter(
            required=False, min_length=1, max_length=100, description="only this touchpoint"
        ),
    ) -> OptOutsOut:
        filters = reports.OptOutFilters(brand, type, channel, touchpoint)
        r = await reports.opt_outs(
            vault, actor_of(request), month_or_now(vault, month), days=days, filters=filters
        )
        return opt_outs_out(vault, r)

    @post(
        "/what-if",
        operation_id="whatIfReport",
        summary="Replay a month's contacts under changed rules: allowed and blocked, now and then",
        description=(
            "Replays the basket month's outbound contacts in the order they were made "
            "through the rules in force and through the rules with the changes (points per "
            "type, factors per channel, basket size, service reserve, overdraft per "
            'priority); counts per brand and type, below k shown as "< k". Nothing '
            "changes. Audited. A priority the rules do not have is a 422; a month the "
            "calendar cannot hold replays nothing."
        ),
        status_code=200,
        opt=query(),
        responses=problems(*AUTHED, 413, 422),
    )
    async def what_if(
        self, request: Request[Any, Any, Any], data: JSONBody[WhatIfIn], vault: Vault
    ) -> WhatIfOut:
        changes = rule_changes(vault, data.rules)
        r = await whatif.what_if(vault, actor_of(request), data.month, changes)
        return what_if_out(vault, r)
