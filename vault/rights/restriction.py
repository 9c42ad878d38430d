"""Restriction of processing (Art. 18) and objection to direct marketing (Art. 21(2)-(3)).

A restricted subject's data is only stored: every purpose-checked lookup denies with
`subject_restricted`, except for legal-obligation purposes (`vault.subjects.decision.decide`).

An objection to direct marketing is immediate and absolute: every basis of an editorial or
commercial purpose ends at once (consents `withdrawn`, other bases `ended`, history
`objection`) and `subjects.marketing_objection_at` is set. From then on
`vault.bases.consents.record_basis` refuses new marketing bases for the subject, unless the
evidence shows a fresh explicit opt-in by the subject itself (`explicit=True`), which
clears the objection.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision, action_for
from vault.bases.ending import EndedBasis, end_live_bases
from vault.catalogue.purposes import is_direct_marketing
from vault.errors import Conflict
from vault.recipients import events as outbox
from vault.storage.tables import subjects
from vault.subjects.store import SubjectStatus, load_subject

if TYPE_CHECKING:
    from vault.context import VaultContext


async def restrict_in(conn: AsyncConnection, actor: Actor, row: Row[Any], now: datetime) -> bool:
    """Restrict the subject inside the caller's transaction; False if it already was."""
    if row.status == SubjectStatus.ERASED:
        raise Conflict("the subject was erased")
    if row.status == SubjectStatus.RESTRICTED:
        return False
    await conn.execute(
        update(subjects)
        .where(subjects.c.id == row.id)
        .values(status=SubjectStatus.RESTRICTED, updated_at=now)
    )
    await audit.record(
        conn,
        at=now,
        actor=actor,
        action=action_for(actor, "subject:restrict"),
        decision=Decision.ALLOW,
        subject_id=row.id,
    )
    await outbox.emit(conn, outbox.EventType.SUBJECT_RESTRICTED, subject_id=row.id, at=now)
    return True


async def restrict(ctx: VaultContext, actor: Actor, subject_id: str) -> None:
    """Restrict processing of the subject's data (Art. 18).

    Raises `NotFound`, or `Conflict` when the subject is erased or already restricted.
    """
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = await load_subject(conn, subject_id, for_update=True)
        if not await restrict_in(conn, actor, row, now):
            raise Conflict("processing of the subject's data is already restricted")


async def lift_restriction(ctx: VaultContext, actor: Actor, subject_id: str) -> None:
    """End a restriction (Art. 18(3)): the subject is active again.

    Raises `NotFound`, or `Conflict` when the subject is not restricted.
    """
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = await load_subject(conn, subject_id, for_update=True)
        if row.status != SubjectStatus.RESTRICTED:
            raise Conflict("processing of the subject's data is not restricted")
        await conn.execute(
            update(subjects)
            .where(subjects.c.id == subject_id)
            .values(status=SubjectStatus.ACTIVE, updated_at=now)
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.DPO_SUBJECT_LIFT_RESTRICTION,
            decision=Decision.ALLOW,
            subject_id=subject_id,
        )
        await outbox.emit(
            conn, outbox.EventType.SUBJECT_RESTRICTION_LIFTED, subject_id=subject_id, at=now
        )


async def object_in(
    ctx: VaultContext, conn: AsyncConnection, actor: Actor, row: Row[Any], now: datetime
) -> list[EndedBasis]:
    """Record an objection to direct marketing inside the caller's transaction."""
    if row.status == SubjectStatus.ERASED:
        raise Conflict("the subject was erased")

    def marketing(basis_row: Any) -> bool:
        purpose = ctx.catalogue.get(basis_row.purpose)
        return purpose is not None and is_direct_marketing(purpose)

    ended = await end_live_bases(
        conn, actor=actor, subject_id=row.id, now=now, event="objection", which=marketing
    )
    await conn.execute(
        update(subjects)
        .where(subjects.c.id == row.id)
        .values(marketing_objection_at=now, updated_at=now)
    )
    await audit.record(
        conn,
        at=now,
        actor=actor,
        action=action_for(actor, "subject:object"),
        decision=Decision.ALLOW,
        subject_id=row.id,
        detail={
            "ended": [e.id for e in ended],
            "purposes": sorted({e.purpose for e in ended}),
        },
    )
    # The purposes objected to: the direct-marketing ones the subject has a basis for.
    objected = [
        p for p in await outbox.subject_purposes(conn, row.id) if _is_marketing_purpose(ctx, p)
    ]
    await outbox.emit(
        conn, outbox.EventType.SUBJECT_OBJECTED, subject_id=row.id, purposes=objected, at=now
    )
    return ended


def _is_marketing_purpose(ctx: VaultContext, purpose_id: str) -> bool:
    purpose = ctx.catalogue.get(purpose_id)
    return purpose is not None and is_direct_marketing(purpose)
