"""/metrics: Prometheus text with route templates and outcomes, never contact data."""

from __future__ import annotations

from tests.support.factories import api, bearer, client_key, person
from vault.audit import chain as audit_chain


async def test_metrics_count_requests_by_route_template_without_personal_data(vault):
    """Requests are counted under their route template; an e-mail put in a path never shows."""
    writer = await client_key(vault, "crm", "writer")
    p = person(41)
    async with api(vault) as http:
        assert (await http.post("/v1/subjects", json=p, headers=bearer(writer))).status_code == 201
        await http.get(f"/v1/subjects/{p['email']}/consents", headers=bearer(writer))
        await http.get("/health")
        r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'tresor_http_requests_total{method="POST",route="/v1/subjects",status="201"}' in text
    assert 'route="/health"' in text
    for value in (p["email"], p["name"], p["phone"], p["external_ref"]):
        assert value not in text


async def test_metrics_need_no_api_key(vault):
    """Monitoring can scrape /metrics without an API key (it holds no personal data)."""
    async with api(vault) as http:
        assert (await http.get("/metrics")).status_code == 200


async def test_lookup_decisions_are_counted_by_purpose_and_reason(vault):
    """Allowed and denied lookups show up by purpose and reason code, with no identifier."""
    from prometheus_client import REGISTRY

    def count(decision: str, reason: str) -> float:
        value = REGISTRY.get_sample_value(
            "tresor_lookup_decisions_total",
            {"purpose": "order.delivery", "decision": decision, "reason": reason},
        )
        return value or 0.0

    writer = await client_key(vault, "crm", "writer")
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    p = person(42)
    before_deny, before_allow = count("deny", "no_consent"), count("allow", "")
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=p, headers=bearer(writer))).json()["subject_id"]
        q = {"purpose": "order.delivery", "subject_id": sid}
        assert (await http.post("/v1/lookup", json=q, headers=bearer(shop))).status_code == 403
        await http.post(
            f"/v1/subjects/{sid}/consents",
            json={"purpose": "order.delivery", "reference": "A-1"},
            headers=bearer(writer),
        )
        assert (await http.post("/v1/lookup", json=q, headers=bearer(shop))).status_code == 200
        text = (await http.get("/metrics")).text
    assert count("deny", "no_consent") == before_deny + 1
    assert count("allow", "") == before_allow + 1
    assert sid not in text and p["email"] not in text


async def test_sealer_rounds_report_sealed_events_backlog_and_last_round(vault):
    """The sealer job exports how many events it sealed, the backlog it left, and when it
    last ran, so an alert can notice a node-less or stuck sealer."""
    from prometheus_client import REGISTRY

    from api.periodic_jobs import sealer_round

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    writer = await client_key(vault, "crm", "writer")
    async with api(vault) as http:
        for n in range(3):
            r = await http.post("/v1/subjects", json=person(60 + n), headers=bearer(writer))
            assert r.status_code == 201
    before = sample("tresor_audit_sealed_events_total")
    unsealed_before = await audit_chain.unsealed_count(vault)
    assert unsealed_before >= 3  # the creations and the client setup wait for the sealer
    run = sealer_round(vault)
    await run()
    assert sample("tresor_audit_sealed_events_total") == before + unsealed_before
    assert sample("tresor_audit_unsealed_events") == 0
    assert sample("tresor_audit_last_seal_timestamp_seconds") > 0
    async with api(vault) as http:
        text = (await http.get("/metrics")).text
    assert "tresor_audit_unsealed_events 0.0" in text
