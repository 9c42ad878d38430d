"""Contact pressure and follow-ups."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from api.deps import Vault
from api.dpo.charts import stacked_bars_svg
from api.dpo.pages import DpoPages, dpo_actor, page
from api.dpo.session import require_session
from api.i18n import TEXTS, format_number, pick_language
from vault.outreach import followup_reads
from vault.outreach import report as pressure_report


class DpoOutreachPages(DpoPages):
    """Contact pressure and follow-ups."""

    @get("/contacts", operation_id="dpoContacts")
    async def contacts_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        """Contact pressure of a month: bars per touchpoint, phase, brand and channel, and
        how many customers are near or at their limit (aggregates only); the read is
        audited like the console's other pages (in the report's transaction)."""
        session = await require_session(request, vault)
        lang = pick_language(request)
        t = TEXTS[lang]
        month = request.query_params.get("month") or None
        report = await pressure_report.contact_report(  # InvalidInput: 422 page
            vault, dpo_actor(request, session), month
        )

        def touchpoint_label(key: str) -> str:
            tp = vault.touchpoints.get(key)
            return tp.name(lang) if tp else key

        def brand_label(key: str) -> str:
            brand = vault.pressure_rules.brands.get(key)
            return (brand.name_de if lang == "de" else brand.name_en) if brand else key

        sections = []
        for key, buckets, label in (
            ("touchpoint", report.by_touchpoint, touchpoint_label),
            ("phase", report.by_phase, str),
            ("brand", report.by_brand, brand_label),
            ("channel", report.by_channel, str),
        ):
            title = t[f"dpo_contacts_by_{key}"]
            labels = [label(b.key) for b in buckets]
            sections.append(
                {
                    "id": f"by-{key}",
                    "title": title,
                    "rows": list(zip(labels, buckets, strict=True)),
                    "chart": stacked_bars_svg(
                        f"by-{key}-chart",
                        title,
                        labels,
                        [(t["dpo_col_count"], "#1d4ed8", [b.contacts for b in buckets])],
                    ),
                }
            )
        below = report.customers_contacted - report.customers_near_limit - report.customers_at_limit
        limits = [
            (t["dpo_contacts_below"], below),
            (t["dpo_contacts_near"], report.customers_near_limit),
            (t["dpo_contacts_at"], report.customers_at_limit),
        ]
        fu_rows = [(touchpoint_label(b.key), b) for b in report.followups_by_touchpoint]
        followups_chart = stacked_bars_svg(
            "followups-chart",
            t["dpo_fu_by_touchpoint"],
            [label for label, _ in fu_rows],
            [
                (t["dpo_fu_kept"], "#166534", [b.kept for _, b in fu_rows]),
                (t["dpo_fu_missed"], "#b91c1c", [b.missed for _, b in fu_rows]),
                (t["dpo_fu_cancelled"], "#6b7280", [b.cancelled for _, b in fu_rows]),
            ],
        )
        prefs = report.preferences
        pref_rows = [
            (t[f"dpo_pref_reason_{reason}"], n)
            for reason, n in (prefs.denials_by_reason.items() if prefs else ())
        ]
        pref_chart = stacked_bars_svg(
            "preferences-chart",
            t["dpo_pref_heading"],
            [label for label, _ in pref_rows],
            [(t["dpo_col_count"], "#7c3aed", [n for _, n in pref_rows])],
        )
        limits_chart = stacked_bars_svg(
            "limits-chart",
            t["dpo_contacts_limits"],
            [label for label, _ in limits],
            [(t["dpo_col_count"], "#b45309", [n for _, n in limits])],
        )
        return page(
            request,
            "dpo_contacts.html",
            "dpo_contacts_heading",
            session=session,
            section="contacts",
            report=report,
            intro=t["dpo_contacts_intro"].format(
                month=report.month,
                basket=format_number(report.basket, lang),
                total=format_number(report.total_contacts, lang),
                points=format_number(report.total_points, lang),
            ),
            sections=sections,
            limits=limits,
            limits_chart=limits_chart,
            followup_rows=fu_rows,
            followups_chart=followups_chart,
            preference_rows=pref_rows,
            preferences_chart=pref_chart,
            preference_share=(
                t["dpo_pref_share"].format(
                    n=format_number(prefs.customers_with_preferences, lang),
                    total=format_number(prefs.customers, lang),
                    percent=format_number(prefs.share * 100, lang, 1),
                )
                if prefs
                else ""
            ),
        )

    @get("/followups", operation_id="dpoFollowups")
    async def followups_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        """Overdue agreed follow-ups: windows that passed without the contact the customer
        asked for (pseudonymous: subject ids, no contact data); the read is audited."""
        session = await require_session(request, vault)
        lang = pick_language(request)
        items = await followup_reads.overdue(vault, dpo_actor(request, session))

        def purpose_title(purpose_id: str) -> str:
            purpose = vault.catalogue.get(purpose_id)
            return purpose.title(lang) if purpose else purpose_id

        def touchpoint_label(key: str) -> str:
            tp = vault.touchpoints.get(key)
            return tp.name(lang) if tp else key

        return page(
            request,
            "dpo_followups.html",
            "dpo_fu_heading",
            session=session,
            section="followups",
            items=items,
            purpose_title=purpose_title,
            touchpoint_label=touchpoint_label,
        )
