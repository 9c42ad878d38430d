"""Changes to an agreed follow-up after it was recorded: the customer cancels it, the
retention sweep stores it as missed, and the CRM (issue 21 item 6) moves its window (and who
is to make the contact), or closes it with an outcome when the matter was settled without
the contact the follow-up promised (the customer called in, the question was answered by
letter, it is no longer needed).

Only an open follow-up whose window has not passed can be cancelled, moved or closed; the
CRM changes only those of a purpose the client is allowed, another purpose's follow-up is
the same 404 as an unknown id. Each change is one guarded `UPDATE ... WHERE status = 'open'`
in the transaction that audits it, so a change racing a lookup that keeps the follow-up
loses cleanly (409). Every change and every refusal of a CRM change is audited
(`audited_attempt`). The outcome is a kind from
`CLOSE_OUTCOMES`, never free text (free text could carry contact data).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from vault.audit import events as audit
from vault.audit.events import SYSTEM, Actor, AuditAction, Decision
from vault.errors import Conflict, InvalidInput, NotFound
from vault.outreach.followups import (
    ASSIGNEE_RE,
    Followup,
    FollowupStatus,
    from_row,
    is_valid_id,
    validate_window,
)
from vault.storage.outreach_tables import followups
from vault.subjects.decision import DenyReason
from vault.subjects.integrity import AuditedAttempt, audited_attempt

#: How a follow-up was settled when the CRM closes it (labels: api/i18n.py `fu_outcome_*`).
CLOSE_OUTCOMES = (
    "reached_otherwise",
    "resolved_in_writing",
    "customer_called_in",
    "no_longer_needed",
    "not_reachable",
)


async def _open_row(attempt: AuditedAttempt, followup_id: str, purposes: frozenset[str]) -> Any:
    """The follow-up as stored, for a purpose the client may use, or the refusal on record."""
    row = (
        await attempt.conn.execute(
            select(followups).where(followups.c.id == followup_id).with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound("no such follow-up")
    attempt.about(subject_id=row.subject_id, purpose=row.purpose)
    if row.purpose not in purposes:  # the same 404 as an unknown id
        attempt.reason = DenyReason.PURPOSE_NOT_ALLOWED.value
        raise NotFound("no such follow-up")
    return row


async def _change(
    ctx: Any,
    actor: Actor,
    purposes: frozenset[str],
    followup_id: str,
    action: AuditAction,
    values: dict[str, Any],
    detail: dict[str, Any],
) -> Followup:
    now = ctx.clock.now()
    if not is_valid_id(followup_id):
        raise NotFound("no such follow-up")
    async with audited_attempt(ctx, actor, action, at=now) as attempt:
        row = await _open_row(attempt, followup_id, purposes)
        conn = attempt.conn
        result = await conn.execute(
            update(followups)
            .where(
                followups.c.id == followup_id,
                followups.c.status == FollowupStatus.OPEN.value,
                followups.c.due_until > now,
            )
            .values(**values)
        )
        if result.rowcount != 1:
            attempt.reason = DenyReason.FOLLOWUP_NOT_USABLE.value
            raise Conflict("only an open follow-up whose window has not passed can be changed")
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=action,
            decision=Decision.ALLOW,
            subject_id=row.subject_id,
            purpose=row.purpose,
            detail={"followup": {"id": followup_id, **detail}},
        )
        changed = (await conn.execute(select(followups).where(followups.c.id == followup_id))).one()
    return from_row(changed, now)


async def reschedule(
    ctx: Any,
    actor: Actor,
    purposes: frozenset[str],
    followup_id: str,
    *,
    due_from: datetime,
    due_until: datetime,
    assignee: str | None = None,
) -> Followup:
    """Move an open follow-up's window (the rules of a new one: at most 31 days, ending in
    the future, starting within a year); with `assignee`, hand it to that client or team.
    Raises `InvalidInput` (nothing changed), `NotFound` or `Conflict` (no longer open)."""
    errors: dict[str, str] = {}
    window = validate_window(due_from, due_until, ctx.clock.now(), errors)
    if assignee is not None and not ASSIGNEE_RE.match(assignee):
        errors["assignee"] = "must be a client or team name (a-z, 0-9, . _ -)"
    if errors or window is None:
        raise InvalidInput("the new window does not fit", errors)
    start, end = window
    values: dict[str, Any] = {"due_from": start, "due_until": end}
    detail: dict[str, Any] = {"due_from": start.isoformat(), "due_until": end.isoformat()}
    if assignee is not None:
        values["assignee"] = detail["assignee"] = assignee
    return await _change(
        ctx, actor, purposes, followup_id, AuditAction.FOLLOWUP_RESCHEDULE, values, detail
    )


async def close(
    ctx: Any, actor: Actor, purposes: frozenset[str], followup_id: str, *, outcome: str
) -> Followup:
    """Close an open follow-up with an outcome from `CLOSE_OUTCOMES` (status `closed`): it
    can no longer be kept by a lookup and is not reported as missed. Raises `InvalidInput`,
    `NotFound` or `Conflict` (no longer open)."""
    if outcome not in CLOSE_OUTCOMES:
        raise InvalidInput(
            "bad outcome", {"outcome": "must be one of " + ", ".join(CLOSE_OUTCOMES)}
        )
    now = ctx.clock.now()
    values = {
        "status": FollowupStatus.CLOSED.value,
        "outcome": outcome,
        "closed_at": now,
        "closed_by": actor.label,
    }
    return await _change(
        ctx, actor, purposes, followup_id, AuditAction.FOLLOWUP_CLOSE, values, {"outcome": outcome}
    )


# ------------------------------------------------------------------ the customer and the sweep


async def cancel_by_subject(ctx: Any, actor: Actor, subject_id: str, followup_id: str) -> Followup:
    """The customer cancels one of their open follow-ups; audited. Someone else's or an
    unknown id is `NotFound`; one that is no longer open is `Conflict`."""
    now = ctx.clock.now()
    if not is_valid_id(followup_id):
        raise NotFound("no such follow-up")
    async with ctx.transaction() as conn:
        result = await conn.execute(
            update(followups)
            .where(
                followups.c.id == followup_id,
                followups.c.subject_id == subject_id,
                followups.c.status == FollowupStatus.OPEN.value,
                followups.c.due_until > now,
            )
            .values(status=FollowupStatus.CANCELLED.value, closed_at=now, closed_by=actor.label)
        )
        row = (
            await conn.execute(
                select(followups).where(
                    followups.c.id == followup_id, followups.c.subject_id == subject_id
                )
            )
        ).first()
        if row is None:
            raise NotFound("no such follow-up")
        if result.rowcount != 1:
            raise Conflict("only an open follow-up can be cancelled")
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.SUBJECT_FOLLOWUP_CANCEL,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            purpose=row.purpose,
            detail={"followup": {"id": followup_id}},
        )
    return from_row(row, now)


async def mark_missed(ctx: Any, actor: Actor = SYSTEM, *, batch: int = 500) -> int:
    """Store `missed` for open follow-ups whose window has passed (the retention sweep),
    one audit event each, in batches; guarded by the status read, so concurrent sweeps on
    several nodes never double-write."""
    now = ctx.clock.now()
    total = 0
    while True:
        async with ctx.transaction() as conn:
            rows = (
                await conn.execute(
                    select(followups.c.id, followups.c.subject_id, followups.c.purpose)
                    .where(
                        followups.c.status == FollowupStatus.OPEN.value,
                        followups.c.due_until <= now,
                    )
                    .order_by(followups.c.id)
                    .limit(batch)
                )
            ).all()
            done = 0
            for row in rows:
                result = await conn.execute(
                    update(followups)
                    .where(
                        followups.c.id == row.id,
                        followups.c.status == FollowupStatus.OPEN.value,
                    )
                    .values(
                        status=FollowupStatus.MISSED.value, closed_at=now, closed_by=actor.label
                    )
                )
                if result.rowcount != 1:
                    continue
                done += 1
                await audit.record(
                    conn,
                    at=now,
                    actor=actor,
                    action=AuditAction.SYSTEM_FOLLOWUP_MISS,
                    decision=Decision.ALLOW,
                    subject_id=row.subject_id,
                    purpose=row.purpose,
                    detail={"followup": {"id": row.id}},
                )
        total += done
        if len(rows) < batch:
            return total
