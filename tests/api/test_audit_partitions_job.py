"""The periodic jobs create the audit trail's monthly partitions ahead (PostgreSQL only)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import text

from api.periodic_jobs import background_jobs_for
from vault.audit import partitions
from vault.clock import FrozenClock
from vault.context import VaultContext

AHEAD = {f"audit_events_y{m}" for m in ("2036m01", "2036m02", "2036m03", "2036m04")}


async def _names(vault: VaultContext) -> set[str]:
    return {p.name for p in await partitions.months(vault)}


async def test_the_partition_job_creates_the_months_ahead_when_it_starts(
    vault: VaultContext, clock: FrozenClock
):
    """On PostgreSQL a job `audit-partitions` runs at start and creates the partitions of
    the clock's month and the three after it; SQLite, with one table, has no such job."""
    jobs = {job.name: job for job in background_jobs_for(vault)}
    if vault.engine.dialect.name != "postgresql":
        assert "audit-partitions" not in jobs
        return
    clock.set(datetime(2036, 1, 15, tzinfo=UTC))
    before = await _names(vault)
    assert not AHEAD & before
    job = jobs["audit-partitions"]
    job.start()
    try:
        for _ in range(200):
            if AHEAD <= await _names(vault):
                break
            await asyncio.sleep(0.05)
    finally:
        await job.stop()
        created = await _names(vault) - before
        async with vault.engine.begin() as conn:
            for name in created:
                await conn.execute(text(f"DROP TABLE {name}"))
    assert created == AHEAD
