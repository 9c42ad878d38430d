"""Per-client quotas over HTTP: 429 with Retry-After, RateLimit and RateLimit-Policy, an
audit event and a metric; the admin API sets quotas and rotates keys; nothing of a key
reaches the logs, the audit trail or the metrics."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.support.db import audit_trail
from tests.support.factories import ADMIN, api, bearer, client_key
from tests.support.privacy import assert_problem
from vault.admin.clients import Quota, create_client, key_hash

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def _metric(text: str, client: str, quota: str) -> float:
    prefix = f'tresor_client_quota_exceeded_total{{client="{client}",quota="{quota}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


async def test_rate_quota_answers_429_with_ratelimit_headers_audit_and_metric(vault, clock):
    """Over its rate a client gets a 429 problem with Retry-After, RateLimit-Policy and
    RateLimit; the breach is one audit event and counted in /metrics; the next window
    serves again."""
    _, key = await create_client(vault, ADMIN, "crm", "writer", [], Quota(rate=3, window=60))
    async with api(vault) as http:
        before = _metric((await http.get("/metrics")).text, "crm", "rate")
        codes = [
            (
                await http.get("/v1/subjects/" + UNKNOWN_ID + "/consents", headers=bearer(key))
            ).status_code
            for _ in range(3)
        ]
        assert 429 not in codes
        r = await http.get("/v1/subjects/" + UNKNOWN_ID + "/consents", headers=bearer(key))
        body = assert_problem(r, 429)
        assert body["type"] == "urn:tresor:problem:rate-limited"
        assert r.headers["retry-after"] == "60"
        assert r.headers["ratelimit-policy"] == '"rate";q=3;w=60'
        assert r.headers["ratelimit"] == '"rate";r=0;t=60'
        assert_problem(
            await http.get("/v1/subjects/" + UNKNOWN_ID + "/consents", headers=bearer(key)), 429
        )
        after = _metric((await http.get("/metrics")).text, "crm", "rate")
        assert after - before == 2
        events = await audit_trail(vault, "client:quota:exceeded")
        assert len(events) == 1 and events[0].actor_id == "crm"
        clock.advance(timedelta(seconds=60))
        r = await http.get("/v1/subjects/" + UNKNOWN_ID + "/consents", headers=bearer(key))
        assert r.status_code == 404


async def test_daily_lookups_quota_covers_single_and_batch_lookups(vault):
    """A batch counts each identifier: one larger than what is left is refused whole with
    the daily-lookups policy; single lookups then use up the rest."""
    _, key = await create_client(
        vault, ADMIN, "shop", "lookup", ["order.delivery"], Quota(daily_lookups=3)
    )
    one = {"purpose": "order.delivery", "subject_id": UNKNOWN_ID}
    async with api(vault) as http:
        r = await http.post(
            "/v1/lookup/batch",
            json={"purpose": "order.delivery", "subject_ids": [UNKNOWN_ID] * 4},
            headers=bearer(key),
        )
        assert_problem(r, 429)
        assert r.headers["ratelimit-policy"] == '"daily-lookups";q=3;w=86400'
        for _ in range(3):
            assert_problem(await http.post("/v1/lookup", json=one, headers=bearer(key)), 404)
        r = await http.post("/v1/lookup", json=one, headers=bearer(key))
        assert_problem(r, 429)
        assert r.headers["ratelimit"].startswith('"daily-lookups";r=0;t=')


async def test_admin_api_sets_quotas_and_rotates_keys_without_leaking_them(
    vault, clock, log_stream
):
    """PATCH sets and lifts quotas, rotate-key returns a new key while the old one works for
    the grace and not after; no key or key hash appears in the logs, audit trail or
    metrics."""
    admin = await client_key(vault, "ops", "admin")
    async with api(vault) as http:
        r = await http.post(
            "/v1/clients",
            json={"name": "crm", "role": "writer", "rate": "100/s", "daily_lookups": 5},
            headers=bearer(admin),
        )
        assert r.status_code == 201, r.text
        old = r.json()["api_key"]
        assert (r.json()["client"]["rate"], r.json()["client"]["daily_lookups"]) == ("100/s", 5)
        r = await http.patch(
            "/v1/clients/crm", json={"rate": "off", "daily_lookups": 0}, headers=bearer(admin)
        )
        assert r.status_code == 204
        assert_problem(
            await http.patch("/v1/clients/crm", json={"rate": "fast"}, headers=bearer(admin)),
            422,
        )
        assert_problem(await http.patch("/v1/clients/crm", json={}, headers=bearer(admin)), 422)
        assert_problem(
            await http.patch("/v1/clients/nobody", json={"rate": "off"}, headers=bearer(admin)),
            404,
        )
        r = await http.post(
            "/v1/clients/crm/rotate-key", json={"grace": "1h"}, headers=bearer(admin)
        )
        assert r.status_code == 201, r.text
        new = r.json()["api_key"]
        assert r.json()["client"]["previous_key_valid_until"] is not None
        for key in (old, new):
            assert (
                await http.get("/v1/subjects/" + UNKNOWN_ID + "/consents", headers=bearer(key))
            ).status_code == 404
        clock.advance(timedelta(hours=1))
        assert_problem(
            await http.get("/v1/subjects/" + UNKNOWN_ID + "/consents", headers=bearer(old)), 401
        )
        r = await http.get("/v1/clients", headers=bearer(admin))
        crm = next(c for c in r.json()["items"] if c["name"] == "crm")
        assert (crm["rate"], crm["daily_lookups"]) == (None, None)
        assert crm["last_used_at"] is not None
        r = await http.get("/v1/clients/unused?days=1", headers=bearer(admin))
        assert r.status_code == 200 and r.json()["items"] == []
        metrics_text = (await http.get("/metrics")).text
    trail = json.dumps([dict(e._mapping) for e in await audit_trail(vault)], default=str)
    secrets = [old, new, key_hash(vault, old), key_hash(vault, new)]
    for place in (log_stream.getvalue(), trail, metrics_text):
        assert not [s for s in secrets if s in place]
