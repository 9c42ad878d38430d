"""Re-wrapping in heap-page order (PostgreSQL): passes that change a page once each,
ranges that cover every page, and the keyset pass that finds what the pages missed."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.support.factories import ADMIN, WRITER, person
from vault.admin import rewrap_pages
from vault.admin.keys import rewrap_all, versions_in_use
from vault.context import VaultContext
from vault.subjects.store import create_subject, decrypt_fields, load_subject


def test_passes_change_each_page_at_most_once_and_cover_every_row() -> None:
    """Rows of pages 3, 3, 3, 5, 7, 7 in physical order: the first pass takes one row of
    each page, the next the second of 3 and 7, the last the third of 3."""
    found = [
        {"id": f"r{i}", "kek_version": 1, "blob": b"x", "page": page}
        for i, page in enumerate([3, 3, 3, 5, 7, 7])
    ]
    out = rewrap_pages.passes(found)
    assert [[row[0] for row in batch] for batch in out] == [
        ["r0", "r3", "r4"],
        ["r1", "r5"],
        ["r2"],
    ]


def test_page_ranges_cover_every_page_once() -> None:
    """However the pages divide, the ranges are consecutive from 0 to the last page."""
    for pages, ranges in ((0, 2), (1, 2), (10, 3), (118_000, 2)):
        cuts = rewrap_pages.page_ranges(pages, ranges)
        assert len(cuts) == ranges and cuts[0][0] == 0 and cuts[-1][1] == pages
        for (_, end), (start, _) in zip(cuts, cuts[1:], strict=False):
            assert end == start


async def test_rows_the_page_order_missed_are_rewrapped_by_key(
    vault: VaultContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows beyond the pages the page order saw (a row moved there meanwhile, or added)
    are still re-wrapped, by the keyset pass after it; every DEK opens."""
    if vault.engine.dialect.name != "postgresql":
        pytest.skip("the page order is PostgreSQL's")
    sids = [await create_subject(vault, WRITER, person(i)) for i in range(30)]
    async with vault.transaction() as conn:
        pages = int(
            (
                await conn.execute(
                    text("SELECT count(DISTINCT (ctid::text::point)[0]) FROM subjects")
                )
            ).scalar_one()
        )
    assert pages >= 2

    async def first_page_only(conn: object, keys: object) -> int:
        return 1

    monkeypatch.setattr(rewrap_pages, "heap_pages", first_page_only)
    assert vault.kek.add_version() == 2
    assert await rewrap_all(vault, ADMIN, batch=4) == 30
    assert await versions_in_use(vault) == {2: 30}
    async with vault.transaction() as conn:
        for i, sid in enumerate(sids):
            fields = decrypt_fields(vault, await load_subject(conn, sid), ("name",))
            assert fields["name"] == person(i)["name"]
