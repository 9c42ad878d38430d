"""One archive or prune of the audit trail at a time, across processes and nodes.

`archive_before` and `prune` each run for minutes over many short transactions. Two of
them interleaving (two operators, or the CLI and the retention job of another node) could
mark a month pruned while the other is recording the next segment, or delete rows the
other is still reading into a segment. So each holds this lock for its whole run.

PostgreSQL: a session-level advisory lock on a connection of its own, held across the run's
transactions (a transaction-scoped one, like the sealer's, would end with the first
commit). The server releases it when that connection ends, so a killed run never leaves it
behind. SQLite: an exclusive `flock` on a file beside the database; the database's own
write lock cannot be held for the run, since lookups append to the trail meanwhile. The
kernel releases a `flock` when its process dies.

A run that finds the lock taken waits up to `wait` seconds (polling, so Ctrl-C still ends
it) and then raises `ArchiveBusy`: the CLI prints it and exits with 75 (`EX_TEMPFAIL`:
try again later), the retention job skips the trail's retention for that round.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

from vault.errors import VaultError

if TYPE_CHECKING:
    from vault.context import VaultContext

#: The advisory lock's key (any fixed 64-bit number, distinct from the sealer's, the
#: migrations' and the partition DDL's).
ARCHIVE_LOCK_ID = 0x7472_6573_6F72_1901
#: Seconds between two attempts while waiting.
POLL_SECONDS = 0.25
LOCK_FILE = "audit-archive.lock"


class ArchiveBusy(VaultError):
    """Another archive or prune of the audit trail holds the lock."""


def _busy(wait: float) -> ArchiveBusy:
    waited = f" (waited {wait:g} s)" if wait > 0 else ""
    return ArchiveBusy(
        "another `tresor audit archive` or `audit prune` (or a node's retention job) is "
        f"running on this database{waited}; run again later, or pass --wait SECONDS"
    )


def lock_path(ctx: VaultContext) -> Path:
    """The SQLite lock file: beside the database file (every process using that file sees
    the same lock), in the data directory for a database in memory."""
    database = ctx.engine.url.database
    if database and database != ":memory:":
        path = Path(database)
        return path.with_name(path.name + "." + LOCK_FILE)
    return ctx.settings.data_dir / LOCK_FILE


async def _until(attempt: Callable[[], Awaitable[bool]], wait: float) -> None:
    """Call `attempt` (an async callable returning bool) until True or `wait` is over."""
    deadline = time.monotonic() + max(wait, 0.0)
    while not await attempt():
        if time.monotonic() >= deadline:
            raise _busy(wait)
        await asyncio.sleep(POLL_SECONDS)


@contextlib.asynccontextmanager
async def archive_lock(ctx: VaultContext, *, wait: float = 0.0) -> AsyncIterator[None]:
    """Hold the archive/prune lock for the `async with` body; `ArchiveBusy` when another
    run holds it for longer than `wait` seconds."""
    if ctx.engine.dialect.name == "postgresql":
        async with _pg_lock(ctx, wait):
            yield
    else:
        async with _file_lock(lock_path(ctx), wait):
            yield


@contextlib.asynccontextmanager
async def _pg_lock(ctx: VaultContext, wait: float) -> AsyncIterator[None]:
    async with ctx.engine.connect() as conn:

        async def attempt() -> bool:
            got = await conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": ARCHIVE_LOCK_ID}
            )
            taken = bool(got.scalar())
            await conn.commit()  # a session lock outlives the transaction; no idle one
            return taken

        await _until(attempt, wait)
        released = False
        try:
            yield
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ARCHIVE_LOCK_ID})
            await conn.commit()
            released = True
        finally:
            if not released:
                # Interrupted or failed: never hand a connection that may still hold the
                # lock back to the pool; closing it ends the session and so the lock.
                await conn.invalidate()


@contextlib.asynccontextmanager
async def _file_lock(path: Path, wait: float) -> AsyncIterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:

        async def attempt() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        await _until(attempt, wait)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
