"""The failed-authentication brake: a valid key is always served; only failed attempts from
an address are counted (across processes, in the shared counter store) and, over the
limit, answered 429 with Retry-After instead of 401."""

from __future__ import annotations

import socket
import uuid
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest

from api.app import create_app
from tests.support.factories import api, bearer, client_key
from tests.support.privacy import assert_problem
from vault.context import VaultContext


@asynccontextmanager
async def app_client(vault: VaultContext, peer: str = "127.0.0.1") -> Any:
    """A second, independent app (its own limiter state, as another worker process would
    have) on the same vault, reached from `peer`."""
    app = create_app(vault=vault, configure_logs=False)
    for hook in app.on_startup:
        await hook(app)
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t.local") as http:
            yield http
    finally:
        for hook in app.on_shutdown:
            await hook(app)


async def test_a_valid_key_after_31_failures_is_served(vault):
    """With the default limit of 30, the 31st wrong key gets 429 but a valid key from the
    same address right after is served."""
    good = await client_key(vault, "crm", "writer")
    async with api(vault) as http:
        codes = [
            (await http.get("/v1/clients", headers=bearer("tresor_wrong"))).status_code
            for _ in range(31)
        ]
        r = await http.post("/v1/subjects", json={"name": "Erika Muster"}, headers=bearer(good))
    assert codes == [401] * 30 + [429]
    assert r.status_code == 201


async def test_failures_over_the_limit_get_429_with_retry_after_until_the_window_ends(vault, clock):
    """Over the limit a wrong key is a 429 problem with Retry-After; after the minute it is a
    401 again."""
    vault.settings = replace(vault.settings, failed_auth_limit=3)
    async with api(vault) as http:
        for _ in range(3):
            assert_problem(await http.get("/v1/clients", headers=bearer("tresor_x")), 401)
        r = await http.get("/v1/clients", headers={"Authorization": "Basic eA=="})
        body = assert_problem(r, 429)
        assert body["type"] == "urn:tresor:problem:rate-limited"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        clock.advance(timedelta(seconds=61))
        assert_problem(await http.get("/v1/clients", headers=bearer("tresor_x")), 401)


async def test_no_authorization_header_is_401_and_not_counted(vault):
    """Requests without any Authorization header are 401 and never trip the brake."""
    vault.settings = replace(vault.settings, failed_auth_limit=2)
    async with api(vault) as http:
        for _ in range(10):
            assert_problem(await http.get("/v1/clients"), 401)
        assert_problem(await http.get("/v1/clients", headers=bearer("tresor_x")), 401)


async def test_successful_requests_do_not_count_against_the_limit(vault):
    """Only failures count: many good requests never trip the limiter."""
    good = await client_key(vault, "crm", "writer")
    vault.settings = replace(vault.settings, failed_auth_limit=3)
    async with api(vault) as http:
        for _ in range(6):
            r = await http.post("/v1/subjects", json={"name": "Erika Muster"}, headers=bearer(good))
            assert r.status_code == 201


async def test_two_workers_share_the_counter(vault):
    """Two apps on one database (two worker processes) count failures together: the limit
    is not multiplied by the number of workers."""
    vault.settings = replace(vault.settings, failed_auth_limit=4)
    async with app_client(vault) as one, app_client(vault) as two:
        for http in (one, two, one, two):
            assert_problem(await http.get("/v1/clients", headers=bearer("tresor_x")), 401)
        assert_problem(await one.get("/v1/clients", headers=bearer("tresor_x")), 429)
        assert_problem(await two.get("/v1/clients", headers=bearer("tresor_x")), 429)


async def test_spoofed_forwarded_headers_from_an_untrusted_peer_change_nothing(vault):
    """Without trusted proxies a client cannot dodge the brake with X-Forwarded-For or
    Forwarded: every spoofed address is counted as the peer's."""
    vault.settings = replace(vault.settings, failed_auth_limit=3)
    async with app_client(vault, peer="198.51.100.9") as http:
        for n in range(3):
            spoof = {"X-Forwarded-For": f"203.0.113.{n}", "Forwarded": f"for=192.0.2.{n}"}
            r = await http.get("/v1/clients", headers={**bearer("tresor_x"), **spoof})
            assert_problem(r, 401)
        r = await http.get(
            "/v1/clients", headers={**bearer("tresor_x"), "X-Forwarded-For": "203.0.113.99"}
        )
        assert_problem(r, 429)


async def test_behind_a_trusted_proxy_two_forwarded_addresses_have_separate_limits(vault):
    """Behind a trusted load balancer each forwarded client address has its own count; the
    balancer's own address is not one bucket for all."""
    vault.settings = replace(vault.settings, failed_auth_limit=2, trusted_proxies=("10.0.0.0/8",))
    async with app_client(vault, peer="10.1.2.3") as http:
        a = {**bearer("tresor_x"), "X-Forwarded-For": "203.0.113.5"}
        b = {**bearer("tresor_x"), "Forwarded": 'for="[2001:db8::7]:4711";proto=https'}
        for _ in range(2):
            assert_problem(await http.get("/v1/clients", headers=a), 401)
        assert_problem(await http.get("/v1/clients", headers=a), 429)
        for _ in range(2):
            assert_problem(await http.get("/v1/clients", headers=b), 401)
        assert_problem(await http.get("/v1/clients", headers=b), 429)


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not _redis_up(), reason="no Redis at 127.0.0.1:6379")
async def test_the_redis_backend_shares_the_counter_too(vault):
    """With TRESOR_LIMITS_URL pointing at Redis, two apps share the count there (and a
    valid key is still served over the limit)."""
    good = await client_key(vault, "crm", "writer")
    vault.settings = replace(
        vault.settings, failed_auth_limit=2, limits_url="redis://127.0.0.1:6379/0"
    )
    peer = f"192.0.2.{uuid.uuid4().int % 250 + 1}"  # a fresh bucket in the shared Redis
    async with app_client(vault, peer) as one, app_client(vault, peer) as two:
        assert_problem(await one.get("/v1/clients", headers=bearer("tresor_x")), 401)
        assert_problem(await two.get("/v1/clients", headers=bearer("tresor_x")), 401)
        assert_problem(await one.get("/v1/clients", headers=bearer("tresor_x")), 429)
        r = await two.post("/v1/subjects", json={"name": "Erika Muster"}, headers=bearer(good))
        assert r.status_code == 201


async def test_nothing_of_a_key_or_an_address_reaches_logs_counters_or_metrics(vault, log_stream):
    """Failed keys and the forwarded client address appear neither in the logs, nor in the
    shared counter table (a keyed digest of the address only), nor in /metrics."""
    from sqlalchemy import select

    from vault.storage.tables import limit_counters

    vault.settings = replace(vault.settings, failed_auth_limit=1, trusted_proxies=("10.0.0.0/8",))
    guess = "tresor_" + "G" * 43
    async with app_client(vault, peer="10.0.0.1") as http:
        for _ in range(3):
            headers = {**bearer(guess), "X-Forwarded-For": "203.0.113.77"}
            await http.get("/v1/clients", headers=headers)
        metrics_text = (await http.get("/metrics")).text
    async with vault.engine.connect() as conn:
        rows = (await conn.execute(select(limit_counters))).all()
    assert rows and all(r.key.startswith("auth:") for r in rows)
    stored = repr(rows)
    for place in (log_stream.getvalue(), stored, metrics_text):
        assert guess not in place and "GGGGGGGG" not in place
        assert "203.0.113.77" not in place


async def test_with_the_counter_store_down_a_valid_key_is_served_and_a_failure_is_503(vault):
    """The brake costs a valid key nothing, so it is served even when the counters cannot
    be reached; a failed attempt then fails closed with 503 (not an uncounted 401)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    good = await client_key(vault, "crm", "writer")
    vault.settings = replace(vault.settings, limits_url=f"redis://127.0.0.1:{port}/0")
    async with app_client(vault) as http:
        r = await http.post("/v1/subjects", json={"name": "Erika Muster"}, headers=bearer(good))
        assert r.status_code == 201
        assert_problem(await http.get("/v1/clients", headers=bearer("tresor_x")), 503)
        assert_problem(await http.get("/v1/clients"), 401)
