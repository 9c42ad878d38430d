"""The lookup endpoint end to end through HTTP, on both databases."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.support.factories import (
    api,
    bearer,
    client_key,
    person,
)
from vault.storage.audit_tables import audit_events


async def _audit_count(vault) -> int:
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(audit_events))).scalar_one()


async def test_contract_basis_reveals_only_the_purpose_fields(vault):
    """A contract basis for order.delivery reveals name, address and phone, never e-mail."""
    writer = await client_key(vault, "crm", "writer")
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    p = person(1)
    async with api(vault) as http:
        r = await http.post("/v1/subjects", json=p, headers=bearer(writer))
        assert r.status_code == 201, r.text
        sid = r.json()["subject_id"]
        r = await http.post(
            f"/v1/subjects/{sid}/consents",
            json={"purpose": "order.delivery", "reference": "order 4711"},
            headers=bearer(writer),
        )
        assert r.status_code == 201, r.text
        r = await http.post(
            "/v1/lookup",
            json={"purpose": "order.delivery", "external_ref": p["external_ref"]},
            headers=bearer(shop),
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["subject_id"] == sid
    assert set(body["fields"]) == {"name", "postal_address", "phone"}
    assert body["fields"]["name"] == p["name"]
    assert body["basis"]["type"] == "contract"


async def test_every_lookup_writes_one_audit_event(vault):
    """Allowed, denied and not-found lookups each add exactly one audit event."""
    writer = await client_key(vault, "crm", "writer")
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=person(3), headers=bearer(writer))).json()[
            "subject_id"
        ]
        before = await _audit_count(vault)
        statuses = []
        for q in (
            {"purpose": "order.delivery", "subject_id": sid},
            {"purpose": "offers.phone", "subject_id": sid},
            {"purpose": "order.delivery", "email": "niemand@example.org"},
        ):
            statuses.append(
                (await http.post("/v1/lookup", json=q, headers=bearer(shop))).status_code
            )
    assert statuses == [403, 403, 404]
    assert await _audit_count(vault) == before + 3
