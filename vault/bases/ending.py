"""Shared pieces of the data-subject rights (requests, erasure, restriction, objection,
export, retention): which audit action a source gets, what counts as direct marketing, and
ending a subject's live lawful bases with history, inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.events import Actor, AuditAction
from vault.subjects.decision import BasisFacts, BasisStatus, effective_status
from vault.catalogue.purposes import CommunicationType, LawfulBasis, Purpose
from vault.storage.tables import consent_history, consents

#: Stored statuses of a basis that may still permit processing.
LIVE_STATUSES = (BasisStatus.GRANTED, BasisStatus.ACTIVE, BasisStatus.PENDING_CONFIRMATION)
#: Communication types that are direct marketing (Art. 21(2)): editorial and commercial.
MARKETING_TYPES = frozenset({CommunicationType.COMMERCIAL, CommunicationType.EDITORIAL})


def is_direct_marketing(purpose: Purpose) -> bool:
    return purpose.communication_type in MARKETING_TYPES


def source_of(actor: Actor) -> str:
    """The audit source of an actor: the subject itself, the system, or staff (dpo)."""
    if actor.type in ("subject", "system"):
        return actor.type
    return "dpo"


def action_for(actor: Actor, what: str) -> AuditAction:
    """The `source:subject:action` member for `what` (e.g. "subject:erase") and this actor;
    staff's (or else the system's) member where the source has none of its own."""
    for source in (source_of(actor), "dpo", "system"):
        try:
            return AuditAction(f"{source}:{what}")
        except ValueError:
            continue
    raise ValueError(f"no audit action for {what}")


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
    return ended
