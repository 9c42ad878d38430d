"""Verification of the audit chain in parallel ranges, and incrementally since the last run.

Every MAC needs only the MAC stored before it (`mac = HMAC(previous mac | position |
event)`), so the chain splits into ranges of sequence numbers that are checked
independently: each range starts from the seal stored just before it, and the range
before checks that seal as its own last row, so together they check every link. Ranges run
in worker processes (one per core) reading keyset pages along the primary key, so memory
stays flat whatever the size of the trail; with one worker they run in this process.

`since_checkpoint` starts after the newest checkpoint a previous successful run recorded
(the `audit-verified.json` file beside the checkpoint file) instead of at position 1, once
the chain is shown to still contain that checkpoint, so a nightly verify costs one day's
events. What lies before it was verified then; a full run checks it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.chain import (
    _CANONICAL,
    EVENT_COLUMNS,
    EVENTS_WITH_SEALS,
    GENESIS,
    CheckpointFile,
    _canonical_values,
    _chain_key,
    _checkpoint_message,
    _mac,
    _signed,
    _signing_key,
    read_checkpoint_file,
)
from vault.audit.prune import live_start
from vault.crypto import Mac, VerifyKey, same_digest
from vault.progress import NO_PROGRESS, Progress
from vault.storage.audit_tables import audit_checkpoints, audit_events, audit_seals
from vault.storage.db import make_engine
from vault.storage.dialect import asyncpg_connection
from vault.storage.pg_direct import Compiled

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Rows per keyset page: large enough to amortise a round trip, small enough for flat memory.
PAGE = 20_000
#: Below this many sealed events a range each for several processes costs more than it saves.
PARALLEL_THRESHOLD = 200_000
_N = len(EVENT_COLUMNS)
_ENCODE = _CANONICAL.encode


@dataclass
class VerifyReport:
    verified: int = 0
    unsealed: int = 0
    checkpoints: int = 0
    last_checkpoint_position: int | None = None
    broken_seq: int | None = None
    problem: str | None = None
    problems: list[str] = field(default_factory=list)
    #: What the checkpoint file outside the database held (None: not read).
    checkpoint_file: CheckpointFile | None = None
    #: Position the run started after (0: the whole chain; else a recorded checkpoint).
    started_after: int = 0

    @property
    def ok(self) -> bool:
        return self.broken_seq is None and self.problem is None


#: (seq, chain_pos, head) of a checkpoint, by position.
Anchors = dict[int, tuple[int, str]]


@dataclass(frozen=True, slots=True)
class _Range:
    """Events with `lo < seq <= hi`, checked from the seal stored at `lo` or before."""

    url: str
    key: Mac
    lo: int
    hi: int
    outside: tuple[int, int, str] | None
    page: int
    #: (chain_pos, mac, seq) to start from instead of the seal stored at `lo` or before:
    #: where the live chain begins after pruned months (`vault.audit.prune.live_start`).
    start: tuple[int, str, int] | None = None


@dataclass(frozen=True, slots=True)
class _RangeResult:
    lo: int
    verified: int
    #: (position, seq) of the range's last sealed event, None for an empty range.
    end: tuple[int, int] | None
    #: (seq, problem) of the first break in the range.
    broken: tuple[int, str] | None
    #: (position, seq, head) of the range's last checkpoint, checked against the chain.
    last_checkpoint: tuple[int, int, str] | None


_BEFORE = (
    select(audit_seals.c.chain_pos, audit_seals.c.chain_mac, audit_seals.c.seq)
    .where(audit_seals.c.seq <= bindparam("lo"))
    .order_by(audit_seals.c.seq.desc())
    .limit(1)
)
_PAGE = (
    select(
        *(audit_events.c[name] for name in EVENT_COLUMNS),
        audit_seals.c.chain_pos,
        audit_seals.c.chain_mac,
    )
    .select_from(audit_events.join(audit_seals, audit_seals.c.seq == audit_events.c.seq))
    .where(audit_events.c.seq > bindparam("after"))
    .where(audit_events.c.seq <= bindparam("hi"))
    # The same bounds on the seals: without them PostgreSQL merge-joins the page against
    # every seal from the first, so each page cost O(its position) and a run O(n^2).
    .where(audit_seals.c.seq > bindparam("after"))
    .where(audit_seals.c.seq <= bindparam("hi"))
    .order_by(audit_events.c.seq)
    .limit(bindparam("page"))
)
_PAGE_PG = Compiled(_PAGE)
#: The checkpoints at the chain positions of one page (along the unique index on chain_pos).
_CHECKPOINTS_AT = select(
    audit_checkpoints.c.chain_pos, audit_checkpoints.c.seq, audit_checkpoints.c.head
).where(audit_checkpoints.c.chain_pos.between(bindparam("first"), bindparam("last")))


def _canonical_utc(row: Any) -> bytes:
    """`_canonical_values` of a row whose `at` is an aware UTC datetime (asyncpg's
    timestamptz), at a fifth of its cost: msgspec encodes the row as it is, writing the
    timestamp as `isoformat()` does but for its `Z`, which becomes `+00:00`. The first
    `Z"` is the timestamp's end: `seq` is an integer and `at` the first string."""
    return _ENCODE(row[:_N]).replace(b'Z"', b'+00:00"', 1)


def _canonical_any(row: Any) -> bytes:
    """The canonical bytes of any row (SQLite's naive datetimes too)."""
    return _canonical_values(list(row[:_N]))


class _Walk:
    """The state of one range's walk along the chain: the MAC and position it expects next."""

    def __init__(self, job: _Range, start: Any, canonical: Callable[[Any], bytes]) -> None:
        self.key, self.outside, self.canonical = job.key, job.outside, canonical
        #: One keyed HMAC state for the whole walk, copied per event.
        self.digest = job.key.hexdigester()
        #: The checkpoints at the positions of the page being checked (a page's worth only).
        self.checkpoints: Anchors = {}
        self.previous: str = start[1] if start is not None else GENESIS
        self.expected: int = start[0] + 1 if start is not None else 1
        self.last_seq: int = start[2] if start is not None else 0
        self.verified = 0
        self.last_cp: tuple[int, int, str] | None = None

    def check(self, rows: Any) -> tuple[int, str] | None:
        """Check rows in order; (seq, problem) of the first break, None if all hold.

        The inner loop is the whole cost of a verification, so it does only what each
        event needs: one copied HMAC state, one encoding, one constant-time comparison;
        the checkpoints are looked up only at their positions."""
        digest, canonical, checkpoints = self.digest, self.canonical, self.checkpoints
        marks = set(checkpoints)
        if self.outside is not None:
            marks.add(self.outside[0])
        previous, expected, last_seq = self.previous, self.expected, self.last_seq
        verified = 0
        try:
            for row in rows:
                seq, position, stored = row[0], row[_N], row[_N + 1]
                if position != expected or seq <= last_seq:
                    return self._disorder(seq, position, expected, last_seq)
                mac = digest(f"{previous}|{position}|".encode() + canonical(row))
                if not same_digest(mac, stored or ""):
                    # The exact encoding decides before a break is reported.
                    mac = _mac(self.key, previous, position, _canonical_any(row))
                    if not same_digest(mac, stored or ""):
                        return seq, f"event seq {seq} does not match its seal (altered or moved)"
                if position in marks:
                    broken = self._anchored(seq, position, mac)
                    if broken is not None:
                        return broken
                previous, last_seq, expected = mac, seq, expected + 1
                verified += 1
            return None
        finally:
            self.previous, self.expected, self.last_seq = previous, expected, last_seq
            self.verified += verified

    @staticmethod
    def _disorder(seq: int, position: int, expected: int, last_seq: int) -> tuple[int, str]:
        if position != expected:
            return seq, f"chain position {expected} is missing (event deleted before seq {seq})"
        return seq, f"event seq {seq} is out of order (after seq {last_seq})"

    def _anchored(self, seq: int, position: int, mac: str) -> tuple[int, str] | None:
        """A position with a checkpoint (in the database or the checkpoint file)."""
        cp = self.checkpoints.get(position)
        if cp is not None:
            if cp != (seq, mac):
                return seq, f"checkpoint at position {position} disagrees with the chain"
            self.last_cp = (position, seq, mac)
        outside = self.outside
        if outside is not None and position == outside[0] and outside[1:] != (seq, mac):
            return seq, (
                f"chain position {position} differs from the signed checkpoint in "
                "the checkpoint file (trail rewritten)"
            )
        return None


#: Rows checked between two yields to the event loop, so the next page's rows arrive
#: (PostgreSQL: the next page is fetched while this one is checked).
_SLICE = 2000


async def _check_slices(walk: _Walk, rows: Any) -> tuple[int, str] | None:
    for i in range(0, len(rows), _SLICE):
        broken = walk.check(rows[i : i + _SLICE])
        if broken is not None:
            return broken
        await asyncio.sleep(0)
    return None


async def _check_range(job: _Range, conn: AsyncConnection, tick: Callable[[int], None]) -> Any:
    """Check every sealed event of the range against the seal before it; the first break."""
    start: Any = job.start
    if start is None:
        start = (await conn.execute(_BEFORE, {"lo": job.lo})).first()
        await conn.commit()
    driver = await asyncpg_connection(conn)
    walk = _Walk(job, start, _canonical_utc if driver is not None else _canonical_any)

    async def page(after: int) -> Any:
        params = {"after": after, "hi": job.hi, "page": job.page}
        if driver is not None:
            return await driver.fetch(_PAGE_PG.sql, *_PAGE_PG.args(params))
        rows = (await conn.execute(_PAGE, params)).all()
        # One short read per page: no snapshot held for a whole range (vacuum, partitions).
        await conn.commit()
        return rows

    async def anchors(count: int) -> Anchors:
        span = {"first": walk.expected, "last": walk.expected + count - 1}
        found = (await conn.execute(_CHECKPOINTS_AT, span)).all()
        await conn.commit()
        return {r.chain_pos: (r.seq, r.head) for r in found}

    rows = await page(job.lo)
    while rows:
        # Before the next page is requested: one statement at a time on the connection.
        walk.checkpoints = await anchors(len(rows))
        ahead = None
        if driver is not None and len(rows) == job.page:
            ahead = asyncio.ensure_future(page(rows[-1][0]))
        try:
            broken = await _check_slices(walk, rows)
        except BaseException:
            if ahead is not None:
                ahead.cancel()
            raise
        if broken is not None:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(BaseException):
                    await ahead
            return _RangeResult(job.lo, walk.verified, None, broken, walk.last_cp)
        tick(len(rows))
        if ahead is not None:
            rows = await ahead
        elif len(rows) == job.page:
            rows = await page(rows[-1][0])
        else:
            rows = []
    end = (walk.expected - 1, walk.last_seq) if walk.verified else None
    return _RangeResult(job.lo, walk.verified, end, None, walk.last_cp)


async def _run_range(job: _Range, tick: Callable[[int], None]) -> _RangeResult:
    engine = make_engine(job.url, pool_size=1)
    try:
        async with engine.connect() as conn:
            result: _RangeResult = await _check_range(job, conn, tick)
            return result
    finally:
        await engine.dispose()


def _worker(job: _Range, queue: Any) -> _RangeResult:
    """A range in a worker process; progress goes to the parent as counts."""
    return asyncio.run(_run_range(job, queue.put))


def split(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """`parts` ranges `(a, b]` covering `(lo, hi]`, no two overlapping."""
    size = max(1, -(-(hi - lo) // parts))
    return [(a, min(hi, a + size)) for a in range(lo, hi, size)]


async def _ranges(jobs: list[_Range], workers: int, progress: Progress) -> list[_RangeResult]:
    if workers <= 1 or len(jobs) <= 1:
        return [await _run_range(job, progress.advance) for job in jobs]
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager:
        queue = manager.Queue()
        with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
            loop = asyncio.get_running_loop()
            gathered = asyncio.gather(
                *(loop.run_in_executor(pool, _worker, job, queue) for job in jobs)
            )
            while not gathered.done():
                await asyncio.wait([gathered], timeout=0.2)
                while not queue.empty():
                    progress.advance(int(queue.get_nowait()))
            while not queue.empty():
                progress.advance(int(queue.get_nowait()))
            return list(await gathered)


_TOP = select(func.max(audit_seals.c.seq).label("top"))
#: Signatures are checked in keyset pages of this many checkpoints (memory stays flat).
_SIGNATURE_PAGE = 10_000


async def _check_signatures(
    ctx: VaultContext, public: VerifyKey, report: VerifyReport
) -> tuple[int, int] | None:
    """Every stored checkpoint's signature, page by page; (position, seq) of the newest.
    A bad one is recorded in `report`."""
    newest, after = None, -1
    query = (
        select(audit_checkpoints)
        .where(audit_checkpoints.c.chain_pos > bindparam("after"))
        .order_by(audit_checkpoints.c.chain_pos)
        .limit(_SIGNATURE_PAGE)
    )
    while True:
        async with ctx.transaction() as conn:
            stored = (await conn.execute(query, {"after": after})).all()
        if not stored:
            return newest
        for cp in stored:
            message = _checkpoint_message(cp.chain_pos, cp.seq, cp.head, cp.at)
            if not _signed(public, cp.signature, message):
                report.broken_seq = cp.seq
                report.problem = f"checkpoint at position {cp.chain_pos} has a bad signature"
                return newest
        report.checkpoints += len(stored)
        newest, after = (stored[-1].chain_pos, stored[-1].seq), stored[-1].chain_pos


def _check_file(report: VerifyReport, found: CheckpointFile, public: VerifyKey) -> bool:
    """The checkpoint file itself: every line a checkpoint, the newest one signed."""
    report.checkpoint_file = found
    if found.bad_line is not None:
        report.problem = f"line {found.bad_line} of the checkpoint file is not a checkpoint"
        return False
    newest = found.newest
    if newest is not None and not newest.signed_by(public):
        report.broken_seq = newest.seq
        report.problem = (
            f"the checkpoint file's newest checkpoint (position {newest.chain_pos}) has a "
            "bad signature"
        )
        return False
    return True


def verified_path(ctx: VaultContext) -> Path:
    """Where a successful run records the newest checkpoint it covered."""
    return ctx.settings.audit_checkpoint_path.with_name("audit-verified.json")


def _read_verified(path: Path) -> tuple[int, int, str] | None:
    """(chain_pos, seq, head) a previous run recorded; None when there is none or it is
    unreadable (then the whole chain is verified)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return int(raw["chain_pos"]), int(raw["seq"]), str(raw["head"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _record_verified(path: Path, position: int, seq: int, head: str, at: datetime) -> None:
    """Positions and a digest only; written atomically (rename)."""
    tmp = path.with_name(path.name + ".tmp")
    body = {"chain_pos": position, "seq": seq, "head": head, "at": at.isoformat()}
    tmp.write_text(json.dumps(body, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


async def verify_chain(
    ctx: VaultContext,
    *,
    public_key: VerifyKey | None = None,
    page: int = PAGE,
    checkpoint_file: Path | None = None,
    workers: int = 1,
    since_checkpoint: bool = False,
    progress: Progress = NO_PROGRESS,
    start: tuple[int, str, int] | None = None,
) -> VerifyReport:
    """Check every MAC, the order, every checkpoint signature, and the tail, in the
    database and against the newest checkpoint in the checkpoint file (default: the
    configured one; a missing file is reported, not failed). With `since_checkpoint`, only
    what follows the checkpoint the last successful run recorded.

    The chain starts at `start` (chain_pos, mac, seq), by default where pruning left it
    (the end of the newest pruned archive segment, which must be a signed checkpoint), or
    at the beginning when nothing was pruned."""
    report = VerifyReport()
    public = public_key or _signing_key(ctx).verify_key
    found = await asyncio.to_thread(
        read_checkpoint_file, checkpoint_file or ctx.settings.audit_checkpoint_path
    )
    if not _check_file(report, found, public):
        return report
    outside = found.newest
    newest = await _check_signatures(ctx, public, report)
    if not report.ok:
        return report
    top = int((await ctx.read_rows(_TOP, {}))[0]["top"] or 0)
    start_seq = 0
    start = start if start is not None else await live_start(ctx)
    if start is not None:
        held = await ctx.read_rows(_CHECKPOINTS_AT, {"first": start[0], "last": start[0]})
        if not held or (held[0]["seq"], held[0]["head"]) != (start[2], start[1]):
            report.broken_seq = start[2]
            report.problem = f"the chain's start at position {start[0]} is not a checkpoint"
            return report
        start_seq, report.started_after = start[2], start[0]
    recorded = _read_verified(verified_path(ctx)) if since_checkpoint else None
    if recorded is not None and recorded[1] > start_seq:
        held = await ctx.read_rows(_CHECKPOINTS_AT, {"first": recorded[0], "last": recorded[0]})
        seal = await ctx.read_rows(_BEFORE, {"lo": recorded[1]}) if recorded[1] <= top else []
        if (
            held
            and (held[0]["chain_pos"], held[0]["seq"], held[0]["head"]) == recorded
            and seal
            and (seal[0]["chain_pos"], seal[0]["seq"], seal[0]["chain_mac"]) == recorded
        ):
            start_seq, report.started_after = recorded[1], recorded[0]
    progress.begin("verify audit chain", max(top - start_seq, 0))
    url = ctx.engine.url.render_as_string(hide_password=False)
    key = _chain_key(ctx)
    parallel = workers > 1 and top - start_seq >= PARALLEL_THRESHOLD
    bounds = split(start_seq, top, workers * 4 if parallel else 1) if top > start_seq else []
    anchor = (outside.chain_pos, outside.seq, outside.head) if outside is not None else None
    first = start if start is not None and start[2] == start_seq else None
    jobs = [
        _Range(url, key, lo, hi, anchor, page, first if lo == start_seq else None)
        for lo, hi in bounds
    ]
    results = await _ranges(jobs, workers if parallel else 1, progress)
    end_pos, end_seq = report.started_after, start_seq
    last_checkpoint = None
    for result in results:
        report.verified += result.verified
        if result.last_checkpoint is not None:
            last_checkpoint = result.last_checkpoint
            report.last_checkpoint_position = last_checkpoint[0]
        if result.broken is not None:
            report.broken_seq, report.problem = result.broken
            return report
        if result.end is not None:
            end_pos, end_seq = result.end
    if newest is not None and newest[0] > end_pos:
        top_pos = newest[0]
        report.broken_seq = newest[1]
        report.problem = (
            f"chain ends at position {end_pos} but a signed checkpoint "
            f"covers position {top_pos} (events truncated)"
        )
        return report
    if outside is not None and outside.chain_pos > end_pos:
        report.broken_seq = outside.seq
        report.problem = (
            f"chain ends at position {end_pos} but the checkpoint file's signed "
            f"checkpoint covers position {outside.chain_pos} (events truncated)"
        )
        return report
    await _unsealed(ctx, report, start_seq, end_seq)
    if report.ok and last_checkpoint is not None:
        position, seq, head = last_checkpoint
        await asyncio.to_thread(
            _record_verified, verified_path(ctx), position, seq, head, ctx.clock.now()
        )
    return report


async def _unsealed(ctx: VaultContext, report: VerifyReport, first_seq: int, last_seq: int) -> None:
    """Unsealed events after `first_seq`: counted; one behind the sealed chain is an
    insertion."""
    async with ctx.transaction() as conn:
        report.unsealed = int(
            (
                await conn.execute(
                    select(func.count())
                    .select_from(EVENTS_WITH_SEALS)
                    .where(audit_seals.c.seq.is_(None))
                    .where(audit_events.c.seq > first_seq)
                )
            ).scalar()
            or 0
        )
        behind = (
            await conn.execute(
                select(func.min(audit_events.c.seq))
                .select_from(EVENTS_WITH_SEALS)
                .where(audit_seals.c.seq.is_(None))
                .where(audit_events.c.seq > first_seq)
                .where(audit_events.c.seq < last_seq)
            )
        ).scalar()
    if behind is not None:
        report.broken_seq = behind
        report.problem = f"event seq {behind} was inserted behind the sealed chain"
