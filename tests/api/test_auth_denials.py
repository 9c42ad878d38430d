"""A 403 for a missing role is an audit event (security finding 6a): the client, the route
template and operation, reason `role_not_allowed`; and it fails closed: without the event
the answer is a 503, not a 403. Both databases."""

from __future__ import annotations

import json

from tests.support.dsar import contract, new_subject
from tests.support.factories import api, bearer, client_key
from tests.support.faults import audit_down
from tests.support.privacy import assert_problem, audit_rows
from vault.audit.events import AuditAction

DENIED = str(AuditAction.ACCESS_DENIED)


async def _denials(vault) -> list[dict]:
    return [e for e in await audit_rows(vault) if e["action"] == DENIED]


async def test_a_role_refusal_is_audited_with_client_route_and_reason(vault):
    """A writer calling the lookup and the DPO export is refused 403; each refusal is an
    event naming the writer, the route template and operation, and the subject when the
    route names one; no contact data or raw path goes into it."""
    sid, p = await new_subject(vault, 971)
    await contract(vault, sid)
    writer = await client_key(vault, "crm", "writer", ["order.delivery"])
    async with api(vault) as http:
        r = await http.post(
            "/v1/lookup",
            json={"purpose": "order.delivery", "email": p["email"]},
            headers={**bearer(writer), "X-Request-ID": "role-denied-1"},
        )
        assert "role" in assert_problem(r, 403)["detail"]
        r = await http.get(f"/v1/subjects/{sid}/export", headers=bearer(writer))
        assert_problem(r, 403)
    first, second = await _denials(vault)
    assert (first["actor_type"], first["actor_id"], first["decision"], first["reason"]) == (
        "client",
        "crm",
        "deny",
        "role_not_allowed",
    )
    assert first["request_id"] == "role-denied-1" and first["subject_id"] is None
    assert json.loads(first["detail"]) == {
        "method": "POST",
        "route": "/v1/lookup",
        "operation": "lookup",
        "role": "writer",
    }
    assert second["subject_id"] == sid
    assert json.loads(second["detail"])["route"] == "/v1/subjects/{subject_id}/export"
    trail = json.dumps(await audit_rows(vault), default=str)
    assert p["email"] not in trail and f"/v1/subjects/{sid}/export" not in trail


async def test_a_role_refusal_without_its_event_is_a_503(vault):
    """With the audit trail down the refusal cannot be recorded: the answer is 503 (as for
    every other request then), not an unaudited 403."""
    dpo = await client_key(vault, "dpo", "dpo")
    async with api(vault) as http:
        async with audit_down(vault):
            r = await http.post("/v1/subjects", json={"name": "X"}, headers=bearer(dpo))
        assert assert_problem(r, 503)["type"] == "urn:tresor:problem:unavailable"
        r = await http.post("/v1/subjects", json={"name": "X"}, headers=bearer(dpo))
        assert_problem(r, 403)
    assert [e["actor_type"] for e in await _denials(vault)] == ["dpo"]
