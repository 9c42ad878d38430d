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

Audit group commits go through `SqliteWriter`: one connection on one thread, each group in
one `BEGIN IMMEDIATE ... COMMIT`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Select, insert
from sqlalchemy.engine import make_url
from sqlalchemy.sql.compiler import SQLCompiler

from vault.errors import Unavailable
from vault.storage.errors import STORAGE_ERRORS, UNAVAILABLE, storage_unavailable
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
    """One connection on one thread that appends rows in one transaction per call: the
    audit group commit on SQLite. The caller serialises it with the process's other
    writers (`VaultContext._write_gate`), so it never waits in SQLite's busy handler
    within a process."""

    def __init__(self, path: str, *, synchronous: str = "normal") -> None:
        level = SYNCHRONOUS[synchronous]
        self._conns = _Connections(
            path,
            (
                "PRAGMA journal_mode=WAL",
                f"PRAGMA synchronous={level}",
                "PRAGMA foreign_keys=ON",
                "PRAGMA secure_delete=ON",
                "PRAGMA busy_timeout=30000",
            ),
        )
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tresor-sqlite-write")
        self._inserts: dict[tuple[str, tuple[str, ...]], SqliteStatement] = {}

    def _insert(self, table: str, columns: Sequence[str]) -> SqliteStatement:
        key = (table, tuple(columns))
        compiled = self._inserts.get(key)
        if compiled is None:
            target = Base.metadata.tables[table]
            compiled = self._inserts[key] = SqliteStatement(insert(target), columns)
        return compiled

    def _append(self, compiled: SqliteStatement, records: Sequence[Sequence[Any]]) -> None:
        conn = self._conns.mine()
        rows = [compiled.record(r) for r in records]
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(compiled.sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def copy_records(
        self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]
    ) -> None:
        """Append `records` (values in `columns` order) to `table` in one transaction:
        committed when this returns, or nothing of it is."""
        compiled = self._insert(table, columns)
        loop = asyncio.get_running_loop()
        with storage_unavailable():
            await loop.run_in_executor(self._executor, self._append, compiled, records)

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._conns.close_all()
