"""The privacy centre web pages (/privacy) through HTTP, on both databases."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from api.app import create_app
from tests.support.factories import api, bearer, client_key
from tests.support.privacy import consent_statuses
from tests.support.self_service import Page, code_mails, page_sign_in, seed_subject
from vault.errors import Unauthenticated
from vault.rights import selfservice
from vault.storage.rights_tables import dsar_requests, self_service_challenges
from vault.storage.tables import subjects


def _set_cookie(r: httpx.Response, name: str) -> str:
    found = [h for h in r.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(found) == 1, r.headers.get_list("set-cookie")
    return found[0]


def _flags(header: str) -> set[str]:
    return {part.strip().lower() for part in header.split(";")[1:]}


async def _count(vault, table) -> int:
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def _status(vault, sid: str) -> str:
    async with vault.engine.connect() as conn:
        query = select(subjects.c.status).where(subjects.c.id == sid)
        return (await conn.execute(query)).scalar_one()


async def test_pages_are_german_by_default_and_english_on_request(vault):
    """German without a preference; English by ?lang=en or Accept-Language."""
    async with api(vault) as http:
        de = await http.get("/privacy")
        en = await http.get("/privacy?lang=en")
        accept = await http.get("/privacy", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert de.status_code == 200 and de.headers["content-type"].startswith("text/html")
    assert Page(de.text).lang == "de" and "Code anfordern" in de.text
    assert Page(en.text).lang == "en" and "Send me a code" in en.text
    assert Page(accept.text).lang == "en"


async def test_every_control_is_labelled_and_every_form_carries_a_csrf_token(vault):
    """On the sign-in, code, overview and erasure pages each visible control has a label,
    each button a text, and each form the CSRF token."""
    _, p = await seed_subject(vault, 300)
    async with api(vault) as http:
        pages = [await http.get("/privacy?lang=en")]
        signin = Page(pages[0].text)
        pages.append(
            await http.post(
                "/privacy/sign-in",
                data={"_csrf_token": signin.csrf(), "kind": "email", "value": p["email"]},
            )
        )
        await page_sign_in(http, vault, p["email"])
        pages.append(await http.get("/privacy"))
        pages.append(await http.get("/privacy/erase"))
    for r in pages:
        assert r.status_code == 200, r.text
        page = Page(r.text)
        assert page.forms
        for form in page.forms:
            assert form["method"] == "post" and form["fields"].get("_csrf_token"), form
        for control in page.controls:
            if control.get("type") == "hidden":
                continue
            assert control.get("id") in page.labels_for or control.get("aria-label"), control
        assert all(b["text"] for b in page.buttons), page.buttons
        assert 'id="main"' in r.text and "<h1" in r.text


async def test_sign_in_sets_a_short_lived_strict_http_only_cookie(vault):
    """The session cookie is HttpOnly, SameSite=Strict, scoped to /privacy, lives at most the
    session's absolute hour, and is Secure only over TLS; the CSRF cookie is strict too."""
    _, p = await seed_subject(vault, 301)
    async with api(vault) as http:
        first = await http.get("/privacy")
        csrf = _flags(_set_cookie(first, "tresor_csrf"))
        assert {"httponly", "samesite=strict", "path=/privacy"} <= csrf and "secure" not in csrf
        r = await page_sign_in(http, vault, p["email"])
        cookie = _set_cookie(r, "tresor_self")
        flags = _flags(cookie)
        assert {"httponly", "samesite=strict", "path=/privacy", "max-age=3600"} <= flags
        assert "secure" not in flags
        assert r.headers["location"] == "/privacy?lang=de"
        token = cookie.split(";")[0].split("=", 1)[1]
        assert await selfservice.session_subject(vault, token)

    app = create_app(vault=vault, configure_logs=False)
    for hook in app.on_startup:
        await hook(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://privacy.example") as tls:
        first = await tls.get("/privacy")
        assert "secure" in _flags(_set_cookie(first, "tresor_csrf"))
        r = await page_sign_in(tls, vault, p["email"])
        assert "secure" in _flags(_set_cookie(r, "tresor_self"))


async def test_an_unknown_address_gets_the_same_code_page_and_no_mail(vault):
    """The code page after a known and after an unknown address differ only in the echoed
    address; only the known address gets a mail."""
    _, p = await seed_subject(vault, 302)
    bodies = []
    async with api(vault) as http:
        for address in (p["email"], "niemand@example.org"):
            page = Page((await http.get("/privacy")).text)
            r = await http.post(
                "/privacy/sign-in",
                data={"_csrf_token": page.csrf(), "kind": "email", "value": address},
            )
            assert r.status_code == 200
            bodies.append(r.text.replace(address, "ADDRESS"))
    assert bodies[0] == bodies[1]
    await selfservice.wait_for_mail()
    assert [m["To"] for m in code_mails(vault.settings.outbox_dir)] == [p["email"].lower()]


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(vault):
    """Sign-in, withdrawal and an erasure request without (or with a forged) CSRF token are
    refused with 403 and leave the database as it was."""
    sid, p = await seed_subject(vault, 303)
    async with api(vault) as http:
        page = Page((await http.get("/privacy")).text)
        token = page.csrf()
        forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
        for data in (
            {"kind": "email", "value": p["email"]},
            {"kind": "email", "value": p["email"], "_csrf_token": forged},
            {"kind": "email", "value": p["email"], "_csrf_token": ""},
        ):
            r = await http.post("/privacy/sign-in", data=data)
            assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
        assert await _count(vault, self_service_challenges) == 0

        await page_sign_in(http, vault, p["email"])
        overview = Page((await http.get("/privacy")).text)
        withdraw = next(f for f in overview.forms if "/withdraw" in f["action"])
        before = await consent_statuses(vault)
        r = await http.post(withdraw["action"], data={})
        assert r.status_code == 403
        r = await http.post("/privacy/requests", data={"type": "erasure", "confirm": "yes"})
        assert r.status_code == 403
        # A token from a different browser (another cookie) does not fit this one's cookie.
        async with api(vault) as other:
            stranger = Page((await other.get("/privacy")).text).csrf()
        r = await http.post(
            "/privacy/requests",
            data={"type": "erasure", "confirm": "yes", "_csrf_token": stranger},
        )
        assert r.status_code == 403
        assert await consent_statuses(vault) == before
        assert await _status(vault, sid) == "active"
        assert await _count(vault, dsar_requests) == 0


async def test_the_overview_shows_data_consents_access_log_and_requests(vault):
    """Signed in, the page lists contact data, consents with purpose, touchpoint, date and
    expiry (a withdraw button only for consents), the systems that read the data, and the
    requests with status and deadline; the read is audited."""
    sid, p = await seed_subject(vault, 304)
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    async with api(vault) as http:
        r = await http.post(
            "/v1/lookup",
            json={"purpose": "order.delivery", "subject_id": sid},
            headers=bearer(shop),
        )
        assert r.status_code == 200
        await page_sign_in(http, vault, p["email"], lang="en")
        r = await http.post(
            "/privacy/requests?lang=en",
            data={
                "_csrf_token": Page((await http.get("/privacy")).text).csrf(),
                "type": "rectification",
                "name": "Erika Neu",
            },
        )
        assert r.status_code == 303 and "done=requested" in r.headers["location"]
        r = await http.get("/privacy?lang=en")
    assert r.status_code == 200
    html = r.text
    for value in (p["email"].lower(), p["phone"], p["postal_address"]["city"], p["external_ref"]):
        assert value in html
    assert "Offers by text message" in html and ">Shop counter<" in html
    assert "23 Nov 2027" in html or "2027-11-23" in html
    page = Page(html)
    withdraw_forms = [f for f in page.forms if "/withdraw" in f["action"]]
    assert len(withdraw_forms) == 1  # the SMS consent, not the contract
    access = re.search(r'<section aria-labelledby="access-heading".*?</section>', html, re.S)
    assert access and 'data-client="shop"' in access.group(0)
    assert "Delivery of your orders" in access.group(0) and "released" in access.group(0)
    requests = re.search(r'<section aria-labelledby="requests-heading".*?</section>', html, re.S)
    assert requests and "Rectification" in requests.group(0) and "in review" in requests.group(0)
    assert "2026-12-23" in requests.group(0)


async def test_one_click_withdrawal_is_effective_at_once(vault):
    """The withdraw button ends the consent: the next lookup for it is denied
    consent_withdrawn, and the page shows it withdrawn."""
    sid, p = await seed_subject(vault, 305)
    sms = await client_key(vault, "sms-gateway", "lookup", ["offers.sms"])
    q = {"purpose": "offers.sms", "subject_id": sid, "contact": {"brand": "tresor"}}
    async with api(vault) as http:
        assert (await http.post("/v1/lookup", json=q, headers=bearer(sms))).status_code == 200
        await page_sign_in(http, vault, p["email"])
        page = Page((await http.get("/privacy")).text)
        form = next(f for f in page.forms if "/withdraw" in f["action"])
        r = await http.post(form["action"], data=form["fields"])
        assert r.status_code == 303 and "done=withdrawn" in r.headers["location"]
        r = await http.post("/v1/lookup", json=q, headers=bearer(sms))
        assert r.status_code == 403 and r.json()["reason"] == "consent_withdrawn"
        html = (await http.get("/privacy")).text
        assert "widerrufen" in html and "/withdraw" not in html


async def test_someone_elses_consent_cannot_be_withdrawn_from_the_page(vault):
    """Posting another subject's consent id answers 404 and changes nothing."""
    _, p = await seed_subject(vault, 306)
    other_sid, _ = await seed_subject(vault, 307)
    async with vault.engine.connect() as conn:
        from vault.storage.tables import consents

        theirs = (
            (await conn.execute(select(consents.c.id).where(consents.c.subject_id == other_sid)))
            .scalars()
            .all()
        )
    async with api(vault) as http:
        await page_sign_in(http, vault, p["email"])
        token = Page((await http.get("/privacy")).text).csrf()
        before = await consent_statuses(vault)
        for consent_id in (*theirs, "not-a-uuid"):
            r = await http.post(
                f"/privacy/consents/{consent_id}/withdraw", data={"_csrf_token": token}
            )
            assert r.status_code == 404, r.text
        assert await consent_statuses(vault) == before


async def test_erasure_takes_a_confirmation_step_and_then_reveals_nothing(vault):
    """Erasure without the confirmation shows the confirmation page and erases nothing;
    confirmed, it signs the subject out and lookups deny subject_erased or find nothing."""
    sid, p = await seed_subject(vault, 308, external_ref=None)
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    async with api(vault) as http:
        await page_sign_in(http, vault, p["email"])
        token = Page((await http.get("/privacy")).text).csrf()
        r = await http.post("/privacy/requests", data={"_csrf_token": token, "type": "erasure"})
        assert r.status_code == 200 and 'name="confirm"' in r.text
        assert await _status(vault, sid) == "active"
        confirm = Page((await http.get("/privacy/erase")).text).form("/privacy/requests")
        r = await http.post(confirm["action"], data={**confirm["fields"], "confirm": "yes"})
        assert r.status_code == 303 and "done=erased" in r.headers["location"]
        assert "max-age=0" in _flags(_set_cookie(r, "tresor_self"))
        assert await _status(vault, sid) == "erased"
        page = await http.get(r.headers["location"])
        assert "Ihre Daten wurden gelöscht" in page.text and 'action="/privacy/sign-in' in page.text
        r = await http.post(
            "/v1/lookup",
            json={"purpose": "order.delivery", "subject_id": sid},
            headers=bearer(shop),
        )
        assert r.status_code == 403 and r.json()["reason"] == "subject_erased"
        r = await http.post(
            "/v1/lookup",
            json={"purpose": "order.delivery", "email": p["email"]},
            headers=bearer(shop),
        )
        assert r.status_code == 404


async def test_rights_forms_create_requests_and_empty_rectification_is_refused(vault):
    """Restriction and objection buttons create completed requests; a rectification
    without any new value creates nothing and says so."""
    sid, p = await seed_subject(vault, 309)
    async with api(vault) as http:
        await page_sign_in(http, vault, p["email"])
        token = Page((await http.get("/privacy")).text).csrf()
        r = await http.post(
            "/privacy/requests", data={"_csrf_token": token, "type": "rectification"}
        )
        assert r.status_code == 303 and "error=empty" in r.headers["location"]
        assert "mindestens einen neuen Wert" in (await http.get(r.headers["location"])).text
        assert await _count(vault, dsar_requests) == 0
        for type_ in ("objection", "restriction"):
            r = await http.post("/privacy/requests", data={"_csrf_token": token, "type": type_})
            assert r.status_code == 303, r.text
        r = await http.post("/privacy/requests", data={"_csrf_token": token, "type": "bogus"})
        assert r.status_code == 422
        assert await _status(vault, sid) == "restricted"
        html = (await http.get("/privacy")).text
    assert html.count('data-status="completed"') == 2


async def test_export_downloads_as_json_and_reads_as_html(vault):
    """The export is a JSON attachment with the subject's data and a readable page."""
    sid, p = await seed_subject(vault, 310)
    async with api(vault) as http:
        await page_sign_in(http, vault, p["email"], lang="en")
        r = await http.get("/privacy/export.json")
        assert r.status_code == 200
        assert r.headers["content-disposition"].startswith("attachment")
        document = json.loads(r.content)
        assert p["email"].lower() in json.dumps(document) and sid in r.text
        r = await http.get("/privacy/export?lang=en")
        assert r.status_code == 200 and p["email"].lower() in r.text
        assert "Art. 15" in r.text


async def test_sign_out_and_expiry_end_the_session(vault, clock):
    """Sign-out revokes the session and clears the cookie; after fifteen minutes the
    overview asks to sign in again."""
    _, p = await seed_subject(vault, 311)
    async with api(vault) as http:
        signed = await page_sign_in(http, vault, p["email"])
        token = _set_cookie(signed, "tresor_self").split(";")[0].split("=", 1)[1]
        page = Page((await http.get("/privacy")).text)
        sign_out = page.form("/privacy/sign-out")
        r = await http.post(sign_out["action"], data=sign_out["fields"])
        assert r.status_code == 303 and "done=signed_out" in r.headers["location"]
        with pytest.raises(Unauthenticated):
            await selfservice.session_subject(vault, token)
        # The cookie replayed after sign-out opens nothing.
        http.cookies.set("tresor_self", token, domain="testserver.local", path="/privacy")
        assert 'action="/privacy/sign-in' in (await http.get("/privacy")).text

        clock.advance(timedelta(hours=2))
        await page_sign_in(http, vault, p["email"])
        assert "/privacy/sign-out" in (await http.get("/privacy")).text
        clock.advance(timedelta(minutes=15))
        r = await http.get("/privacy")
        assert 'action="/privacy/sign-in' in r.text
        r = await http.get("/privacy/export.json")
        assert r.status_code == 303 and "done=expired" in r.headers["location"]


async def test_pages_are_neither_cached_nor_framed_and_rate_limits_show(vault):
    """Privacy pages send no-store, deny framing, and a rate-limited sign-in is a 429 page."""
    _, p = await seed_subject(vault, 312)
    async with api(vault) as http:
        r = await http.get("/privacy")
        assert "no-store" in r.headers["cache-control"]
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        token = Page(r.text).csrf()
        form = {"_csrf_token": token, "kind": "email", "value": p["email"]}
        for _ in range(5):
            r = await http.post("/privacy/sign-in", data=form)
            assert r.status_code == 200
        r = await http.post("/privacy/sign-in", data=form)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert "zu viele Codes" in r.text
        r = await http.post(
            "/privacy/sign-in", data={"_csrf_token": token, "kind": "email", "value": "kaputt"}
        )
        assert r.status_code == 422 and "keine gültige" in r.text


def test_every_text_exists_in_german_and_english():
    """The customer-facing texts have the same keys in both languages, none empty."""
    from api.i18n import TEXTS

    assert set(TEXTS["de"]) == set(TEXTS["en"])
    assert all(v.strip() for lang in ("de", "en") for v in TEXTS[lang].values())
