"""Acknowledgements and the DPO's view of deliveries.

A recipient confirms it acted on a notice (`deleted`, `updated`, `not_held`); only the
recipient the notice went to may (an ack for another's notice is refused and changes
nothing). A DPO may close what a recipient never confirmed, with a reason. Both are
audited, allowed or refused. `required_open` answers what a data-subject request waits
for: notices about the subject since a time that nobody confirmed or closed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.errors import AccessDenied, Conflict, InvalidInput, NotFound
from vault.recipients.registry import recipient_row
from vault.storage.recipient_tables import deliveries, domain_events, recipients

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from vault.context import VaultContext

OUTCOMES = ("deleted", "updated", "not_held")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True, slots=True)
class Notice:
    id: str
    recipient: str
    event_type: str
    subject_id: str
    occurred_at: datetime
    status: str
    attempts: int
    last_error: str | None
    delivered_at: datetime | None
    ack_outcome: str | None
    acked_at: datetime | None
    closed_reason: str | None


async def ack(ctx: VaultContext, actor: Actor, notification_id: str, outcome: str) -> Notice:
    """Record the recipient's confirmation. `actor.id` is the calling client's name."""
    if outcome not in OUTCOMES:
        raise InvalidInput("bad outcome", {"outcome": "must be deleted, updated or not_held"})
    if not _UUID.match(notification_id):
        raise NotFound("no such notification")
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = (
            await conn.execute(
                select(deliveries, recipients.c.client_name, recipients.c.name)
                .join(recipients, recipients.c.id == deliveries.c.recipient_id)
                .where(deliveries.c.id == notification_id)
                .with_for_update(of=deliveries)
            )
        ).first()
        if row is None:
            raise NotFound("no such notification")
        if row.client_name is None or row.client_name != actor.id:
            denied = True
        else:
            denied = False
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == notification_id)
                .values(ack_outcome=outcome, acked_at=now)
            )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.NOTIFICATION_ACK,
            decision=Decision.DENY if denied else Decision.ALLOW,
            subject_id=row.subject_id,
            reason="not_the_recipient" if denied else None,
            detail={"notification": notification_id, "outcome": outcome},
        )
    if denied:
        # The refusal is committed with its audit event; nothing else changed.
        raise AccessDenied("not_the_recipient", "this notification was sent to another recipient")
    return await get_notice(ctx, notification_id)


async def close(ctx: VaultContext, actor: Actor, notification_id: str, reason: str) -> Notice:
    """The DPO closes a notice nobody confirmed (e.g. the recipient was shut down)."""
    reason = reason.strip()
    if not reason or len(reason) > 500:
        raise InvalidInput("a reason is needed", {"reason": "1 to 500 characters"})
    if not _UUID.match(notification_id):
        raise NotFound("no such notification")
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = (
            await conn.execute(select(deliveries).where(deliveries.c.id == notification_id))
        ).first()
        if row is None:
            raise NotFound("no such notification")
        if row.acked_at is not None or row.closed_reason is not None:
            raise Conflict("the notification was already confirmed or closed")
        await conn.execute(
            update(deliveries)
            .where(deliveries.c.id == notification_id)
            .values(closed_reason=reason, closed_by=actor.label)
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.DELIVERY_CLOSE,
            decision=Decision.ALLOW,
            subject_id=row.subject_id,
            detail={"notification": notification_id},
        )
    return await get_notice(ctx, notification_id)


def _notice_query() -> Any:
    return (
        select(
            deliveries,
            recipients.c.name.label("recipient"),
            domain_events.c.type.label("event_type"),
            domain_events.c.occurred_at,
        )
        .join(recipients, recipients.c.id == deliveries.c.recipient_id)
        .join(domain_events, domain_events.c.seq == deliveries.c.event_seq)
    )


def _notice(r: Any) -> Notice:
    return Notice(
        id=r.id,
        recipient=r.recipient,
        event_type=r.event_type,
        subject_id=r.subject_id,
        occurred_at=as_utc(r.occurred_at),
        status=r.status,
        attempts=r.attempts,
        last_error=r.last_error,
        delivered_at=as_utc(r.delivered_at),
        ack_outcome=r.ack_outcome,
        acked_at=as_utc(r.acked_at),
        closed_reason=r.closed_reason,
    )


async def get_notice(ctx: VaultContext, notification_id: str) -> Notice:
    async with ctx.engine.connect() as conn:
        r = (await conn.execute(_notice_query().where(deliveries.c.id == notification_id))).first()
    if r is None:
        raise NotFound("no such notification")
    return _notice(r)


async def notices_for_subject(
    conn: AsyncConnection, subject_id: str, since: datetime | None = None
) -> list[Notice]:
    """Who was told about the subject (since a time), in event order; the caller audits."""
    stmt = _notice_query().where(deliveries.c.subject_id == subject_id)
    if since is not None:
        stmt = stmt.where(domain_events.c.occurred_at >= since)
    rows = (await conn.execute(stmt.order_by(deliveries.c.event_seq))).all()
    return [_notice(r) for r in rows]


async def notices_for_purpose(conn: AsyncConnection, subject_id: str, purpose: str) -> list[Notice]:
    """The subject's notices of events concerning `purpose` (the consent proof's view)."""
    rows = (
        await conn.execute(
            _notice_query()
            .add_columns(domain_events.c.purposes)
            .where(deliveries.c.subject_id == subject_id)
            .order_by(deliveries.c.event_seq)
        )
    ).all()
    return [_notice(r) for r in rows if purpose in json.loads(r.purposes)]


async def required_open(conn: AsyncConnection, subject_id: str, since: datetime) -> int:
    """Notices about the subject since `since` that no recipient confirmed and no DPO
    closed: while any is left, a request about the subject is not complete."""
    count = (
        await conn.execute(
            select(func.count())
            .select_from(deliveries)
            .join(domain_events, domain_events.c.seq == deliveries.c.event_seq)
            .where(deliveries.c.subject_id == subject_id)
            .where(domain_events.c.occurred_at >= since)
            .where(deliveries.c.acked_at.is_(None))
            .where(deliveries.c.closed_reason.is_(None))
        )
    ).scalar_one()
    return int(count)


async def deliveries_of(
    ctx: VaultContext, actor: Actor, name: str, *, status: str | None = None, limit: int = 200
) -> tuple[dict[str, int], list[Notice]]:
    """A recipient's counts per state (pending, delivered, failed, acked) and its newest
    notices; audited as a DPO read."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = await recipient_row(conn, name)
        counts: dict[str, int] = {"pending": 0, "delivered": 0, "failed": 0, "acked": 0}
        for status_, n in (
            await conn.execute(
                select(deliveries.c.status, func.count())
                .where(deliveries.c.recipient_id == row.id)
                .group_by(deliveries.c.status)
            )
        ).all():
            counts[status_] = int(n)
        counts["acked"] = int(
            (
                await conn.execute(
                    select(func.count())
                    .select_from(deliveries)
                    .where(deliveries.c.recipient_id == row.id)
                    .where(deliveries.c.acked_at.is_not(None))
                )
            ).scalar_one()
        )
        stmt = _notice_query().where(deliveries.c.recipient_id == row.id)
        if status is not None:
            stmt = stmt.where(deliveries.c.status == status)
        rows = (await conn.execute(stmt.order_by(deliveries.c.event_seq.desc()).limit(limit))).all()
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.RECIPIENT_LIST,
            decision=Decision.ALLOW,
            detail={"recipient": name, "rows": len(rows)},
        )
    return counts, [_notice(r) for r in rows]


async def replay(ctx: VaultContext, actor: Actor, name: str, since: datetime) -> int:
    """Send the recipient's notices of events since `since` again (same ids, so receivers
    de-duplicate what they already had); returns how many were put back in the queue.

    A replay does not restart the 3-day give-up window: each notice keeps the deadline of
    its first attempt (`created_at` + `delivery.GIVE_UP`). Inside that window it is retried
    as before; past it, the replay is one more attempt, and a failure makes it `failed`
    again at once. So replays are bounded and repeated replays never keep a dead
    receiver's notices retrying for ever; the DPO sees the outcome of each."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = await recipient_row(conn, name, lock=True)
        seqs = select(domain_events.c.seq).where(domain_events.c.occurred_at >= since)
        result = await conn.execute(
            update(deliveries)
            .where(deliveries.c.recipient_id == row.id)
            .where(deliveries.c.event_seq.in_(seqs))
            .values(status="pending", next_attempt_at=now, last_error=None)
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.RECIPIENT_REPLAY,
            decision=Decision.ALLOW,
            detail={"recipient": name, "since": since.isoformat(), "count": result.rowcount},
        )
    return int(result.rowcount)


@dataclass(frozen=True, slots=True)
class RecipientState:
    name: str
    kind: str
    transport: str
    paused: bool
    counts: dict[str, int]


#: A delivered notice not confirmed within this time is overdue in the DPO's view.
ACK_DUE = timedelta(days=7)


async def console_overview(
    ctx: VaultContext, actor: Actor
) -> tuple[list[RecipientState], list[Notice], list[Notice]]:
    """For the DPO console: every recipient with its counts (pending, delivered, failed,
    acked), the failed notices, and the delivered ones overdue for confirmation; audited."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        states = []
        for r in (await conn.execute(select(recipients).order_by(recipients.c.name))).all():
            counts = {"pending": 0, "delivered": 0, "failed": 0, "acked": 0}
            for status_, n in (
                await conn.execute(
                    select(deliveries.c.status, func.count())
                    .where(deliveries.c.recipient_id == r.id)
                    .group_by(deliveries.c.status)
                )
            ).all():
                counts[status_] = int(n)
            counts["acked"] = int(
                (
                    await conn.execute(
                        select(func.count())
                        .select_from(deliveries)
                        .where(deliveries.c.recipient_id == r.id)
                        .where(deliveries.c.acked_at.is_not(None))
                    )
                ).scalar_one()
            )
            states.append(
                RecipientState(r.name, r.kind, r.transport, r.paused_at is not None, counts)
            )
        failed = [
            _notice(n)
            for n in (
                await conn.execute(
                    _notice_query()
                    .where(deliveries.c.status == "failed")
                    .where(deliveries.c.closed_reason.is_(None))
                    .order_by(deliveries.c.event_seq.desc())
                    .limit(200)
                )
            ).all()
        ]
        overdue = [
            _notice(n)
            for n in (
                await conn.execute(
                    _notice_query()
                    .where(deliveries.c.status == "delivered")
                    .where(deliveries.c.acked_at.is_(None))
                    .where(deliveries.c.closed_reason.is_(None))
                    .where(deliveries.c.delivered_at < now - ACK_DUE)
                    .order_by(deliveries.c.event_seq)
                    .limit(200)
                )
            ).all()
        ]
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.RECIPIENT_LIST,
            decision=Decision.ALLOW,
            detail={"recipients": len(states), "failed": len(failed), "overdue": len(overdue)},
        )
    return states, failed, overdue
