"""Ending a subject's live lawful bases, with history, inside the caller's transaction.

What the data-subject rights (objection, erasure, a request to withdraw consent) do to the
bases the subject has: a consent becomes `withdrawn`, any other basis `ended`, and each
change is a `consent_history` row. `LIVE_STATUSES` names the statuses that may still permit
processing (the retention sweep reads it too)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.events import Actor
from vault.catalogue.purposes import LawfulBasis
from vault.recipients import events as outbox
from vault.storage.tables import consent_history, consents
from vault.subjects import retention_schedule
from vault.subjects.decision import BasisFacts, BasisStatus, effective_status

#: Stored statuses of a basis that may still permit processing.
LIVE_STATUSES = (BasisStatus.GRANTED, BasisStatus.ACTIVE, BasisStatus.PENDING_CONFIRMATION)


#: The domain event each way a basis ends is told as (a lapsed double opt-in never
#: permitted anything, so nobody can have received data under it).
_EVENT_OF = {
    BasisStatus.WITHDRAWN: outbox.EventType.CONSENT_WITHDRAWN,
    BasisStatus.ENDED: outbox.EventType.BASIS_ENDED,
    BasisStatus.EXPIRED: outbox.EventType.CONSENT_EXPIRED,
}


@dataclass(frozen=True, slots=True)
class EndedBasis:
    id: str
    purpose: str
    basis: str
    status: str


async def end_live_bases(
    conn: AsyncConnection,
    *,
    actor: Actor,
    subject_id: str,
    now: datetime,
    event: str,
    which: Callable[[Any], bool] | None = None,
) -> list[EndedBasis]:
    """End every live basis of the subject that `which` selects (all when None).

    A consent becomes `withdrawn`, any other basis `ended`, with history `event`; a record
    that has already run out by itself (past its expiry or its confirmation deadline) is
    stored as `expired` / `lapsed` instead, so the history does not misstate why it ended.
    Each update is guarded by the status read, so concurrent enders never double-write.
    """
    rows = (
        await conn.execute(
            select(consents)
            .where(consents.c.subject_id == subject_id)
            .where(consents.c.status.in_([str(s) for s in LIVE_STATUSES]))
            .order_by(consents.c.created_at)
            .with_for_update()
        )
    ).all()
    ended: list[EndedBasis] = []
    for row in rows:
        if which is not None and not which(row):
            continue
        facts = BasisFacts(row.id, row.basis, row.status, row.expires_at, row.confirm_deadline)
        current = effective_status(facts, now)
        values: dict[str, Any] = {"confirm_token_hash": None}
        new_status: BasisStatus
        if current in (BasisStatus.EXPIRED, BasisStatus.LAPSED):
            new_status, why = current, str(current)
        else:
            new_status = (
                BasisStatus.WITHDRAWN
                if row.basis == LawfulBasis.CONSENT.value
                else BasisStatus.ENDED
            )
            why = event
            values["withdrawn_at"] = now
        result = await conn.execute(
            update(consents)
            .where(consents.c.id == row.id)
            .where(consents.c.status == row.status)
            .values(status=str(new_status), **values)
        )
        if result.rowcount != 1:
            continue
        await conn.execute(
            insert(consent_history).values(
                consent_id=row.id,
                subject_id=subject_id,
                at=now,
                event=why,
                status=str(new_status),
                actor=actor.label,
                expires_at=row.expires_at,
            )
        )
        ended.append(EndedBasis(row.id, row.purpose, row.basis, str(new_status)))
        event_type = _EVENT_OF.get(new_status)
        if event_type is not None:
            await outbox.emit(
                conn, event_type, subject_id=subject_id, purposes=[row.purpose], at=now
            )
    if ended:
        await retention_schedule.check_at(conn, subject_id, now)
    return ended
