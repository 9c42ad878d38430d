"""The periodic retention job also applies the audit trail's own retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from api.periodic_jobs import _retention
from vault.audit import chain as audit_chain
from vault.audit.archive import archive_before
from vault.audit.archive_lock import archive_lock
from vault.audit.archive_store import open_store
from vault.audit.events import Actor, AuditAction, Decision, record
from vault.audit.verify import verify_chain
from vault.clock import FrozenClock
from vault.context import VaultContext
from vault.storage.audit_tables import audit_events


async def _event(vault: VaultContext, clock: FrozenClock, at: datetime) -> None:
    clock.set(at)
    async with vault.transaction() as conn:
        await record(
            conn,
            at=at,
            actor=Actor("client", "shop", "req"),
            action=AuditAction.LOOKUP,
            decision=Decision.ALLOW,
            subject_id="0f0e0d0c-0b0a-4908-8706-050403020100",
            purpose="order.delivery",
            fields=["name"],
        )
    await audit_chain.seal_all(vault, grace=timedelta(0))


async def test_the_retention_job_prunes_archived_months_past_36_months_only(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """With January and February 2026 on the trail and only January archived, the job run
    in 2029-02 (January ended 36 months before, the shipped policy's retention) deletes
    January's event alone, a month earlier nothing, and the chain still verifies."""
    await _event(vault, clock, datetime(2026, 1, 5, tzinfo=UTC))
    await _event(vault, clock, datetime(2026, 2, 5, tzinfo=UTC))
    clock.set(datetime(2026, 3, 1, tzinfo=UTC))
    await archive_before(vault, "2026-02", open_store(str(tmp_path)), actor=Actor("admin", "cli"))
    clock.set(datetime(2029, 1, 31, tzinfo=UTC))
    await _retention(vault)
    async with vault.engine.connect() as conn:
        count = select(func.count()).select_from(audit_events)
        assert (await conn.execute(count)).scalar_one() == 3  # January ended 35 months ago
    clock.set(datetime(2029, 2, 1, tzinfo=UTC))
    await _retention(vault)
    async with vault.engine.connect() as conn:
        query = select(audit_events.c.seq, audit_events.c.action).order_by(audit_events.c.seq)
        kept = [tuple(row) for row in await conn.execute(query)]
    assert kept == [
        (2, "client:contact:lookup"),
        (3, "admin:audit:archive"),
        (4, "system:audit:prune"),  # the job's deletion is on the trail itself
    ]
    assert (await verify_chain(vault)).ok


async def test_the_retention_job_leaves_the_trail_alone_while_an_archive_runs(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """While another process holds the archive/prune lock the job's round completes
    without pruning (no error, January's event kept); the next round prunes it."""
    await _event(vault, clock, datetime(2026, 1, 5, tzinfo=UTC))
    await _event(vault, clock, datetime(2026, 2, 5, tzinfo=UTC))
    clock.set(datetime(2026, 3, 1, tzinfo=UTC))
    await archive_before(vault, "2026-02", open_store(str(tmp_path)), actor=Actor("admin", "cli"))
    clock.set(datetime(2029, 2, 1, tzinfo=UTC))
    other = VaultContext.open(vault.settings, clock=clock)
    try:
        async with archive_lock(other):
            await _retention(vault)
    finally:
        await other.close()
    lookups = select(func.count()).where(audit_events.c.action == "client:contact:lookup")
    async with vault.engine.connect() as conn:
        assert (await conn.execute(lookups)).scalar_one() == 2
    await _retention(vault)
    async with vault.engine.connect() as conn:
        assert (await conn.execute(lookups)).scalar_one() == 1
