"""The storage ports: the hot-path adapter is picked once from the database, each maps
storage failures to `Unavailable`, and a database without an adapter is refused at start."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.privacy import is_sqlite
from vault.errors import Unavailable
from vault.storage import ports
from vault.storage.pg_direct import DirectPool
from vault.storage.sqlite_direct import SqliteReads, SqliteWriter
from vault.storage.tables import subjects


async def test_the_context_picks_the_adapter_of_its_database(vault):
    """PostgreSQL reads on the raw asyncpg pool (arrays bind as one parameter) and the
    group commit COPYs there; SQLite reads on plain `sqlite3` connections in worker
    threads (lists bind as IN (...))."""
    if is_sqlite(vault):
        assert isinstance(vault.reads, SqliteReads) and vault.reads.arrays is False
    else:
        assert isinstance(vault.reads, ports.AsyncpgReads) and vault.reads.arrays is True
        assert isinstance(vault.reads.direct, DirectPool)
    assert await vault.reads.rows(select(subjects.c.id).limit(1), {}) == []


async def test_transaction_reads_bind_lists_as_the_connection_can(vault):
    """Inside a transaction a list binds as an array on PostgreSQL, as IN (...) on SQLite."""
    async with vault.transaction() as conn:
        assert ports.TransactionReads(conn).arrays is (not is_sqlite(vault))


async def test_a_refused_snapshot_read_is_unavailable(tmp_path):
    """A read that storage refuses is `Unavailable`, never a driver error."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/empty.sqlite")  # no tables
    with pytest.raises(Unavailable):
        await ports.SnapshotReads(engine).rows(select(subjects.c.id), {})
    await engine.dispose()


def test_a_database_without_an_adapter_is_refused():
    """A third database needs its adapter in `_HOT`; without one the start-up names it."""
    engine = SimpleNamespace(dialect=SimpleNamespace(name="oracle"), url=None)
    with pytest.raises(LookupError, match="oracle"):
        ports.open_hot_storage(engine, ports.HotOptions(4))


def test_sqlite_without_a_plain_file_keeps_snapshot_reads():
    """A memory database (which plain connections would not share) reads in snapshots of
    SQLAlchemy's read engine and audits through the main engine; a file gets the plain
    connections and the writer thread."""
    memory = create_async_engine("sqlite+aiosqlite://")
    hot = ports.open_hot_storage(memory, ports.HotOptions(4))
    assert isinstance(hot.reads, ports.SnapshotReads) and hot.copy is None
    file = create_async_engine("sqlite+aiosqlite:////tmp/tresor-ports-test.sqlite3")
    hot = ports.open_hot_storage(file, ports.HotOptions(4))
    assert isinstance(hot.reads, SqliteReads) and isinstance(hot.copy, SqliteWriter)
