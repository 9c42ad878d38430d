"""The console's campaign plan: a month's campaigns in arbitration order with their
forecasts, counts below k shown as "< k" (issue 21)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from api.deps import Vault
from api.dpo.pages import DpoPages, dpo_actor, page
from api.dpo.session import PLANNING, require_session
from api.i18n import TEXTS, pick_language, text_for
from vault.campaigns import forecast, records
from vault.campaigns.masking import masked
from vault.errors import InvalidInput

_MONTH_LEN = 7


class DpoCampaignPages(DpoPages):
    """Planned and booked campaigns."""

    @get("/campaigns", operation_id="dpoCampaigns")
    async def campaigns_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        """The campaigns of a basket month (default: the current one), served-first first,
        each with its forecast; every forecast read is audited for the signed-in reader."""
        session = await require_session(request, vault, PLANNING)
        lang = pick_language(request)
        t = TEXTS[lang]
        month = request.query_params.get("month") or vault.pressure_rules.month_of(
            vault.clock.now()
        )
        if len(month) != _MONTH_LEN or vault.pressure_rules.month_bounds(month) is None:
            raise InvalidInput("bad month", {"month": "YYYY-MM"})
        k = vault.pressure_rules.report_min_count
        actor = dpo_actor(request, session)
        rows = []
        for camp in await records.list_campaigns(vault, month=month):
            _, f = await forecast.forecast(vault, actor, camp.id)
            rows.append(
                {
                    "campaign": camp,
                    "state": text_for(lang, "dpo_campaign_state_", camp.state),
                    "counts": [
                        masked(n, k)
                        for n in (
                            f.audience,
                            f.reachable,
                            f.blocked_by_basket,
                            f.blocked_by_preferences,
                            f.blocked_by_quiet_hours,
                            f.missing_basis,
                        )
                    ],  # fmt: skip
                }
            )
        return page(
            request,
            "dpo_campaigns.html",
            "dpo_campaigns_heading",
            session=session,
            section="campaigns",
            rows=rows,
            intro=t["dpo_campaigns_intro"].format(month=month, k=k),
        )
