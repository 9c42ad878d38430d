"""`tresor jobs`: the periodic jobs (audit sealer, retention) in a process of their own.

Sealing is CPU-bound (one MAC per event) and used to run on the request workers' event loop,
where it took a large share of the serving process's CPU and a round of a few thousand
events stalled every request in flight (docs/performance.md). On PostgreSQL
`tresor serve` therefore starts this process beside its HTTP workers (`--jobs process`, the
default there): the workers only append events, this process chains them.

It runs at a lower CPU priority (nice +10): under a burst of requests the workers and the
database come first and the sealer falls behind, then catches up when the burst is over. The
backlog is on /metrics (`tresor_audit_unsealed_events`); a backlog that keeps growing means
the node needs more CPU, not that events are lost (they are durable before any response).

Whichever process holds the sealer lock also signs the checkpoints (at least every
`TRESOR_AUDIT_CHECKPOINT_SECONDS` while events come) and appends them to the checkpoint file
outside the database, so this process needs write access to `TRESOR_AUDIT_CHECKPOINT_FILE`.

The process ends with its parent, also when the parent was killed with SIGKILL: it polls its
parent pid and, once that changed, stops its jobs and seals what it can, so a crashed node
leaves no orphan sealing against the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import structlog

from api.gc_tuning import tune_gc_for_long_running
from api.periodic_jobs import background_jobs_for, stop_jobs
from vault.context import VaultContext
from vault.settings import Settings

log = structlog.get_logger("tresor.jobs")

#: How often the process checks that its parent is still there.
PARENT_POLL_SECONDS = 0.5
#: Added to the nice value by `tresor jobs`: background work yields the CPU to request handling.
NICENESS = 10


async def run_jobs(settings: Settings, *, parent_pid: int | None = None) -> None:
    """Run the periodic jobs until SIGTERM / SIGINT or until the parent process is gone."""
    ctx = VaultContext.open(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    jobs = background_jobs_for(ctx)
    for job in jobs:
        job.start()
    tune_gc_for_long_running()  # like `serve`: the notice sender allocates per batch
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=PARENT_POLL_SECONDS)
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("jobs_parent_gone")
                break
    finally:
        try:
            await stop_jobs(ctx, jobs)
        except Exception as exc:  # noqa: BLE001 - the next sealer picks the backlog up
            log.error("final_seal_failed", error=type(exc).__name__)
        await ctx.close()
