"""A raw asyncpg pool beside SQLAlchemy's, for the hot paths on PostgreSQL.

SQLAlchemy's execution layer (greenlet hand-offs, statement compilation caches, result
processing) and the BEGIN/COMMIT round trips cost more CPU than the lookup's own work
(docs/performance.md). The hot paths (single lookup without a contact, bulk
resolution) therefore run single autocommit statements on this pool. Their statements are
still *built* with SQLAlchemy Core and compiled once for asyncpg, so the SQL lives in one
place for both databases.

Connections here never hold session state (no transactions, advisory locks, temp tables or
LISTEN), so the pool skips asyncpg's reset round trip on release.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from vault.errors import InvariantViolation, Unavailable
from vault.storage.errors import STORAGE_ERRORS, UNAVAILABLE, storage_unavailable

# The asyncpg dialect, instantiated through the typed `Dialect` interface (the class's
# own __init__ carries no annotations).
_DIALECT = make_url("postgresql+asyncpg://").get_dialect()()


class Compiled:
    """A SQLAlchemy Core statement compiled once for asyncpg: SQL text plus the order in
    which named parameters become `$n` arguments (literal defaults such as LIMIT kept)."""

    __slots__ = ("sql", "_names", "_defaults")

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        if not isinstance(compiled, SQLCompiler):  # DDL compiles differently: not for here
            raise TypeError(f"not a DML or SELECT statement: {type(statement).__name__}")
        self.sql = str(compiled)
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._defaults = dict(compiled.params)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        merged = {**self._defaults, **params}
        return [merged[name] for name in self._names]


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """Nothing to reset: see the module docstring."""


def asyncpg_dsn(url: str) -> str:
    """The libpq-style DSN asyncpg wants, from the SQLAlchemy URL the vault is configured with."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class DirectPool:
    """A lazily opened asyncpg pool, bound to the event loop that first used it.

    Storage failures surface as `Unavailable` so callers fail closed exactly like the
    SQLAlchemy path (`VaultContext.transaction`).
    """

    def __init__(self, url: str, *, max_size: int = 20) -> None:
        self._dsn = asyncpg_dsn(url)
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None

    async def pool(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._loop is loop:
            return self._pool
        if self._loop is not loop:
            # A new event loop (tests, CLI): the old pool's sockets belong to the old loop.
            self._abandon()
            self._pool, self._loop, self._opening = None, loop, asyncio.Lock()
        if self._opening is None:
            raise InvariantViolation("self._opening is unset")
        async with self._opening:
            if self._pool is None:
                with storage_unavailable():
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=self._max_size,
                        reset=_no_reset,
                        timeout=5.0,
                        command_timeout=15.0,
                    )
        return self._pool

    async def fetch(self, statement: Compiled, params: Mapping[str, Any]) -> list[asyncpg.Record]:
        pool = await self.pool()
        try:
            return await pool.fetch(statement.sql, *statement.args(params))
        except STORAGE_ERRORS as exc:  # the hot path: no context manager per read
            raise Unavailable(UNAVAILABLE) from exc

    async def execute(self, sql: str, args: Sequence[Any]) -> None:
        """One autocommit statement: durable when this returns."""
        pool = await self.pool()
        with storage_unavailable():
            await pool.execute(sql, *args)

    async def copy_records(
        self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]
    ) -> None:
        """Binary COPY of `records` into `table`: one autocommit statement, durable when
        this returns."""
        pool = await self.pool()
        with storage_unavailable():
            await pool.copy_records_to_table(
                table, records=records, columns=list(columns), timeout=15.0
            )

    def _abandon(self) -> None:
        """Drop a pool whose event loop is gone (its sockets cannot be closed politely)."""
        if self._pool is not None:
            with contextlib.suppress(Exception):
                self._pool.terminate()
        self._pool = None

    async def close(self) -> None:
        if self._pool is not None and self._loop is asyncio.get_running_loop():
            await self._pool.close()
        self._abandon()
