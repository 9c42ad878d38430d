"""Security headers come from one place and reach every response of every route."""

from __future__ import annotations

import re
from typing import Any

import httpx
from litestar.routes import HTTPRoute

from api.app import create_app
from tests.support.factories import (
    NEWSLETTER_EVIDENCE,
    api,
    bearer,
    client_key,
    outbox_links,
    person,
)
from tests.support.self_service import api_sign_in

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
ZERO = "00000000-0000-4000-8000-000000000000"


def _is_public_document(path: str) -> bool:
    return path == "/schema" or path.startswith("/schema/")


def assert_security_headers(r: httpx.Response) -> None:
    """The headers every response must carry (pages, redirects and JSON alike)."""
    where = (r.request.method, r.request.url.path, r.status_code)
    assert r.headers.get("x-content-type-options") == "nosniff", where
    assert r.headers.get("referrer-policy") == "no-referrer", where
    if not _is_public_document(r.request.url.path):
        assert r.headers.get("cache-control") == "no-store", (where, r.headers.get("cache-control"))
    csp = r.headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, (where, csp)
    path = r.request.url.path
    if path == "/dpo" or path.startswith("/dpo/"):
        # The console runs its own copy-button script, from itself only, never inline.
        assert "script-src 'self';" in csp and "unsafe" not in csp.split("style-src")[0], csp
    elif "script-src" in csp:  # otherwise only the Swagger UI pages load script
        assert _is_public_document(path), (where, csp)
        assert r.headers["content-type"].startswith("text/html"), (where, csp)
    assert r.headers.get("x-frame-options") == "DENY", where


async def _world(vault, http: httpx.AsyncClient) -> dict[str, Any]:
    """A subject with a pending double opt-in consent, and keys for the roles."""
    writer = await client_key(vault, "crm", "writer")
    dpo = await client_key(vault, "dpo-1", "dpo")
    p = person(31)
    sid = (await http.post("/v1/subjects", json=p, headers=bearer(writer))).json()["subject_id"]
    r = await http.post(
        f"/v1/subjects/{sid}/consents",
        json={"purpose": "newsletter.email", "evidence": NEWSLETTER_EVIDENCE},
        headers=bearer(writer),
    )
    assert r.status_code == 201, r.text
    r2 = await http.post(
        f"/v1/subjects/{sid}/consents",
        json={"purpose": "order.delivery", "reference": "order 1"},
        headers=bearer(writer),
    )
    assert r2.status_code == 201, r2.text
    (token,) = outbox_links(vault.settings.outbox_dir)
    return {
        "p": p,
        "sid": sid,
        "cid": r.json()["consent_id"],
        "token": token,
        "writer": writer,
        "dpo": dpo,
    }


def _concrete(path: str, world: dict[str, Any]) -> str:
    values = {
        "token": world["token"],
        "subject_id": world["sid"],
        "consent_id": world["cid"],
        "request_id": ZERO,
        "followup_id": ZERO,
        "name": "crm",
        "path": "swagger",
    }
    return _PARAM.sub(lambda m: values.get(m.group(1), ZERO), path)


async def test_every_route_answers_with_the_security_headers(vault):
    """Every method of every route in the route table, public or not, allowed or refused,
    answers with nosniff, no-referrer, the strict CSP (script only on the Swagger page),
    frame denial and, except the public API documents, no-store."""
    app = create_app(vault=vault, configure_logs=False)
    routes = [r for r in app.routes if isinstance(r, HTTPRoute)]
    assert len(routes) > 50
    async with api(vault) as http:
        world = await _world(vault, http)
        seen = 0
        for route in routes:
            path = _concrete(route.path, world)
            for method in sorted(route.methods):
                for headers in ({}, bearer(world["dpo"])):
                    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
                    r = await http.request(method, path, headers=headers, **body)
                    assert r.status_code < 500, (method, path, r.status_code, r.text[:200])
                    assert_security_headers(r)
                    seen += 1
        r = await http.get("/v1/no-such-route")
        assert_security_headers(r)
    assert seen > 150


async def test_pages_and_contact_data_answers_carry_the_headers(vault):
    """The answers that matter most carry them: the double opt-in form page, a lookup that
    reveals contact data, the subject's own view, and the JSON and HTML exports."""
    async with api(vault) as http:
        world = await _world(vault, http)
        lookup = await client_key(vault, "shop", "lookup", ["order.delivery"])
        page = await http.get(f"/confirm/{world['token']}")
        assert page.status_code == 200 and "<form" in page.text
        found = await http.post(
            "/v1/lookup",
            json={"purpose": "order.delivery", "subject_id": world["sid"]},
            headers=bearer(lookup),
        )
        assert found.status_code == 200 and found.json()["fields"], found.text
        self_headers = await api_sign_in(http, vault, world["p"]["email"])
        me = await http.get("/self/v1/me", headers=self_headers)
        assert me.status_code == 200, me.text
        own_export = await http.get("/self/v1/export", headers=self_headers)
        export = await http.get(f"/v1/subjects/{world['sid']}/export", headers=bearer(world["dpo"]))
        html = await http.get(
            f"/v1/subjects/{world['sid']}/export?format=html", headers=bearer(world["dpo"])
        )
        assert html.headers["content-type"].startswith("text/html"), html.text[:200]
        for r in (page, found, me, own_export, export, html):
            assert r.status_code == 200, (r.request.url.path, r.text[:200])
            assert_security_headers(r)


async def test_each_security_header_is_sent_once(vault):
    """Pages whose controllers used to set the headers themselves get each one once, not
    twice (a doubled Cache-Control or CSP is combined by browsers into a different policy)."""
    async with api(vault) as http:
        world = await _world(vault, http)
        proof = f"/v1/consents/{world['cid']}/proof"
        for path, headers in (
            ("/privacy", {}),
            ("/dpo/signin", {}),
            (proof, bearer(world["dpo"])),
            (proof + "?format=html", bearer(world["dpo"])),
        ):
            r = await http.get(path, headers=headers)
            assert r.status_code == 200, (path, r.text[:200])
            assert_security_headers(r)
            names = [k.lower() for k, _ in r.headers.raw]
            for name in (
                b"cache-control",
                b"content-security-policy",
                b"x-frame-options",
                b"x-content-type-options",
                b"referrer-policy",
            ):
                assert names.count(name) <= 1, (path, name, r.headers.raw)
