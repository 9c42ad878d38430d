"""Planning reports for marketers and the DPO (issue 21 items 4 and 7): basket use and
missed chances, what-if replays under changed rules, opt-out attribution, the touchpoint
report.

Counts only, each below k (`report_min_count`) shown as "< k", those whose showing would
let two answers be subtracted down to fewer than k customers as "hidden"
(`vault.campaigns.masking`), and every read audited (`vault.campaigns.reports`,
`vault.campaigns.whatif`, `vault.campaigns.touchpoint_report`).
"""

from __future__ import annotations

from typing import Any, Literal

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
    TouchpointCountsOut,
    TouchpointGroupOut,
    TouchpointReportOut,
    TouchpointRowOut,
    WhatIfCellOut,
    WhatIfIn,
    WhatIfOut,
)
from api.deps import Vault
from api.openapi_docs import AUTHED, problems
from api.query_params import query, reject_unknown_query
from api.schemas import ContactChannel, ContactType
from vault.admin.clients import Role
from vault.campaigns import calendar, reports, touchpoint_report, whatif
from vault.campaigns import forecast as forecasting
from vault.campaigns.masking import complementary, masked, period_count, shown
from vault.context import VaultContext
from vault.errors import InvalidInput

READERS = (Role.MARKETING, Role.DPO)
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
WORD = r"^[a-z][a-z0-9_]*$"
#: The `month` query parameter of every report read by month.
MONTH_QUERY = Parameter(
    required=False, pattern=MONTH, max_length=7, description="basket month, YYYY-MM"
)
#: The windows of the opt-out report (`vault.campaigns.opt_out_events.DAYS`).
Days = Literal[7, 14, 30, 60, 90, 180, 365]


def month_or_now(vault: VaultContext, month: str | None) -> str:
    return month or vault.pressure_rules.month_of(vault.clock.now())


def reader(request: Request[Any, Any, Any], vault: VaultContext, month: str | None) -> Any:
    """The reader to audit and the basket month asked for (default: the current one):
    what every report route starts with."""
    return actor_of(request), month_or_now(vault, month)


def touchpoints_out(
    vault: VaultContext, r: touchpoint_report.TouchpointReport
) -> TouchpointReportOut:
    k = vault.pressure_rules.report_min_count
    groups: dict[str, list[TouchpointRowOut]] = {"direct": [], "indirect": [], "other": []}
    for row in r.rows:
        tp = row.touchpoint
        counts = TouchpointCountsOut(
            **{
                m: period_count(row.period[m], row.monthly[m], k)
                for m in touchpoint_report.MEASURES
            }
        )
        groups[tp.kind if tp else "other"].append(
            TouchpointRowOut(
                touchpoint=row.key,
                name_de=tp.name_de if tp else None,
                name_en=tp.name_en if tp else None,
                importance=tp.importance if tp else None,
                status=tp.status if tp else None,
                owner=tp.owner if tp else None,
                kind=tp.kind if tp else None,  # type: ignore[arg-type]
                channel=tp.channel if tp else None,
                experience_de=tp.experience_de if tp else None,
                experience_en=tp.experience_en if tp else None,
                counts=counts,
            )  # fmt: skip
        )
    return TouchpointReportOut(
        month=r.month, first_month=r.first_month, months=r.months, min_count=k,
        groups=[TouchpointGroupOut(kind, rows) for kind, rows in groups.items() if rows],  # type: ignore[arg-type]
    )  # fmt: skip


def basket_use_out(vault: VaultContext, r: reports.BasketUse) -> BasketUseOut:
    k = vault.pressure_rules.report_min_count
    bands = [
        BandOut(band, shown(n, k, band in r.hidden_bands))  # type: ignore[arg-type]
        for band, n in r.bands.items()
    ]
    return BasketUseOut(
        month=r.month, basket=r.basket, months=r.months, purpose=r.purpose,
        customers=masked(r.customers, k), bands=bands,
        missed=shown(r.missed, k, r.missed_hidden), min_count=k,
    )  # fmt: skip


def opt_outs_out(vault: VaultContext, r: reports.OptOuts) -> OptOutsOut:
    k = vault.pressure_rules.report_min_count

    def cell(row: reports.OptOutRow, column: str) -> int | str:
        n = row.contacted if column == "contacted" else row.opted_out[column]
        return shown(n, k, (row.dimension, row.value, column) in r.hidden)

    rows = [
        OptOutRowOut(
            dimension=row.dimension,  # type: ignore[arg-type]
            value=row.value,
            contacted=cell(row, "contacted"),
            withdrawals=cell(row, "withdrawal"),
            objections=cell(row, "objection"),
            erasures=cell(row, "erasure"),
        )  # fmt: skip
        for row in r.rows
    ]
    return OptOutsOut(month=r.month, days=r.days, rows=rows, min_count=k)


def what_if_out(vault: VaultContext, r: whatif.WhatIf) -> WhatIfOut:
    k = vault.pressure_rules.report_min_count
    # Per cell, today's pair and the what-if pair each add up to the cell's contacts, and
    # the cells to the month's: rule 2 within each pair (a count masked when fewer than k
    # customers are behind it), and the month's total hidden when any cell count is not
    # shown.
    hidden: set[tuple[int, int]] = set()
    thin: set[tuple[int, int]] = set()
    for i, c in enumerate(r.cells):
        values = (c.now_allowed, c.now_blocked, c.whatif_allowed, c.whatif_blocked)
        for pair in ((0, 1), (2, 3)):
            counts = {(i, j): values[j] for j in pair}
            below = {key for key in counts if c.customers[key[1]] < k or counts[key] < k}
            thin |= below
            hidden |= complementary(counts, k, below)
        if 0 < c.flipped < k:
            hidden |= {(i, 2), (i, 3)}

    def cell(i: int, j: int) -> int | str:
        c = r.cells[i]
        n = (c.now_allowed, c.now_blocked, c.whatif_allowed, c.whatif_blocked)[j]
        return f"< {k}" if c.customers[j] < k else shown(n, k, (i, j) in hidden)

    cells = [
        WhatIfCellOut(
            brand=c.brand,
            type=c.type,
            now_allowed=cell(i, 0),
            now_blocked=cell(i, 1),
            whatif_allowed=cell(i, 2),
            whatif_blocked=cell(i, 3),
        )  # fmt: skip
        for i, c in enumerate(r.cells)
    ]
    contacts = shown(r.contacts, k, bool(hidden or thin))
    return WhatIfOut(month=r.month, contacts=contacts, cells=cells, min_count=k)


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
                **forecasting.cells(f, k),
                hidden_reason="near_audience" if f.near_audience else None,
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
            'as "< k"; a band beside a masked one, or a missed count that differs from '
            'another `months` or no `purpose` by fewer than k, as "hidden". Audited.'
        ),
        opt=query("month", "months", "purpose"),
        responses=problems(*AUTHED, 422),
    )
    async def basket_use(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        month: str | None = MONTH_QUERY,
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
        actor, the_month = reader(request, vault, month)
        r = await reports.basket_use(vault, actor, the_month, months=months, purpose=purpose)
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
            'shown as "< k"; a count that differs by fewer than k from the same cell with '
            "fewer filters or another window, or that would give away a masked cell of its "
            'grouping, as "hidden". Audited.'
        ),
        opt=query("month", "days", "brand", "type", "channel", "touchpoint"),
        responses=problems(*AUTHED, 422),
    )
    async def opt_outs(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        month: str | None = MONTH_QUERY,
        days: Days = Parameter(
            required=False,
            default=30,
            description="how many days after a contact an opt-out counts (a fixed set, so "
            "that no two answers differ by the opt-outs of a day)",
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
        actor, the_month = reader(request, vault, month)
        filters = reports.OptOutFilters(brand, type, channel, touchpoint)
        r = await reports.opt_outs(vault, actor, the_month, days=days, filters=filters)
        return opt_outs_out(vault, r)

    @get(
        "/touchpoints",
        operation_id="touchpointReport",
        summary="Per touchpoint: consents, contacts, follow-ups, withdrawals, objections",
        description=(
            "For the `months` basket months up to `month` (default: the current one), per "
            "touchpoint of the register (direct, then indirect, then records outside it) "
            "with its importance, status, owner, kind and intended experience: consents "
            "given there, withdrawals and objections of customers who gave a consent there, "
            "contacts made and received there, follow-ups agreed there kept and missed, and "
            "follow-ups about a complaint. Each count is shown only when at least k "
            'customers are behind it ("< k") and no month of the period is thin '
            '("hidden"). Audited.'
        ),
        opt=query("month", "months"),
        responses=problems(*AUTHED, 422),
    )
    async def touchpoints(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        month: str | None = MONTH_QUERY,
        months: int = Parameter(
            required=False,
            default=1,
            ge=1,
            le=touchpoint_report.MAX_MONTHS,
            description="how many basket months up to `month` the period spans",
        ),  # fmt: skip
    ) -> TouchpointReportOut:
        actor, the_month = reader(request, vault, month)
        r = await touchpoint_report.touchpoint_report(vault, actor, the_month, months=months)
        return touchpoints_out(vault, r)

    @post(
        "/what-if",
        operation_id="whatIfReport",
        summary="Replay a month's contacts under changed rules: allowed and blocked, now and then",
        description=(
            "Replays the basket month's outbound contacts in the order they were made "
            "through the rules in force and through the rules with the changes (points per "
            "type, factors per channel, basket size, service reserve, overdraft per "
            "priority); contacts per brand and type, shown when at least k customers are "
            'behind them ("< k" otherwise), "hidden" where fewer than k customers change '
            "outcome or a shown count would give a masked one away. Nothing "
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
