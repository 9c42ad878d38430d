"""API keys and roles: who may call what, and that refusals are clear and audited."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from tests.support.factories import api, bearer, client_key, person
from tests.support.privacy import assert_problem, row_counts
from vault.storage.tables import audit_events, clients


async def _lookup_events(vault) -> list:
    async with vault.engine.connect() as conn:
        return (
            await conn.execute(
                select(audit_events)
                .where(audit_events.c.action == "client:contact:lookup")
                .order_by(audit_events.c.seq)
            )
        ).all()


async def test_missing_invalid_and_revoked_keys_get_401(vault):
    """No key, a malformed header, an unknown key and a revoked key each get a 401 problem
    with a Bearer WWW-Authenticate challenge, on every protected area."""
    vault.settings = replace(vault.settings, failed_auth_limit=1000)  # many failures on purpose
    writer = await client_key(vault, "crm", "writer")
    admin = await client_key(vault, "ops", "admin")
    async with api(vault) as http:
        r = await http.post("/v1/clients/crm/revoke", headers=bearer(admin))
        assert r.status_code == 204, r.text
        attempts = [
            {},
            {"Authorization": ""},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer    "},
            {"Authorization": "Basic dXNlcjpwYXNz"},
            {"Authorization": "tresor_abc"},
            bearer("tresor_" + "A" * 43),
            bearer("not-even-our-prefix"),
            bearer("tresor_" + "x" * 300),
            bearer(writer),  # revoked
        ]
        requests = [
            ("POST", "/v1/subjects", {"json": person(21)}),
            ("POST", "/v1/lookup", {"json": {"purpose": "order.delivery", "email": "a@b.de"}}),
            ("GET", "/v1/clients", {}),
            ("GET", "/v1/subjects/00000000-0000-4000-8000-000000000000/consents", {}),
        ]
        before = await row_counts(vault)
        for headers in attempts:
            for method, path, kwargs in requests:
                r = await http.request(method, path, headers=headers, **kwargs)
                assert r.status_code == 401, (headers, path, r.text)
                assert_problem(r)
                assert r.headers["www-authenticate"].startswith("Bearer"), r.headers
                assert "x-request-id" in r.headers
        assert await row_counts(vault) == before


async def test_roles_are_enforced(vault):
    """A lookup key cannot create subjects or record consents, a writer key cannot look up,
    and neither can administer clients; each refusal is a 403 problem that changes nothing."""
    writer = await client_key(vault, "crm", "writer")
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    dpo = await client_key(vault, "dpo", "dpo")
    p = person(22)
    async with api(vault) as http:
        r = await http.post("/v1/subjects", json=p, headers=bearer(writer))
        assert r.status_code == 201
        sid = r.json()["subject_id"]
        before = await row_counts(vault)
        lookups_before = len(await _lookup_events(vault))
        denied = [
            (shop, "POST", "/v1/subjects", {"json": person(23)}),
            (shop, "PATCH", f"/v1/subjects/{sid}/contact", {"json": {"name": "Neu"}}),
            (shop, "POST", f"/v1/subjects/{sid}/consents",
             {"json": {"purpose": "order.delivery", "reference": "o-1"}}),
            (shop, "GET", f"/v1/subjects/{sid}/consents", {}),
            (writer, "POST", "/v1/lookup",
             {"json": {"purpose": "order.delivery", "subject_id": sid}}),
            (dpo, "POST", "/v1/subjects", {"json": person(24)}),
            (writer, "GET", "/v1/clients", {}),
            (shop, "POST", "/v1/clients", {"json": {"name": "evil", "role": "admin"}}),
            (dpo, "POST", "/v1/clients/crm/revoke", {}),
        ]
        for key, method, path, kwargs in denied:
            r = await http.request(method, path, headers=bearer(key), **kwargs)
            body = assert_problem(r, 403)
            assert "role" in body["detail"], body
        assert await row_counts(vault) == before
        # A role refusal happens before the lookup: no contact data was considered.
        assert len(await _lookup_events(vault)) == lookups_before
        # The writer's key still works after all that.
        r = await http.get(f"/v1/subjects/{sid}/consents", headers=bearer(writer))
        assert r.status_code == 200


async def test_purpose_not_allowed_is_denied_and_audited(vault):
    """A lookup client asking for a purpose outside its allowance gets 403
    purpose_not_allowed without any contact data, and the denial is in the audit trail."""
    writer = await client_key(vault, "crm", "writer")
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    p = person(25)
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=p, headers=bearer(writer))).json()["subject_id"]
        r = await http.post(
            f"/v1/subjects/{sid}/consents",
            json={"purpose": "account.service", "reference": "Kundenkonto 1"},
            headers=bearer(writer),
        )
        assert r.status_code == 201
        r = await http.post(
            "/v1/lookup",
            json={"purpose": "account.service", "email": p["email"]},
            headers={**bearer(shop), "X-Request-ID": "deny-me-1"},
        )
    body = assert_problem(r, 403)
    assert body["reason"] == "purpose_not_allowed"
    assert body["type"] == "urn:tresor:problem:denied:purpose_not_allowed"
    assert p["email"].lower() not in r.text.lower() and p["name"] not in r.text
    (event,) = await _lookup_events(vault)
    assert event.decision == "deny"
    assert event.reason == "purpose_not_allowed"
    assert event.purpose == "account.service"
    assert event.actor_type == "client" and event.actor_id == "shop"
    assert event.request_id == "deny-me-1"
    assert event.fields in (None, "")


async def test_admin_manages_clients_and_the_key_is_shown_once(vault):
    """An admin creates, lists and revokes clients over HTTP; the new key appears only in the
    create response (never in the list, never stored in plain), works at once and stops
    working when revoked."""
    admin = await client_key(vault, "ops", "admin")
    async with api(vault) as http:
        r = await http.post(
            "/v1/clients",
            json={"name": "mailer", "role": "lookup", "purposes": ["newsletter.email"]},
            headers=bearer(admin),
        )
        assert r.status_code == 201, r.text
        created = r.json()
        key = created["api_key"]
        assert key.startswith("tresor_") and len(key) >= 40
        assert created["client"] == {
            "name": "mailer",
            "role": "lookup",
            "purposes": ["newsletter.email"],
            "created_at": created["client"]["created_at"],
            "revoked_at": None,
        }

        r = await http.post(
            "/v1/clients", json={"name": "mailer", "role": "writer"}, headers=bearer(admin)
        )
        assert_problem(r, 409)
        assert key not in r.text

        r = await http.get("/v1/clients", headers=bearer(admin))
        assert r.status_code == 200
        assert key not in r.text and "api_key" not in r.text
        assert {c["name"]: c["role"] for c in r.json()["items"]} == {
            "mailer": "lookup",
            "ops": "admin",
        }

        r = await http.post(
            "/v1/lookup",
            json={"purpose": "newsletter.email", "email": "niemand@example.org"},
            headers=bearer(key),
        )
        assert r.status_code == 404, r.text  # authenticated, and nobody matches

        r = await http.post("/v1/clients/mailer/revoke", headers=bearer(admin))
        assert r.status_code == 204 and r.content == b""
        r = await http.post("/v1/clients/mailer/revoke", headers=bearer(admin))
        assert_problem(r, 404)

        r = await http.get("/v1/clients", headers=bearer(admin))
        mailer = next(c for c in r.json()["items"] if c["name"] == "mailer")
        assert mailer["revoked_at"] is not None

        r = await http.post(
            "/v1/lookup",
            json={"purpose": "newsletter.email", "email": "niemand@example.org"},
            headers=bearer(key),
        )
        assert_problem(r, 401)

    async with vault.engine.connect() as conn:
        stored = (await conn.execute(select(clients.c.key_hash))).scalars().all()
        events = (
            await conn.execute(
                select(audit_events.c.action, audit_events.c.actor_id, audit_events.c.detail)
                .where(audit_events.c.action.like("admin:client:%"))
                .order_by(audit_events.c.seq)
            )
        ).all()
    assert key not in stored and all(len(h) == 64 for h in stored)
    assert all(key not in (e.detail or "") for e in events)
    assert [(e.action, e.actor_id) for e in events][-2:] == [
        ("admin:client:create", "ops"),
        ("admin:client:revoke", "ops"),
    ]


def test_every_route_that_needs_a_key_names_the_roles_that_may_call_it():
    """Default deny by review: an authenticated route without `roles(...)` fails here, and
    so do roles on a route the API-key middleware skips (nothing would check them)."""
    import re

    from api.app import NO_API_KEY_PATHS, create_app
    from api.auth import ROLES
    from vault.settings import Settings

    app = create_app(Settings(), configure_logs=False)
    unguarded, unchecked = [], []
    for route in app.routes:
        skipped = any(re.search(p, route.path) for p in NO_API_KEY_PATHS)
        for handler in getattr(route, "route_handlers", []):
            if handler.http_methods == {"OPTIONS"}:
                continue
            keyless = skipped or handler.opt.get("exclude_from_auth")
            if keyless and handler.opt.get(ROLES):
                unchecked.append(route.path)
            elif not keyless and not handler.opt.get(ROLES):
                unguarded.append((route.path, sorted(handler.http_methods)))
    assert unguarded == [] and unchecked == []
