"""Pruning on PostgreSQL's monthly partitions (issue 19 item 1): an archived month past
retention goes by `DROP` of its partition, not row by row, and the chain still verifies
from the archive's end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from tests.vault.audit.test_archive import ADMIN, _count, _store, _trail
from vault.audit import partitions
from vault.audit.archive import archive_before
from vault.audit.prune import prune
from vault.audit.verify import verify_chain
from vault.clock import FrozenClock
from vault.context import VaultContext
from vault.storage.audit_tables import audit_archives, audit_events, audit_seals


@pytest.fixture
async def partitioned(vault: VaultContext) -> AsyncIterator[VaultContext]:
    """The vault on PostgreSQL with partitions from January 2026; the partitions this test
    creates are dropped afterwards (the run's database keeps the migration's layout)."""
    if vault.engine.dialect.name != "postgresql":
        pytest.skip("monthly partitions exist on PostgreSQL only (SQLite prunes by DELETE)")
    before = {p.name for p in await partitions.months(vault)}
    await partitions.ensure_ahead(vault, datetime(2026, 1, 1, tzinfo=UTC))
    yield vault
    after = {p.name for p in await partitions.months(vault)}
    async with vault.engine.begin() as conn:
        for name in after - before:
            await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


async def test_an_archived_month_is_pruned_by_dropping_its_partition(
    partitioned: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """January and February archived and past retention: their partitions are gone (not
    emptied), the report counts their 7 events, March's partition and rows stay, and the
    plain verify passes from the archive's end."""
    vault = partitioned
    await _trail(vault, clock)
    await archive_before(vault, "2026-03", _store(tmp_path), actor=ADMIN)
    names = {p.name for p in await partitions.months(vault)}
    assert {"audit_events_y2026m01", "audit_events_y2026m02"} <= names

    report = await prune(vault, 1, actor=ADMIN)
    assert report.months == ["2026-01", "2026-02"] and report.events == 7
    left = {p.name for p in await partitions.months(vault)}
    assert "audit_events_y2026m01" not in left and "audit_events_y2026m02" not in left
    assert "audit_events_y2026m03" in left
    jan_lo = (await _archived_range(vault, "2026-01"))[0]
    feb_hi = (await _archived_range(vault, "2026-02"))[1]
    assert await _seals_between(vault, jan_lo, feb_hi) == 0  # their seals went with them
    # March's 2 lookups, plus the archive and prune events of April's clock.
    assert await _count(vault, audit_events) == 2 + 4
    checked = await verify_chain(vault)
    assert checked.ok, checked.problem


async def _seals_between(vault: VaultContext, lo: int, hi: int) -> int:
    async with vault.engine.connect() as conn:
        query = select(func.count()).where(audit_seals.c.seq >= lo, audit_seals.c.seq <= hi)
        return int((await conn.execute(query)).scalar_one())


async def _archived_range(vault: VaultContext, month: str) -> tuple[int, int]:
    async with vault.engine.connect() as conn:
        query = select(audit_archives.c.first_seq, audit_archives.c.last_seq).where(
            audit_archives.c.month == month
        )
        first, last = (await conn.execute(query)).one()
    return int(first), int(last)


async def test_dropping_a_partition_deletes_its_seals_from_the_shared_block(
    partitioned: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """`drop_partition` of archived January removes its partition and, as its 4 seals share
    a seal block with February's, deletes exactly those seals (no block dropped), while
    February's events and seals stay as they were."""
    vault = partitioned
    await _trail(vault, clock)
    await archive_before(vault, "2026-03", _store(tmp_path), actor=ADMIN)
    jan, feb = await _archived_range(vault, "2026-01"), await _archived_range(vault, "2026-02")
    assert await _seals_between(vault, *jan) == 4

    dropped = await partitions.drop_partition(vault, date(2026, 1, 1), within=jan)
    assert dropped == partitions.DroppedMonth(4, jan[0], jan[1], (), 4)
    assert await _seals_between(vault, *jan) == 0
    assert await _seals_between(vault, *feb) == 3
    assert "audit_events_y2026m01" not in {p.name for p in await partitions.months(vault)}


async def test_a_partition_with_events_outside_the_range_is_kept_whole(
    partitioned: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """When the partition holds an event outside the archived range it is not dropped and
    none of its seals go (those rows are left to the row-by-row deletion)."""
    vault = partitioned
    await _trail(vault, clock)
    await archive_before(vault, "2026-03", _store(tmp_path), actor=ADMIN)
    lo, hi = await _archived_range(vault, "2026-01")
    assert await partitions.drop_partition(vault, date(2026, 1, 1), within=(lo, hi - 1)) is None
    assert await _seals_between(vault, lo, hi) == 4
    assert "audit_events_y2026m01" in {p.name for p in await partitions.months(vault)}


async def test_prune_finishes_seals_an_interrupted_drop_left_behind(
    partitioned: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """January marked pruned and its partition gone but its seals left (what the earlier
    drop, which deleted seals afterwards, left after a crash): the next prune deletes
    those seals, and verify passes."""
    vault = partitioned
    await _trail(vault, clock)
    await archive_before(vault, "2026-03", _store(tmp_path), actor=ADMIN)
    jan = await _archived_range(vault, "2026-01")
    async with vault.engine.begin() as conn:
        await conn.execute(
            update(audit_archives)
            .where(audit_archives.c.month == "2026-01")
            .values(pruned_at=clock.now())
        )
        await conn.execute(text("ALTER TABLE audit_events DETACH PARTITION audit_events_y2026m01"))
        await conn.execute(text("DROP TABLE audit_events_y2026m01"))
    assert await _seals_between(vault, *jan) == 4

    await prune(vault, 1, actor=ADMIN)
    assert await _seals_between(vault, *jan) == 0
    checked = await verify_chain(vault)
    assert checked.ok, checked.problem
