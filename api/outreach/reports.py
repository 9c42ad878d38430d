"""Contact-pressure reports for the DPO (aggregates; no subject ids, no contact data)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import Parameter

from api.auth import actor_of, roles
from api.deps import Vault
from api.openapi_docs import AUTHED, problems
from api.outreach.schemas import (
    ContactBucketOut,
    ContactReportOut,
    FollowupBucketOut,
    PreferenceStatsOut,
)
from api.query_params import query, reject_unknown_query
from vault.admin.clients import Role
from vault.outreach import report as pressure_report


def report_out(r: pressure_report.ContactReport) -> ContactReportOut:
    def b(items: list[pressure_report.Bucket]) -> list[ContactBucketOut]:
        return [ContactBucketOut(key=i.key, contacts=i.contacts, points=i.points) for i in items]

    return ContactReportOut(
        month=r.month,
        basket=r.basket,
        total_contacts=r.total_contacts,
        total_points=r.total_points,
        by_touchpoint=b(r.by_touchpoint),
        by_phase=b(r.by_phase),
        by_brand=b(r.by_brand),
        by_channel=b(r.by_channel),
        by_type=b(r.by_type),
        customers_contacted=r.customers_contacted,
        customers_near_limit=r.customers_near_limit,
        customers_at_limit=r.customers_at_limit,
        followups_by_touchpoint=[
            FollowupBucketOut(key=f.key, kept=f.kept, missed=f.missed, cancelled=f.cancelled)
            for f in r.followups_by_touchpoint
        ],
        preferences=None
        if r.preferences is None
        else PreferenceStatsOut(
            customers=r.preferences.customers,
            customers_with_preferences=r.preferences.customers_with_preferences,
            share=round(r.preferences.share, 4),
            denials_by_reason=r.preferences.denials_by_reason,
        ),
    )


class ReportController(Controller):
    path = "/v1/reports"
    tags = ["contact pressure"]
    opt = roles(Role.DPO)
    before_request = staticmethod(reject_unknown_query)

    @get(
        "/contacts",
        operation_id="contactReport",
        summary="Contacts per touchpoint, phase, brand and channel; customers near or at limit",
        description=(
            "For one basket month (default: the current one). Near the limit means at least "
            "80 % of the monthly basket used; at the limit means the basket is full. Each "
            "read is audited (with the month) before the report is returned."
        ),
        opt=query("month"),
        responses=problems(*AUTHED, 422),
    )
    async def contacts(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        month: str | None = Parameter(
            required=False,
            pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
            max_length=7,
            description="basket month, YYYY-MM",
        ),
    ) -> ContactReportOut:
        return report_out(await pressure_report.contact_report(vault, actor_of(request), month))
