"""The admin's client routes (api/admin/clients.py): create, list and revoke over HTTP."""

from __future__ import annotations

from sqlalchemy import select

from tests.support.factories import api, bearer, client_key
from tests.support.privacy import assert_problem
from vault.storage.audit_tables import audit_events
from vault.storage.tables import clients


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
            "key_created_at": created["client"]["created_at"],
            "last_used_at": None,
            "previous_key_valid_until": None,
            "rate": None,
            "daily_lookups": None,
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
            json={
                "purpose": "newsletter.email",
                "email": "niemand@example.org",
                "contact": {"brand": "tresor"},
            },
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
            json={
                "purpose": "newsletter.email",
                "email": "niemand@example.org",
                "contact": {"brand": "tresor"},
            },
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
