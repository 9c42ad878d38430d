"""The transactional outbox: one `domain_events` row per change, in the change's own
transaction, so a change that commits always has its events and a rollback has none.

An event names the subject id, the purposes concerned, field names (rectification) and the
time, never a value: whatever reads the outbox (fan-out, delivery, a receiver) never sees
contact data. Callers pass their transaction's connection; nothing here commits.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.storage.recipient_tables import domain_events
from vault.storage.tables import consents
from vault.storage.wakeup import wake_after_commit

#: The PostgreSQL notification channel a committed event signals on (`storage.listen`).
OUTBOX_CHANNEL = "tresor_outbox"


class EventType(StrEnum):
    CONSENT_GRANTED = "consent.granted"
    CONSENT_WITHDRAWN = "consent.withdrawn"
    CONSENT_EXPIRED = "consent.expired"
    BASIS_ENDED = "basis.ended"
    SUBJECT_RECTIFIED = "subject.rectified"
    SUBJECT_RESTRICTED = "subject.restricted"
    SUBJECT_RESTRICTION_LIFTED = "subject.restriction_lifted"
    SUBJECT_OBJECTED = "subject.objected"
    SUBJECT_ERASED = "subject.erased"
    PREFERENCES_CHANGED = "preferences.changed"


#: The events that concern every purpose the subject has a basis for (the change is to the
#: subject, not to one basis).
SUBJECT_WIDE = frozenset(
    {
        EventType.SUBJECT_RECTIFIED,
        EventType.SUBJECT_RESTRICTED,
        EventType.SUBJECT_RESTRICTION_LIFTED,
        EventType.SUBJECT_ERASED,
        EventType.PREFERENCES_CHANGED,
    }
)


async def emit(
    conn: AsyncConnection,
    type_: EventType,
    *,
    subject_id: str,
    at: datetime,
    purposes: Iterable[str] | None = None,
    fields: Iterable[str] | None = None,
) -> str:
    """Append one event inside the caller's transaction; returns its id.

    `purposes` None means "every purpose the subject has a basis for" (read here, in the
    same transaction, so it sees the change's own rows)."""
    if purposes is None:
        purposes = await subject_purposes(conn, subject_id)
    event_id = str(uuid.uuid4())
    await conn.execute(
        insert(domain_events).values(
            id=event_id,
            type=str(type_),
            subject_id=subject_id,
            purposes=json.dumps(sorted(set(purposes))),
            fields=json.dumps(sorted(set(fields))) if fields is not None else None,
            occurred_at=at,
            fanned_out_at=None,
        )
    )
    # Wakes the deliverer after this transaction commits, from outside it and coalesced
    # with other commits (PostgreSQL; SQLite polls): see `storage.wakeup`.
    wake_after_commit(conn, OUTBOX_CHANNEL)
    return event_id


async def subject_purposes(conn: AsyncConnection, subject_id: str) -> list[str]:
    """Every purpose the subject has (or had) a basis for: the purposes a recipient may
    have received its data for."""
    rows = await conn.execute(
        select(consents.c.purpose).where(consents.c.subject_id == subject_id).distinct()
    )
    return sorted(rows.scalars())


async def emit_many(
    conn: AsyncConnection,
    type_: EventType,
    subjects: Sequence[tuple[str, Iterable[str]]],
    *,
    at: datetime,
) -> list[str]:
    """`emit` of one event per (subject id, purposes) in a single multi-row insert, in
    the caller's transaction (the retention sweep's batched erasure); returns the ids."""
    rows = [
        dict(
            id=str(uuid.uuid4()),
            type=str(type_),
            subject_id=subject_id,
            purposes=json.dumps(sorted(set(purposes))),
            fields=None,
            occurred_at=at,
            fanned_out_at=None,
        )
        for subject_id, purposes in subjects
    ]
    if rows:
        await conn.execute(insert(domain_events), rows)
        wake_after_commit(conn, OUTBOX_CHANNEL)
    return [str(r["id"]) for r in rows]
