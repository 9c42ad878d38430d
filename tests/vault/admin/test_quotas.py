"""Per-client quotas on the shared counters: never more than the quota across processes,
a refusal names what is left and when to retry, one audit event per breach and window."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.support.db import audit_trail
from tests.support.factories import ADMIN
from vault.admin.clients import Quota, create_client, list_clients
from vault.admin.limits import DatabaseCounters, RedisCounters, Window
from vault.admin.quotas import QuotaGate, parse_rate, set_quota
from vault.errors import InvalidInput, NotFound, QuotaExceeded


async def _client(vault, **quota):
    info, _ = await create_client(vault, ADMIN, "crm", "lookup", ["order.delivery"], Quota(**quota))
    return info


async def _served(gate, client, n):
    out = 0
    for _ in range(n):
        try:
            await gate.request(client, None)
            out += 1
        except QuotaExceeded:
            pass
    return out


async def test_two_processes_together_never_exceed_the_rate(vault, clock):
    """Two gates (two processes) on one database serve exactly the quota in a window, and
    serve again in the next window."""
    client = await _client(vault, rate=120, window=60)
    one, two = (QuotaGate(vault, DatabaseCounters(vault)) for _ in range(2))
    served = 0
    for _ in range(100):
        served += await _served(one, client, 1) + await _served(two, client, 1)
    # 1/50 leases: at most one unused lease per other process is lost (tolerance 3).
    assert 120 - 3 <= served <= 120
    clock.advance(timedelta(seconds=60))
    assert await _served(one, client, 5) == 5


async def test_a_refusal_names_the_policy_what_is_left_and_when(vault, clock):
    """The error carries the policy, quota, window, what is left and a Retry-After within
    the window."""
    client = await _client(vault, rate=3, window=1)
    gate = QuotaGate(vault, DatabaseCounters(vault))
    assert await _served(gate, client, 3) == 3
    with pytest.raises(QuotaExceeded) as err:
        await gate.request(client, "req-1")
    e = err.value
    assert (e.client, e.policy, e.quota, e.window, e.remaining, e.retry_after) == (
        "crm",
        "rate",
        3,
        1,
        0,
        1,
    )


async def test_a_breach_is_audited_once_per_window_across_processes(vault, clock):
    """Many refused requests on two processes leave one audit event per window."""
    client = await _client(vault, rate=2, window=60)
    gates = [QuotaGate(vault, DatabaseCounters(vault)) for _ in range(2)]
    for gate in gates * 3:
        await _served(gate, client, 2)
    events = await audit_trail(vault, "client:quota:exceeded")
    assert len(events) == 1
    assert events[0].actor_id == "crm" and events[0].decision == "deny"
    assert json.loads(events[0].detail)["quota"] == "rate"
    clock.advance(timedelta(seconds=60))
    for gate in gates:
        await _served(gate, client, 3)
    assert len(await audit_trail(vault, "client:quota:exceeded")) == 2


async def test_daily_lookups_count_a_batch_whole_or_not_at_all(vault, clock):
    """A batch larger than what is left is refused whole; smaller ones fit until the day
    is used up; the next UTC day starts over."""
    client = await _client(vault, daily_lookups=10)
    gate = QuotaGate(vault, DatabaseCounters(vault))
    await gate.lookups(client, 8, None)
    with pytest.raises(QuotaExceeded) as err:
        await gate.lookups(client, 3, None)
    assert err.value.policy == "daily-lookups" and err.value.remaining == 2
    await gate.lookups(client, 2, None)
    clock.advance(timedelta(days=1))
    await gate.lookups(client, 10, None)


async def test_a_client_without_quotas_never_touches_the_counters(vault):
    """No quota, no counting: the hot path of an unlimited client costs nothing."""

    class Refusing(DatabaseCounters):
        async def add(self, key: str, window: Window, amount: int) -> int:
            raise AssertionError("counted a client without quotas")

    client = await _client(vault)
    gate = QuotaGate(vault, Refusing(vault))
    for _ in range(5):
        await gate.request(client, None)
        await gate.lookups(client, 100, None)


async def test_set_quota_changes_lifts_and_audits(vault):
    """Quotas are set, changed one at a time and lifted; each change is audited; an
    unknown client is a NotFound."""
    await _client(vault)
    await set_quota(vault, ADMIN, "crm", rate=(200, 1), daily_lookups=1_000_000)
    await set_quota(vault, ADMIN, "crm", rate=None)
    [crm] = await list_clients(vault)
    assert crm.quota == Quota(None, None, 1_000_000)
    details = [json.loads(e.detail) for e in await audit_trail(vault, "admin:client:update")]
    assert details == [
        {"client": "crm", "rate": "200/s", "daily_lookups": 1_000_000},
        {"client": "crm", "rate": "-", "daily_lookups": 1_000_000},
    ]
    with pytest.raises(NotFound):
        await set_quota(vault, ADMIN, "nobody", rate=None)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("200/s", (200, 1)), ("1000/m", (1000, 60)), ("5/h", (5, 3600)), ("off", None)],
)
def test_parse_rate(text, parsed):
    """Rates are requests per second, minute or hour; `off` lifts the limit."""
    assert parse_rate(text) == parsed


@pytest.mark.parametrize("text", ["200", "200/d", "-1/s", "0/s", "x/s", "/s"])
def test_parse_rate_refuses_anything_else(text):
    """Anything else is a clear input error."""
    with pytest.raises(InvalidInput):
        parse_rate(text)


async def test_redis_counters_add_within_a_window(vault):
    """The Redis backend counts per window like the database (skipped without Redis)."""
    import socket
    import uuid

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    store = RedisCounters("redis://127.0.0.1:6379/0")
    key = f"test:{uuid.uuid4().hex}"
    try:
        window = Window(1_000_000_020, 60)
        assert await store.add(key, window, 2) == 2
        assert await store.add(key, window, 3) == 5
        assert await store.add(key, Window(1_000_000_080, 60), 1) == 1
    finally:
        await store.close()


async def test_an_unreachable_redis_fails_closed(vault):
    """Counting against a Redis nobody listens on is `Unavailable` (a 503), not a pass."""
    import socket

    from vault.errors import Unavailable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = RedisCounters(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(Unavailable):
            await store.add("test:x", Window(0, 60), 1)
    finally:
        await store.close()
