"""Withdrawing a consent (GDPR Art. 7(3)), effective at once, with the recipients told."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select, update

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.bases.consents.listing import get_basis
from vault.bases.consents.records import (
    BasisRecord,
    add_history,
    basis_facts,
)
from vault.catalogue.purposes import LawfulBasis
from vault.errors import Conflict, NotFound
from vault.recipients import events as outbox
from vault.storage.tables import consents
from vault.subjects import retention_schedule
from vault.subjects.decision import BasisStatus, effective_status
from vault.subjects.integrity import audited_attempt

if TYPE_CHECKING:
    from vault.context import VaultContext


async def withdraw(
    ctx: VaultContext, actor: Actor, subject_id: str, consent_id: str
) -> BasisRecord:
    """Withdraw a consent (or end another basis) at once (GDPR Art. 7(3)). A refusal (an
    unknown consent, one no longer in force) is audited (finding 6)."""
    now = ctx.clock.now()
    action = (
        AuditAction.SUBJECT_CONSENT_WITHDRAW
        if actor.type == "subject"
        else AuditAction.CONSENT_WITHDRAW
    )
    async with audited_attempt(
        ctx, actor, action, at=now, subject_id=subject_id, not_found="consent_not_found"
    ) as attempt:
        conn = attempt.conn
        row = (
            await conn.execute(
                select(consents)
                .where(consents.c.id == consent_id)
                .where(consents.c.subject_id == subject_id)
                .with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound("no such consent for this subject")
        attempt.about(subject_id=subject_id, purpose=row.purpose)
        current = effective_status(basis_facts(row), now)
        if current not in (
            BasisStatus.GRANTED,
            BasisStatus.ACTIVE,
            BasisStatus.PENDING_CONFIRMATION,
        ):
            attempt.reason = "consent_not_in_force"
            raise Conflict(f"the consent is {current.value}; nothing to withdraw")
        new_status = (
            BasisStatus.WITHDRAWN if row.basis == LawfulBasis.CONSENT.value else BasisStatus.ENDED
        )
        await conn.execute(
            update(consents)
            .where(consents.c.id == consent_id)
            .values(status=new_status, withdrawn_at=now, confirm_token_hash=None)
        )
        await retention_schedule.check_at(conn, subject_id, now)
        await add_history(
            conn,
            consent_id=consent_id,
            subject_id=subject_id,
            at=now,
            event=str(new_status),
            status=new_status,
            actor=actor,
            expires_at=row.expires_at,
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=action,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            purpose=row.purpose,
            consent_id=consent_id,
            detail={"status": str(new_status)},
        )
        await outbox.emit(
            conn,
            outbox.EventType.CONSENT_WITHDRAWN
            if new_status is BasisStatus.WITHDRAWN
            else outbox.EventType.BASIS_ENDED,
            subject_id=subject_id,
            purposes=[row.purpose],
            at=now,
        )
    return await get_basis(ctx, subject_id, consent_id)
