"""Retention of the audit trail itself: `tresor audit prune` and the retention job.

Events of a month are deleted only when the month is BOTH archived (recorded in
`audit_archives`, which happens only after its segment was uploaded) and older than
`audit_retention_months` (policies/controller.toml). Months go oldest first, so the live
chain always starts right after the newest pruned segment.

A month is marked pruned (`pruned_at`) before its first row goes: from then on `verify`
starts after the segment's end (`live_start`), and rows a crashed prune left behind lie
before that start, ignored by `verify` and deleted by the next run. The deletion itself
is one function, `drop_month`. On PostgreSQL with monthly partitions (migration 0030) it
drops the month's partition (`DROP`, not `DELETE`) when every event in that partition lies
in the archived range, and in the same transaction the blocks of `audit_seals` (migration
0037) that held only seals up to the month's end, then trims the seals the month shares
with the next one's block (`partitions.drop_partition`); clocks that disagree across nodes
can put an event stamped in one month among the next month's sequence numbers, and such
boundary rows (or a partition that holds events outside the range) are deleted row by row
as on SQLite, in windows that skip the stretches where nothing is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, select, update

from vault.audit import partitions
from vault.audit.archive import rows_of
from vault.audit.archive_lock import archive_lock
from vault.audit.archive_months import add_months, month_of
from vault.audit.events import Actor, AuditAction, Decision, record
from vault.progress import NO_PROGRESS, Progress
from vault.storage.audit_tables import audit_archives, audit_events, audit_seals

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Sequence numbers per DELETE transaction: short transactions that never stall the
#: appends of requests, small enough for SQLite's single writer to interleave.
BATCH = 5000

_ARCHIVE = select(audit_archives).where(audit_archives.c.month == bindparam("month"))
_ANY_LEFT = (
    select(audit_events.c.seq)
    .where(audit_events.c.seq >= bindparam("lo"), audit_events.c.seq <= bindparam("hi"))
    .limit(1)
)

_SEAL_LEFT = (
    select(audit_seals.c.seq)
    .where(audit_seals.c.seq >= bindparam("lo"), audit_seals.c.seq <= bindparam("hi"))
    .limit(1)
)
#: The first event and the first seal left at or after `lo` up to `hi`.
_NEXT_LEFT = select(
    select(func.min(audit_events.c.seq))
    .where(audit_events.c.seq >= bindparam("lo"), audit_events.c.seq <= bindparam("hi"))
    .scalar_subquery()
    .label("event"),
    select(func.min(audit_seals.c.seq))
    .where(audit_seals.c.seq >= bindparam("lo"), audit_seals.c.seq <= bindparam("hi"))
    .scalar_subquery()
    .label("seal"),
)


@dataclass
class PruneReport:
    months: list[str] = field(default_factory=list)
    events: int = 0
    #: The first month that stays because it is inside retention (None: none archived).
    kept_from: str | None = None


async def drop_month(ctx: VaultContext, month: str, progress: Progress = NO_PROGRESS) -> int:
    """Delete the events (and their seals) of one archived month, by dropping its partition
    (PostgreSQL) and otherwise in batches of `BATCH` sequence numbers, each in its own
    transaction, from the next row left on (so a range emptied by dropped partitions costs
    one read, not one transaction per batch); the number of events deleted. Idempotent: a
    month half deleted by a crash is finished."""
    rows = await rows_of(ctx, _ARCHIVE, {"month": month})
    if not rows:
        raise ValueError(f"month {month} is not archived")  # never drop unarchived events
    lo, hi, events = int(rows[0].first_seq), int(rows[0].last_seq), int(rows[0].events)
    year, number = (int(part) for part in month.split("-"))
    dropped = await partitions.drop_partition(ctx, date(year, number, 1), within=(lo, hi))
    deleted = dropped.events if dropped is not None else 0
    progress.advance(deleted)
    if dropped is not None and dropped.events == events:
        return deleted  # the partition held the whole archived range: no row is left
    start: int | None = lo
    while start is not None and start <= hi:
        start = await _next_left(ctx, start, hi)
        if start is None:
            break
        end = min(hi, start + BATCH - 1)
        async with ctx.transaction() as conn:
            window = (audit_events.c.seq >= start) & (audit_events.c.seq <= end)
            gone = (await conn.execute(delete(audit_events).where(window))).rowcount
            await conn.execute(
                delete(audit_seals).where(audit_seals.c.seq >= start, audit_seals.c.seq <= end)
            )
        deleted += int(gone or 0)
        progress.advance(int(gone or 0))
        start = end + 1
    return deleted


async def _next_left(ctx: VaultContext, start: int, hi: int) -> int | None:
    """The lowest seq from `start` to `hi` that still has an event or a seal; None if none."""
    row = (await rows_of(ctx, _NEXT_LEFT, {"lo": start, "hi": hi}))[0]
    left = [int(found) for found in (row.event, row.seal) if found is not None]
    return min(left) if left else None


async def prune(
    ctx: VaultContext,
    retention_months: int,
    *,
    actor: Actor,
    progress: Progress = NO_PROGRESS,
    wait: float = 0.0,
) -> PruneReport:
    """Delete every archived month that is past `retention_months` (counted from the
    clock's month: with 36, in 2026-12 the months before 2023-12 go), holding the
    archive/prune lock (`ArchiveBusy` when another run keeps it past `wait` seconds)."""
    async with archive_lock(ctx, wait=wait):
        return await _prune_locked(ctx, retention_months, actor, progress)


async def _prune_locked(
    ctx: VaultContext, retention_months: int, actor: Actor, progress: Progress
) -> PruneReport:
    cutoff = add_months(month_of(ctx.clock.now()), -retention_months)
    rows = await rows_of(ctx, select(audit_archives).order_by(audit_archives.c.last_seq), {})
    due = [row for row in rows if row.month < cutoff]
    report = PruneReport(kept_from=next((r.month for r in rows if r.month >= cutoff), None))
    progress.begin("prune audit months", sum(int(r.events) for r in due if r.pruned_at is None))
    for row in due:
        if row.pruned_at is None:
            await _mark(ctx, row, actor)
        elif not await _left(ctx, row):
            continue
        report.events += await drop_month(ctx, row.month, progress)
        report.months.append(row.month)
    return report


async def _mark(ctx: VaultContext, row: Any, actor: Actor) -> None:
    """Mark the month pruned, audited in the same transaction (no event, no deletion)."""
    action = AuditAction.AUDIT_PRUNE if actor.type == "admin" else AuditAction.SYSTEM_AUDIT_PRUNE
    async with ctx.transaction() as conn:
        await record(
            conn,
            at=ctx.clock.now(),
            actor=actor,
            action=action,
            decision=Decision.ALLOW,
            detail={
                "month": row.month,
                "first_seq": row.first_seq,
                "last_seq": row.last_seq,
                "events": row.events,
            },
        )
        await conn.execute(
            update(audit_archives)
            .where(audit_archives.c.month == row.month, audit_archives.c.pruned_at.is_(None))
            .values(pruned_at=ctx.clock.now())
        )


async def _left(ctx: VaultContext, row: Any) -> bool:
    """Whether a crashed prune left events or seals of this month."""
    window = {"lo": row.first_seq, "hi": row.last_seq}
    return bool(await rows_of(ctx, _ANY_LEFT, window) or await rows_of(ctx, _SEAL_LEFT, window))


_PRUNED_END = (
    select(audit_archives.c.last_pos, audit_archives.c.last_mac, audit_archives.c.last_seq)
    .where(audit_archives.c.pruned_at.is_not(None))
    .order_by(audit_archives.c.last_seq.desc())
    .limit(1)
)


async def live_start(ctx: VaultContext) -> tuple[int, str, int] | None:
    """(chain_pos, mac, seq) the live chain continues from: the end of the newest pruned
    segment; None when nothing was pruned (the chain starts at genesis)."""
    rows = await rows_of(ctx, _PRUNED_END, {})
    if not rows:
        return None
    return int(rows[0].last_pos), str(rows[0].last_mac), int(rows[0].last_seq)
