"""Access and consent statistics as charts."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from api.deps import Vault
from api.dpo.charts import lines_svg, stacked_bars_svg
from api.dpo.pages import (
    DpoPages,
    axis_for,
    dpo_actor,
    form_text,
    local_value,
    page,
    parse_local,
    period_for,
)
from api.dpo.session import require_session
from api.i18n import TEXTS, format_number, pick_language
from vault.audit import stats as audit_stats
from vault.errors import InvalidInput


class DpoStatsPages(DpoPages):
    """Access and consent statistics."""

    @get("/stats", operation_id="dpoStats")
    async def stats_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault)
        lang = pick_language(request)
        t = TEXTS[lang]
        q = request.query_params
        requested = q.get("bucket")
        bucket = requested if requested is not None and requested in audit_stats.BUCKETS else "day"
        form = {
            "since": form_text(q.get("since"), 40),
            "until": form_text(q.get("until"), 40),
            "bucket": bucket,
        }
        actor = dpo_actor(request, session)
        error: str | None = None
        error_fields: list[tuple[str, str]] = []
        try:
            since = parse_local(form["since"], "since")
            until = parse_local(form["until"], "until")
            access = await audit_stats.access_stats(
                vault, actor, since=since, until=until, bucket=bucket
            )
        except InvalidInput as exc:
            error, error_fields = t["dpo_invalid_filter"], sorted(exc.errors.items())
            since = until = None
            access = await audit_stats.access_stats(vault, actor, bucket=bucket)
        consents_ = await audit_stats.consent_stats(
            vault, actor, since=access.since, until=access.until, bucket=bucket
        )
        period = period_for(lang, bucket)
        axis = axis_for(lang, bucket)
        labels = [axis(b.start) for b in access.series]
        access_chart = stacked_bars_svg(
            "access-chart",
            t["dpo_access_chart"],
            labels,
            [
                (t["dpo_col_allowed"], "#1d4ed8", [b.allowed for b in access.series]),
                (t["dpo_col_denied"], "#b91c1c", [b.denied for b in access.series]),
            ],
        )
        charts = []
        for i, p in enumerate(consents_.purposes, 1):
            purpose = vault.catalogue.get(p.purpose)
            title = purpose.title(lang) if purpose else p.purpose
            caption = t["dpo_consent_chart"].format(purpose=title)
            charts.append(
                {
                    "stats": p,
                    "title": title,
                    "caption": caption,
                    "chart": lines_svg(
                        f"consent-chart-{i}",
                        caption,
                        [axis(b.start) for b in p.series],
                        [
                            (t["dpo_granted"], "#166534", "", [b.granted for b in p.series]),
                            (t["dpo_withdrawn"], "#b91c1c", "6 3", [b.withdrawn for b in p.series]),
                            (t["dpo_expired"], "#6b7280", "2 3", [b.expired for b in p.series]),
                        ],
                    ),
                }
            )
        if not form["since"]:
            form["since"] = local_value(access.since)
        return page(
            request,
            "dpo_stats.html",
            "dpo_stats_heading",
            session=session,
            status=422 if error else 200,
            section="stats",
            form=form,
            access=access,
            access_total=t["dpo_access_total"].format(
                total=format_number(access.total, lang),
                allowed=format_number(access.allowed, lang),
                denied=format_number(access.denied, lang),
            ),
            access_chart=access_chart,
            consent_charts=charts,
            period=period,
            error=error,
            error_fields=error_fields,
        )
