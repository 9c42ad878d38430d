"""The DPO console pages at /dpo, through HTTP on both databases: sign-in, session, CSRF, pages."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.support.factories import (
    ADMIN,
    NEWSLETTER_EVIDENCE,
    api,
    bearer,
    client_key,
    outbox_links,
    person,
)
from vault.admin.clients import revoke_client
from vault.audit import chain as audit_chain
from vault.audit.events import Actor
from vault.rights.requests import create_request
from vault.storage.audit_tables import audit_events

IP = "192.0.2.77"
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/141.0"
_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def _events(vault) -> list[Any]:
    async with vault.engine.connect() as conn:
        return list((await conn.execute(select(audit_events).order_by(audit_events.c.seq))).all())


def _csrf(page: httpx.Response) -> str:
    m = _CSRF.search(page.text)
    assert m, "no CSRF field on the page"
    return html.unescape(m.group(1))


def _set_cookie(response: httpx.Response, name: str) -> str:
    headers = [v for v in response.headers.get_list("set-cookie") if v.startswith(name + "=")]
    assert headers, f"no {name} cookie set"
    return headers[0]


async def _sign_in(
    http: httpx.AsyncClient, key: str, *, lang: str = "de", nxt: str = ""
) -> httpx.Response:
    page = await http.get(f"/dpo/signin?lang={lang}")
    assert page.status_code == 200, page.text
    return await http.post(
        f"/dpo/signin?lang={lang}",
        data={"api_key": key, "_csrf_token": _csrf(page), "next": nxt},
    )


async def _world(vault, http) -> dict[str, Any]:
    """A subject with a confirmed newsletter consent (IP / UA sealed) and three reads."""
    writer = await client_key(vault, "crm", "writer")
    mailer = await client_key(vault, "mailer", "lookup", ["newsletter.email"])
    dpo = await client_key(vault, "datenschutz", "dpo")
    p = person(11)
    sid = (await http.post("/v1/subjects", json=p, headers=bearer(writer))).json()["subject_id"]
    r = await http.post(
        f"/v1/subjects/{sid}/consents",
        json={
            "purpose": "newsletter.email",
            "evidence": {**NEWSLETTER_EVIDENCE, "ip": IP, "user_agent": UA},
        },
        headers=bearer(writer),
    )
    cid = r.json()["consent_id"]
    token = outbox_links(vault.settings.outbox_dir)[-1]
    assert (await http.post("/v1/consents/confirm", json={"token": token})).status_code == 200
    for purpose in ("newsletter.email", "newsletter.email", "offers.email"):
        await http.post(
            "/v1/lookup",
            json={"purpose": purpose, "subject_id": sid, "contact": {"brand": "tresor"}},
            headers=bearer(mailer),
        )
    return {"person": p, "sid": sid, "cid": cid, "dpo": dpo, "writer": writer}


async def test_sign_in_sets_a_strict_http_only_session_cookie(vault):
    """A dpo key signs in: 303 to the audit page, cookie HttpOnly, SameSite=Strict, Path=/dpo."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        page = await http.get("/dpo/signin")
        csrf_cookie = _set_cookie(page, "tresor_dpo_csrf").lower()
        assert "httponly" in csrf_cookie and "samesite=strict" in csrf_cookie
        assert 'for="api_key"' in page.text and 'id="api_key"' in page.text
        r = await _sign_in(http, dpo)
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/dpo/audit?lang=de"
        cookie = _set_cookie(r, "tresor_dpo")
        lowered = cookie.lower()
        assert "httponly" in lowered and "samesite=strict" in lowered and "path=/dpo" in lowered
        assert "max-age=28800" in lowered and "secure" not in lowered  # plain http here
        assert dpo not in cookie
        r = await http.get("/dpo/audit")
        assert r.status_code == 200 and "datenschutz" in r.text
    starts = [e for e in await _events(vault) if e.action == "dpo:session:start"]
    assert len(starts) == 1 and (starts[0].actor_id, starts[0].decision) == ("datenschutz", "allow")


async def test_session_cookie_is_secure_over_https(vault):
    """Over TLS the session and CSRF cookies carry Secure."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    from api.app import create_app

    app = create_app(vault=vault, configure_logs=False)
    for hook in app.on_startup:
        await hook(app)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://testserver.local"
        ) as http:
            page = await http.get("/dpo/signin")
            assert "secure" in _set_cookie(page, "tresor_dpo_csrf").lower()
            r = await _sign_in(http, dpo)
            assert r.status_code == 303
            assert "secure" in _set_cookie(r, "tresor_dpo").lower()
    finally:
        for hook in app.on_shutdown:
            await hook(app)


@pytest.mark.parametrize("key", ["", "tresor_wrong-key", "not even a key"])
async def test_a_wrong_key_is_refused(vault, key):
    """A wrong or empty key gets the sign-in page again with an error and no session cookie;
    the attempt is audited as a denial that names nobody and carries nothing of the key."""
    await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        r = await _sign_in(http, key, lang="en")
        assert r.status_code == 401
        assert "The key is not valid or has been revoked." in r.text
        assert not [v for v in r.headers.get_list("set-cookie") if v.startswith("tresor_dpo=")]
        assert (await http.get("/dpo/audit")).status_code == 303
    events = [e for e in await _events(vault) if e.action.startswith("dpo:")]
    assert [(e.action, e.actor_type, e.decision, e.reason) for e in events] == [
        ("dpo:session:start", "anonymous", "deny", "invalid_key")
    ]
    if key:
        assert all(key not in str(tuple(e)) for e in events)


async def test_a_key_of_another_role_is_refused_and_audited(vault):
    """A valid key without the dpo role is refused; the attempt is audited as a denial."""
    writer = await client_key(vault, "crm", "writer")
    async with api(vault) as http:
        r = await _sign_in(http, writer, lang="en")
        assert r.status_code == 401 and "does not belong to the role" in r.text
        assert not [v for v in r.headers.get_list("set-cookie") if v.startswith("tresor_dpo=")]
    denied = [e for e in await _events(vault) if e.action == "dpo:session:start"]
    assert [(e.actor_id, e.decision, e.reason) for e in denied] == [
        ("crm", "deny", "role_not_allowed")
    ]


async def test_posts_without_the_csrf_token_are_refused(vault):
    """Sign-in and sign-out without (or with a wrong) CSRF token answer 403 and do nothing."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        await http.get("/dpo/signin")  # the CSRF cookie is set, but the form field is missing
        r = await http.post("/dpo/signin", data={"api_key": dpo})
        assert r.status_code == 403 and "tresor_dpo=" not in ";".join(
            r.headers.get_list("set-cookie")
        )
        r = await http.post("/dpo/signin", data={"api_key": dpo, "_csrf_token": "forged"})
        assert r.status_code == 403
        assert (await _sign_in(http, dpo)).status_code == 303
        r = await http.post("/dpo/signout", data={})
        assert r.status_code == 403
        assert (await http.get("/dpo/audit")).status_code == 200  # still signed in


async def test_sign_out_ends_the_session(vault):
    """Signing out clears the cookie, is audited, and the pages need a sign-in again."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        await _sign_in(http, dpo)
        page = await http.get("/dpo/audit")
        r = await http.post("/dpo/signout?lang=en", data={"_csrf_token": _csrf(page)})
        assert (
            r.status_code == 303 and r.headers["location"] == "/dpo/signin?lang=en&done=signed_out"
        )
        assert "max-age=0" in _set_cookie(r, "tresor_dpo").lower()
        r = await http.get("/dpo/signin?lang=en&done=signed_out")
        assert "You are signed out." in r.text
        assert (await http.get("/dpo/audit")).status_code == 303
    assert [e.action for e in await _events(vault)].count("dpo:session:end") == 1


async def test_pages_need_a_session_and_remember_where_to_go(vault):
    """Without a session every page redirects to the sign-in, which returns there afterwards."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        for path in (
            "/dpo/audit",
            "/dpo/requests",
            "/dpo/stats",
            "/dpo/chain",
            "/dpo/ropa",
            "/dpo/consents/00000000-0000-4000-8000-000000000000/proof",
            "/dpo",
        ):
            r = await http.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/dpo/signin"), path
        r = await http.get("/dpo/audit?action=lookup")
        assert "next=%2Fdpo%2Faudit%3Faction%3Dlookup" in r.headers["location"]
        r = await _sign_in(http, dpo, nxt="/dpo/audit?action=lookup")
        assert r.headers["location"] == "/dpo/audit?action=lookup"
        await http.post("/dpo/signout", data={"_csrf_token": _csrf(await http.get("/dpo/audit"))})
        r = await _sign_in(http, dpo, nxt="https://evil.example/")
        assert r.headers["location"] == "/dpo/audit?lang=de"


async def test_forged_expired_and_revoked_sessions_are_refused(vault, clock):
    """A made-up session id, a session past its absolute expiry, and one of a revoked client
    open nothing; the cookie is a random id, not a token carrying the client."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        await _sign_in(http, dpo)
        token = http.cookies.get("tresor_dpo", path="/dpo")
        assert token and "datenschutz" not in token and len(token) >= 43
        forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        http.cookies.clear()
        r = await http.get("/dpo/audit", headers={"Cookie": f"tresor_dpo={forged}"})
        assert r.status_code == 303 and "expired=1" in r.headers["location"]
        http.cookies.set("tresor_dpo", token, path="/dpo")
        assert (await http.get("/dpo/audit")).status_code == 200
        await revoke_client(vault, ADMIN, "datenschutz")
        assert (await http.get("/dpo/audit")).status_code == 303


async def test_audit_search_shows_the_subjects_reads_and_links_the_proof(vault):
    """Searching by subject lists each read with client, purpose and fields, linking the proof."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await _sign_in(http, w["dpo"], lang="en")
        r = await http.get(
            "/dpo/audit", params={"subject_id": w["sid"], "action": "lookup", "lang": "en"}
        )
        assert r.status_code == 200, r.text
        page = r.text
        rows = re.findall(r'<tr data-seq="\d+">(.*?)</tr>', page, re.S)
        assert len(rows) == 3
        assert all("mailer" in row and "client:contact:lookup" in row for row in rows)
        assert "purpose_not_allowed" in rows[0] and "offers.email" in rows[0]
        assert "newsletter.email" in rows[1] and "email, name" in rows[1]
        proof_link = f"/dpo/consents/{w['cid']}/proof?lang=en"
        assert proof_link in rows[1]
        r = await http.get(proof_link)
        assert r.status_code == 200, r.text
        assert "Proof of consent" in r.text and IP in r.text and html.escape(UA) in r.text
        assert "web.newsletter_form" in r.text and "confirmation_requested" in r.text


async def test_paging_links_through_the_results(vault):
    """The next-page link carries the filters and the cursor; pages do not overlap."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await _sign_in(http, w["dpo"])
        r = await http.get("/dpo/audit", params={"limit": "25", "subject_id": w["sid"]})
        first = re.findall(r'<tr data-seq="(\d+)">', r.text)
        assert r.status_code == 200 and len(first) >= 6 and 'rel="next"' not in r.text
        r = await http.get("/dpo/audit", params={"limit": "2", "subject_id": w["sid"]})
        seqs = re.findall(r'<tr data-seq="(\d+)">', r.text)
        nxt = html.unescape(re.search(r'<a href="([^"]+)" rel="next">', r.text).group(1))
        assert "cursor=c1." in nxt and f"subject_id={w['sid']}" in nxt
        r = await http.get(nxt)
        more = re.findall(r'<tr data-seq="(\d+)">', r.text)
        assert len(seqs) == len(more) == 2 and int(more[0]) < int(seqs[-1])


async def test_bad_filters_are_shown_as_errors_and_escaped(vault):
    """A malformed filter answers 422 with the field named; markup typed in is escaped."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        await _sign_in(http, dpo, lang="en")
        r = await http.get(
            "/dpo/audit", params={"client": "<script>alert(1)</script>", "lang": "en"}
        )
        assert r.status_code == 422
        assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;" in r.text
        assert "Please check the search fields" in r.text and "<strong>client</strong>" in r.text
        r = await http.get("/dpo/audit", params={"since": "gestern"})
        assert r.status_code == 422 and "<strong>since</strong>" in r.text


async def test_request_queue_puts_overdue_first(vault, clock):
    """The queue lists open requests, overdue ones first and marked, then by deadline."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    actor = Actor("dpo", "datenschutz")
    old = await create_request(vault, actor, subject_id=None, type="access", channel="letter")
    clock.advance(timedelta(days=20))
    newer = await create_request(vault, actor, subject_id=None, type="erasure", channel="email")
    clock.advance(timedelta(days=15))
    newest = await create_request(vault, actor, subject_id=None, type="objection", channel="phone")
    async with api(vault) as http:
        await _sign_in(http, dpo, lang="en")
        r = await http.get("/dpo/requests?lang=en")
    assert r.status_code == 200, r.text
    body = r.text
    order = [body.index(x.id) for x in (old, newer, newest)]
    assert order == sorted(order)
    first_row = body[body.index("<tbody>") : body.index(old.id)]
    assert "overdue" in first_row
    assert "Erasure" in body and "Objection" in body
    assert [e.action for e in await _events(vault)].count("dpo:request:list") == 1


async def test_statistics_page_draws_inline_svg_charts(vault):
    """Access and consent charts are inline SVG with titles and data tables; nothing external."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await _sign_in(http, w["dpo"], lang="en")
        r = await http.get("/dpo/stats?lang=en&bucket=hour&since=2026-11-23T00:00")
    assert r.status_code == 200, r.text
    body = r.text
    assert body.count("<svg") == 1 + 6  # access + the six consent purposes
    assert 'role="img"' in body and '<title id="access-chart-t">' in body
    assert "3 reads: 2 allowed, 1 denied" in body
    assert "<polyline" in body and "<rect" in body
    assert re.search(r"(src|href)=\"https?://", body) is None
    assert "purpose_not_allowed" in body and "Newsletter by e-mail" in body
    actions = [e.action for e in await _events(vault)]
    assert actions.count("dpo:audit:stats") == 1 and actions.count("dpo:consent:stats") == 1


async def test_chain_and_ropa_pages(vault):
    """The chain page reports the verification and the last checkpoint; the RoPA page lists
    purposes."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await audit_chain.seal_all(vault, grace=timedelta(0))
        await _sign_in(http, w["dpo"], lang="en")
        r = await http.get("/dpo/chain?lang=en")
        assert r.status_code == 200, r.text
        assert "Intact: the verification found no discrepancy." in r.text
        assert "BEGIN PUBLIC KEY" in r.text and "Last checkpoint" in r.text
        r = await http.get("/dpo/ropa")
        assert r.status_code == 200
        assert "Verzeichnis von Verarbeitungstätigkeiten" in r.text
        assert "Art. 6(1)(a) GDPR" in r.text and "AES-256-GCM" in r.text
        assert 'id="activity-newsletter.email"' in r.text and "mailer" in r.text


async def test_pages_speak_german_and_english(vault):
    """German by default, English by ?lang=en or Accept-Language, and the choice is kept."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        r = await http.get("/dpo/signin")
        assert 'lang="de"' in r.text and "Anmeldung für Datenschutzbeauftragte" in r.text
        r = await http.get("/dpo/signin", headers={"Accept-Language": "en-GB,en;q=0.8"})
        assert 'lang="en"' in r.text and "Sign-in for data-protection officers" in r.text
        await _sign_in(http, dpo, lang="en")
        r = await http.get("/dpo/audit?lang=en&action=lookup")
        assert "Search the audit trail" in r.text
        assert 'href="/dpo/audit?action=lookup&amp;lang=de"' in r.text


async def test_pages_are_not_cached_or_framed(vault):
    """Console pages carry no-store, a strict CSP and frame denial."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        for r in (
            await http.get("/dpo/signin"),
            await _sign_in(http, dpo),
            await http.get("/dpo/audit"),
        ):
            assert "no-store" in r.headers["cache-control"]
            assert "default-src 'none'" in r.headers["content-security-policy"]
            assert r.headers["x-frame-options"] == "DENY"


async def test_console_reads_are_audited_without_contact_data(vault):
    """Every console page a DPO opens leaves its event; none holds a contact value."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await _sign_in(http, w["dpo"])
        for path in (
            "/dpo/audit",
            f"/dpo/audit?subject_id={w['sid']}",
            "/dpo/requests",
            "/dpo/stats",
            "/dpo/chain",
            "/dpo/ropa",
            f"/dpo/consents/{w['cid']}/proof",
        ):
            assert (await http.get(path)).status_code == 200, path
    events = await _events(vault)
    mine = [e.action for e in events if e.actor_type == "dpo"]
    assert mine == [
        "dpo:session:start",
        "dpo:audit:search",
        "dpo:audit:search",
        "dpo:request:list",
        "dpo:audit:stats",
        "dpo:consent:stats",
        "dpo:audit:chain",
        "dpo:ropa:read",
        "dpo:consent:proof",
    ]
    p = w["person"]
    text = " ".join(" ".join(str(v) for v in e) for e in events)
    for value in (p["email"], p["phone"], p["name"], p["external_ref"], IP, UA):
        assert value not in text


async def test_unknown_console_paths_and_bad_ids_are_pages(vault):
    """Unknown pages and malformed consent ids answer an HTML 404, not problem+json."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        await _sign_in(http, dpo)
        r = await http.get("/dpo/consents/not-a-uuid/proof")
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
        r = await http.get("/dpo/consents/00000000-0000-4000-8000-000000000000/proof")
        assert r.status_code == 404 and "Nicht gefunden" in r.text
