"""Group commit for audit events: concurrent requests share one write and one commit.

On the hot path every lookup must have its event durable before its data leaves.
Writing each event in its own transaction costs a round trip and a WAL flush per request;
here, requests hand their event to the batcher and wait. One flusher at a time writes every
event queued so far with a single binary COPY (one autocommit statement, so durable when
it returns) and then releases all waiting requests
together. While it writes, the next batch gathers: under load the batch grows, when idle a
lone event goes out at once (no timer, no added latency).

Fail closed: if the batch cannot be written, every request in it gets `Unavailable` and
reveals nothing. A request that is cancelled while waiting does not take its event out of
the batch: the attempt stays on record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from vault.audit.events import EVENT_COLUMNS, EventRecord
from vault.errors import Unavailable
from vault.storage.ports import RecordCopy

#: Writes a list of event records durably (one commit), or raises.
EventWriter = Callable[[Sequence[EventRecord]], Awaitable[None]]


def record_of(row: dict[str, object]) -> EventRecord:
    """An `event_row` dict as a record in `EVENT_COLUMNS` order."""
    return tuple(row[name] for name in EVENT_COLUMNS)


def copy_writer(direct: RecordCopy) -> EventWriter:
    """PostgreSQL: one binary `COPY audit_events FROM STDIN` on the raw pool, a single
    autocommit statement, so durable when it returns. Cheaper per event than the multi-row
    `INSERT ... SELECT FROM unnest(...)` it replaced: the executor's per-row work for the
    unnest is gone; index upkeep remains (figures: docs/performance.md). SQLite: one
    `executemany` in one transaction of the writer thread (`vault.storage.sqlite_direct`)."""

    async def write(records: Sequence[EventRecord]) -> None:
        await direct.copy_records("audit_events", EVENT_COLUMNS, records)

    return write


class AuditBatcher:
    """Appends audit events for many concurrent requests with shared commits."""

    def __init__(self, write: EventWriter, *, max_batch: int = 1000) -> None:
        self._write = write
        self._max_batch = max_batch
        self._queue: list[tuple[EventRecord, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        #: Statements written so far (shared commits); tests and metrics read it.
        self.flushes = 0

    async def append(self, row: dict[str, object]) -> None:
        """Return once the event (an `event_row`) is durable; raise `Unavailable` if it
        could not be written."""
        await self.append_record(record_of(row))

    async def append_record(self, record: EventRecord) -> None:
        """`append` for an event given as a record (`EVENT_COLUMNS` order)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.append((record, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        await asyncio.shield(done)

    async def append_many(self, records: Sequence[EventRecord]) -> None:
        """Write a caller's own batch of records (bulk resolution) in one statement,
        durable on return."""
        if records:
            await self._write(records)

    async def _flush(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                self.flushes += 1
                await self._write([record for record, _ in batch])
            except BaseException as exc:
                failure = (
                    exc
                    if isinstance(exc, Unavailable)
                    else Unavailable("the audit trail is unavailable; nothing was revealed")
                )
                for _, done in batch:
                    if not done.done():
                        done.set_exception(failure)
                        # The waiter may be gone (cancelled); don't warn about it.
                        done.exception()
                if not isinstance(exc, Exception):
                    raise
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def drain(self) -> None:
        """Wait for queued events to be written (clean shutdown)."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
