"""API keys and roles: who may call what, and that refusals are clear and audited."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from tests.support.factories import api, bearer, client_key, person
from tests.support.privacy import assert_problem, row_counts
from vault.storage.audit_tables import audit_events


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
            (
                shop,
                "POST",
                f"/v1/subjects/{sid}/consents",
                {"json": {"purpose": "order.delivery", "reference": "o-1"}},
            ),
            (shop, "GET", f"/v1/subjects/{sid}/consents", {}),
            (
                writer,
                "POST",
                "/v1/lookup",
                {"json": {"purpose": "order.delivery", "subject_id": sid}},
            ),
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


def _app_with(monkeypatch, handler):
    """`create_app` with one more route handler beside the real ones."""
    import api.app
    from vault.settings import Settings

    monkeypatch.setattr(api.app, "ROUTE_HANDLERS", [*api.app.ROUTE_HANDLERS, handler])
    return api.app.create_app(Settings(), configure_logs=False)


def test_the_app_refuses_to_start_with_a_route_that_has_neither_roles_nor_public(monkeypatch):
    """Default deny by construction: a route that names no roles and is not marked public
    stops `create_app`, and the message names the route."""
    import pytest
    from litestar import get

    from api.auth import UnguardedRoute

    @get("/v1/forgotten", operation_id="forgotten", sync_to_thread=False)
    def forgotten() -> str:
        return "x"

    with pytest.raises(UnguardedRoute, match="GET /v1/forgotten"):
        _app_with(monkeypatch, forgotten)


def test_the_app_refuses_to_start_with_a_public_route_that_also_names_roles(monkeypatch):
    """A public route skips the API key, so roles on it would be checked by nothing: that
    contradiction stops `create_app` too."""
    import pytest
    from litestar import get

    from api.auth import UnguardedRoute, public, roles
    from vault.admin.clients import Role

    @get("/v1/both", operation_id="both", opt={**public(), **roles(Role.DPO)}, sync_to_thread=False)
    def both() -> str:
        return "x"

    with pytest.raises(UnguardedRoute, match="GET /v1/both"):
        _app_with(monkeypatch, both)


async def test_a_route_marked_public_is_served_without_a_key_and_others_are_not(vault):
    """The one public marker is the only way past the API key: the OpenAPI document (its
    router is marked public) and /health answer without a key, an API route does not."""
    async with api(vault) as http:
        assert (await http.get("/schema/openapi.json")).status_code == 200
        assert (await http.get("/health")).status_code == 200
        assert_problem(await http.get("/v1/audit"), 401)
