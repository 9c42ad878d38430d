"""The statements that differ between PostgreSQL and SQLite, chosen here and nowhere else.

Areas above storage never ask which database they run on (`dialect.name`): they call these
functions with the connection they hold and get the statement, expression or lock that
works there. A third database is one more branch in each function here.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import Select, String, Table, any_, bindparam, column, func, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ColumnElement

from vault.errors import InvariantViolation


def _is_postgresql(conn: AsyncConnection | AsyncEngine) -> bool:
    return conn.dialect.name == "postgresql"


def upsert_insert(conn: AsyncConnection | AsyncEngine, table: Table) -> Any:
    """The database's own `INSERT` construct for `table`, with `on_conflict_do_update` and
    `excluded` (both dialects spell an upsert the same way in SQLAlchemy)."""
    insert = postgresql.insert if _is_postgresql(conn) else sqlite.insert
    return insert(table)


async def roomy_sorts(conn: AsyncConnection, megabytes: int) -> None:
    """Let this transaction's sorts and hashes use `megabytes` of memory each on
    PostgreSQL (a set-based statement over a million rows otherwise spills to disk);
    SQLite has no such setting."""
    if _is_postgresql(conn):
        await conn.execute(text(f"SET LOCAL work_mem = '{int(megabytes)}MB'"))


@functools.cache
def _settings_sql(settings: tuple[tuple[str, str], ...]) -> str:
    for name, value in settings:  # names and values come from code; checked all the same
        if not (name.replace("_", "").isalnum() and value.replace("_", "").isalnum()):
            raise ValueError(f"not a planner setting: {name}={value}")
    return "SELECT " + ", ".join(f"set_config('{n}', '{v}', true)" for n, v in settings)


async def plan_for_transaction(conn: AsyncConnection, **settings: str) -> None:
    """Pin PostgreSQL planner settings (`enable_hashjoin="off"`, ...) for the rest of this
    transaction, in one round trip; they are gone at its commit or rollback. For the few
    statements whose good plan must not depend on statistics that lag a burst of writes.
    SQLite has one planner and nothing to set."""
    if _is_postgresql(conn):
        await conn.exec_driver_sql(_settings_sql(tuple(settings.items())))


async def analyze(conn: AsyncConnection, table: Table) -> None:
    """Fresh planner statistics for a just-filled scratch table on PostgreSQL (temporary
    tables are never analysed by autovacuum); SQLite plans without them."""
    if _is_postgresql(conn):
        await conn.execute(text(f"ANALYZE {table.name}"))


async def probe_index(conn: AsyncConnection, table: Table, column: str) -> None:
    """A unique index on `column` of a just-created, empty scratch table, where a
    correlated `NOT EXISTS` on that column needs one: SQLite answers it by a scan of the
    table per outer row without it. PostgreSQL answers it (and joins the table) by
    hashing, so there the index would only be written, at about a fifth of the CPU of
    filling a million-row table."""
    if not _is_postgresql(conn):
        name = f"ix_{table.name}_{column}"
        await conn.execute(text(f"CREATE UNIQUE INDEX {name} ON {table.name} ({column})"))


#: A join is planned without nested loops when its driving rows are at least this share of
#: the probed table's rows (`set_based_joins`): beyond it, probing the table's index once
#: per row costs more than reading the table once.
_SCAN_SHARE = 8


@asynccontextmanager
async def set_based_joins(conn: AsyncConnection, table: Table, rows: int) -> AsyncIterator[None]:
    """The statements inside join `rows` driving rows (a scratch table's, counted) to
    `table`: on PostgreSQL, when those are at least an eighth of the table's rows (as the
    planner estimates them), they are planned without nested loops. A table written a
    moment ago (a booking's holds, counter rows or audience) has no column statistics for
    its new rows yet; PostgreSQL then guesses a handful of matches and probes an index
    once per driving row, a million times for a million-member booking, where a hash or
    merge join reads each side once. `table` is a plain table (a partitioned one has no
    pages of its own). SQLite has one join method and nothing to set."""
    if not _is_postgresql(conn):
        yield
        return
    estimated = (
        await conn.execute(
            text(
                "SELECT CASE WHEN reltuples > 0 AND relpages > 0 THEN reltuples / relpages"
                " * (pg_relation_size(oid) / current_setting('block_size')::int)"
                " ELSE pg_relation_size(oid) / 100 END FROM pg_class"
                " WHERE oid = CAST(:t AS regclass)"
            ),
            {"t": table.name},
        )
    ).scalar()
    scans = rows * _SCAN_SHARE >= (estimated or 0)
    if scans:
        await plan_for_transaction(conn, enable_nestloop="off")
    yield
    # (After an error the transaction or savepoint is rolled back, and the setting with it.)
    if scans:
        await plan_for_transaction(conn, enable_nestloop="on")


def takes_array_parameters(conn: AsyncConnection | AsyncEngine) -> bool:
    """Whether one statement can take a whole batch as array parameters (PostgreSQL's
    `UPDATE … FROM unnest(…)`); elsewhere a batch is an executemany."""
    return _is_postgresql(conn)


def insert_ignoring_conflict(
    conn: AsyncConnection, table: Table, index_elements: Sequence[str]
) -> Any:
    """`INSERT ... ON CONFLICT (index_elements) DO NOTHING` for the connection's database."""
    insert = postgresql.insert if _is_postgresql(conn) else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=list(index_elements))


def skip_locked(conn: AsyncConnection, stmt: Select[Any], *, of: Any = None) -> Select[Any]:
    """`stmt ... FOR UPDATE SKIP LOCKED` on PostgreSQL, so several nodes share a queue's rows
    without waiting for each other; SQLite has one writer at a time and needs no row lock."""
    if _is_postgresql(conn):
        return stmt.with_for_update(of=of, skip_locked=True)
    return stmt


async def try_advisory_xact_lock(conn: AsyncConnection, key: int) -> bool:
    """A transaction-scoped advisory lock on PostgreSQL (False when another holds it).
    SQLite's write transactions are serialised already (`BEGIN IMMEDIATE`): always True."""
    if not _is_postgresql(conn):
        return True
    got = await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key})
    return bool(got.scalar())


def row_address(conn: AsyncConnection, table: Any) -> Any:
    """The address of a row of `table` (a table or an alias of one): PostgreSQL's `ctid`,
    SQLite's `rowid`. Valid within one statement, for updating the rows a statement read
    without looking them up again by key (`updates_in_one_statement`)."""
    return column("ctid" if _is_postgresql(conn) else "rowid", _selectable=table)


def updates_in_one_statement(conn: AsyncConnection) -> bool:
    """Whether one statement can update rows and insert what it returns elsewhere
    (PostgreSQL's data-modifying `WITH`); SQLite takes one change per statement."""
    return _is_postgresql(conn)


async def other_sessions_working(conn: AsyncConnection) -> int:
    """How many other sessions of this database are running a statement at this instant
    (`pg_stat_activity`; sessions of other roles count only where this role may see their
    state). A long background read samples it to give way to the hot path while lookups
    run; each sample needs a transaction of its own, as PostgreSQL keeps one picture of the
    activity for the rest of a transaction. SQLite has no such view: 0, the operation runs
    unpaced."""
    if not _is_postgresql(conn):
        return 0
    found = await conn.execute(
        text(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
            "AND datname = current_database()"
        )
    )
    return int(found.scalar_one())


async def table_is_partitioned(conn: AsyncConnection, table: Table) -> bool:
    """Whether `table` is a partitioned table in the connection's schema: PostgreSQL after
    the migrations that partition it (0030 for the events, 0037 for the seals); SQLite keeps
    every table whole."""
    if not _is_postgresql(conn):
        return False
    found = await conn.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table p "
            "JOIN pg_class c ON c.oid = p.partrelid "
            "WHERE c.relname = :t AND c.relnamespace = current_schema()::regnamespace)"
        ),
        {"t": table.name},
    )
    return bool(found.scalar())


def utc_bucket(conn: AsyncConnection, column: Any, bucket: str) -> Any:
    """The UTC day (`YYYY-MM-DD`) or hour (`YYYY-MM-DD HH`) of a timestamp, the same text on
    both databases. SQLite keeps UTC timestamps as ISO text, so a prefix of it is the
    bucket; PostgreSQL formats the instant in UTC."""
    if _is_postgresql(conn):
        pattern = "YYYY-MM-DD" if bucket == "day" else "YYYY-MM-DD HH24"
        return func.to_char(func.timezone("UTC", column), pattern)
    return func.substr(column, 1, 10 if bucket == "day" else 13)


def serialises_writers(engine: AsyncEngine) -> bool:
    """Whether the database takes one writer at a time (SQLite's write lock), so a process
    should queue its own write transactions before asking for it."""
    return engine.dialect.name == "sqlite"


def key_in(column: ColumnElement[Any], name: str, *, array: bool) -> ColumnElement[bool]:
    """`column` equals one of the values bound as `name`: one array parameter
    (`= ANY(:name)`, so a prepared statement is the same for any number of keys) where the
    reading adapter binds arrays, else an expanding `IN (...)`."""
    if array:
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


async def asyncpg_connection(conn: AsyncConnection) -> asyncpg.Connection | None:
    """The asyncpg connection under the caller's transaction on PostgreSQL (None elsewhere),
    for a loop whose SQLAlchemy per-row processing would cost more than its own work (the
    audit chain's sealing reads and COPYs on it, inside the same transaction)."""
    if not _is_postgresql(conn):
        return None
    driver = (await conn.get_raw_connection()).driver_connection
    if not isinstance(driver, asyncpg.Connection):
        raise InvariantViolation("the raw PostgreSQL connection has no asyncpg connection")
    return driver


def sends_notifications(conn: AsyncConnection | AsyncEngine) -> bool:
    """Whether the database has LISTEN/NOTIFY (PostgreSQL); SQLite's readers poll instead.
    The wake-up itself is sent after the commit, outside the transaction
    (`storage.wakeup`): a NOTIFY inside it serialises the commits of every writer."""
    return _is_postgresql(conn)
