"""Reading agreed follow-ups (`vault.outreach.followups`): one by id and the reminder list
for a writer client (only the purposes it may use), the customer's own, and the missed ones
for the DPO. Every read is audited in the transaction that reads, a refused one too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.errors import InvalidInput, NotFound
from vault.outreach.followups import (
    ASSIGNEE_RE,
    MAX_PAGE,
    Followup,
    FollowupStatus,
    from_row,
    is_valid_id,
    missed_at,
)
from vault.outreach.page_cursor import decode_cursor, encode_cursor
from vault.storage.outreach_tables import followups
from vault.subjects.decision import DenyReason
from vault.subjects.integrity import audited_attempt


@dataclass(frozen=True, slots=True)
class FollowupPage:
    items: list[Followup]
    next_cursor: str | None


async def get(
    ctx: Any, actor: Actor, client_purposes: frozenset[str], followup_id: str
) -> Followup:
    """One follow-up for a purpose the client may use (else `NotFound`); audited, a refusal
    too (with the subject and purpose of another purpose's follow-up, and the reason
    `purpose_not_allowed` the client does not hear)."""
    now = ctx.clock.now()
    if not is_valid_id(followup_id):
        raise NotFound("no such follow-up")
    async with audited_attempt(ctx, actor, AuditAction.FOLLOWUP_READ, at=now) as attempt:
        conn = attempt.conn
        row = (await conn.execute(select(followups).where(followups.c.id == followup_id))).first()
        if row is None:
            raise NotFound("no such follow-up")
        if row.purpose not in client_purposes:  # the same 404 as an unknown id
            attempt.about(subject_id=row.subject_id, purpose=row.purpose)
            attempt.reason = DenyReason.PURPOSE_NOT_ALLOWED.value
            raise NotFound("no such follow-up")
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.FOLLOWUP_READ,
            decision=Decision.ALLOW,
            subject_id=row.subject_id,
            purpose=row.purpose,
            detail={"followup": {"id": followup_id}},
        )
    return from_row(row, now)


async def list_due(
    ctx: Any,
    actor: Actor,
    client_purposes: frozenset[str],
    *,
    due_before: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
    assignee: str | None = None,
) -> FollowupPage:
    """Open follow-ups for the client's purposes whose window starts before `due_before`
    (default: now) and has not ended, earliest first, one bounded page at a time: the
    reminder list; with `assignee`, only the follow-ups assigned to that client or team."""
    now = ctx.clock.now()
    if due_before is not None and due_before.tzinfo is None:
        raise InvalidInput("bad due_before", {"due_before": "needs a time zone"})
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("bad limit", {"limit": f"must be 1 to {MAX_PAGE}"})
    if assignee is not None and not ASSIGNEE_RE.match(assignee):
        raise InvalidInput("bad assignee", {"assignee": "must be a client or team name"})
    before = as_utc(due_before) if due_before is not None else now
    after = decode_cursor(cursor) if cursor is not None else None
    purposes = sorted(client_purposes)
    query = (
        select(followups)
        .where(
            followups.c.status == FollowupStatus.OPEN.value,
            followups.c.purpose.in_(purposes),
            followups.c.due_from < before,
            followups.c.due_until > now,
        )
        .order_by(followups.c.due_from, followups.c.id)
        .limit(limit + 1)
    )
    if assignee is not None:
        query = query.where(followups.c.assignee == assignee)
    if after is not None:
        query = query.where(
            or_(
                followups.c.due_from > after[0],
                and_(followups.c.due_from == after[0], followups.c.id > after[1]),
            )
        )
    async with ctx.transaction() as conn:
        rows = (await conn.execute(query)).all() if purposes else []
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.FOLLOWUP_LIST,
            decision=Decision.ALLOW,
            detail={
                "due_before": before.isoformat(),
                "assignee": assignee,
                "count": min(len(rows), limit),
            },
        )
    items = [from_row(r, now) for r in rows[:limit]]
    more = len(rows) > limit
    return FollowupPage(
        items=items,
        next_cursor=encode_cursor(items[-1].due_from, items[-1].id) if more else None,
    )


async def for_subject(ctx: Any, actor: Actor, subject_id: str, limit: int = 200) -> list[Followup]:
    """The customer's own follow-ups, the latest window first (bounded); audited."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        rows = (
            await conn.execute(
                select(followups)
                .where(followups.c.subject_id == subject_id)
                .order_by(followups.c.due_until.desc(), followups.c.id)
                .limit(limit)
            )
        ).all()
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.SELF_FOLLOWUP_READ,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            detail={"count": len(rows)},
        )
    return [from_row(r, now) for r in rows]


async def overdue(ctx: Any, actor: Actor, limit: int = 500) -> list[Followup]:
    """Missed follow-ups (window passed unused, swept or not), the latest first, for the
    DPO; audited."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        rows = (
            await conn.execute(
                select(followups)
                .where(missed_at(now))
                .order_by(followups.c.due_until.desc(), followups.c.id)
                .limit(limit)
            )
        ).all()
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.DPO_FOLLOWUP_LIST,
            decision=Decision.ALLOW,
            detail={"overdue": len(rows)},
        )
    return [from_row(r, now) for r in rows]
