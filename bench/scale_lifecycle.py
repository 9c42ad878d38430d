"""The audit trail's lifecycle in `bench/scale.py`: archive and prune at scale, and lookups
while they run.

`bench/scale.py` seeds events over the last `--months` months; this module gives those
months their partitions before the seeding (as the jobs process would have, month by
month), then, after the other phases, measures on the seeded trail:

- `archive`: the older half of the closed months archived alone (to a temporary
  directory): events/s, seconds, CPU µs per event of the archive process, segment bytes;
- `archive_under_lookups` / `lookup_during_archive`: the newer closed months archived
  while wrk runs lookups (the same `lookups(..., during)` helper the rotate and retention
  phases use);
- `prune`: `tresor audit prune --months 1`, which drops the archived months' partitions
  and their seals: seconds and events;
- `lookup_p99_ratio_{rotate,archive,retention}`: p99 during the operation over the idle
  p99 at the full size (`lookup_full`), all measured in the same run; issue 19's bar is
  ≤ 2.
"""

from __future__ import annotations

import asyncio
import resource
from argparse import Namespace
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from vault.audit import partitions
from vault.audit.archive_months import add_months, month_of
from vault.context import VaultContext
from vault.settings import Settings
from vault.storage.audit_tables import audit_events, audit_seals

#: The phases whose lookup p99 is set against the idle one (`lookup_during_<name>`).
RATIO_PHASES = ("rotate", "archive", "retention")


async def partitions_for_seed(settings: Settings, months: int) -> list[str]:
    """Prepare the trail for the seeding, which COPYs events stamped over the last `months`
    months after the events `tresor init` and `clients create` wrote just now: give every
    one of those months its partition (without them every row would land in `DEFAULT`),
    and stamp the few events already there (none sealed yet) before the seeded ones, so
    time rises with the chain as on a vault that has run for months and the closed months
    can be archived."""
    ctx = VaultContext.open(settings)
    try:
        first = ctx.clock.now() - timedelta(days=30 * months + 1)
        created = await partitions.ensure_ahead(ctx, first, months=months + 4)
        async with ctx.transaction() as conn:
            sealed = await conn.execute(select(func.count()).select_from(audit_seals))
            if sealed.scalar_one():
                raise RuntimeError("events are sealed before the seeding: cannot restamp")
            await conn.execute(update(audit_events).values(at=first))
    finally:
        await ctx.close()
    return [month.isoformat()[:7] for month in created]


def _archive_dir(work: Path) -> Path:
    target = work / "archive"
    target.mkdir(exist_ok=True)
    return target


def _with_rate(summary: dict[str, Any], target: Path) -> dict[str, Any]:
    """The command's JSON summary plus events/s and the segments' bytes per event."""
    events, seconds = int(summary.get("events", 0)), float(summary.get("seconds", 0.0))
    size = sum(p.stat().st_size for p in target.glob("audit-*.jsonl.gz"))
    total = sum(1 for _ in target.glob("audit-*.jsonl.gz"))
    return {
        **summary,
        "events_per_s": round(events / seconds, 1) if seconds else 0.0,
        "segments_total": total,
        "segment_bytes_total": size,
    }


def archive_and_prune(
    env: dict[str, str],
    ids: list[str],
    key: str,
    work: Path,
    args: Namespace,
    result: dict[str, Any],
    tresor: Callable[..., dict[str, Any]],
    lookups: Callable[..., Any],
) -> None:
    """Archive the seeded months in two halves (alone, then under lookups), then prune
    them; the figures go into `result`. `tresor` and `lookups` are `bench.scale`'s
    helpers (a `tresor … --json` command; wrk against `tresor serve`, with a command
    alongside)."""
    target = _archive_dir(work)
    now = month_of(datetime.now(UTC))
    middle = add_months(now, -max(args.months // 2, 1))
    to = ["--to", str(target)]
    before = _children_cpu()
    alone = _with_rate(tresor(env, "audit", "archive", "--before", middle, *to), target)
    if alone.get("events"):
        # CPU of the archive process alone (PostgreSQL's side not included): less
        # sensitive to the shared machine's load than events/s.
        alone["cpu_us_per_event"] = round((_children_cpu() - before) / alone["events"] * 1e6, 1)
    result["archive"] = alone
    during = ["audit", "archive", "--before", now, *to]
    if args.skip_lookups:
        result["archive_rest"] = _with_rate(tresor(env, *during), target)
    else:
        wrk, archived = lookups(env, ids, key, work, args.duration, during)
        result["lookup_during_archive"] = wrk
        result["archive_under_lookups"] = _with_rate(archived, target)
    archived_events = sum(
        int(result[name].get("events", 0))
        for name in ("archive", "archive_rest", "archive_under_lookups")
        if name in result
    )
    if archived_events:
        size = sum(p.stat().st_size for p in target.glob("audit-*.jsonl.gz"))
        result["archive_bytes_per_event"] = round(size / archived_events, 1)
    result["prune"] = tresor(env, "audit", "prune", "--months", "1")
    result["partitions_after_prune"] = asyncio.run(_partition_names(Settings.from_env(env)))


async def _partition_names(settings: Settings) -> list[str]:
    ctx = VaultContext.open(settings)
    try:
        return [p.name for p in await partitions.months(ctx)]
    finally:
        await ctx.close()


def _children_cpu() -> float:
    """User + system seconds of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def p99_ratios(result: dict[str, Any]) -> None:
    """`lookup_p99_ratio_<phase>` = p99 during the phase / idle p99 at the full size, for
    every phase measured; issue 19's bar is ≤ 2."""
    idle = result.get("lookup_full")
    if not idle or not idle.get("p99_ms"):
        return
    for phase in RATIO_PHASES:
        during = result.get(f"lookup_during_{phase}")
        if during and during.get("p99_ms") is not None:
            result[f"lookup_p99_ratio_{phase}"] = round(during["p99_ms"] / idle["p99_ms"], 2)
