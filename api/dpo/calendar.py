"""The console's campaign calendar (issue 21 item 3) for marketers and the DPO: a basket
month's planned and booked campaigns by ISO week across brands and channels, each with its
forecast, the week's overlap (customers in audiences of three or more brands) and what a
calamity campaign's cool-down holds (once booked: "held by" on the held campaign's row) or
would hold (a draft). Counts below k are shown as "< k", those that would give one away by
subtraction as "hidden", with the reason when a whole forecast is hidden; the reads are
audited by `vault.campaigns.calendar` for the signed-in reader."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from api.campaigns.reports import calendar_out
from api.deps import Vault
from api.dpo.pages import DpoPages, dpo_actor, page
from api.dpo.session import PLANNING, require_session
from api.i18n import TEXTS, pick_language, text_for
from vault.campaigns import calendar
from vault.campaigns.masking import HIDDEN
from vault.campaigns.records import CampaignState


class DpoCalendarPages(DpoPages):
    """The campaign calendar."""

    @get("/calendar", operation_id="dpoCalendar")
    async def calendar_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault, PLANNING)
        lang = pick_language(request)
        t = TEXTS[lang]
        rules = vault.pressure_rules
        month = (request.query_params.get("month") or "").strip()[:7] or rules.month_of(
            vault.clock.now()
        )
        view = calendar_out(
            vault, await calendar.calendar(vault, dpo_actor(request, session), month)
        )
        by_id = {c.id: c for c in view.campaigns}
        states = {c.id: text_for(lang, "dpo_campaign_state_", c.state) for c in view.campaigns}
        # A hold is in force once its calamity campaign is booked; a draft would hold.
        in_force = {c.id for c in view.campaigns if c.state == CampaignState.BOOKED}
        held_by: dict[str, list[Any]] = {}
        for h in view.holds:
            if h.calamity in in_force:
                held_by.setdefault(h.held, []).append(h)
        return page(
            request,
            "dpo_calendar.html",
            "dpo_calendar_heading",
            session=session,
            section="calendar",
            month=month,
            view=view,
            by_id=by_id,
            states=states,
            in_force=in_force,
            held_by=held_by,
            intro=t["dpo_calendar_intro"].format(month=month, k=rules.report_min_count),
            near_text=t["dpo_campaigns_near_audience"].format(k=rules.report_min_count),
            count=lambda value: t["dpo_reports_hidden"] if value == HIDDEN else value,
        )
