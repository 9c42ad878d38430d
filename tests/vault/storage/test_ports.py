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
from vault.storage.tables import subjects


async def test_the_context_picks_the_adapter_of_its_database(vault):
    """PostgreSQL reads on the raw asyncpg pool (arrays bind as one parameter) and the
    group commit COPYs there; SQLite reads in snapshots of its read engine."""
    if is_sqlite(vault):
        assert isinstance(vault.reads, ports.SnapshotReads) and vault.reads.arrays is False
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
        ports.open_hot_storage(engine, 4)
