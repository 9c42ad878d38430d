"""Who must be told: each new domain event becomes one delivery per recipient concerned.

A recipient is concerned when one of its subscriptions matches the event's type and one
of its purposes, and either the subscription's scope is `all` (an external recipient) or
the audit trail shows the recipient received the subject's data for such a purpose: an
allowed lookup by that client of that subject for that purpose within the purpose's
retention window (at least `notify_min_window_days`) before the event. A recipient that
never received the subject's data is not told about the subject (data minimisation).

Several nodes fan out at once without doubling: PostgreSQL claims events with
`FOR UPDATE SKIP LOCKED`; SQLite has one writer. The deliveries and the event's
`fanned_out_at` commit together.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.events import AuditAction, Decision
from vault.clock import as_utc
from vault.recipients.registry import ANY_PURPOSE
from vault.storage.audit_tables import audit_events
from vault.storage.dialect import skip_locked, takes_array_parameters
from vault.storage.recipient_tables import (
    deliveries,
    domain_events,
    recipient_subscriptions,
    recipients,
)

if TYPE_CHECKING:
    from vault.context import VaultContext

BATCH = 500


@dataclass(frozen=True, slots=True)
class _Recipient:
    id: str
    name: str
    kind: str
    client_name: str | None
    #: event type -> [(purpose or "*", scope)]
    subscriptions: dict[str, list[tuple[str, str]]]


async def _recipients(conn: AsyncConnection) -> list[_Recipient]:
    subs: dict[str, dict[str, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
    for s in (await conn.execute(select(recipient_subscriptions))).all():
        subs[s.recipient_id][s.event_type].append((s.purpose, s.scope))
    return [
        _Recipient(r.id, r.name, r.kind, r.client_name, dict(subs.get(r.id, {})))
        for r in (await conn.execute(select(recipients).order_by(recipients.c.id))).all()
    ]


def _window(ctx: VaultContext, purpose_id: str) -> timedelta:
    floor = timedelta(days=ctx.settings.notify_min_window_days)
    purpose = ctx.catalogue.get(purpose_id)
    return max(floor, purpose.retention_after_end) if purpose is not None else floor


async def _receipts(
    ctx: VaultContext, conn: AsyncConnection, events: list[Any]
) -> dict[int, set[tuple[str, str]]]:
    """Per event (by seq): the (client name, purpose) pairs that received the subject's
    data for a purpose of the event within that purpose's window. One query per batch."""
    wanted = {e.seq: json.loads(e.purposes) for e in events}
    purposes = sorted({p for ps in wanted.values() for p in ps})
    out: dict[int, set[tuple[str, str]]] = {e.seq: set() for e in events}
    if not purposes:
        return out
    earliest = min(as_utc(e.occurred_at) for e in events) - max(_window(ctx, p) for p in purposes)
    seen: dict[str, list[tuple[str, str, datetime]]] = defaultdict(list)
    subject_ids = sorted({e.subject_id for e in events})
    for i in range(0, len(subject_ids), 1000):
        rows = (
            await conn.execute(
                select(
                    audit_events.c.subject_id,
                    audit_events.c.actor_id,
                    audit_events.c.purpose,
                    audit_events.c.at,
                )
                .where(audit_events.c.subject_id.in_(subject_ids[i : i + 1000]))
                .where(audit_events.c.action == str(AuditAction.LOOKUP))
                .where(audit_events.c.decision == str(Decision.ALLOW))
                .where(audit_events.c.actor_type == "client")
                .where(audit_events.c.purpose.in_(purposes))
                .where(audit_events.c.at >= earliest)
            )
        ).all()
        for r in rows:
            seen[r.subject_id].append((r.actor_id, r.purpose, as_utc(r.at)))
    for e in events:
        occurred = as_utc(e.occurred_at)
        concerned_purposes = set(wanted[e.seq])
        out[e.seq] = {
            (actor, purpose)
            for actor, purpose, at in seen.get(e.subject_id, [])
            if purpose in concerned_purposes and at >= occurred - _window(ctx, purpose)
        }
    return out


def concerned(
    recipient: _Recipient, event_type: str, purposes: list[str], receipts: set[tuple[str, str]]
) -> bool:
    """Whether the recipient is told about this event (see the module docstring)."""
    for purpose, scope in recipient.subscriptions.get(event_type, []):
        matching = purposes if purpose == ANY_PURPOSE else [p for p in purposes if p == purpose]
        if not matching:
            continue
        if scope == "all" and recipient.kind == "external":
            return True
        if recipient.client_name is not None:
            # A plain loop: this runs once per event and recipient in a fan-out.
            for p in matching:
                if (recipient.client_name, p) in receipts:
                    return True
    return False


#: Told how many deliveries each recipient (by name) got from a fan-out, once committed.
QueuedHook = Callable[[Mapping[str, int]], None]


async def fan_out(
    ctx: VaultContext, *, batch: int = BATCH, on_queued: QueuedHook | None = None
) -> int:
    """Turn up to `batch` new events into deliveries; returns how many events it took.
    `on_queued` hears the deliveries per recipient name after the commit (metrics)."""
    queued: Counter[str] = Counter()
    async with ctx.transaction() as conn:
        stmt = (
            select(domain_events)
            .where(domain_events.c.fanned_out_at.is_(None))
            .order_by(domain_events.c.seq)
            .limit(batch)
        )
        stmt = skip_locked(conn, stmt)
        events = (await conn.execute(stmt)).all()
        await _fan_out_events(ctx, conn, events, queued)
    if on_queued is not None and queued:
        on_queued(queued)
    return len(events)


async def fan_out_subject(ctx: VaultContext, conn: AsyncConnection, subject_id: str) -> int:
    """Fan out the subject's new events inside the caller's transaction (a request that
    carried out a change learns at once whom it must wait for); returns the deliveries
    made. Events another node is fanning out right now are left to it."""
    stmt = (
        select(domain_events)
        .where(domain_events.c.subject_id == subject_id)
        .where(domain_events.c.fanned_out_at.is_(None))
        .order_by(domain_events.c.seq)
    )
    stmt = skip_locked(conn, stmt)
    return await _fan_out_events(ctx, conn, (await conn.execute(stmt)).all())


async def _fan_out_events(
    ctx: VaultContext, conn: AsyncConnection, events: Any, queued: Counter[str] | None = None
) -> int:
    if not events:
        return 0
    now = ctx.clock.now()
    everyone = await _recipients(conn)
    told: list[tuple[Any, str]] = []
    receipts = await _receipts(ctx, conn, list(events)) if everyone else {}
    for event in events:
        purposes = json.loads(event.purposes)
        for r in everyone:
            if event.type in r.subscriptions and concerned(
                r, event.type, purposes, receipts[event.seq]
            ):
                told.append((event, r.id))
                if queued is not None:
                    queued[r.name] += 1
    if told:
        ids = new_ids(len(told))
        if takes_array_parameters(conn):
            await conn.exec_driver_sql(
                _PG_INSERT,
                (
                    ids,
                    [e.seq for e, _ in told],
                    [rid for _, rid in told],
                    [e.subject_id for e, _ in told],
                    now,
                ),
            )
        else:
            rows = [_delivery(e, i, rid, now) for (e, rid), i in zip(told, ids, strict=True)]
            await conn.execute(insert(deliveries), rows)
    await conn.execute(
        update(domain_events)
        .where(domain_events.c.seq.in_([e.seq for e in events]))
        .values(fanned_out_at=now)
    )
    return len(told)


#: New pending deliveries on PostgreSQL, the batch's rows passed as arrays: one statement
#: executed once, where an executemany ran the INSERT's executor once per row (that
#: INSERT was most of PostgreSQL's time in bench/notify.py). The columns left out start
#: NULL, as in `_delivery`.
_PG_INSERT = (
    "INSERT INTO deliveries "
    "(id, event_seq, recipient_id, subject_id, status, attempts, created_at, next_attempt_at) "
    "SELECT v.id, v.event_seq, v.recipient_id, v.subject_id, 'pending', 0, $5, $5 "
    "FROM unnest($1::varchar[], $2::bigint[], $3::varchar[], $4::varchar[]) "
    "AS v(id, event_seq, recipient_id, subject_id)"
)


def _delivery(event: Any, delivery_id: str, recipient_id: str, now: datetime) -> dict[str, Any]:
    """A new pending delivery; the columns left out (outcome, acknowledgement, closing)
    start NULL."""
    return {
        "id": delivery_id,
        "event_seq": event.seq,
        "recipient_id": recipient_id,
        "subject_id": event.subject_id,
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
    }


def new_ids(n: int) -> list[str]:
    """`n` random (version 4) UUIDs as strings, the delivery ids: one read of the
    operating system's random source for all of them instead of one per id."""
    raw = os.urandom(16 * n)
    return [str(uuid.UUID(bytes=raw[i : i + 16], version=4)) for i in range(0, 16 * n, 16)]
