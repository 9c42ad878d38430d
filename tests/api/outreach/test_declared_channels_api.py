"""Declared channels over HTTP (issue 21): the privacy centre's preference page names them
in German and English, a customer's opt-out of visits made there denies the visit lookup,
and the OpenAPI document's channel enum lists the configured channels. Both databases."""

from __future__ import annotations

from tests.support.factories import WRITER, api, bearer, client_key
from tests.support.self_service import Page, page_sign_in, seed_subject
from vault.bases.consents import Evidence, record_basis

EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
CONSENT = Evidence(
    touchpoint="shop.counter",
    method="signature",
    notice_version="2026-11",
    language="de",
    explicit=True,
)


async def test_the_preference_page_names_declared_channels_in_both_languages(vault):
    """The page lists visit, print and social with the names the rules give them."""
    _, data = await seed_subject(vault, 3701)
    async with api(vault) as http:
        await page_sign_in(http, vault, data["email"])
        de = (await http.get("/privacy/preferences?lang=de")).text
        en = (await http.get("/privacy/preferences?lang=en")).text
    for name in ("Besuch durch den Außendienst", "Werbedrucksache", "Soziale Medien"):
        assert name in de
    for name in ("Visit by our field sales team", "Print mailing", "Social media"):
        assert name in en
    assert 'name="quiet_visit_days"' in en and '<option value="social"' in en


async def test_opting_out_of_visits_in_the_privacy_centre_denies_the_visit(vault):
    """Quiet for visits on every day, saved through the form, makes the field-sales lookup
    answer 403 contact_quiet_hours; the same customer's print mailing still passes."""
    sid, data = await seed_subject(vault, 3702)
    await record_basis(vault, WRITER, sid, "offers.visit", evidence=CONSENT)
    await record_basis(vault, WRITER, sid, "offers.post", reference="customer since 2019")
    sales = await client_key(vault, "fieldsales", "lookup", ["offers.visit", "offers.post"])
    async with api(vault) as http:
        await page_sign_in(http, vault, data["email"])
        form = Page((await http.get("/privacy/preferences?lang=en")).text).form(
            "/privacy/preferences"
        )
        # The page parser keeps an unticked checkbox's value: leave the other days out.
        kept = {k: v for k, v in form["fields"].items() if not k.endswith("_days")}
        fields = {**kept, "timezone": "Europe/Berlin", "quiet_visit_days": EVERY_DAY}
        saved = await http.post(form["action"], data=fields)
        assert saved.status_code == 303, saved.text
        body = {"subject_id": sid, "contact": {"brand": "tresor"}}
        visit = await http.post(
            "/v1/lookup", json={**body, "purpose": "offers.visit"}, headers=bearer(sales)
        )
        post = await http.post(
            "/v1/lookup", json={**body, "purpose": "offers.post"}, headers=bearer(sales)
        )
    assert visit.status_code == 403 and visit.json()["reason"] == "contact_quiet_hours"
    assert post.status_code == 200, post.text
    assert post.json()["contact"]["channel"] == "print"
    assert post.json()["contact"]["points"] == 10


async def test_the_openapi_channel_enum_lists_the_configured_channels(vault):
    """The lookup's contact channel offers the built-in four and the declared three."""
    async with api(vault) as http:
        doc = (await http.get("/schema/openapi.json")).json()
    contact = doc["components"]["schemas"]["ContactIn"]["properties"]["channel"]
    assert contact["enum"] == [
        "email", "letter", "sms", "phone", "visit", "print", "social", None
    ]  # fmt: skip
