"""Plain `sqlite3` connections in worker threads, for the hot paths on SQLite.

Through SQLAlchemy + aiosqlite a point read cost a connection checkout, a BEGIN and a
ROLLBACK, greenlet hand-offs and one thread hop per statement (two or three per request);
the profile of `bench/lookup.py` put most of a lookup's time there (docs/performance.md).
Here a chunk read (a list of keys, bulk resolution) is one executor hop: a worker thread
runs the statement on its own connection (autocommit: a single SELECT is its own WAL read
snapshot) and hands back finished rows. A read without a list (a single lookup by one key,
tens of microseconds on the mapped file) runs on the event loop's own connection instead:
the hop cost more than the read, and every hand-off of the GIL between the loop and the
workers delayed the loop's socket writes (measured: docs/performance.md).
The statements are still *built* with SQLAlchemy Core and compiled once to SQL text for
SQLite, with SQLAlchemy's own bind and result processors, so values come back exactly as
through the engine (a datetime as SQLAlchemy's SQLite type stores and parses it).

Audit group commits go through `SqliteWriter`, each group in one `BEGIN IMMEDIATE ...
COMMIT`: a small group (the single lookups' shared commit) on the event loop's own
connection when `synchronous=NORMAL` (no fsync at COMMIT in WAL: the statements and the
commit take tens of microseconds, the hop to a thread and back cost more, and under load
each hand-off of the GIL cost milliseconds), a large one (bulk resolution) on the writer
thread, where it overlaps the preparing of the next chunks.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy import Select, insert
from sqlalchemy.engine import make_url
from sqlalchemy.sql.compiler import SQLCompiler

from vault.errors import Unavailable
from vault.storage.errors import STORAGE_ERRORS, UNAVAILABLE, storage_unavailable
from vault.storage.sqlite_inline import CHECKPOINT_EVERY
from vault.storage.tables import Base

_DIALECT = make_url("sqlite+pysqlite://").get_dialect()()

#: Read connections: the whole file may be mapped (reads then copy no pages through the
#: page cache of SQLite) and each keeps 16 MiB of pages of its own.
READ_PRAGMAS = (
    "PRAGMA busy_timeout=30000",
    "PRAGMA query_only=ON",
    "PRAGMA mmap_size=268435456",
    "PRAGMA cache_size=-16384",
)

#: `PRAGMA synchronous` per TRESOR_SQLITE_SYNCHRONOUS (README: what each may cost).
SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}

#: Groups of at most this many rows commit on the calling thread under `synchronous=NORMAL`
#: (`SqliteWriter`); 32 concurrent lookups make groups of up to 32.
INLINE_ROWS = 64
#: Rows appended between two WAL checkpoints of the writer (its connections' automatic
#: checkpoints are off: one inside an inline COMMIT would stall the event loop).
CHECKPOINT_ROWS = 4000

Processor = Callable[[Any], Any]


def database_path(url: str) -> str | None:
    """The file of a plain file-backed SQLite URL; None for memory databases and URLs with
    options, which the plain connections would not honour (those keep SQLAlchemy's path)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.query:
        return None
    if not parsed.database or parsed.database == ":memory:":
        return None
    return parsed.database


class SqliteStatement:
    """A Core statement compiled once for `sqlite3`: SQL text with `?` parameters, the
    order names fill them in, SQLAlchemy's bind processors per name and, for a SELECT, the
    column names and result processors. An expanding list parameter (`IN (...)`) becomes as
    many `?` as the list has values (SQLite caches the statement per text)."""

    __slots__ = ("sql", "_names", "_defaults", "_binds", "_expanding", "columns", "_results")

    def __init__(self, statement: Any, column_keys: Sequence[str] | None = None) -> None:
        compiled = statement.compile(
            dialect=_DIALECT, column_keys=list(column_keys) if column_keys else None
        )
        if not isinstance(compiled, SQLCompiler):  # DDL compiles differently: not for here
            raise TypeError(f"not a DML or SELECT statement: {type(statement).__name__}")
        self.sql = str(compiled)
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._defaults = dict(compiled.params)
        self._binds: dict[str, Processor] = {}
        self._expanding: set[str] = set()
        for bind in compiled.binds.values():
            processor = bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
            if processor is not None:
                self._binds[bind.key] = processor
            if bind.expanding:
                self._expanding.add(bind.key)
        self.columns: tuple[str, ...] = ()
        self._results: tuple[tuple[int, Processor], ...] = ()
        if isinstance(statement, Select):
            selected = statement.selected_columns
            self.columns = tuple(selected.keys())
            results = []
            for i, column in enumerate(selected):
                processor = column.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None)
                if processor is not None:
                    results.append((i, processor))
            self._results = tuple(results)

    @property
    def chunked(self) -> bool:
        """Whether a list of keys is bound (a chunk read, whose cost grows with the list)."""
        return bool(self._expanding)

    def _value(self, name: str, value: Any) -> Any:
        processor = self._binds.get(name)
        return value if processor is None or value is None else processor(value)

    def bind(self, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """The SQL text and its positional arguments for `params`."""
        merged = {**self._defaults, **params} if self._defaults else params
        sql = self.sql
        args: list[Any] = []
        for name in self._names:
            value = merged[name]
            if name in self._expanding:
                values = list(value)
                sql = sql.replace(f"__[POSTCOMPILE_{name}]", ", ".join("?" * len(values)) or "", 1)
                args.extend(self._value(name, v) for v in values)
            else:
                args.append(self._value(name, value))
        return sql, args

    def record(self, record: Sequence[Any]) -> tuple[Any, ...]:
        """A row to insert (values in `column_keys` order) with its bind processors."""
        return tuple(self._value(n, v) for n, v in zip(self._names, record, strict=True))

    def rows(self, raw: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        """Raw result tuples as rows by column name, values processed as SQLAlchemy would."""
        columns, results = self.columns, self._results
        out = []
        for values in raw:
            if results:
                mutable = list(values)
                for i, processor in results:
                    mutable[i] = processor(mutable[i])
                values = tuple(mutable)
            out.append(dict(zip(columns, values, strict=True)))
        return out


def _connect(path: str, pragmas: Sequence[str]) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=30, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    for pragma in pragmas:
        conn.execute(pragma)
    return conn


class _Connections:
    """Opened connections, one per worker thread, all closed together at the end."""

    def __init__(self, path: str, pragmas: Sequence[str]) -> None:
        self.path = path
        self.pragmas = tuple(pragmas)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def mine(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, self.pragmas)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close_all(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


class SqliteReads:
    """SQLite's hot-path `ReadPort`: chunk reads hop to a small pool of worker threads,
    reads by one key run on the calling thread (`inline`); every thread has its own
    read-only connection (WAL lets them read beside the writer)."""

    arrays = False

    def __init__(self, path: str, *, threads: int = 4, inline: bool = True) -> None:
        self._inline = inline
        self._conns = _Connections(path, READ_PRAGMAS)
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="tresor-sqlite-read")
        self._compiled: dict[int, tuple[Select[Any], SqliteStatement]] = {}

    def _run(self, compiled: SqliteStatement, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        sql, args = compiled.bind(params)
        raw = self._conns.mine().execute(sql, args).fetchall()
        return compiled.rows(raw)

    async def rows(
        self, statement: Select[Any], params: Mapping[str, Any]
    ) -> Sequence[dict[str, Any]]:
        # Keyed by identity; the entry keeps the statement alive, so its id is not reused.
        entry = self._compiled.get(id(statement))
        if entry is None or entry[0] is not statement:
            entry = self._compiled[id(statement)] = (statement, SqliteStatement(statement))
        compiled = entry[1]
        try:
            if not compiled.chunked and self._inline:
                return self._run(compiled, params)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._run, compiled, params)
        except STORAGE_ERRORS as exc:  # the hot path: no context manager per read
            raise Unavailable(UNAVAILABLE) from exc

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._conns.close_all()


class SqliteWriter:
    """Appends rows in one transaction per call: the audit group commit on SQLite. The
    caller serialises it with the process's other writers (`VaultContext._write_gate`), so
    it never waits in SQLite's busy handler within a process.

    Where a group commits: up to `inline_rows` rows (`INLINE_ROWS`, 0 under
    `synchronous=FULL`, whose COMMIT syncs) on the calling thread's connection, whose
    `BEGIN IMMEDIATE` does not wait: if another process holds SQLite's write lock the group
    goes to the writer thread, whose connection may wait for it. Larger groups always go
    there. Automatic checkpoints are off on every writer connection; a `PASSIVE`
    checkpoint (it never waits) runs on the writer thread after `CHECKPOINT_ROWS` rows or
    `CHECKPOINT_EVERY` commits, so the WAL stays bounded without the event loop copying
    pages. Either way a call returns only once its group is committed, and a failed group
    commits nothing and raises `Unavailable`."""

    def __init__(
        self, path: str, *, synchronous: str = "normal", inline_rows: int = INLINE_ROWS
    ) -> None:
        level = SYNCHRONOUS[synchronous]
        self._conns = _Connections(
            path,
            (
                "PRAGMA journal_mode=WAL",
                f"PRAGMA synchronous={level}",
                "PRAGMA foreign_keys=ON",
                "PRAGMA secure_delete=ON",
                "PRAGMA busy_timeout=30000",
                "PRAGMA wal_autocheckpoint=0",
            ),
        )
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tresor-sqlite-write")
        self._inserts: dict[tuple[str, tuple[str, ...]], SqliteStatement] = {}
        self._inline_rows = inline_rows if level == "NORMAL" else 0
        self._inline_conn: sqlite3.Connection | None = None
        self._rows_since_checkpoint = 0
        self._commits_since_checkpoint = 0
        #: Groups committed inline and on the thread (tests and metrics read them).
        self.inline_commits = 0
        self.thread_commits = 0

    def _insert(self, table: str, columns: Sequence[str]) -> SqliteStatement:
        key = (table, tuple(columns))
        compiled = self._inserts.get(key)
        if compiled is None:
            target = Base.metadata.tables[table]
            compiled = self._inserts[key] = SqliteStatement(insert(target), columns)
        return compiled

    @staticmethod
    def _write(
        conn: sqlite3.Connection, compiled: SqliteStatement, records: Sequence[Sequence[Any]]
    ) -> None:
        """Insert and commit in the transaction `conn` has begun; roll back on failure."""
        try:
            conn.executemany(compiled.sql, [compiled.record(r) for r in records])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _append(self, compiled: SqliteStatement, records: Sequence[Sequence[Any]]) -> None:
        conn = self._conns.mine()
        conn.execute("BEGIN IMMEDIATE")
        self._write(conn, compiled, records)

    def _try_inline(self, compiled: SqliteStatement, records: Sequence[Sequence[Any]]) -> bool:
        """Commit the group on this thread's connection; False (nothing begun) when the
        write lock is held by another process."""
        conn = self._inline_conn
        if conn is None:
            conn = self._inline_conn = self._conns.mine()
            conn.execute("PRAGMA busy_timeout=0").close()  # never wait on the event loop
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                return False
            raise
        self._write(conn, compiled, records)
        return True

    def _checkpoint(self) -> None:
        self._conns.mine().execute("PRAGMA wal_checkpoint(PASSIVE)").close()

    def _committed(self, rows: int) -> None:
        """Count a committed group; start a checkpoint on the writer thread when due (not
        awaited: the group is committed, and a checkpoint that fails loses nothing)."""
        self._rows_since_checkpoint += rows
        self._commits_since_checkpoint += 1
        if (
            self._rows_since_checkpoint >= CHECKPOINT_ROWS
            or self._commits_since_checkpoint >= CHECKPOINT_EVERY
        ):
            self._rows_since_checkpoint = self._commits_since_checkpoint = 0
            self._executor.submit(self._checkpoint).add_done_callback(_ignore_failure)

    async def copy_records(
        self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]
    ) -> None:
        """Append `records` (values in `columns` order) to `table` in one transaction:
        committed when this returns, or nothing of it is."""
        compiled = self._insert(table, columns)
        with storage_unavailable():
            if len(records) <= self._inline_rows and self._try_inline(compiled, records):
                self.inline_commits += 1
            else:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, self._append, compiled, records)
                self.thread_commits += 1
        self._committed(len(records))

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._conns.close_all()


def _ignore_failure(done: Future[None]) -> None:
    done.exception()  # retrieved, so never reported as unhandled; the next one may succeed
