"""`GET /v1/reports/touchpoints` and the console's touchpoint report: register fields beside
the counts, direct and indirect touchpoints grouped, every count >= k, "< 10" or "hidden",
marketing and the DPO only, audited, German and English. Both databases."""

from __future__ import annotations

from tests.api.campaigns.test_campaign_reports_api import counts_in
from tests.support.factories import api, bearer, client_key
from tests.support.privacy import assert_problem
from tests.vault.campaigns.test_reports import report_reads
from tests.vault.campaigns.test_touchpoint_report import seed_period

K = 10


def _rows(body) -> dict[str, dict]:
    return {r["touchpoint"]: r for g in body["groups"] for r in g["touchpoints"]}


async def test_the_touchpoint_report_shows_the_register_and_masked_counts(vault):
    """November: counts from at least k customers are shown, the two reviewers' consents
    are "< 10", each row carries its register fields, groups are direct, indirect, other."""
    form = (await seed_period(vault))["form"]
    key = await client_key(vault, "planner", "marketing")
    async with api(vault) as http:
        r = await http.get("/v1/reports/touchpoints?month=2026-11", headers=bearer(key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["month"], body["first_month"], body["months"], body["min_count"]) == (
        "2026-11", "2026-11", 1, K)  # fmt: skip
    assert [g["kind"] for g in body["groups"]] == ["direct", "indirect", "other"]
    rows = _rows(body)
    assert rows["web.newsletter_form"]["counts"]["consents_given"] == 12
    assert rows["web.newsletter_form"]["counts"]["withdrawals"] == 10
    assert rows["web.checkout"]["counts"]["objections"] == 11
    assert rows["email.newsletter"]["counts"]["contacts_made"] == 24
    hotline = rows["hotline.inbound"]["counts"]
    assert (hotline["followups_kept"], hotline["followups_missed"]) == (10, 11)
    assert hotline["complaint_followups"] == 11
    reviews = rows["web.reviews"]
    assert reviews["counts"]["consents_given"] == f"< {K}"
    assert (reviews["kind"], reviews["owner"], reviews["status"]) == (
        "indirect", "ecommerce", "active")  # fmt: skip
    assert reviews["name_de"] == "Bewertungsportale" and reviews["experience_en"]
    assert rows["none"]["kind"] is None and rows["none"]["counts"]["contacts_made"] == f"< {K}"
    for field, n in counts_in(body):
        assert n in (f"< {K}", "hidden") or n >= K, (field, n)
    assert not any(s in r.text for s in form)


async def test_a_period_with_a_thin_month_hides_the_count(vault):
    """October and November: 22 consents at the newsletter form from 12 customers are
    shown; the hotline's inbound contacts (10 in October, none in November) too; the
    three contacts without a touchpoint in November alone stay "< 10"."""
    await seed_period(vault)
    key = await client_key(vault, "planner", "marketing")
    async with api(vault) as http:
        r = await http.get("/v1/reports/touchpoints?month=2026-11&months=2", headers=bearer(key))
    assert r.status_code == 200, r.text
    rows = _rows(r.json())
    assert rows["web.newsletter_form"]["counts"]["consents_given"] == 22
    assert rows["hotline.inbound"]["counts"]["contacts_inbound"] == 10
    assert rows["none"]["counts"]["contacts_made"] == f"< {K}"


async def test_only_marketing_and_the_dpo_read_it_and_bad_periods_are_422(vault):
    """Lookup and writer keys are 403; a period of 13 months or a bad month is a 422
    naming the parameter; refused reads are not audited as report reads."""
    async with api(vault) as http:
        for role, status in (("lookup", 403), ("writer", 403), ("marketing", 200), ("dpo", 200)):
            key = await client_key(vault, f"c-{role}", role, ["offers.sms"])
            r = await http.get("/v1/reports/touchpoints", headers=bearer(key))
            assert r.status_code == status, (role, r.text)
        assert len(await report_reads(vault)) == 2
        key = await client_key(vault, "planner", "marketing")
        for query in ("months=13", "month=2026-13", "months=0"):
            r = await http.get(f"/v1/reports/touchpoints?{query}", headers=bearer(key))
            assert_problem(r, 422)
    assert len(await report_reads(vault)) == 2
