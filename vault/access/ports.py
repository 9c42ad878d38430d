"""Where the pipeline's audit events go: an `AuditSink`, chosen by the caller's path.

- the audit group commit (`vault.audit.batch.AuditBatcher`, built once in `VaultContext`):
  a lookup's event shares a commit with concurrent ones, a bulk chunk group is one write;
- `TransactionAudit`: the caller's open transaction (a lookup that reserves a contact reads,
  reserves and audits in one transaction).

Either way the sink has returned only once the events are durable (or the transaction
that holds them commits before data leave), and raises `Unavailable` otherwise. Reads go
through `vault.storage.ports.ReadPort`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.events import EventRecord, record_records


class AuditSink(Protocol):
    async def append_record(self, record: EventRecord) -> None:
        """One event (`EVENT_COLUMNS` order), durable (or in the transaction) on return."""
        ...

    async def append_many(self, records: Sequence[EventRecord]) -> None:
        """The caller's own batch of events, in one write."""
        ...


class TransactionAudit:
    """Events written in the caller's transaction: durable when it commits."""

    __slots__ = ("conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def append_record(self, record: EventRecord) -> None:
        await record_records(self.conn, [record])

    async def append_many(self, records: Sequence[EventRecord]) -> None:
        if records:
            await record_records(self.conn, records)
