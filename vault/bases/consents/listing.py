"""Reading a subject's basis records with their history; the read is audited and a sealed
text that fails to open is an audited integrity refusal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.bases.consents.records import (
    BasisRecord,
    to_record,
)
from vault.bases.consents.sealed import (
    open_texts,
)
from vault.errors import NotFound
from vault.storage.tables import consent_history, consents
from vault.subjects.decision import DenyReason
from vault.subjects.integrity import audited_read
from vault.subjects.store import load_subject

if TYPE_CHECKING:
    from vault.context import VaultContext


async def list_bases(
    ctx: VaultContext, actor: Actor, subject_id: str, *, consent_id: str | None = None
) -> list[BasisRecord]:
    """Every basis record of a subject, newest first, each with its history. Audited; a
    sealed text that fails to open is an audited `IntegrityFailure`."""
    now = ctx.clock.now()
    async with audited_read(
        ctx,
        actor,
        AuditAction.CONSENT_LIST,
        at=now,
        subject_id=subject_id,
        consent_id=consent_id,
        not_found=DenyReason.SUBJECT_NOT_FOUND.value,
    ) as read:
        conn = read.conn
        subject = await load_subject(conn, subject_id)
        stmt = select(consents).where(consents.c.subject_id == subject_id)
        if consent_id is not None:
            stmt = stmt.where(consents.c.id == consent_id)
        rows = (await conn.execute(stmt.order_by(consents.c.created_at.desc()))).all()
        texts = {r.id: open_texts(ctx, subject, r) for r in rows}
        hist = (
            await conn.execute(
                select(consent_history)
                .where(consent_history.c.subject_id == subject_id)
                .order_by(consent_history.c.id)
            )
        ).all()
        if actor.type != "internal":
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=AuditAction.CONSENT_LIST,
                decision=Decision.ALLOW,
                subject_id=subject_id,
                consent_id=consent_id,
            )
    by_consent: dict[str, list[Any]] = {}
    for h in hist:
        by_consent.setdefault(h.consent_id, []).append(h)
    return [to_record(ctx, r, texts[r.id], by_consent.get(r.id, [])) for r in rows]


async def get_basis(ctx: VaultContext, subject_id: str, consent_id: str) -> BasisRecord:
    records = await list_bases(ctx, Actor("internal", "tresor"), subject_id, consent_id=consent_id)
    if not records:
        raise NotFound("no such consent for this subject")
    return records[0]
