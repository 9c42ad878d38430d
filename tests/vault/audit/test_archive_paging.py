"""The archive reads a month page by page, the next page while the last is written: the
segment must not depend on the page size, and a broken event is still named mid-page."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, update

from tests.vault.audit.test_archive import ADMIN, _store, _tamper, _trail
from vault.audit.archive import archive_before
from vault.audit.archive_format import segment_name, sha256_file
from vault.audit.archive_segment import ArchiveBroken
from vault.clock import FrozenClock
from vault.context import VaultContext
from vault.storage.audit_tables import audit_archives, audit_events


async def test_segments_are_the_same_bytes_whatever_the_page_size(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """January (4 events) archived with pages of 1, 3 and 5000 events gives the same
    segment bytes each time."""
    await _trail(vault, clock)
    digests = set()
    for page in (1, 3, 5000):
        (tmp_path / f"page-{page}").mkdir()
        store = _store(tmp_path / f"page-{page}")
        report = await archive_before(vault, "2026-02", store, actor=ADMIN, page=page)
        if page == 1:
            assert report.months == ["2026-01"] and report.events == 4
        digests.add(sha256_file(store.path / segment_name("2026-01")))
        # Forget the month again so the next page size archives it anew.
        await _tamper(vault, delete(audit_archives))
    assert len(digests) == 1


@pytest.mark.parametrize("page", [1, 2])
async def test_an_edited_event_mid_month_stops_the_archive_naming_it(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path, page: int
) -> None:
    """January's third event edited: with pages of 1 and 2 events the archive stops with
    `ArchiveBroken` naming seq 3, and records and uploads nothing."""
    await _trail(vault, clock)
    (tmp_path / "p").mkdir()
    store = _store(tmp_path / "p")
    await _tamper(vault, update(audit_events).where(audit_events.c.seq == 3).values(reason="x"))
    with pytest.raises(ArchiveBroken, match="event seq 3 does not match its seal"):
        await archive_before(vault, "2026-02", store, actor=ADMIN, page=page)
    assert [p.name for p in store.path.iterdir()] == []
