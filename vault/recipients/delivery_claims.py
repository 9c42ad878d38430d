"""Claiming due notices: which deliveries a node sends next, with what the send needs.

A claim takes up to `batch` due, pending deliveries of recipients not paused, none held
back by an earlier pending delivery for the same recipient and subject, oldest due first;
it moves their `next_attempt_at` past the lease and counts the attempt, in one short
transaction, and returns each with its event and recipient.

On PostgreSQL that is one statement (an UPDATE of the rows a `FOR UPDATE SKIP LOCKED`
subquery picked, joined with their events and recipients), planned so that it walks
`ix_deliveries_status_next_attempt_at` and stops after `batch` claimable rows. Without the
planner settings below, statistics that do not yet know a burst of thousands of new
pending rows made PostgreSQL read and probe every due row and sort them, per claim: n
squared over `batch` probes for a burst of n (0.9-1.4 s per claim of 2,000 out of 40,000
due, against 0.04-0.06 s for the walk). The settings are `SET LOCAL`, gone at commit; the
statement is planned afresh each time, because a generic plan cached for the prepared
statement while the table was small once read the whole table per row. On SQLite (one
writer) the same steps are four plain statements.

Signing keys: each claim reads the valid secrets of the batch's webhook recipients in one
query; a secret's unwrapped key is kept between claims while the query still lists it
(the same id and KEK version), so a rotation or a shredding is seen at the next claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from vault.recipients.registry import secret_key_id
from vault.storage.dialect import key_in, plan_for_transaction, takes_array_parameters
from vault.storage.recipient_tables import (
    deliveries,
    domain_events,
    recipient_secrets,
    recipients,
)

if TYPE_CHECKING:
    from vault.context import VaultContext


@dataclass(frozen=True, slots=True)
class Claimed:
    """One claimed delivery (its attempt already counted) with its event and recipient."""

    id: str
    attempts: int
    created_at: datetime
    recipient_id: str
    recipient: str
    transport: str
    target: str
    event_seq: int
    event_id: str
    type: str
    subject_id: str
    purposes: str
    fields: str | None
    occurred_at: datetime


_PG_CLAIM = """
WITH claimed AS (
    UPDATE deliveries AS d
    SET next_attempt_at = $2, attempts = d.attempts + 1
    FROM (
        SELECT c.id FROM deliveries AS c
        WHERE c.status = 'pending' AND c.next_attempt_at <= $1
        AND NOT EXISTS (
            SELECT 1 FROM recipients AS p
            WHERE p.id = c.recipient_id AND p.paused_at IS NOT NULL
        )
        AND NOT EXISTS (
            SELECT 1 FROM deliveries AS e
            WHERE e.recipient_id = c.recipient_id AND e.subject_id = c.subject_id
            AND e.event_seq < c.event_seq AND e.status = 'pending'
        )
        ORDER BY c.next_attempt_at
        LIMIT $3
        FOR UPDATE OF c SKIP LOCKED
    ) AS due
    WHERE d.id = due.id
    RETURNING d.id, d.attempts, d.created_at, d.recipient_id, d.event_seq
)
SELECT claimed.id, claimed.attempts, claimed.created_at, claimed.recipient_id,
    r.name, r.transport, r.target, claimed.event_seq, e.id, e.type, e.subject_id,
    e.purposes, e.fields, e.occurred_at
FROM claimed
JOIN domain_events AS e ON e.seq = claimed.event_seq
JOIN recipients AS r ON r.id = claimed.recipient_id
"""


async def claim_due(
    conn: AsyncConnection, now: datetime, lease_until: datetime, batch: int
) -> list[Claimed]:
    """Claim up to `batch` due deliveries inside the caller's transaction (see the module
    docstring); their attempts are counted and their lease runs to `lease_until`."""
    if takes_array_parameters(conn):
        # Index walk, nested loops on primary keys, planned afresh (module docstring).
        await plan_for_transaction(
            conn,
            enable_sort="off",
            enable_bitmapscan="off",
            enable_hashjoin="off",
            enable_mergejoin="off",
            plan_cache_mode="force_custom_plan",
        )
        result = await conn.exec_driver_sql(_PG_CLAIM, (now, lease_until, batch))
        return [Claimed(*tuple(row)) for row in result.all()]
    return await _claim_sqlite(conn, now, lease_until, batch)


async def _claim_sqlite(
    conn: AsyncConnection, now: datetime, lease_until: datetime, batch: int
) -> list[Claimed]:
    d = deliveries
    earlier = aliased(deliveries)
    blocked = (
        select(earlier.c.id)
        .where(earlier.c.recipient_id == d.c.recipient_id)
        .where(earlier.c.subject_id == d.c.subject_id)
        .where(earlier.c.event_seq < d.c.event_seq)
        .where(earlier.c.status == "pending")
        .exists()
    )
    stmt = (
        select(d.c.id, d.c.attempts, d.c.created_at, d.c.event_seq, d.c.recipient_id)
        .join(recipients, recipients.c.id == d.c.recipient_id)
        .where(d.c.status == "pending")
        .where(d.c.next_attempt_at <= now)
        .where(recipients.c.paused_at.is_(None))
        .where(~blocked)
        .order_by(d.c.next_attempt_at)
        .limit(batch)
    )
    rows = (await conn.execute(stmt)).all()
    if not rows:
        return []
    await conn.execute(
        update(d)
        .where(key_in(d.c.id, "ids", array=False))
        .values(next_attempt_at=lease_until, attempts=d.c.attempts + 1),
        {"ids": [r.id for r in rows]},
    )
    events = {
        e.seq: e
        for e in (
            await conn.execute(
                select(domain_events).where(domain_events.c.seq.in_({r.event_seq for r in rows}))
            )
        ).all()
    }
    targets = {
        t.id: t
        for t in (
            await conn.execute(
                select(recipients).where(recipients.c.id.in_({r.recipient_id for r in rows}))
            )
        ).all()
    }
    out = []
    for r in rows:
        e, t = events[r.event_seq], targets[r.recipient_id]
        out.append(
            Claimed(
                r.id,
                r.attempts + 1,
                r.created_at,
                r.recipient_id,
                t.name,
                t.transport,
                t.target,
                e.seq,
                e.id,
                e.type,
                e.subject_id,
                e.purposes,
                e.fields,
                e.occurred_at,
            )
        )
    return out


class SigningKeys:
    """The valid HMAC keys of webhook recipients, newest first (two during a rotation's
    overlap), read per claim in one query; unwrapping is kept for a secret the query still
    lists, and a recipient's entry is replaced by what each query returns."""

    def __init__(self, ctx: VaultContext) -> None:
        self._ctx = ctx
        #: recipient id -> {(secret id, KEK version): key}
        self._known: dict[str, dict[tuple[str, int], bytes]] = {}

    async def read(
        self, conn: AsyncConnection, recipient_ids: set[str], now: datetime
    ) -> dict[str, list[bytes]]:
        if not recipient_ids:
            return {}
        s = recipient_secrets
        rows = (
            await conn.execute(
                select(s.c.id, s.c.recipient_id, s.c.kek_version, s.c.wrapped_key)
                .where(s.c.recipient_id.in_(sorted(recipient_ids)))
                .where(or_(s.c.valid_until.is_(None), s.c.valid_until > now))
                .where(s.c.wrapped_key.is_not(None))
                .order_by(s.c.recipient_id, s.c.created_at.desc())
            )
        ).all()
        fresh: dict[str, dict[tuple[str, int], bytes]] = {rid: {} for rid in recipient_ids}
        out: dict[str, list[bytes]] = {rid: [] for rid in recipient_ids}
        for r in rows:
            version = (r.id, r.kek_version)
            key = self._known.get(r.recipient_id, {}).get(version)
            if key is None:
                key = self._ctx.kek.unwrap(secret_key_id(r.id), r.kek_version, bytes(r.wrapped_key))
            fresh[r.recipient_id][version] = key
            out[r.recipient_id].append(key)
        self._known.update(fresh)
        return out
