"""The console's campaign plan: a month's campaigns in arbitration order with their
forecasts and the calamity campaigns holding them, counts below k shown as "< k" and those
that would give one away by subtraction as "hidden" (`vault.campaigns.forecast.cells`;
issue 21), and the marketer's planning: a form that plans a campaign for everyone with a basis
(a marketer plans on segments, never on chosen customers) and a button that books a
draft. Both post through the CSRF check and answer 303 back to the plan
(post/redirect/get); a booking that would displace others is refused with the counts
until it is confirmed."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.response import Redirect, Template

from api.deps import Vault
from api.dpo.pages import DpoPages, dpo_actor, form_text, page, parse_local
from api.dpo.session import PLANNING, require_session
from api.i18n import N_, TEXTS, pick_language, text_for
from api.schemas import Uuid
from vault.campaigns import booking, forecast, holds, records
from vault.campaigns.masking import HIDDEN, masked, shown
from vault.errors import InvalidInput

_MONTH_LEN = 7
#: `?done=` notices of the plan.
DONE = {"planned": N_("dpo_campaigns_done_planned"), "booked": N_("dpo_campaigns_done_booked")}


class DpoCampaignPages(DpoPages):
    """Planned and booked campaigns."""

    @get("/campaigns", operation_id="dpoCampaigns")
    async def campaigns_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        """The campaigns of a basket month (default: the current one), served-first first,
        each with its forecast; every forecast read is audited for the signed-in reader."""
        session = await require_session(request, vault, PLANNING)
        month = request.query_params.get("month") or vault.pressure_rules.month_of(
            vault.clock.now()
        )
        if len(month) != _MONTH_LEN or vault.pressure_rules.month_bounds(month) is None:
            raise InvalidInput("bad month", {"month": "YYYY-MM"})
        done = DONE.get(request.query_params.get("done") or "")
        return await self._plan(request, vault, session, month, done=done)

    async def _plan(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        session: Any,
        month: str,
        *,
        done: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Template:
        lang = pick_language(request)
        t = TEXTS[lang]
        k = vault.pressure_rules.report_min_count
        actor = dpo_actor(request, session)
        rows = []
        camps = await records.list_campaigns(vault, month=month)
        held_by = await holds.held_by_all(vault, camps)
        for camp in camps:
            _, f = await forecast.forecast(vault, actor, camp.id)
            rows.append(
                {
                    "campaign": camp,
                    "state": text_for(lang, "dpo_campaign_state_", camp.state),
                    "held_by": [
                        {"calamity": h.calamity, "members": masked(h.members, k)}
                        for h in held_by[camp.id]
                    ],
                    "counts": [_said(t, n) for n in forecast.cells(f, k).values()],
                    "near": f.near_audience,
                }
            )
        rules = vault.pressure_rules
        return page(
            request,
            "dpo_campaigns.html",
            "dpo_campaigns_heading",
            session=session,
            section="campaigns",
            status=status,
            rows=rows,
            month=month,
            brands=list(rules.brands),
            priorities=list(rules.priorities),
            purposes=list(vault.catalogue.purposes),
            notice=t[done] if done else None,
            error=error,
            intro=t["dpo_campaigns_intro"].format(month=month, k=k),
            near_text=t["dpo_campaigns_near_audience"].format(k=k),
        )

    @post("/campaigns", operation_id="dpoPlanCampaign", status_code=303)
    async def plan(self, request: Request[Any, Any, Any], vault: Vault) -> Redirect:
        """Plan a draft for everyone with a basis for the purpose, owned by the reader."""
        session = await require_session(request, vault, PLANNING)
        form = await request.form()
        start = parse_local(form_text(form.get("window_start"), 40), "window_start")
        end = parse_local(form_text(form.get("window_end"), 40), "window_end")
        if start is None or end is None:
            raise InvalidInput(
                "a send window", {"window_start": "required", "window_end": "required"}
            )
        rank = form_text(form.get("rank"), 4) or "1"
        if not rank.isdigit() or not 1 <= int(rank) <= 9999:  # noqa: PLR2004 - the API's bounds
            raise InvalidInput("bad rank", {"rank": "must be a whole number from 1 to 9999"})
        draft = records.CampaignDraft(
            name=form_text(form.get("name"), 200), brand=form_text(form.get("brand"), 64),
            purpose=form_text(form.get("purpose"), 100), window_start=start, window_end=end,
            channel=form_text(form.get("channel"), 16) or None,
            priority=form_text(form.get("priority"), 32) or "normal", rank=int(rank),
            audience_kind=records.AudienceKind.BASIS,
        )  # fmt: skip
        if not draft.name:
            raise InvalidInput("a name", {"name": "required"})
        camp = await records.create(vault, dpo_actor(request, session), frozenset(), draft)
        return _back(request, "planned", camp.month)

    @post("/campaigns/{campaign_id:str}/book", operation_id="dpoBookCampaign", status_code=303)
    async def book(
        self, request: Request[Any, Any, Any], vault: Vault, campaign_id: Uuid
    ) -> Redirect | Template:
        """Book a draft; a displacement is told (with counts) and needs the confirmation."""
        session = await require_session(request, vault, PLANNING)
        form = await request.form()
        camp = await records.get(vault, campaign_id)
        try:
            await booking.book(
                vault, dpo_actor(request, session), campaign_id,
                confirm_displacement=form.get("confirm") == "1",
            )  # fmt: skip
        except booking.DisplacementNotConfirmed as exc:
            t = TEXTS[pick_language(request)]
            k = vault.pressure_rules.report_min_count
            near = await forecast.audience_is_near(vault, campaign_id)
            told = ", ".join(
                f"{d.name}: {_said(t, shown(d.count, k, near))}" for d in exc.outcome.displaced
            )
            return await self._plan(
                request, vault, session, camp.month, status=409,
                error=t["dpo_campaigns_displaces"].format(displaced=told),
            )  # fmt: skip
        return _back(request, "booked", camp.month)


def _back(request: Request[Any, Any, Any], done: str, month: str) -> Redirect:
    query = {"lang": pick_language(request), "month": month, "done": done}
    return Redirect(path="/dpo/campaigns?" + urlencode(query), status_code=303)


def _said(t: Any, count: int | str) -> int | str:
    """A masked count as the page says it: `HIDDEN` in the page's language."""
    return t["dpo_reports_hidden"] if count == HIDDEN else count
