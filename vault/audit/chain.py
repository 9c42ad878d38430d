"""The sealer of the audit trail: an HMAC chain sealed in batches, signed checkpoints.

Requests only append events; they never wait for the chain. A single sealer (on PostgreSQL
guarded by an advisory lock, so any number of `tresor serve` processes may run it) takes the
unsealed events in sequence order and gives each a chain position and its MAC
(`vault.audit.chain_links`). Every so often it signs the chain head
(`vault.audit.checkpoints`) and, after the commit, appends the checkpoint to the file
outside the database (`vault.audit.checkpoint_file`). Where the head is read:
`vault.audit.chain_head`.

Sequence numbers are allocated before commit, so an event with a lower number can become
visible after a higher one (a slower transaction), and a rolled-back transaction leaves a
hole for ever. The sealer therefore seals in sequence order up to the first hole and waits
for it; a hole older than `grace` is taken to be a rollback and skipped. The chain thus
visits events in strictly increasing sequence order, which `verify` checks: a row slipped in
behind the sealed part later is reported as inserted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.chain_head import head_seq, read_head
from vault.audit.chain_links import (
    _AT,
    EVENT_COLUMNS,
    GENESIS,
    _canonical_values,
    _chain_key,
    _mac,
)
from vault.audit.checkpoint_file import anchor_checkpoint
from vault.audit.checkpoints import (
    Checkpoint,
    _last_checkpoint,
    _newest_checkpoint,
    _sign_checkpoint,
)
from vault.clock import as_utc
from vault.storage.audit_tables import audit_events, audit_seals
from vault.storage.dialect import asyncpg_connection, try_advisory_xact_lock
from vault.storage.pg_direct import Compiled

if TYPE_CHECKING:
    from vault.context import VaultContext

#: How long a hole in the sequence may stay open before it counts as a rolled-back event.
DEFAULT_GRACE = timedelta(seconds=10)
#: Any fixed 64-bit number; names the lock that makes one sealer run at a time on PostgreSQL.
SEALER_LOCK_ID = 0x7472_6573_6F72_0001


@dataclass(frozen=True, slots=True)
class SealReport:
    sealed: int
    head_position: int
    checkpoint: int | None
    waiting_for_gap: bool
    #: Whether the checkpoint also went into the checkpoint file.
    anchored: bool = False


#: How many events follow the chain head at `after` (all of them unsealed, by construction).
_BACKLOG = select(func.count().label("backlog")).where(audit_events.c.seq > bindparam("after"))
#: The unsealed events after the chain head, in sequence order, along the primary key.
_UNSEALED = (
    select(*(audit_events.c[name] for name in EVENT_COLUMNS))
    .where(audit_events.c.seq > bindparam("last_seq"))
    .order_by(audit_events.c.seq)
    .limit(bindparam("batch"))
)
_UNSEALED_PG = Compiled(_UNSEALED)
_SEAL_COLUMNS = ["seq", "chain_pos", "chain_mac"]


async def _try_lock(conn: AsyncConnection) -> bool:
    """One sealer at a time (SQLite's write transactions are serialised already)."""
    return await try_advisory_xact_lock(conn, SEALER_LOCK_ID)


async def seal_pending(
    ctx: VaultContext,
    *,
    batch: int = 5000,
    grace: timedelta = DEFAULT_GRACE,
    checkpoint_every: int = 1000,
    checkpoint_interval: timedelta | None = None,
) -> SealReport:
    """Seal up to `batch` events in one transaction; returns what was done.

    Writes a signed checkpoint when `checkpoint_every` events or `checkpoint_interval`
    (default `TRESOR_AUDIT_CHECKPOINT_SECONDS`) have passed since the last one (and
    something new was sealed), and after the commit appends it to the checkpoint file.
    """
    if checkpoint_interval is None:
        checkpoint_interval = timedelta(seconds=ctx.settings.checkpoint_seconds)
    now = ctx.clock.now()
    key = _chain_key(ctx)
    async with ctx.transaction() as conn:
        if not await _try_lock(conn):
            return SealReport(0, -1, None, False)
        # The newest checkpoint first: its `seq` bounds the head read to the newest blocks.
        last = await _last_checkpoint(conn)
        head = await read_head(conn, last.seq if last is not None else None)
        position, previous, last_seq = head if head is not None else (0, GENESIS, 0)
        params = {"last_seq": last_seq, "batch": batch}
        # The hot loop of sealing runs on the driver connection (PostgreSQL), inside this
        # same transaction: SQLAlchemy's per-row result and per-parameter-set processing
        # cost more than the MACs (see vault/storage/pg_direct.py).
        driver = await asyncpg_connection(conn)
        if driver is not None:
            # Records of EVENT_COLUMNS (seq first): the MAC input by position, no name lookups.
            rows: Any = await driver.fetch(_UNSEALED_PG.sql, *_UNSEALED_PG.args(params))
        else:
            rows = (await conn.execute(_UNSEALED, params)).all()
        seqs: list[int] = []
        positions: list[int] = []
        macs: list[str] = []
        waiting = False
        expected = last_seq + 1
        for n, row in enumerate(rows, 1):
            if n % 500 == 0:
                # Inline sealing (SQLite) shares the event loop with requests: let them run.
                await asyncio.sleep(0)
            seq = row[0]
            if seq != expected and as_utc(row[_AT]) > now - grace:
                waiting = True  # a lower sequence number may still commit
                break
            position += 1
            previous = _mac(key, previous, position, _canonical_values(list(row)))
            seqs.append(seq)
            positions.append(position)
            macs.append(previous)
            expected = seq + 1
        if seqs and driver is not None:
            # One binary COPY of narrow rows for the whole batch, in this transaction.
            await driver.copy_records_to_table(
                "audit_seals",
                records=zip(seqs, positions, macs, strict=True),
                columns=_SEAL_COLUMNS,
            )
        elif seqs:
            await conn.execute(
                insert(audit_seals),
                [
                    {"seq": q, "chain_pos": p, "chain_mac": m}
                    for q, p, m in zip(seqs, positions, macs, strict=True)
                ],
            )
        signed = None
        if seqs:
            signed = await _maybe_checkpoint(
                ctx,
                conn,
                last,
                position,
                seqs[-1],
                previous,
                now,
                every=checkpoint_every,
                interval=checkpoint_interval,
            )
    anchored = False
    if signed is not None:  # committed: only now may it leave the database
        anchored = await anchor_checkpoint(ctx, signed)
    return SealReport(len(seqs), position, signed.chain_pos if signed else None, waiting, anchored)


async def _maybe_checkpoint(
    ctx: VaultContext,
    conn: AsyncConnection,
    last: Any,
    position: int,
    seq: int,
    head: str,
    now: datetime,
    *,
    every: int,
    interval: timedelta,
    force: bool = False,
) -> Checkpoint | None:
    """Sign and store a checkpoint of the head at `position` when one is due after `last`
    (`_last_checkpoint`, read in this transaction under the sealer's lock); the caller
    anchors it in the checkpoint file after its transaction committed."""
    if last is not None and last.chain_pos >= position:
        return None
    due = (
        force
        or last is None
        or position - last.chain_pos >= every
        or now - as_utc(last.at) >= interval
    )
    if not due:
        return None
    return await _sign_checkpoint(ctx, conn, position, seq, head, now)


async def checkpoint_head(ctx: VaultContext) -> bool:
    """Make a signed checkpoint cover the chain head, in the database (unless one does
    already) and in the checkpoint file; True when both cover it afterwards (False: another
    node's sealer holds the lock, or the file could not take it)."""
    async with ctx.transaction() as conn:
        if not await _try_lock(conn):
            return False
        last = await _newest_checkpoint(conn)
        head = await read_head(conn, last.seq if last is not None else None)
        if head is None:
            return True
        if last is not None and last.chain_pos >= head[0]:
            signed = last
        else:
            signed = await _sign_checkpoint(ctx, conn, head[0], head[2], head[1], ctx.clock.now())
    return await anchor_checkpoint(ctx, signed, force=True)


class Sealer:
    """The periodic sealer's rounds, with the checkpoint cadence of a quiet trail.

    `seal_pending` checkpoints (and anchors in the file) while events keep coming; when
    they stop, the last ones sealed would stay outside the file until the next event, free
    to be deleted unnoticed. So once a round has sealed events the file does not cover,
    the head is checkpointed and anchored `TRESOR_AUDIT_CHECKPOINT_SECONDS` later even if
    nothing more comes (and retried at that pace if the file refuses it). What this
    remembers is only a hint: `checkpoint_head` asks the database and the file.
    """

    def __init__(self, ctx: VaultContext) -> None:
        self.ctx = ctx
        self._due: datetime | None = None
        self._fresh = True

    async def round(self) -> SealReport:
        report = await seal_pending(self.ctx)
        now = self.ctx.clock.now()
        if self._fresh:  # a head left uncovered before a restart is due at once
            self._fresh, self._due = False, now
        interval = timedelta(seconds=self.ctx.settings.checkpoint_seconds)
        if report.anchored:
            self._due = None
        elif report.sealed and self._due is None:
            self._due = now + interval
        elif not report.sealed and self._due is not None and now >= self._due:
            self._due = None if await checkpoint_head(self.ctx) else now + interval
        return report


async def seal_all(
    ctx: VaultContext, *, grace: timedelta = DEFAULT_GRACE, max_wait_seconds: float = 0.0
) -> int:
    """Seal until nothing sealable is pending, then checkpoint the head (clean shutdown).

    With `max_wait_seconds`, waits (in real time) for a young hole in the sequence to fill or
    age past `grace`, so a shutdown right after a rollback still seals what came after it.
    """
    total = 0
    deadline = time.monotonic() + max_wait_seconds
    while True:
        report = await seal_pending(ctx, grace=grace)
        total += report.sealed
        if report.sealed:
            continue
        if report.waiting_for_gap and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            continue
        break
    await checkpoint_head(ctx)
    return total


async def unsealed_count(ctx: VaultContext) -> int:
    """Events appended after the chain head (the sealer's backlog), counted along the
    primary key after the head's `seq` was read (`chain_head.head_seq`), in reads that take
    no write lock; a round sealed in between makes it one batch too high for a moment. Rows
    slipped in *behind* the head are `vault.audit.verify`'s business."""
    rows = await ctx.read_rows(_BACKLOG, {"after": await head_seq(ctx)})
    return int(rows[0]["backlog"])
