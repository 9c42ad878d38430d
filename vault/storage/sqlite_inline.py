"""SQLite write transactions without a thread hop per step (issue 18).

aiosqlite runs every call on a worker thread of its own: creating a cursor, executing,
fetching, closing. A subject creation is three statements, but about a dozen such hops, and
each hop is a wake-up of another thread and a return through the event loop: measured on
this machine under load, 8.8 ms per creation, of which 0.7 ms was work (bench/writes.py,
docs/performance.md). The statements themselves take microseconds once the write lock is
held.

`InlineConnection` runs the steps on the event loop's own thread whenever they cannot wait,
and keeps aiosqlite's thread for those that can:

- inline: creating and closing cursors, and every step inside a transaction that holds the
  write lock (the vault's write engine begins each one `IMMEDIATE`, and the process's write
  gate in `VaultContext.transaction` queues its own transactions before that);
- `BEGIN` is tried inline without waiting (`busy_timeout` 0); when SQLite's write lock is
  held elsewhere (the audit writer thread, another process), it is retried on the thread,
  where the busy handler may wait;
- `COMMIT` inline when `synchronous=NORMAL` (no fsync in WAL) with automatic checkpoints off
  on this connection; a checkpoint (`PASSIVE`, it never waits) then runs on the thread after
  every `CHECKPOINT_EVERY` commits, so the WAL stays bounded without the event loop doing
  the copying and syncing. With `synchronous=FULL` each commit syncs, so it runs on the
  thread;
- a `ROLLBACK` or `COMMIT` outside a transaction (the pool's reset when a connection is
  returned) is a no-op: inline;
- on the thread: opening and closing the connection, a `ROLLBACK` that ends a transaction,
  and anything else outside a transaction.

Why it matters more than the hop's own cost: handing a step to the worker thread wakes it,
and the event loop then waits for the GIL until the worker releases it; on a busy machine
that was milliseconds per hop (measured: 5 ms per `put_nowait` at load 12 on 2 cores).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite

#: Commits between two WAL checkpoints of a connection that commits inline.
CHECKPOINT_EVERY = 200


def _is_begin(fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
    return (
        getattr(fn, "__name__", "") == "execute"
        and bool(args)
        and isinstance(args[0], str)
        and args[0].lstrip()[:5].upper() == "BEGIN"
    )


def _is_cursor_step(fn: Callable[..., Any]) -> bool:
    """Making or closing a cursor: no I/O, no lock."""
    owner = getattr(fn, "__self__", None)
    name = getattr(fn, "__name__", "")
    return (isinstance(owner, sqlite3.Connection) and name == "cursor") or (
        isinstance(owner, sqlite3.Cursor) and name == "close"
    )


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection that runs what cannot wait inline (module docstring)."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], commit_inline: bool) -> None:
        super().__init__(connector, 64)
        self._commit_inline = commit_inline
        self._commits = 0

    async def _on_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """aiosqlite's own way: queue the step for the connection's worker thread."""
        queued: Callable[..., Awaitable[Any]] = super()._execute
        return await queued(fn, *args)

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        conn = self._connection
        if not self._running or conn is None:
            return await self._on_thread(partial(fn, **kwargs), *args)  # raises "Connection closed"
        if _is_cursor_step(fn):
            return fn(*args, **kwargs)
        if conn.in_transaction:
            if fn == conn.commit and self._commit_inline:
                result = fn()
                self._commits += 1
                if self._commits % CHECKPOINT_EVERY == 0:
                    await self._on_thread(_checkpoint, conn)
                return result
            if fn != conn.commit and fn != conn.rollback:
                return fn(*args, **kwargs)
        elif fn == conn.commit or fn == conn.rollback:
            return fn()  # nothing to end: the pool's reset on return, a no-op
        elif _is_begin(fn, args):
            _busy_timeout(conn, 0)
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
            finally:
                _busy_timeout(conn, _BUSY_MS)
        return await self._on_thread(partial(fn, **kwargs), *args)


#: How long a step on the thread waits for SQLite's write lock (as `PRAGMA busy_timeout`).
_BUSY_MS = 30_000


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").close()  # closed: see `_busy_timeout`


def _busy_timeout(conn: sqlite3.Connection, ms: int) -> None:
    # The pragma answers a row: close its cursor, or the statement stays in progress and
    # the next COMMIT fails.
    conn.execute(f"PRAGMA busy_timeout={ms}").close()


async def connect_inline(path: str | Path, *, commit_inline: bool) -> InlineConnection:
    """Open an `InlineConnection` to the database file at `path` (its sqlite3 connection is
    used from the worker thread and the event loop's, one at a time). `commit_inline` only
    with `synchronous=NORMAL`: the connection's automatic checkpoints are then turned off."""

    def connector() -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), timeout=_BUSY_MS / 1000, check_same_thread=False)
        if commit_inline:
            conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    connection = InlineConnection(connector, commit_inline)
    connection._thread.daemon = True  # as SQLAlchemy's own aiosqlite connect does
    await connection
    return connection
