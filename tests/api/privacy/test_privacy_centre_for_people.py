"""The privacy centre speaks to people: names instead of ids, times in their zone, country
names, points explained, the right skip link (both databases, both languages)."""

from __future__ import annotations

import re

from api.i18n import customer_zone, format_local_datetime
from tests.conftest import T0
from tests.support.factories import ADMIN, WRITER, api, bearer
from tests.support.self_service import Page, page_sign_in, seed_subject
from vault.admin.clients import create_client, set_display_name
from vault.bases.consents import Evidence
from vault.outreach import preference_changes


def _section(html: str, heading: str) -> str:
    found = re.search(rf'<section aria-labelledby="{heading}".*?</section>', html, re.S)
    assert found, heading
    return found.group(0)


async def _signed_in_overview(vault, seed: int, lang: str) -> tuple[str, str]:
    sid, p = await seed_subject(vault, seed)
    _, shop = await create_client(
        vault, ADMIN, "shop-backend", "lookup", ["order.delivery"], display_name="Online-Shop"
    )
    async with api(vault) as http:
        r = await http.post(
            "/v1/lookup",
            json={"purpose": "order.delivery", "subject_id": sid},
            headers=bearer(shop),
        )
        assert r.status_code == 200, r.text
        await page_sign_in(http, vault, p["email"], lang=lang)
        page = await http.get(f"/privacy?lang={lang}")
    assert page.status_code == 200, page.text
    return sid, page.text


async def test_touchpoints_systems_and_countries_show_by_their_names_in_german(vault):
    """German: the consent's touchpoint reads "Ladentheke", the system that read the data
    its display name, the country "Deutschland"; the raw ids appear only as attributes."""
    _, html = await _signed_in_overview(vault, 700, "de")
    consents = _section(html, "consents-heading")
    assert ">Ladentheke<" in consents and ">shop.counter<" not in consents
    access = _section(html, "access-heading")
    assert "Online-Shop" in access and 'data-client="shop-backend"' in access
    assert "shop-backend" not in re.sub(r'data-client="[^"]*"', "", access)
    contact = _section(html, "contact-heading")
    assert 'data-country="DE">Deutschland<' in contact


async def test_touchpoints_and_countries_show_by_their_english_names(vault):
    """English: "Shop counter" and "Germany"."""
    _, html = await _signed_in_overview(vault, 701, "en")
    assert ">Shop counter<" in _section(html, "consents-heading")
    assert ">Germany<" in _section(html, "contact-heading")


async def test_a_client_without_display_name_shows_by_its_name_and_one_can_be_set(vault):
    """Without a display name the access log names the client; after `set_display_name`
    it reads the new name, and clearing it brings the name back."""
    sid, p = await seed_subject(vault, 702)
    _, key = await create_client(vault, ADMIN, "crm-sync", "lookup", ["order.delivery"])
    async with api(vault) as http:
        lookup = {"purpose": "order.delivery", "subject_id": sid}
        assert (await http.post("/v1/lookup", json=lookup, headers=bearer(key))).status_code == 200
        await page_sign_in(http, vault, p["email"], lang="en")
        before = _section((await http.get("/privacy?lang=en")).text, "access-heading")
        await set_display_name(vault, ADMIN, "crm-sync", "Customer service")
        named = _section((await http.get("/privacy?lang=en")).text, "access-heading")
        await set_display_name(vault, ADMIN, "crm-sync", "")
        cleared = _section((await http.get("/privacy?lang=en")).text, "access-heading")
    assert "crm-sync" in re.sub(r'data-client="[^"]*"', "", before)
    assert "Customer service" in named and "Customer service" not in cleared


async def test_times_are_in_the_language_zone_without_preferences_and_labelled(vault):
    """Without preferences German pages show Berlin time (MEZ), English ones UTC, and each
    page names the zone."""
    sid, p = await seed_subject(vault, 703)
    async with api(vault) as http:
        await page_sign_in(http, vault, p["email"], lang="de")
        de = (await http.get("/privacy?lang=de")).text
        en = (await http.get("/privacy?lang=en")).text
    berlin = format_local_datetime(T0, "de", customer_zone("de", None))
    assert berlin.endswith(" MEZ") and "11:00" in berlin  # 10:00 UTC in November
    assert berlin in _section(de, "consents-heading") and "Europe/Berlin" in de
    utc = format_local_datetime(T0, "en", customer_zone("en", None))
    assert utc == "2026-11-23 10:00 UTC" and utc in _section(en, "consents-heading")


async def test_times_follow_the_zone_of_the_customers_preferences(vault):
    """With America/New_York in the preferences both languages show New York time."""
    sid, p = await seed_subject(vault, 704)
    evidence = Evidence(
        touchpoint="web.privacy_centre",
        method="web_form",
        notice_version="v1",
        language="en",
        explicit=True,
    )
    doc = {"timezone": "America/New_York", "preferred_channels": {}, "quiet": {}}
    await preference_changes.set_preferences(
        vault, WRITER, sid, doc, source="client", evidence=evidence
    )
    async with api(vault) as http:
        await page_sign_in(http, vault, p["email"], lang="en")
        en = (await http.get("/privacy?lang=en")).text
        de = (await http.get("/privacy?lang=de")).text
    assert "2026-11-23 05:00 EST" in _section(en, "consents-heading")
    assert "America/New_York" in en
    assert format_local_datetime(T0, "de", customer_zone("de", "America/New_York")) in de
    assert "10:00 UTC" not in en


async def test_the_skip_link_says_where_it_goes(vault):
    """The skip link reads "Zum Inhalt springen" / "Skip to content", not the site name."""
    async with api(vault) as http:
        de = (await http.get("/privacy?lang=de")).text
        en = (await http.get("/privacy?lang=en")).text
    assert '<a class="skip" href="#main">Zum Inhalt springen</a>' in de
    assert '<a class="skip" href="#main">Skip to content</a>' in en


async def test_the_preferences_page_explains_contact_points_in_one_sentence(vault):
    """Next to the monthly cap, one sentence says what a contact point is and the limit."""
    _, p = await seed_subject(vault, 705)
    async with api(vault) as http:
        await page_sign_in(http, vault, p["email"], lang="en")
        r = await http.get("/privacy/preferences?lang=en")
    assert r.status_code == 200, r.text
    found = re.search(r'<p id="points-explained">(.*?)</p>', r.text, re.S)
    assert found, r.text
    sentence = found.group(1)
    assert "contact points" in sentence and "at most 25 points a month" in sentence
    assert sentence.count(".") == 1 and Page(r.text).lang == "en"
