"""`tresor audit archive`: closed months of the audit trail as signed segments elsewhere.

One segment per month, written in chain order: each starts from the MAC the previous one
ended at. A month is the contiguous run of sequence numbers after the last archived one
up to the last event stamped in that month, so segments join without gap or overlap even
when a slow transaction stamped an event a moment before its predecessor.

Crash safety, in this order per month: (1) the checkpoint at the segment's end is committed
in the database (signed now if none sits there yet); (2) the segment is built in a spool
file, every MAC checked on the way (a broken chain is never archived), and uploaded whole
under its final name; (3) only then is the month recorded in `audit_archives`. A crash
before (3) leaves the month unrecorded: the next run builds the same bytes (gzip without a
time stamp, the same checkpoint) and uploads them again, so nothing is archived twice, and
nothing may be pruned that was not recorded. The signed manifest is rewritten from the
table at the end of every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError

from vault.audit.archive_format import (
    MANIFEST_NAME,
    SegmentEntry,
    header_line,
    manifest_bytes,
    segment_name,
    sha256_file,
    trailer_line,
)
from vault.audit.archive_lock import archive_lock
from vault.audit.archive_months import month_of, month_start, next_month, parse_month
from vault.audit.archive_segment import ArchiveBroken, ChainWriter
from vault.audit.archive_store import ArchiveStore
from vault.audit.chain import _try_lock
from vault.audit.chain_links import (
    EVENT_COLUMNS,
    GENESIS,
    _chain_key,
    events_with_seals_between,
)
from vault.audit.checkpoints import Checkpoint, _sign_checkpoint, _signing_key
from vault.audit.events import Actor, AuditAction, Decision, record
from vault.pacing import BusyShare
from vault.progress import NO_PROGRESS, Progress
from vault.storage.audit_tables import audit_archives, audit_checkpoints, audit_events, audit_seals
from vault.storage.dialect import other_sessions_working, plan_for_transaction

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Events read per keyset page while a segment is written.
PAGE = 5000
#: gzip level of a segment: 6 (gzip's own default) costs a third of 9's CPU per event for
#: about 1 % more bytes. Fixed, so a resumed run writes the same bytes again.
LEVEL = 6
_N = len(EVENT_COLUMNS)


@dataclass
class ArchiveReport:
    months: list[str] = field(default_factory=list)
    events: int = 0
    #: Months skipped because the sealer has not reached their end yet.
    waiting: str | None = None
    #: Seconds the run paused to give way to other sessions (lookups).
    paused: float = 0.0


_ARCHIVES = select(audit_archives).order_by(audit_archives.c.last_seq)
_LAST_ARCHIVE = select(audit_archives).order_by(audit_archives.c.last_seq.desc()).limit(1)
_NEXT_EVENT = (
    select(audit_events.c.seq, audit_events.c.at)
    .where(audit_events.c.seq > bindparam("after"))
    .order_by(audit_events.c.seq)
    .limit(1)
)
_MONTH_END = select(func.max(audit_events.c.seq)).where(
    audit_events.c.seq > bindparam("after"), audit_events.c.at < bindparam("until")
)
_SEALS_IN = select(
    func.count().label("n"),
    func.min(audit_seals.c.chain_pos).label("first_pos"),
    func.max(audit_seals.c.chain_pos).label("last_pos"),
).where(audit_seals.c.seq > bindparam("after"), audit_seals.c.seq <= bindparam("last"))
_UNSEALED_IN = (
    select(func.min(audit_events.c.seq))
    .select_from(events_with_seals_between(bindparam("after"), bindparam("last")))
    .where(audit_seals.c.seq.is_(None))
    .where(audit_events.c.seq > bindparam("after"), audit_events.c.seq <= bindparam("last"))
)
_PAGE = (
    select(
        *(audit_events.c[name] for name in EVENT_COLUMNS),
        audit_seals.c.chain_pos,
        audit_seals.c.chain_mac,
    )
    .select_from(audit_events.join(audit_seals, audit_seals.c.seq == audit_events.c.seq))
    .where(audit_events.c.seq > bindparam("after"), audit_events.c.seq <= bindparam("last"))
    # The same bounds on the seals: without them PostgreSQL merge-joins each page against
    # every seal from the first, so a page cost O(its position) and a month O(n^2).
    .where(audit_seals.c.seq > bindparam("after"), audit_seals.c.seq <= bindparam("last"))
    .order_by(audit_events.c.seq)
    .limit(bindparam("page"))
)
_CHECKPOINT_AT = select(audit_checkpoints).where(audit_checkpoints.c.chain_pos == bindparam("pos"))
_TO_ARCHIVE = select(func.count()).where(
    audit_events.c.seq > bindparam("after"), audit_events.c.at < bindparam("until")
)


#: The archive's reads on PostgreSQL: no parallel workers (a background job must not take
#: every core from the lookups for its one-off counts and checks) and no JIT compilation.
_BACKGROUND_READ = {"max_parallel_workers_per_gather": "0", "jit": "off"}


async def rows_of(ctx: VaultContext, statement: Any, params: dict[str, Any]) -> list[Any]:
    """Rows by attribute and position, in a short read of their own."""
    async with ctx.engine.connect() as conn:
        await plan_for_transaction(conn, **_BACKGROUND_READ)
        return list((await conn.execute(statement, params)).all())


def entry_of(row: Any) -> SegmentEntry:
    return SegmentEntry(
        row.month,
        segment_name(row.month),
        row.first_seq,
        row.last_seq,
        row.first_pos,
        row.last_pos,
        row.events,
        row.prev_mac,
        row.last_mac,
        row.sha256,
    )


async def archived(ctx: VaultContext) -> list[Any]:
    """Every `audit_archives` row, in chain order."""
    return await rows_of(ctx, _ARCHIVES, {})


@dataclass(frozen=True, slots=True)
class _Cut:
    month: str
    after: int  # last archived seq before this segment
    last: int  # the segment's last seq
    prev_pos: int
    prev_mac: str


async def _next_cut(ctx: VaultContext, until: datetime) -> _Cut | None:
    """The next month to archive (its events before `until`), None when none is left."""
    last = await rows_of(ctx, _LAST_ARCHIVE, {})
    after, prev_pos, prev_mac, prev_month = 0, 0, GENESIS, None
    if last:
        row = last[0]
        after, prev_pos, prev_mac, prev_month = row.last_seq, row.last_pos, row.last_mac, row.month
    first = await rows_of(ctx, _NEXT_EVENT, {"after": after})
    if not first:
        return None
    month = month_of(first[0].at)
    if prev_month is not None and month <= prev_month:
        # Stamped earlier than an event already archived (clock skew between nodes): it
        # follows that event in the chain, so it belongs to the next segment.
        month = next_month(prev_month)
    if month_start(month) >= until:
        return None
    end = await rows_of(ctx, _MONTH_END, {"after": after, "until": month_start(next_month(month))})
    last_seq = end[0][0] if end and end[0][0] is not None else first[0].seq
    return _Cut(month, after, int(last_seq), prev_pos, prev_mac)


async def _segment_checkpoint(ctx: VaultContext, pos: int, seq: int, head: str) -> Checkpoint:
    """The signed checkpoint at exactly the segment's last position, signed now (under the
    sealer's lock, so its insert cannot race the sealer's) when there is none yet."""
    for _ in range(50):
        async with ctx.transaction() as conn:
            row = (await conn.execute(_CHECKPOINT_AT, {"pos": pos})).first()
            if row is not None:
                if (row.seq, row.head) != (seq, head):
                    raise ArchiveBroken(f"checkpoint at position {pos} disagrees with the chain")
                return Checkpoint(
                    row.chain_pos, row.seq, row.head, row.at, row.key_id, row.signature
                )
            if await _try_lock(conn):
                return await _sign_checkpoint(ctx, conn, pos, seq, head, ctx.clock.now())
        await asyncio.sleep(0.1)  # the sealer holds its lock for one batch
    raise ArchiveBroken("the audit sealer kept its lock; try again")


async def _others_working(ctx: VaultContext) -> bool:
    async with ctx.engine.connect() as conn:
        return await other_sessions_working(conn) > 0


async def _write_segment(
    ctx: VaultContext, cut: _Cut, spool: Path, page: int, progress: Progress, pacing: BusyShare
) -> SegmentEntry | None:
    """Build the month's segment in `spool`, checking every MAC; None while the sealer has
    not sealed the whole month yet."""
    params = {"after": cut.after, "last": cut.last}
    unsealed = (await rows_of(ctx, _UNSEALED_IN, params))[0][0]
    if unsealed is not None:
        return None
    seals = (await rows_of(ctx, _SEALS_IN, params))[0]
    count = int(seals.n)
    if count == 0 or seals.first_pos != cut.prev_pos + 1:
        raise ArchiveBroken(
            f"chain position {cut.prev_pos + 1} is missing (event deleted after seq {cut.after})"
        )
    chain = ChainWriter(_chain_key(ctx), cut.prev_mac, cut.prev_pos + 1, cut.after)
    with spool.open("wb") as raw, gzip.GzipFile("", "wb", LEVEL, raw, mtime=0) as out:
        out.write(
            header_line(
                cut.month,
                cut.after + 1,
                cut.last,
                cut.prev_pos + 1,
                int(seals.last_pos),
                count,
                cut.prev_mac,
            )
        )

        def fetch(after: int) -> asyncio.Task[list[Any]]:
            page_params = {"after": after, "last": cut.last, "page": page}
            return asyncio.create_task(rows_of(ctx, _PAGE, page_params))

        # The next page is read (PostgreSQL working in its own process) while this one is
        # checked and compressed in a thread: reading and writing overlap. While other
        # sessions are at work (sampled between two reads, when this run's own reads are
        # idle) each page is followed by a pause, so the lookups keep their latency.
        pending = fetch(cut.after)
        started = time.perf_counter()
        try:
            while rows := await pending:
                seen = pacing.enabled and await _others_working(ctx)
                pending = fetch(rows[-1][0])
                await asyncio.to_thread(chain.write, rows, out)
                progress.advance(len(rows))
                pause = pacing.pause_for(time.perf_counter() - started, seen)
                if pause:
                    await asyncio.sleep(pause)
                started = time.perf_counter()
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
        if chain.written != count:
            raise ArchiveBroken(f"the month has {count} seals but {chain.written} sealed events")
        end = chain.expected - 1
        checkpoint = await _segment_checkpoint(ctx, end, chain.last_seq, chain.previous)
        out.write(trailer_line(chain.written, chain.previous, checkpoint))
    return SegmentEntry(
        cut.month,
        segment_name(cut.month),
        cut.after + 1,
        chain.last_seq,
        cut.prev_pos + 1,
        chain.expected - 1,
        chain.written,
        cut.prev_mac,
        chain.previous,
        await asyncio.to_thread(sha256_file, spool),
    )


async def _record(ctx: VaultContext, entry: SegmentEntry, url: str, actor: Actor) -> bool:
    """Record an uploaded month, audited in the same transaction; False when it was
    recorded already (another run)."""
    try:
        async with ctx.transaction() as conn:
            await record(
                conn,
                at=ctx.clock.now(),
                actor=actor,
                action=AuditAction.AUDIT_ARCHIVE,
                decision=Decision.ALLOW,
                detail={
                    "month": entry.month,
                    "first_seq": entry.first_seq,
                    "last_seq": entry.last_seq,
                    "events": entry.events,
                    "sha256": entry.sha256,
                },
            )
            await conn.execute(
                insert(audit_archives).values(
                    month=entry.month,
                    first_seq=entry.first_seq,
                    last_seq=entry.last_seq,
                    first_pos=entry.first_pos,
                    last_pos=entry.last_pos,
                    events=entry.events,
                    prev_mac=entry.prev_mac,
                    last_mac=entry.last_mac,
                    url=url,
                    sha256=entry.sha256,
                    archived_at=ctx.clock.now(),
                )
            )
    except IntegrityError:
        return False
    return True


async def write_manifest(ctx: VaultContext, store: ArchiveStore, spool_dir: Path) -> None:
    """The signed list of every recorded segment, replacing the previous manifest."""
    entries = [entry_of(row) for row in await archived(ctx)]
    data = manifest_bytes(entries, _signing_key(ctx), ctx.clock.now())
    spool = spool_dir / MANIFEST_NAME
    spool.write_bytes(data)
    await asyncio.to_thread(store.put, MANIFEST_NAME, spool)


def spool_dir(ctx: VaultContext) -> Path:
    return ctx.settings.data_dir / "archive-spool"


async def archive_before(
    ctx: VaultContext,
    before: str,
    store: ArchiveStore,
    *,
    actor: Actor,
    page: int = PAGE,
    progress: Progress = NO_PROGRESS,
    wait: float = 0.0,
    pace: bool = True,
) -> ArchiveReport:
    """Archive every closed month before `before` (`YYYY-MM`) that is not archived yet,
    holding the archive/prune lock (`ArchiveBusy` when another run keeps it past `wait`
    seconds). With `pace`, the run gives way while other sessions work (`BusyShare`)."""
    now_month = month_of(ctx.clock.now())
    until = min(month_start(parse_month(before)), month_start(now_month))
    await asyncio.to_thread(store.check)
    async with archive_lock(ctx, wait=wait):
        return await _archive_locked(
            ctx,
            until,
            store,
            actor,
            page,
            progress,
            BusyShare(pace),
        )


async def _archive_locked(
    ctx: VaultContext,
    until: datetime,
    store: ArchiveStore,
    actor: Actor,
    page: int,
    progress: Progress,
    pacing: BusyShare,
) -> ArchiveReport:
    report = ArchiveReport()
    last = await rows_of(ctx, _LAST_ARCHIVE, {})
    total = (
        await rows_of(ctx, _TO_ARCHIVE, {"after": last[0].last_seq if last else 0, "until": until})
    )[0][0]
    progress.begin("archive audit months", int(total))
    root = spool_dir(ctx)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(root)  # what a killed run left behind
    root.mkdir(parents=True, mode=0o700)
    try:
        with tempfile.TemporaryDirectory(dir=root) as scratch:
            while (cut := await _next_cut(ctx, until)) is not None:
                spool = Path(scratch) / segment_name(cut.month)
                entry = await _write_segment(ctx, cut, spool, page, progress, pacing)
                if entry is None:
                    report.waiting = cut.month
                    break
                await asyncio.to_thread(store.put, entry.name, spool)
                if await _record(ctx, entry, store.url_of(entry.name), actor):
                    report.months.append(entry.month)
                    report.events += entry.events
                spool.unlink()
            await write_manifest(ctx, store, Path(scratch))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report.paused = round(pacing.paused, 3)
    return report
