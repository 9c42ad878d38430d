"""Waking a loop when another transaction commits (PostgreSQL LISTEN), instead of polling.

`ChannelListener` holds one connection of its own that LISTENs on a channel and sets an
`asyncio.Event` on every notification (`storage.wakeup` sends them after the writing
transaction committed, coalesced over a few milliseconds). On SQLite, or when the connection
cannot be opened or is lost, `start` answers False and the loop keeps polling at its
interval: the signal only shortens waits, it never replaces the poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.storage.dialect import asyncpg_connection
from vault.storage.errors import STORAGE_ERRORS

_LISTEN_ERRORS: tuple[type[BaseException], ...] = (*STORAGE_ERRORS, OSError)


class ChannelListener:
    def __init__(self, engine: Callable[[], AsyncEngine], channel: str) -> None:
        #: Asked for the engine only when listening starts (built before the context's
        #: engine is first used, like the jobs it wakes).
        self._engine = engine
        self._channel = channel
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        #: Set on each notification; the waiting loop clears it before it runs.
        self.event = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self._driver is not None and not self._driver.is_closed()

    async def start(self) -> bool:
        """Listen if not listening yet (again after a lost connection); True if listening."""
        if self.listening:
            return True
        await self.close()
        try:
            self._conn = await self._engine().connect()
            driver = await asyncpg_connection(self._conn)
            if driver is not None:
                await driver.add_listener(self._channel, self._notified)
        except _LISTEN_ERRORS:
            driver = None
        if driver is None:
            await self.close()
            return False
        self._driver = driver
        # Whatever committed before the listener existed is found by the first poll.
        self.event.set()
        return True

    def _notified(self, *_: Any) -> None:
        self.event.set()

    async def close(self) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            try:
                await conn.close()
            except _LISTEN_ERRORS:
                pass
