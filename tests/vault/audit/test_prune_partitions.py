"""Pruning on PostgreSQL's monthly partitions (issue 19 item 1): an archived month past
retention goes by `DROP` of its partition, not row by row, and the chain still verifies
from the archive's end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.vault.audit.test_archive import ADMIN, _count, _store, _trail
from vault.audit import partitions
from vault.audit.archive import archive_before
from vault.audit.prune import prune
from vault.audit.verify import verify_chain
from vault.clock import FrozenClock
from vault.context import VaultContext
from vault.storage.audit_tables import audit_events


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
    # March's 2 lookups, plus the archive and prune events of April's clock.
    assert await _count(vault, audit_events) == 2 + 4
    checked = await verify_chain(vault)
    assert checked.ok, checked.problem
