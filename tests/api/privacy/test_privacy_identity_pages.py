"""The privacy centre pages after a change of the e-mail address (security finding 1): the
restricted overview, refused actions, and the link mailed to the previous address."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from tests.support.factories import api, bearer, client_key, contact_if_match
from tests.support.self_service import Page, mails, page_sign_in, seed_subject
from vault.rights import selfservice
from vault.storage.rights_tables import dsar_requests, identity_changes
from vault.storage.tables import subjects

MALLORY = "mallory.pages@example.net"


async def _redirect(http, vault, sid: str) -> None:
    writer = await client_key(vault, "crm", "writer")
    r = await http.patch(
        f"/v1/subjects/{sid}/contact",
        json={"email": MALLORY},
        headers={**bearer(writer), **await contact_if_match(vault, sid)},
    )
    assert r.status_code == 200, r.text


async def _link(vault, to: str) -> str:
    await selfservice.wait_for_mail()
    (notice,) = [
        m
        for m in mails(vault.settings.outbox_dir)
        if m["To"] == to.lower() and "/privacy/identity/" in m.get_body(("plain",)).get_content()
    ]
    return re.findall(
        r"(/privacy/identity/[A-Za-z0-9_-]+)", notice.get_body(("plain",)).get_content()
    )[0]


async def test_the_restricted_overview_hides_contact_data_and_says_why(vault):
    """Signed in through the new address, the overview (German and English) explains the
    restriction and shows no contact value, no access log, no rights forms; the export,
    preferences and erasure pages answer 403 and nothing changes."""
    sid, p = await seed_subject(vault, 601)
    async with api(vault) as http:
        await _redirect(http, vault, sid)
        await page_sign_in(http, vault, MALLORY)
        de = (await http.get("/privacy?lang=de")).text
        en = (await http.get("/privacy?lang=en")).text
        assert "Ihre E-Mail-Adresse wurde kürzlich geändert" in de
        assert "Your e-mail address was changed recently" in en
        for html in (de, en):
            for value in (p["name"], p["phone"], MALLORY, p["postal_address"]["street"]):
                assert value not in html
            assert 'id="contact-hidden"' in html and 'id="rights"' not in html
            assert "Angebote per SMS" in html or "Offers by text message" in html
        csrf = Page(de).csrf()
        for method, path, data in (
            ("GET", "/privacy/export?lang=en", None),
            ("GET", "/privacy/export.json", None),
            ("GET", "/privacy/preferences", None),
            ("GET", "/privacy/erase", None),
            (
                "POST",
                "/privacy/requests",
                {"_csrf_token": csrf, "type": "erasure", "confirm": "yes"},
            ),
        ):
            r = await http.request(method, path, data=data)
            assert r.status_code == 403, (path, r.status_code)
            assert "text/html" in r.headers["content-type"]
    async with vault.engine.connect() as conn:
        assert (await conn.execute(select(subjects.c.status))).scalar_one() == "active"
        count = select(func.count()).select_from(dsar_requests)
        assert (await conn.execute(count)).scalar_one() == 0


async def test_the_link_page_changes_nothing_until_a_button_is_pressed(vault):
    """Opening the link (as a mail scanner would) only shows the question; the objection
    button then objects, and the used link is invalid afterwards."""
    sid, p = await seed_subject(vault, 602)
    async with api(vault) as http:
        await _redirect(http, vault, sid)
        link = await _link(vault, p["email"])
        page = await http.get(link + "?lang=en")
        assert page.status_code == 200 and "Was this you?" in page.text
        async with vault.engine.connect() as conn:
            status = (await conn.execute(select(identity_changes.c.status))).scalar_one()
        assert status == "pending"
        form = Page(page.text).form(link + "/object")
        r = await http.post(form["action"], data=form["fields"])
        assert r.status_code == 200 and "Objection received" in r.text
        again = await http.get(link)
        assert again.status_code == 404 and "Link ungültig" in again.text
    async with vault.engine.connect() as conn:
        status = (await conn.execute(select(identity_changes.c.status))).scalar_one()
    assert status == "objected"


async def test_the_link_buttons_need_the_csrf_token(vault):
    """A post to the link's buttons without the page's CSRF token is refused (403) and
    confirms nothing."""
    sid, p = await seed_subject(vault, 603)
    async with api(vault) as http:
        await _redirect(http, vault, sid)
        link = await _link(vault, p["email"])
        await http.get(link)
        r = await http.post(link + "/confirm")
        assert r.status_code == 403
    async with vault.engine.connect() as conn:
        status = (await conn.execute(select(identity_changes.c.status))).scalar_one()
    assert status == "pending"
