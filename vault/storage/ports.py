"""Storage ports: how the access pipeline reads, whichever driver serves the read.

`ReadPort` is one read-only statement run outside any write transaction (or inside the
caller's, `TransactionReads`), returning rows that index by column name (`Row`). Its
adapters:

- `AsyncpgReads`: PostgreSQL's hot path, one autocommit statement on the raw asyncpg pool
  (`vault.storage.pg_direct`), each statement compiled once and prepared by asyncpg;
- `SqliteReads`: SQLite's hot path, one hop to a small pool of worker threads with plain
  `sqlite3` read-only connections (`vault.storage.sqlite_direct`), each statement compiled
  once to SQL text;
- `SnapshotReads`: a read snapshot on a SQLAlchemy engine (SQLite without a plain file:
  memory databases, URLs with options);
- `TransactionReads`: a statement in the caller's open transaction (a lookup that reserves
  a contact reads, reserves and audits in one transaction).

`open_hot_storage` picks the hot-path adapter once, from the engine, in the composition root
(`VaultContext`); adding a database is one adapter class and one entry in `_HOT`.
Every adapter maps storage failures the one way (`vault.storage.errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.storage.db import make_read_engine
from vault.storage.errors import storage_unavailable
from vault.storage.pg_direct import Compiled, DirectPool
from vault.storage.sqlite_direct import SqliteReads, SqliteWriter, database_path


class Row(Protocol):
    """A row as every adapter returns it: columns by name (an asyncpg record, a SQLAlchemy
    row mapping); nothing else is relied on."""

    def __getitem__(self, name: str) -> Any: ...


class ReadPort(Protocol):
    """Runs a read-only statement; storage failures are `Unavailable`."""

    #: Whether a list parameter binds as one array (`vault.storage.dialect.key_in`).
    arrays: bool

    async def rows(self, statement: Select[Any], params: Mapping[str, Any]) -> Sequence[Row]: ...

    async def close(self) -> None: ...


class AsyncpgReads:
    """PostgreSQL: one autocommit statement on the raw pool, compiled once per statement
    (asyncpg prepares and caches it per connection)."""

    arrays = True

    def __init__(self, direct: DirectPool) -> None:
        self.direct = direct
        self._compiled: dict[int, tuple[Select[Any], Compiled]] = {}

    async def rows(self, statement: Select[Any], params: Mapping[str, Any]) -> Sequence[Row]:
        # Keyed by identity; the entry keeps the statement alive, so its id is not reused.
        entry = self._compiled.get(id(statement))
        if entry is None or entry[0] is not statement:
            entry = self._compiled[id(statement)] = (statement, Compiled(statement))
        return await self.direct.fetch(entry[1], params)

    async def close(self) -> None:
        await self.direct.close()


class SnapshotReads:
    """A read snapshot on an engine that never writes (SQLite's deferred read engine, where
    the plain connections of `SqliteReads` cannot open the database)."""

    arrays = False

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def rows(self, statement: Select[Any], params: Mapping[str, Any]) -> Sequence[Row]:
        with storage_unavailable():
            async with self.engine.connect() as conn:
                return list((await conn.execute(statement, params)).mappings())

    async def close(self) -> None:
        await self.engine.dispose()


class TransactionReads:
    """Reads inside the caller's open transaction (whose context maps its errors)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.arrays = conn.dialect.name == "postgresql"

    async def rows(self, statement: Select[Any], params: Mapping[str, Any]) -> Sequence[Row]:
        return list((await self.conn.execute(statement, params)).mappings())

    async def close(self) -> None:
        """The transaction belongs to the caller."""


class RecordCopy(Protocol):
    """Appends rows in one durable write (the audit group commit): a binary COPY on the
    raw asyncpg pool, one transaction of SQLite's writer thread."""

    async def copy_records(
        self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]
    ) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class HotStorage:
    """What the hot paths run on: the read adapter, and where the audit group commit
    appends (None: it writes in a transaction of the main engine)."""

    reads: ReadPort
    copy: RecordCopy | None = None


@dataclass(frozen=True, slots=True)
class HotOptions:
    """The settings the adapters take: connections per process (PostgreSQL) and SQLite's
    `PRAGMA synchronous` for its writer (TRESOR_SQLITE_SYNCHRONOUS)."""

    pool_size: int = 40
    sqlite_synchronous: str = "normal"


def _asyncpg(url: str, options: HotOptions) -> HotStorage:
    direct = DirectPool(url, max_size=max(4, options.pool_size // 2))
    return HotStorage(AsyncpgReads(direct), direct)


def _sqlite(url: str, options: HotOptions) -> HotStorage:
    path = database_path(url)
    if path is None:  # a memory database or a URL with options: SQLAlchemy's path
        return HotStorage(SnapshotReads(make_read_engine(url)))
    return HotStorage(SqliteReads(path), SqliteWriter(path, synchronous=options.sqlite_synchronous))


#: The hot-path adapters per database (`engine.dialect.name`).
_HOT: dict[str, Callable[[str, HotOptions], HotStorage]] = {
    "postgresql": _asyncpg,
    "sqlite": _sqlite,
}


def open_hot_storage(engine: AsyncEngine, options: HotOptions) -> HotStorage:
    """The hot paths' adapters for the engine's database (called once, at start-up)."""
    opener = _HOT.get(engine.dialect.name)
    if opener is None:
        raise LookupError(f"no storage adapter for the database {engine.dialect.name!r}")
    return opener(engine.url.render_as_string(hide_password=False), options)
