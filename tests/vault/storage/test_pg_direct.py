"""The raw asyncpg pool of the PostgreSQL hot paths: SQL from Core, fail-closed errors."""

from __future__ import annotations

import asyncio
import socket

import pytest
from sqlalchemy import bindparam, select

from vault.errors import Unavailable
from vault.storage.pg_direct import Compiled, DirectPool, asyncpg_dsn
from vault.storage.tables import subjects


def test_compiled_statement_orders_named_parameters_and_keeps_literals():
    """Named parameters become `$n` arguments in statement order, with literal defaults kept."""
    stmt = (
        select(subjects.c.id)
        .where(subjects.c.status == bindparam("status"), subjects.c.id == bindparam("id"))
        .limit(7)
    )
    compiled = Compiled(stmt)
    assert "$1" in compiled.sql and "$3" in compiled.sql
    assert compiled.args({"id": "b", "status": "active"}) == ["active", "b", 7]


def test_dsn_drops_the_sqlalchemy_driver_name_and_keeps_credentials():
    """asyncpg gets a plain postgresql:// DSN with the configured user and password."""
    dsn = asyncpg_dsn("postgresql+asyncpg://u:p%40ss@db.example:6543/tresor")
    assert dsn == "postgresql://u:p%40ss@db.example:6543/tresor"


def test_unreachable_database_is_unavailable_not_a_crash():
    """A refused connection surfaces as `Unavailable` (503 upstream), promptly."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    pool = DirectPool(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/none")
    stmt = Compiled(select(subjects.c.id).where(subjects.c.id == bindparam("id")))

    async def attempt() -> None:
        with pytest.raises(Unavailable):
            await asyncio.wait_for(pool.fetch(stmt, {"id": "x"}), 10)
        await pool.close()

    asyncio.run(attempt())


def test_pool_follows_a_new_event_loop(postgres):
    """One pool object serves successive event loops (CLI commands, tests) without errors."""
    pool = DirectPool(postgres.url)
    stmt = Compiled(select(subjects.c.id).where(subjects.c.id == bindparam("id")))

    async def once() -> list:
        rows = await pool.fetch(stmt, {"id": "nobody"})
        await pool.close()  # sockets belong to this loop; the next loop opens its own
        return rows

    assert asyncio.run(once()) == []
    assert asyncio.run(once()) == []
