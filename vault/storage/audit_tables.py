"""The audit trail's tables: the events (partitioned by month on PostgreSQL), their
seals, the signed checkpoints and the archive's segment records.

A module of its own beside `tables.py` (same `Base`, so the same metadata), imported by the
package's `__init__`. Holds no contact data: events are pseudonymous.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from vault.storage.tables import SEQ, TZ, Base


class AuditEvent(Base):
    """Append-only audit trail; pseudonymous (subject ids, never contact data)."""

    __tablename__ = "audit_events"
    #: Time ranges (console search, export, reports) on PostgreSQL through a BRIN index:
    #: events are appended in time order, so block ranges map to time ranges, and it costs
    #: an insert almost nothing, where a b-tree cost every event an entry (migration 0011).
    #: On PostgreSQL the table is range partitioned by month on `at` (migration 0030,
    #: `vault.audit.partitions`): a closed month is archived and dropped as a whole. There
    #: the primary key is `(seq, at)`, as PostgreSQL wants the partition key in it; SQLite
    #: keeps one table with `seq` alone (its rowid). `seq` comes from one sequence either way.
    __table_args__ = (
        Index("ix_audit_events_at", "at", postgresql_using="brin"),
        {"postgresql_partition_by": "RANGE (at)"},
    )

    seq: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(TZ)
    request_id: Mapped[str | None] = mapped_column(String(64))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(120), index=True)
    #: Not indexed (migration 0009): filters on it are suffix matches or match most rows.
    action: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str | None] = mapped_column(String(36), index=True)
    purpose: Mapped[str | None] = mapped_column(String(100))
    fields: Mapped[str | None] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(String(64))
    #: Not indexed (migration 0011): an event that names a consent names its subject too,
    #: so a consent's events are found through the subject's index (`consent_proof`).
    consent_id: Mapped[str | None] = mapped_column(String(36))
    detail: Mapped[str | None] = mapped_column(Text)


class AuditSeal(Base):
    """An event's place in the HMAC chain: its position and MAC, written once by the single
    sealer (off the request path) and never updated.

    A table of its own rather than two columns of `audit_events` (migration 0010): sealing
    appends narrow rows by COPY instead of updating every event a second time, which costs
    PostgreSQL a new row version, WAL for all of it and vacuum later, several times the
    append (docs/performance.md). The chain runs in `seq` order, so the head is the
    last row of this table's primary key.

    On PostgreSQL the table is range partitioned on `seq` in fixed blocks (migration 0037,
    `vault.audit.seal_blocks`), so the archive's prune drops the blocks of a pruned month
    whole instead of deleting its seals row by row; SQLite keeps one table."""

    __tablename__ = "audit_seals"
    __table_args__ = ({"postgresql_partition_by": "RANGE (seq)"},)

    #: The sealed event's `audit_events.seq`. No foreign key: a deleted event must leave
    #: its seal behind, so `verify` names the hole.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chain_pos: Mapped[int] = mapped_column(BigInteger)
    chain_mac: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed (Ed25519) statement of the chain head at a position, verifiable outside."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(SEQ, primary_key=True, autoincrement=True)
    chain_pos: Mapped[int] = mapped_column(BigInteger, unique=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    head: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(TZ)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))


class AuditArchive(Base):
    """A month of the audit trail written to the archive as one signed segment
    (`tresor audit archive`, vault/audit/archive.py), recorded only after the upload.

    The chain columns say where the segment sits in the chain (`prev_mac` it starts from,
    `last_pos`/`last_mac` it ends at), so once its events are pruned (`pruned_at`) the live
    table is verified from this row's end, and `verify --archive` joins segments to it."""

    __tablename__ = "audit_archives"

    #: `YYYY-MM` of the events' time stamps (UTC).
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    first_pos: Mapped[int] = mapped_column(BigInteger)
    last_pos: Mapped[int] = mapped_column(BigInteger)
    events: Mapped[int] = mapped_column(BigInteger)
    prev_mac: Mapped[str] = mapped_column(String(64))
    last_mac: Mapped[str] = mapped_column(String(64))
    #: Where the segment was written (no credentials: those come from the environment).
    url: Mapped[str] = mapped_column(String(1000))
    #: SHA-256 of the compressed segment as uploaded.
    sha256: Mapped[str] = mapped_column(String(64))
    archived_at: Mapped[datetime] = mapped_column(TZ)
    #: Set before the month's events are deleted (`tresor audit prune`): from then on the
    #: live chain starts after `last_seq`, even while a crashed prune left rows behind.
    pruned_at: Mapped[datetime | None] = mapped_column(TZ)


audit_events = AuditEvent.__table__
audit_seals = AuditSeal.__table__
audit_checkpoints = AuditCheckpoint.__table__
audit_archives = AuditArchive.__table__


#: The partitions of `audit_events` (migration 0030: one table per month) and of
#: `audit_seals` (migration 0037: one per block of sequence numbers), each with `DEFAULT`,
#: on PostgreSQL; created and dropped at run time by `vault.audit.partitions`, not by the
#: model.
AUDIT_PARTITION = re.compile(r"audit_events_(y\d{4}m\d{2}|default)|audit_seals_(from_\d+|default)")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's filter for comparing the model with a database (`migrations/env.py`, the
    models-and-migrations test): the audit trail's partitions are parts of the one table
    the model describes (partitioned by `postgresql_partition_by`), not tables of their own."""
    return not (type_ == "table" and name is not None and AUDIT_PARTITION.fullmatch(name))
