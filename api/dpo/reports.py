"""The console's planning reports (issue 21 items 4 and 7) for marketers and the DPO:
basket use and missed chances, a what-if replay under changed rules, opt-out attribution
(`/dpo/reports`), and the touchpoint report (`/dpo/reports/touchpoints`).

The same vault functions as `/v1/reports/...` (so every read is audited the same way, for
the signed-in reader), the same masking: every count below k is shown as "< k", a count
whose showing would reveal a smaller group by subtraction as "hidden"
(`vault.campaigns.masking`). All are GET forms (nothing changes); the what-if replays only
when asked (`whatif=1`), since it reads the whole month.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from api.campaigns.reports import basket_use_out, opt_outs_out, touchpoints_out, what_if_out
from api.deps import Vault
from api.dpo.pages import DpoPages, dpo_actor, page
from api.dpo.session import PLANNING, require_session
from api.i18n import TEXTS, pick_language
from vault.campaigns import opt_out_events, reports, touchpoint_report, whatif
from vault.campaigns.masking import HIDDEN
from vault.errors import InvalidInput

_TEXT_LIMIT = 100


def _int(params: Any, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput("bad number", {name: f"must be a whole number from {low} to {high}"})
    return int(raw)


def _float(params: Any, name: str) -> float | None:
    raw = (params.get(name) or "").strip().replace(",", ".")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput("bad number", {name: "must be a number"}) from None
    if not 0 <= value <= 100:  # noqa: PLR2004 - the API's bound on a channel factor
        raise InvalidInput("bad number", {name: "must be 0 to 100"})
    return value


def _text(params: Any, name: str) -> str | None:
    raw = (params.get(name) or "").strip()
    return raw[:_TEXT_LIMIT] or None


class DpoReportPages(DpoPages):
    """The planning reports in one page."""

    @get("/reports", operation_id="dpoReports")
    async def reports_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault, PLANNING)
        lang = pick_language(request)
        t = TEXTS[lang]
        rules = vault.pressure_rules
        q = request.query_params
        month = _text(q, "month") or rules.month_of(vault.clock.now())
        actor = dpo_actor(request, session)
        months = _int(q, "months", 3, 1, reports.MAX_MONTHS) or 3
        use = await reports.basket_use(vault, actor, month, months=months)
        filters = reports.OptOutFilters(
            brand=_text(q, "brand"), type=_text(q, "type"), channel=_text(q, "channel"),
            touchpoint=_text(q, "touchpoint"),
        )  # fmt: skip
        days = _int(q, "days", 30, 1, max(opt_out_events.DAYS)) or 30
        outs = await reports.opt_outs(vault, actor, month, days=days, filters=filters)
        changes = whatif.RuleChanges(
            points={
                k: v
                for k in rules.points
                if (v := _int(q, f"points_{k}", None, 0, 1000)) is not None
            },
            channel_factors={
                k: f for k in rules.channel_factors if (f := _float(q, f"factor_{k}")) is not None
            },
            basket_points=_int(q, "basket_points", None, 1, 1000),
            service_reserve_points=_int(q, "service_reserve_points", None, 1, 1000),
            overdraft_points={
                k: v
                for k in rules.priorities
                if (v := _int(q, f"overdraft_{k}", None, 0, 1000)) is not None
            },
        )
        replay = None
        if q.get("whatif") == "1":
            replay = what_if_out(vault, await whatif.what_if(vault, actor, month, changes))
        k = rules.report_min_count
        return page(
            request,
            "dpo_reports.html",
            "dpo_reports_heading",
            count=_count_text(t),
            session=session,
            section="reports",
            month=month,
            months=months,
            days=days,
            day_choices=opt_out_events.DAYS,
            filters=filters,
            changes=changes,
            rules=rules,
            use=basket_use_out(vault, use),
            outs=opt_outs_out(vault, outs),
            replay=replay,
            intro=t["dpo_reports_intro"].format(month=month, k=k),
            missed=t["dpo_reports_missed"].format(months=months),
        )

    @get("/reports/touchpoints", operation_id="dpoTouchpointReport")
    async def touchpoints_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault, PLANNING)
        lang = pick_language(request)
        t = TEXTS[lang]
        rules = vault.pressure_rules
        q = request.query_params
        month = _text(q, "month") or rules.month_of(vault.clock.now())
        months = _int(q, "months", 1, 1, touchpoint_report.MAX_MONTHS) or 1
        r = await touchpoint_report.touchpoint_report(
            vault, dpo_actor(request, session), month, months=months
        )
        view = touchpoints_out(vault, r)
        return page(
            request,
            "dpo_touchpoints.html",
            "dpo_tp_heading",
            session=session,
            section="reports",
            month=month,
            months=months,
            view=view,
            measures=touchpoint_report.MEASURES,
            count=_count_text(t),
            intro=t["dpo_tp_intro"].format(
                first=view.first_month, month=month, k=rules.report_min_count
            ),
        )


def _count_text(t: Any) -> Any:
    """How a page shows a masked count: as it is ("< k", a number), or "hidden" in words."""
    return lambda value: t["dpo_reports_hidden"] if value == HIDDEN else value
