"""The booking's scratch tables (`vault.campaigns.booking_scratch`) on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from tests.support.privacy import is_sqlite
from vault.campaigns.booking_scratch import drop, members, scratch


async def test_the_members_table_is_indexed_only_where_not_exists_probes_it(vault):
    """SQLite's members table has its subject ids uniquely indexed (its correlated
    NOT EXISTS would scan the table per audience row), so a second row of a member is
    refused; PostgreSQL's has no index to write (it answers by hashing)."""
    row = {"subject_id": "s-1", "basis": True, "fresh": True}
    async with vault.transaction() as conn:
        await scratch(conn, members)
        await conn.execute(insert(members).values(**row))
        if is_sqlite(vault):
            savepoint = await conn.begin_nested()
            with pytest.raises(IntegrityError):
                await conn.execute(insert(members).values(**row))
            await savepoint.rollback()
        else:
            indexes = await conn.execute(
                text("SELECT count(*) FROM pg_indexes WHERE tablename = :t"), {"t": members.name}
            )
            assert indexes.scalar_one() == 0
        await drop(conn, members)
