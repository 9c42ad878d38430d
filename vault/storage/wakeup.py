"""Waking listeners after a commit, outside the committing transaction, coalesced.

A `NOTIFY` sent inside a writing transaction makes PostgreSQL take a global lock on its
notification queue at that transaction's commit, so every commit that notifies waits for
the others: consent writes got ~25 % slower (bench/writes.py 426 -> 319 req/s) when each
domain event notified in its own transaction. Here the transaction only *asks* for a wake-up
(`wake_after_commit`); whoever owns the transaction reports the successful commit
(`committed`, called by `VaultContext.transaction`) and one `CommitWaker` per process and
event loop sends the `NOTIFY` on a connection of its own, at most once per `INTERVAL`
however many commits asked for it. A rollback never reports a commit, so it wakes nobody.

Best effort by design: a wake-up lost to a dropped connection or a crash only delays the
listener until its next poll, which stays behind every wake-up (`storage.listen`).
SQLite has no notifications: asking is a no-op there and its readers poll.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable

import asyncpg
from sqlalchemy import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.storage.dialect import asyncpg_connection, sends_notifications
from vault.storage.errors import STORAGE_ERRORS

#: At most one NOTIFY per channel set per this many seconds and process: a burst of commits
#: costs one notification, and a listener hears of a commit at most this late.
INTERVAL = 0.01
#: A stuck database must not hold a waker (or a shutdown) for long: the poll covers it.
SEND_TIMEOUT = 5.0

#: Channels asked for by a transaction that has not reported its commit yet, by its
#: connection (a new `Connection` per transaction; a rolled-back one is simply forgotten).
_asked: weakref.WeakKeyDictionary[Connection, set[str]] = weakref.WeakKeyDictionary()
_wakers: weakref.WeakKeyDictionary[Engine, dict[asyncio.AbstractEventLoop, CommitWaker]] = (
    weakref.WeakKeyDictionary()
)


def wake_after_commit(conn: AsyncConnection, channel: str) -> None:
    """Ask for listeners on `channel` to be woken once the caller's transaction commits
    (nothing is sent now, nothing at all on a rollback)."""
    sync = conn.sync_connection
    if sync is None or not sends_notifications(conn):
        return
    _asked.setdefault(sync, set()).add(channel)


def committed(conn: AsyncConnection) -> None:
    """The transaction on `conn` committed: send the wake-ups it asked for (coalesced)."""
    sync = conn.sync_connection
    channels = _asked.pop(sync, None) if sync is not None else None
    if channels:
        waker_for(conn.engine).poke(channels)


def waker_for(engine: AsyncEngine) -> CommitWaker:
    """This process's waker for `engine` on the running event loop (its connection and
    task belong to that loop)."""
    loop = asyncio.get_running_loop()
    per_loop = _wakers.setdefault(engine.sync_engine, {})
    waker = per_loop.get(loop)
    if waker is None:
        waker = per_loop[loop] = CommitWaker(engine)
    return waker


async def close_wakers(engine: AsyncEngine) -> None:
    """Send what is still pending and close the waker's connection (before the engine is
    disposed, so no connection of it outlives the context)."""
    per_loop = _wakers.pop(engine.sync_engine, {})
    loop = asyncio.get_running_loop()
    waker = per_loop.get(loop)
    if waker is not None:
        await waker.close()


class CommitWaker:
    """Sends `NOTIFY` for committed transactions: the first one at once, later ones no
    sooner than `interval` after the previous send, all channels asked for meanwhile in
    one statement."""

    def __init__(self, engine: AsyncEngine, interval: float = INTERVAL) -> None:
        self._engine = engine
        self.interval = interval
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None
        self._driver: asyncpg.Connection | None = None
        self._not_before = 0.0
        #: Notification statements sent (one per coalesced burst); read by tests and metrics.
        self.sent = 0

    def poke(self, channels: Iterable[str]) -> None:
        self._pending.update(channels)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                wait = self._not_before - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                channels, self._pending = sorted(self._pending), set()
                self._not_before = loop.time() + self.interval
                await self._send(channels)
        finally:
            self._task = None

    async def _send(self, channels: list[str]) -> None:
        try:
            driver = await asyncio.wait_for(self._connected(), SEND_TIMEOUT)
            if driver is None:
                return
            await driver.execute(
                "SELECT pg_notify(c, '') FROM unnest($1::text[]) AS c",
                channels,
                timeout=SEND_TIMEOUT,
            )
            self.sent += 1
        except STORAGE_ERRORS:
            # Best effort: the listener's poll finds the committed rows; reconnect next time.
            await self._drop()

    async def _connected(self) -> asyncpg.Connection | None:
        driver = self._driver
        if driver is not None and not driver.is_closed():
            return driver
        await self._drop()
        self._conn = await self._engine.connect()
        self._driver = await asyncpg_connection(self._conn)
        return self._driver

    async def _drop(self) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            try:
                await conn.close()
            except STORAGE_ERRORS:
                pass

    async def close(self) -> None:
        task = self._task
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), SEND_TIMEOUT)
            except TimeoutError:
                task.cancel()
        await self._drop()
