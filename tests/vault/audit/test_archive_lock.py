"""One archive or prune of the audit trail at a time (issue 19), on both databases: a run
that finds the lock taken waits or fails with `ArchiveBusy` and changes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.vault.audit.test_archive import ADMIN, _count, _store, _trail
from vault.audit.archive import archive_before
from vault.audit.archive_lock import ArchiveBusy, archive_lock
from vault.audit.prune import prune
from vault.clock import FrozenClock
from vault.context import VaultContext
from vault.storage.audit_tables import audit_archives, audit_events


@pytest.fixture
async def other(vault: VaultContext) -> VaultContext:
    """A second vault on the same database, as another process or node would open it."""
    ctx = VaultContext.open(vault.settings, clock=vault.clock)
    yield ctx  # type: ignore[misc]
    await ctx.close()


async def test_archive_and_prune_fail_busy_while_another_run_holds_the_lock(
    vault: VaultContext, other: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """While another vault holds the lock, archive and prune raise `ArchiveBusy` and
    nothing is archived or deleted; once it lets go the same archive succeeds."""
    await _trail(vault, clock)
    store = _store(tmp_path)
    events = await _count(vault, audit_events)
    async with archive_lock(other):
        with pytest.raises(ArchiveBusy, match="another `tresor audit archive`"):
            await archive_before(vault, "2026-03", store, actor=ADMIN)
        with pytest.raises(ArchiveBusy):
            await prune(vault, 1, actor=ADMIN)
        assert await _count(vault, audit_archives) == 0
        assert await _count(vault, audit_events) == events
        assert list(store.path.iterdir()) == []
    report = await archive_before(vault, "2026-03", store, actor=ADMIN)
    assert report.months == ["2026-01", "2026-02"]


async def test_a_waiting_run_goes_once_the_other_lets_go(
    vault: VaultContext, other: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """Two archives started together: the second waits on the lock (with `wait`) and runs
    after the first, so each month is archived by exactly one of them."""
    await _trail(vault, clock)
    store = _store(tmp_path)
    async with archive_lock(other):
        waiting = asyncio.create_task(archive_before(vault, "2026-03", store, actor=ADMIN, wait=30))
        await asyncio.sleep(0.6)
        assert not waiting.done()  # held back by the lock, not failed
    first = await waiting
    second = await archive_before(other, "2026-03", store, actor=ADMIN, wait=30)
    assert first.months == ["2026-01", "2026-02"] and second.months == []
    assert await _count(vault, audit_archives) == 2


async def test_two_concurrent_runs_never_overlap(
    vault: VaultContext, other: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """An archive and a prune launched at the same moment, both willing to wait: the lock
    lets one body run at a time (never two inside at once), and both finish."""
    await _trail(vault, clock)
    store = _store(tmp_path)
    inside: list[int] = []
    overlaps: list[int] = []

    async def held(ctx: VaultContext) -> None:
        async with archive_lock(ctx, wait=30):
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(1)
            await asyncio.sleep(0.4)
            inside.pop()

    await asyncio.gather(held(vault), held(other), held(vault))
    assert overlaps == []
    report, pruned = await asyncio.gather(
        archive_before(vault, "2026-03", store, actor=ADMIN, wait=30),
        prune(other, 1, actor=ADMIN, wait=30),
    )
    assert report.months == ["2026-01", "2026-02"]
    # The prune ran before or after the archive, never in between: all or nothing of it.
    assert pruned.months in ([], ["2026-01", "2026-02"])


async def test_a_run_that_fails_inside_releases_the_lock(
    vault: VaultContext, other: VaultContext
) -> None:
    """An exception inside the locked body lets the lock go: the next run gets it at once."""
    with pytest.raises(RuntimeError):
        async with archive_lock(vault):
            raise RuntimeError("boom")
    async with archive_lock(other):
        pass
