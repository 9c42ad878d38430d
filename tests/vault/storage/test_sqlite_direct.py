"""SQLite's plain `sqlite3` hot path: rows as SQLAlchemy gives them, read-only worker
connections, one transaction per group of appended rows, fail-closed errors."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.factories import api, bearer, client_key, person
from tests.support.privacy import is_sqlite
from vault.access.statements import subject_read
from vault.audit.events import EVENT_COLUMNS
from vault.errors import Unavailable
from vault.storage import sqlite_direct
from vault.storage.audit_tables import audit_events
from vault.storage.sqlite_direct import SqliteReads, SqliteStatement, SqliteWriter, database_path
from vault.storage.tables import subjects

AT = datetime(2026, 12, 4, 12, 30, 15, 123456, tzinfo=UTC)


def _record(request_id: str) -> tuple[object, ...]:
    values = {
        "at": AT,
        "request_id": request_id,
        "actor_type": "client",
        "actor_id": "shop",
        "action": "lookup",
        "subject_id": None,
        "purpose": "order.delivery",
        "fields": "",
        "decision": "deny",
        "reason": "not_found",
        "consent_id": None,
        "detail": "{}",
    }
    return tuple(values[c] for c in EVENT_COLUMNS)


@pytest.fixture
def sqlite_file(tmp_path: Path, sqlite_template: Path) -> str:
    target = tmp_path / "tresor.sqlite3"
    shutil.copy(sqlite_template, target)
    return str(target)


def test_database_path_only_for_plain_files():
    """Only a plain file URL gets the plain connections; memory and URLs with options don't."""
    assert database_path("sqlite+aiosqlite:////srv/tresor.sqlite3") == "/srv/tresor.sqlite3"
    assert database_path("sqlite+aiosqlite://") is None
    assert database_path("sqlite+aiosqlite:///:memory:") is None
    assert database_path("sqlite+aiosqlite:////srv/t.sqlite3?mode=ro") is None
    assert database_path("postgresql+asyncpg://u@h/db") is None


def test_an_expanding_list_becomes_one_placeholder_per_value():
    """A list bound as IN (...) becomes as many `?` as values, in statement order; an empty
    list is an empty IN, which SQLite answers with no rows."""
    stmt = SqliteStatement(
        select(subjects.c.id).where(
            subjects.c.status == bindparam("status"),
            subjects.c.id.in_(bindparam("ids", expanding=True)),
        )
    )
    sql, args = stmt.bind({"ids": ["a", "b", "c"], "status": "active"})
    assert "IN (?, ?, ?)" in sql and args == ["active", "a", "b", "c"]
    sql, args = stmt.bind({"ids": [], "status": "active"})
    assert "IN ()" in sql and args == ["active"]


async def test_rows_match_sqlalchemy_rows(vault):
    """The pipeline's read gives the same rows by column name (datetimes parsed, booleans
    converted) on the plain connections as through SQLAlchemy's engine, for one key and
    for a list of keys."""
    if not is_sqlite(vault):
        pytest.skip("the plain sqlite3 connections are SQLite's hot path")
    assert isinstance(vault.reads, SqliteReads)
    writer = await client_key(vault, "crm", "writer")
    ids = []
    async with api(vault) as http:
        for seed in (1, 2):
            r = await http.post("/v1/subjects", json=person(seed), headers=bearer(writer))
            ids.append(r.json()["subject_id"])
            r = await http.post(
                f"/v1/subjects/{ids[-1]}/consents",
                json={"purpose": "order.delivery", "reference": "order 4711"},
                headers=bearer(writer),
            )
            assert r.status_code == 201, r.text
    events = select(audit_events.c.seq, audit_events.c.at).where(
        audit_events.c.request_id != bindparam("purpose")
    )
    cases = [
        (events, {}),
        (subject_read("subject_id", ("email", "name"), array=False, one=True), {"key": ids[0]}),
        (subject_read("subject_id", ("email",), array=False), {"keys": [*ids, "nobody"]}),
        (subject_read("subject_id", None, array=False), {"keys": ids}),
    ]
    for statement, params in cases:
        params = {"purpose": "order.delivery", **params}
        plain = await vault.reads.rows(statement, params)
        async with vault.engine.connect() as conn:
            expected = [dict(r) for r in (await conn.execute(statement, params)).mappings()]
        assert plain == expected and len(plain) >= 1
    assert isinstance((await vault.reads.rows(events, {"purpose": ""}))[0]["at"], datetime)


async def test_read_connections_refuse_writes(sqlite_file):
    """The read pool's connections are query-only: a write through them is refused, as
    `Unavailable`, and changes nothing."""
    reads = SqliteReads(sqlite_file, threads=1)
    conn = await _worker_connection(reads)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM subjects")
    assert conn.execute("PRAGMA query_only").fetchone() == (1,)
    assert conn.execute("PRAGMA mmap_size").fetchone()[0] > 0
    await reads.close()


async def _worker_connection(reads: SqliteReads) -> sqlite3.Connection:
    await reads.rows(select(subjects.c.id).limit(1), {})
    return reads._conns._all[0]


async def test_a_refused_read_is_unavailable(tmp_path):
    """A read that SQLite refuses (no such table here) is `Unavailable`, not a driver error."""
    sqlite3.connect(tmp_path / "empty.sqlite3").close()
    reads = SqliteReads(str(tmp_path / "empty.sqlite3"), threads=1)
    with pytest.raises(Unavailable):
        await reads.rows(select(subjects.c.id), {})
    await reads.close()


async def test_writer_commits_a_group_in_one_transaction(sqlite_file):
    """A group of records is appended and committed together, with the datetime stored as
    SQLAlchemy stores it (so it reads back equal through the engine)."""
    writer = SqliteWriter(sqlite_file, synchronous="full")
    await writer.copy_records("audit_events", EVENT_COLUMNS, [_record("r1"), _record("r2")])
    engine = create_async_engine(f"sqlite+aiosqlite:///{sqlite_file}")
    async with engine.connect() as conn:
        rows = (await conn.execute(select(audit_events.c.request_id, audit_events.c.at))).all()
    await engine.dispose()
    assert [r.request_id for r in rows] == ["r1", "r2"]
    assert rows[0].at.replace(tzinfo=UTC) == AT
    conn = writer._conns._all[0]
    assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    await writer.close()


async def test_a_failed_group_commits_nothing_and_is_unavailable(sqlite_file):
    """If one row of a group cannot be written, none of the group is, the writer says
    `Unavailable` without the database's message, and the next group goes through."""
    with sqlite3.connect(sqlite_file) as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_events WHEN NEW.request_id = 'bad' "
            "BEGIN SELECT RAISE(ABORT, 'audit down'); END"
        )
    writer = SqliteWriter(sqlite_file)
    with pytest.raises(Unavailable) as failure:
        await writer.copy_records("audit_events", EVENT_COLUMNS, [_record("ok"), _record("bad")])
    assert "audit down" not in str(failure.value)
    await writer.copy_records("audit_events", EVENT_COLUMNS, [_record("later")])
    with sqlite3.connect(sqlite_file) as db:
        assert db.execute("SELECT request_id FROM audit_events").fetchall() == [("later",)]
    assert writer._conns._all[0].execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    await writer.close()


async def test_one_key_reads_inline_and_chunks_in_a_worker(sqlite_file):
    """A read by one key runs on the calling thread's connection, a read of a list of keys
    on a worker thread's; both answer the same rows."""
    reads = SqliteReads(sqlite_file, threads=1)
    one = select(subjects.c.id).where(subjects.c.id == bindparam("key"))
    many = select(subjects.c.id).where(subjects.c.id.in_(bindparam("keys", expanding=True)))
    assert await reads.rows(one, {"key": "nobody"}) == []
    assert len(reads._conns._all) == 1 and reads._conns._local.conn is reads._conns._all[0]
    assert await reads.rows(many, {"keys": ["nobody", "none"]}) == []
    assert len(reads._conns._all) == 2  # the worker's own connection
    await reads.close()


def _count_in_main_file(path: str, tmp: Path) -> int:
    """Audit rows in the database file alone (what a checkpoint has copied out of the WAL)."""
    copy = tmp / "main-only.sqlite3"
    shutil.copy(path, copy)
    with sqlite3.connect(copy) as db:
        return int(db.execute("SELECT count(*) FROM audit_events").fetchone()[0])


async def test_small_groups_commit_inline_and_large_ones_on_the_writer_thread(sqlite_file):
    """Under `synchronous=NORMAL` a group of a few rows commits on the calling thread's
    connection (no worker thread is involved), a group above `inline_rows` on the writer
    thread's; both are committed when the call returns."""
    writer = SqliteWriter(sqlite_file, inline_rows=2)
    await writer.copy_records("audit_events", EVENT_COLUMNS, [_record("a"), _record("b")])
    assert (writer.inline_commits, writer.thread_commits) == (1, 0)
    assert writer._conns._all == [writer._inline_conn]  # no writer thread connection yet
    await writer.copy_records("audit_events", EVENT_COLUMNS, [_record(f"c{i}") for i in range(3)])
    assert (writer.inline_commits, writer.thread_commits) == (1, 1)
    with sqlite3.connect(sqlite_file) as db:
        assert db.execute("SELECT count(*) FROM audit_events").fetchone() == (5,)
    await writer.close()


async def test_full_synchronous_commits_every_group_on_the_writer_thread(sqlite_file):
    """With `synchronous=FULL` each COMMIT syncs the file: even a one-row group commits on
    the writer thread, never on the event loop."""
    writer = SqliteWriter(sqlite_file, synchronous="full")
    await writer.copy_records("audit_events", EVENT_COLUMNS, [_record("a")])
    assert (writer.inline_commits, writer.thread_commits) == (0, 1)
    await writer.close()


async def test_a_write_lock_held_elsewhere_sends_the_group_to_the_thread(sqlite_file):
    """When another process holds SQLite's write lock, an inline group does not fail and
    does not block the event loop: it waits on the writer thread and commits once the lock
    is free."""
    other = sqlite3.connect(sqlite_file, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")  # as the vault's database always is
    other.execute("BEGIN IMMEDIATE")
    writer = SqliteWriter(sqlite_file)
    task = asyncio.ensure_future(
        writer.copy_records("audit_events", EVENT_COLUMNS, [_record("waits")])
    )
    await asyncio.sleep(0.3)  # the loop runs meanwhile: this sleep ends
    assert not task.done()
    other.execute("COMMIT")
    other.close()
    await task
    assert (writer.inline_commits, writer.thread_commits) == (0, 1)
    with sqlite3.connect(sqlite_file) as db:
        assert db.execute("SELECT request_id FROM audit_events").fetchall() == [("waits",)]
    await writer.close()


async def test_the_writer_checkpoints_after_enough_rows(sqlite_file, tmp_path, monkeypatch):
    """The writer's connections never checkpoint on their own (one inside an inline COMMIT
    would stall the event loop); after `CHECKPOINT_ROWS` rows a checkpoint on the writer
    thread copies the WAL into the database file."""
    monkeypatch.setattr(sqlite_direct, "CHECKPOINT_ROWS", 3)
    writer = SqliteWriter(sqlite_file)
    await writer.copy_records("audit_events", EVENT_COLUMNS, [_record("a"), _record("b")])
    assert _count_in_main_file(sqlite_file, tmp_path) == 0  # still only in the WAL
    await writer.copy_records("audit_events", EVENT_COLUMNS, [_record("c")])
    await asyncio.wrap_future(writer._executor.submit(lambda: None))  # after the checkpoint
    assert _count_in_main_file(sqlite_file, tmp_path) == 3
    await writer.close()
