"""Fixed-window counters shared by every process and node.

A limit counted in each process's memory is multiplied by `--workers N` and by the number
of nodes, and a restart resets it. These counters live in the database (the default: one
upsert that returns the new count) or, with `TRESOR_LIMITS_URL=redis://...`, in Redis
(`INCRBY` and `EXPIRE` in one round trip). Both answer "how many in this window, after
adding mine", which is all the failed-authentication brake and the per-client quotas need.

A window is fixed: `[k·w, (k+1)·w)` seconds since the epoch, the same on every node. At a
window boundary a burst can reach twice the limit within one window's length; the limits
here are brakes and quotas, not exact meters, and the docs state it.

Keys name the limit and what it counts (`auth:` and an address's keyed digest, `rate:` or
`lookups:` and a client id), never an address or a key in clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import case, delete

from vault.crypto import KeyLabel
from vault.errors import Unavailable
from vault.storage.dialect import upsert_insert
from vault.storage.tables import limit_counters

if TYPE_CHECKING:
    from vault.context import VaultContext


@dataclass(frozen=True, slots=True)
class Window:
    """The window a moment falls into: its start (epoch seconds) and length."""

    start: int
    seconds: int

    @classmethod
    def at(cls, now: datetime, seconds: int) -> Window:
        epoch = int(now.timestamp())
        return cls(epoch - epoch % seconds, seconds)

    def remaining(self, now: datetime) -> int:
        """Whole seconds until the window ends (at least 1): a `Retry-After`."""
        return max(1, self.start + self.seconds - int(now.timestamp()))


class CounterStore(Protocol):
    async def add(self, key: str, window: Window, amount: int) -> int:
        """Add `amount` to `key`'s count in `window`; the count after adding."""
        ...

    async def close(self) -> None: ...


class DatabaseCounters:
    """Counters in the `limit_counters` table: one row per key, reset when a new window
    starts. The upsert is atomic on both databases, so concurrent adds on several nodes
    are each counted once."""

    def __init__(self, ctx: VaultContext) -> None:
        self._ctx = ctx

    async def add(self, key: str, window: Window, amount: int) -> int:
        c = limit_counters.c
        stmt = upsert_insert(self._ctx.engine, limit_counters).values(
            key=key,
            window_start=window.start,
            count=amount,
            expires_at=datetime.fromtimestamp(window.start + window.seconds, UTC),
        )
        # A node whose clock is a little behind adds to the newer window rather than
        # resetting it.
        same = c.window_start >= stmt.excluded.window_start
        stmt = stmt.on_conflict_do_update(
            index_elements=["key"],
            set_={
                "count": case((same, c.count + stmt.excluded.count), else_=stmt.excluded.count),
                "window_start": case((same, c.window_start), else_=stmt.excluded.window_start),
                "expires_at": case((same, c.expires_at), else_=stmt.excluded.expires_at),
            },
        ).returning(c.count)
        async with self._ctx.transaction() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def close(self) -> None:
        return None


class RedisCounters:
    """Counters in Redis: `INCRBY` and `EXPIRE` in one pipelined round trip, the key
    carrying its window so it needs no reset."""

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

    async def add(self, key: str, window: Window, amount: int) -> int:
        """Fails closed: an unreachable Redis is `Unavailable` (503), never "not counted"."""
        from redis.exceptions import RedisError

        name = f"tresor:{key}:{window.start}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(name, amount)
                pipe.expire(name, window.seconds + 5)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise Unavailable("limit counters are unavailable; nothing was changed") from exc
        return int(count)

    async def close(self) -> None:
        await self._redis.aclose()


def counter_store(ctx: VaultContext) -> CounterStore:
    """The configured backend: Redis when `TRESOR_LIMITS_URL` names one, else the database."""
    url = ctx.settings.limits_url
    return RedisCounters(url) if url else DatabaseCounters(ctx)


def address_key(ctx: VaultContext, address: str) -> str:
    """A counter key for a client address: its keyed digest, so the counter table holds no
    address (a personal datum) in clear."""
    return ctx.keys.mac(KeyLabel.LIMIT_ADDRESS).digest(address.encode())[:32]


async def purge_counters(ctx: VaultContext, now: datetime) -> int:
    """Delete the database counters whose window ended (run by the retention sweep)."""
    async with ctx.transaction() as conn:
        result = await conn.execute(
            delete(limit_counters).where(limit_counters.c.expires_at < now - timedelta(minutes=1))
        )
    return int(result.rowcount or 0)


__all__ = [
    "CounterStore",
    "DatabaseCounters",
    "RedisCounters",
    "Window",
    "address_key",
    "counter_store",
    "purge_counters",
]
