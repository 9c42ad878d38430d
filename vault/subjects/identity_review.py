"""The DPO's side of identity changes (security finding 1): listing the changes of the
identifying addresses and approving one that is pending or objected.

Split from `identity`, which records, notifies and settles changes: the DPO's review
reads and settles the same rows, audited, and never shows an address, only which kind of
address changed and the state of the change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.errors import Conflict, InvalidInput, NotFound
from vault.storage.rights_tables import identity_changes as changes
from vault.subjects.identity import (
    EFFECTIVE,
    ChangeRecord,
    ChangeStatus,
    _effective,
    _record,
    _records,
    _settle,
)

if TYPE_CHECKING:
    from vault.context import VaultContext

_STATUSES = (
    ChangeStatus.PENDING.value,
    EFFECTIVE,
    ChangeStatus.CONFIRMED.value,
    ChangeStatus.OBJECTED.value,
)


async def list_changes(
    ctx: VaultContext,
    actor: Actor,
    *,
    subject_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[ChangeRecord]:
    """Identity changes, newest first, optionally of one subject and one (shown) status;
    objected ones are the DPO's to resolve. The read is audited."""
    if status is not None and status not in _STATUSES:
        raise InvalidInput("unknown status", {"status": "must be one of " + ", ".join(_STATUSES)})
    now = ctx.clock.now()
    stmt = select(changes).order_by(changes.c.changed_at.desc(), changes.c.ordinal.desc())
    if subject_id is not None:
        stmt = stmt.where(changes.c.subject_id == subject_id)
    if status in (ChangeStatus.PENDING.value, EFFECTIVE):
        stmt = stmt.where(changes.c.status == ChangeStatus.PENDING.value)
        if status == EFFECTIVE:
            stmt = stmt.where(changes.c.cooling_off_until <= now)
        else:
            stmt = stmt.where(changes.c.cooling_off_until > now)
    elif status is not None:
        stmt = stmt.where(changes.c.status == status)
    async with ctx.transaction() as conn:
        rows = (await conn.execute(stmt.limit(limit))).all()
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.DPO_IDENTITY_LIST,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            detail={"status": status, "count": len(rows)},
        )
    return [_record(r, now) for r in rows]


async def approve(ctx: VaultContext, actor: Actor, change_id: str) -> ChangeRecord:
    """A DPO confirms a change (pending, in force, or objected after looking into it):
    sessions through the address it set are no longer restricted by it. Approve each open
    change of an address in turn: the earliest open one names the trusted address."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = (
            await conn.execute(select(changes).where(changes.c.id == change_id).with_for_update())
        ).first()
        if row is None:
            raise NotFound("no such identity change")
        if row.status == ChangeStatus.CONFIRMED:
            raise Conflict("the change is confirmed already")
        await _settle(conn, [row.id], ChangeStatus.CONFIRMED, actor, now)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.DPO_IDENTITY_APPROVE,
            decision=Decision.ALLOW,
            subject_id=row.subject_id,
            fields=[row.kind],
            detail={"change_id": row.id, "was": _effective(row, now)},
        )
    (record,) = await _records(ctx, [change_id])
    return record
