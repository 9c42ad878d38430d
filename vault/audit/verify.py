"""Verification of the audit chain in parallel ranges, and incrementally since the last run.

Every MAC needs only the MAC stored before it (`mac = HMAC(previous mac | position |
event)`), so the chain splits into ranges of sequence numbers that are checked
independently: each range starts from the seal stored just before it, and the range
before checks that seal as its own last row, so together they check every link.

On PostgreSQL a range is streamed by COPY and checked from its text lines
(`verify_stream`); with more than one worker the ranges go to lean worker processes, one
per core, each taking the next range when it is done (`verify_worker`). SQLite reads
keyset pages in this process (`verify_pages`). Memory stays flat either way.

`since_checkpoint` starts after the newest checkpoint a previous successful run recorded
(the `audit-verified.json` file beside the checkpoint file) instead of at position 1, once
the chain is shown to still contain that checkpoint, so a nightly verify costs one day's
events. What lies before it was verified then; a full run checks it again.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from sqlalchemy import bindparam, func, select

from vault.audit.chain_head import head_seq
from vault.audit.chain_links import _chain_key
from vault.audit.checkpoint_file import CheckpointFile, read_checkpoint_file
from vault.audit.checkpoints import _checkpoint_message, _signed, _signing_key
from vault.audit.prune import live_start
from vault.audit.verify_pages import BEFORE, CHECKPOINTS_AT
from vault.audit.verify_pages import check_range as check_pages
from vault.audit.verify_sql import statements
from vault.audit.verify_state import CHUNK, RangeJob, RangeResult, inserted
from vault.audit.verify_stream import SESSION
from vault.audit.verify_stream import check_range as check_stream
from vault.audit.verify_worker import run_ranges
from vault.crypto import VerifyKey
from vault.progress import NO_PROGRESS, Progress
from vault.storage.audit_tables import audit_checkpoints, audit_events
from vault.storage.pg_direct import asyncpg_dsn

if TYPE_CHECKING:
    from vault.context import VaultContext

#: Rows per keyset page on SQLite; on PostgreSQL a COPY chunk is `verify_state.CHUNK`.
PAGE = 20_000
#: Below this many sealed events a range each for several processes costs more than it saves.
PARALLEL_THRESHOLD = 200_000
#: Ranges per worker: a worker that finishes early takes another (the load is uneven on a
#: shared machine), and a break is found without checking everything after it.
RANGES_PER_WORKER = 4


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


def split(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    """`parts` ranges `(a, b]` covering `(lo, hi]`, no two overlapping."""
    size = max(1, -(-(hi - lo) // parts))
    return [(a, min(hi, a + size)) for a in range(lo, hi, size)]


async def _ranges(
    ctx: VaultContext, jobs: list[RangeJob], workers: int, page: int | None, progress: Progress
) -> list[RangeResult]:
    """Check the ranges: streamed on PostgreSQL (in worker processes when `workers` > 1),
    in keyset pages on SQLite; the results in range order, up to the first break."""
    if ctx.engine.dialect.name != "postgresql":
        return await _paged(ctx, jobs, page or PAGE, progress)
    dsn = asyncpg_dsn(ctx.engine.url.render_as_string(hide_password=False))
    secret, sql = ctx.secrets.audit_key, statements(page or CHUNK)
    if workers > 1 and len(jobs) > 1:
        return await run_ranges(dsn, secret, sql, jobs, workers, progress.advance)
    results: list[RangeResult] = []
    driver = await asyncpg.connect(dsn, server_settings=SESSION)
    try:
        for job in jobs:
            results.append(await check_stream(driver, sql, secret, job, progress.advance))
            if results[-1].broken is not None:
                break
    finally:
        await driver.close()
    return results


async def _paged(
    ctx: VaultContext, jobs: list[RangeJob], page: int, progress: Progress
) -> list[RangeResult]:
    """SQLite: the ranges one after the other in this process, in keyset pages."""
    results: list[RangeResult] = []
    key = _chain_key(ctx)
    async with ctx.engine.connect() as conn:
        for job in jobs:
            results.append(await check_pages(key, job, conn, page, progress.advance))
            if results[-1].broken is not None:
                break
    return results


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
    page: int | None = None,
    checkpoint_file: Path | None = None,
    workers: int = 1,
    since_checkpoint: bool = False,
    progress: Progress = NO_PROGRESS,
    start: tuple[int, str, int] | None = None,
) -> VerifyReport:
    """Check every MAC, the order, every checkpoint signature, and the tail, in the
    database and against the newest checkpoint in the checkpoint file (default: the
    configured one; a missing file is reported, not failed). With `since_checkpoint`, only
    what follows the checkpoint the last successful run recorded. `page`: rows per page
    (SQLite) or sequence numbers per COPY chunk (PostgreSQL), small only in tests.

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
    # The chain head's seq, read bounded by the newest checkpoint (not every seal block).
    top = await head_seq(ctx)
    start_seq = 0
    start = start if start is not None else await live_start(ctx)
    if start is not None:
        held = await ctx.read_rows(CHECKPOINTS_AT, {"first": start[0], "last": start[0]})
        if not held or (held[0]["seq"], held[0]["head"]) != (start[2], start[1]):
            report.broken_seq = start[2]
            report.problem = f"the chain's start at position {start[0]} is not a checkpoint"
            return report
        start_seq, report.started_after = start[2], start[0]
    recorded = _read_verified(verified_path(ctx)) if since_checkpoint else None
    if recorded is not None and recorded[1] > start_seq:
        held = await ctx.read_rows(CHECKPOINTS_AT, {"first": recorded[0], "last": recorded[0]})
        seal = await ctx.read_rows(BEFORE, {"lo": recorded[1]}) if recorded[1] <= top else []
        if (
            held
            and (held[0]["chain_pos"], held[0]["seq"], held[0]["head"]) == recorded
            and seal
            and (seal[0]["chain_pos"], seal[0]["seq"], seal[0]["chain_mac"]) == recorded
        ):
            start_seq, report.started_after = recorded[1], recorded[0]
    progress.begin("verify audit chain", max(top - start_seq, 0))
    parallel = workers > 1 and top - start_seq >= PARALLEL_THRESHOLD
    parts = workers * RANGES_PER_WORKER if parallel else 1
    bounds = split(start_seq, top, parts) if top > start_seq else []
    anchor = (outside.chain_pos, outside.seq, outside.head) if outside is not None else None
    first = start if start is not None and start[2] == start_seq else None
    jobs = [RangeJob(lo, hi, anchor, first if lo == start_seq else None) for lo, hi in bounds]
    results = await _ranges(ctx, jobs, workers if parallel else 1, page, progress)
    end_pos, end_seq = report.started_after, start_seq
    last_checkpoint = None
    behind = min((r.behind for r in results if r.behind is not None), default=None)
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
    if behind is not None:
        report.broken_seq, report.problem = inserted(behind)
        return report
    await _unsealed(ctx, report, end_seq)
    if report.ok and last_checkpoint is not None:
        position, seq, head = last_checkpoint
        await asyncio.to_thread(
            _record_verified, verified_path(ctx), position, seq, head, ctx.clock.now()
        )
    return report


async def _unsealed(ctx: VaultContext, report: VerifyReport, last_seq: int) -> None:
    """Events after the last one checked: not sealed yet, counted along the primary key.
    (One without a seal *behind* it was found by the walk, which outer-joins the seals.)"""
    async with ctx.transaction() as conn:
        report.unsealed = int(
            (
                await conn.execute(
                    select(func.count()).where(audit_events.c.seq > bindparam("after")),
                    {"after": last_seq},
                )
            ).scalar()
            or 0
        )
