"""The archive gives way while other sessions work: a pause after each page then, none
with nobody else at work or with pacing off, and the same segment either way."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete

from tests.vault.audit.test_archive import ADMIN, _store, _tamper, _trail
from vault.audit import archive
from vault.audit.archive import archive_before
from vault.audit.archive_format import segment_name, sha256_file
from vault.clock import FrozenClock
from vault.context import VaultContext
from vault.storage.audit_tables import audit_archives


@pytest.mark.parametrize(
    ("others", "pace", "pauses"), [(True, True, True), (False, True, False), (True, False, False)]
)
async def test_the_archive_pauses_only_while_others_work_and_pacing_is_on(
    vault: VaultContext,
    clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    others: bool,
    pace: bool,
    pauses: bool,
) -> None:
    """January's 4 events in pages of one: with other sessions at work every page is
    followed by a pause (reported), without them or with `pace=False` none; the segment's
    bytes do not change."""
    await _trail(vault, clock)
    looked: list[bool] = []

    async def others_working(ctx: VaultContext) -> bool:
        looked.append(others)
        return others

    monkeypatch.setattr(archive, "_others_working", others_working)
    store = _store(tmp_path)
    report = await archive_before(vault, "2026-02", store, actor=ADMIN, page=1, pace=pace)
    assert report.months == ["2026-01"] and report.events == 4
    assert (report.paused > 0) is pauses
    assert len(looked) == (4 if pace else 0)
    unpaced = tmp_path / "unpaced"
    unpaced.mkdir()
    assert sha256_file(store.path / segment_name("2026-01")) == sha256_file(
        (await _copy_unpaced(vault, unpaced)) / segment_name("2026-01")
    )


async def _copy_unpaced(vault: VaultContext, tmp_path: Path) -> Path:
    """The same month archived again without pacing, into another directory."""
    await _tamper(vault, delete(audit_archives))
    store = _store(tmp_path)
    await archive_before(vault, "2026-02", store, actor=ADMIN, page=5000, pace=False)
    return store.path
