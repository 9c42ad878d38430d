"""The shared fixed-window counters in the database: atomic adds per window, a new window
starts over, a node whose clock lags adds to the newer window, ended windows are purged,
and keys carry no address in clear."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from vault.admin.limits import DatabaseCounters, Window, address_key, purge_counters
from vault.settings import Settings
from vault.storage.tables import limit_counters


def test_window_is_aligned_to_the_epoch_and_says_when_it_ends():
    """Every node computes the same window for the same moment."""
    at = datetime(2026, 11, 23, 10, 0, 42, tzinfo=UTC)
    w = Window.at(at, 60)
    assert w.start % 60 == 0 and w.start <= at.timestamp() < w.start + 60
    assert w.remaining(at) == 18
    assert Window.at(at, 86_400).start == datetime(2026, 11, 23, tzinfo=UTC).timestamp()


async def test_database_counters_add_reset_and_never_go_back(vault):
    """Adds in one window sum up; the next window starts over; an add for an older window
    (a node whose clock lags) counts into the newer one instead of resetting it."""
    store = DatabaseCounters(vault)
    first, second = Window(1_800_000_000, 60), Window(1_800_000_060, 60)
    assert [await store.add("k", first, n) for n in (1, 2, 3)] == [1, 3, 6]
    assert await store.add("k", second, 1) == 1
    assert await store.add("k", first, 1) == 2
    assert await store.add("other", first, 5) == 5


async def test_purge_deletes_only_ended_windows(vault, clock):
    """The retention job drops counters whose window ended; running ones stay."""
    store = DatabaseCounters(vault)
    now = clock.now()
    await store.add("old", Window.at(now - timedelta(minutes=10), 60), 1)
    await store.add("live", Window.at(now, 60), 1)
    assert await purge_counters(vault, now) == 1
    async with vault.engine.connect() as conn:
        keys = (await conn.execute(select(limit_counters.c.key))).scalars().all()
        assert keys == ["live"]
        assert (
            await conn.execute(select(func.count()).select_from(limit_counters))
        ).scalar_one() == 1


async def test_address_keys_are_keyed_digests(vault):
    """The counter key of an address does not contain it and differs per address."""
    a, b = address_key(vault, "203.0.113.5"), address_key(vault, "203.0.113.6")
    assert a != b and "203.0.113" not in a and len(a) == 32


def test_limits_url_must_be_a_redis_url_or_empty():
    """TRESOR_LIMITS_URL takes a redis:// URL or nothing; anything else stops the start."""
    assert Settings.from_env({}).limits_url == ""
    assert Settings.from_env({"TRESOR_LIMITS_URL": "redis://127.0.0.1:6379/0"}).limits_url
    with pytest.raises(ValueError, match="TRESOR_LIMITS_URL"):
        Settings.from_env({"TRESOR_LIMITS_URL": "memcached://x"})
