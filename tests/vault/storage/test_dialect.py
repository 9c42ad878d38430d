"""The statements that differ per database (`vault.storage.dialect`) behave alike on both."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import Table, func, select, text

from tests.support.privacy import is_sqlite
from vault.storage import dialect
from vault.storage.audit_tables import audit_events, audit_seals
from vault.storage.rights_tables import self_service_lockouts


async def test_insert_ignoring_conflict_keeps_the_first_row(vault):
    """A second insert of the same key does nothing (no error, the first row stays)."""
    table: Table = self_service_lockouts
    async with vault.transaction() as conn:
        for failures in (3, 7):
            statement = dialect.insert_ignoring_conflict(conn, table, ["lock_key"])
            await conn.execute(statement.values(lock_key="k-1", failures=failures, level=0))
        got = (
            await conn.execute(select(table.c.failures).where(table.c.lock_key == "k-1"))
        ).scalar_one()
    assert got == 3


async def test_the_advisory_lock_excludes_a_second_transaction(vault):
    """PostgreSQL: a second transaction does not get the lock the first holds; SQLite
    serialises write transactions already, so the lock is always granted."""
    async with vault.transaction() as first:
        assert await dialect.try_advisory_xact_lock(first, 4242) is True
        if is_sqlite(vault):
            return  # a second writer would wait for the first's BEGIN IMMEDIATE
        async with vault.engine.begin() as second:
            assert await dialect.try_advisory_xact_lock(second, 4242) is False


@pytest.mark.parametrize(("bucket", "expected"), [("day", "2026-03-04"), ("hour", "2026-03-04 05")])
async def test_utc_bucket_is_the_same_text_on_both(vault, bucket, expected):
    """A stored timestamp falls in the same day and hour bucket on both databases."""
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    async with vault.transaction() as conn:
        await conn.execute(
            audit_events.insert().values(
                at=at, actor_type="system", actor_id="t", action="system:test", decision="allow"
            )
        )
        got = (
            await conn.execute(select(dialect.utc_bucket(conn, audit_events.c.at, bucket)))
        ).scalar_one()
    assert got.replace("T", " ") == expected


async def test_only_postgresql_hands_out_its_asyncpg_connection(vault):
    """The sealing loop's raw connection exists on PostgreSQL only."""
    async with vault.transaction() as conn:
        raw = await dialect.asyncpg_connection(conn)
        assert (raw is None) is is_sqlite(vault)
        if raw is not None:
            assert await raw.fetchval("SELECT 1") == 1


async def test_only_sqlite_serialises_writers(vault):
    """The write gate of `VaultContext.transaction` is for SQLite's single writer only."""
    assert dialect.serialises_writers(vault.engine) is is_sqlite(vault)


async def test_key_in_matches_the_keys_it_is_given(vault):
    """`key_in` matches exactly the bound keys, as an expanding IN (...) or, where the
    reading side binds arrays (PostgreSQL), as one array parameter."""
    arrays = [False] if is_sqlite(vault) else [False, True]
    async with vault.transaction() as conn:
        for key in ("k-a", "k-b", "k-c"):
            await conn.execute(self_service_lockouts.insert().values(lock_key=key))
        for array in arrays:
            column = self_service_lockouts.c.lock_key
            rows = await conn.execute(
                select(column).where(dialect.key_in(column, "keys", array=array)),
                {"keys": ["k-a", "k-c", "k-z"]},
            )
            assert sorted(r[0] for r in rows) == ["k-a", "k-c"]


async def test_table_is_partitioned_names_the_partitioned_tables_of_postgresql(vault):
    """On PostgreSQL the audit trail and its seals are partitioned and a plain table is not;
    on SQLite no table is."""
    partitioned = not is_sqlite(vault)
    async with vault.transaction() as conn:
        assert await dialect.table_is_partitioned(conn, audit_events) is partitioned
        assert await dialect.table_is_partitioned(conn, audit_seals) is partitioned
        assert await dialect.table_is_partitioned(conn, self_service_lockouts) is False


@pytest.mark.parametrize(("rows", "nested_loops"), [(10_000, "off"), (1, "on")])
async def test_set_based_joins_turn_nested_loops_off_only_for_a_large_share(
    vault, rows, nested_loops
):
    """PostgreSQL plans without nested loops inside the block only when the driving rows
    are a large share of the table, and plans as before after it; SQLite runs it as is."""
    async with vault.transaction() as conn:
        await conn.execute(
            self_service_lockouts.insert(),
            [{"lock_key": f"k-{i}", "failures": 1, "level": 0} for i in range(50)],
        )
        async with dialect.set_based_joins(conn, self_service_lockouts, rows):
            inside = None if is_sqlite(vault) else await _setting(conn, "enable_nestloop")
        after = None if is_sqlite(vault) else await _setting(conn, "enable_nestloop")
    if not is_sqlite(vault):
        assert (inside, after) == (nested_loops, "on")


async def _setting(conn, name: str) -> str:
    return (await conn.execute(select(func.current_setting(name)))).scalar_one()


async def test_plan_for_transaction_pins_settings_until_the_transaction_ends(vault):
    """On PostgreSQL the pinned planner settings hold inside the transaction and are gone
    after it; SQLite accepts the call and does nothing."""
    async with vault.transaction() as conn:
        await dialect.plan_for_transaction(conn, enable_hashjoin="off")
        inside = None if is_sqlite(vault) else await _setting(conn, "enable_hashjoin")
    async with vault.transaction() as conn:
        after = None if is_sqlite(vault) else await _setting(conn, "enable_hashjoin")
    if not is_sqlite(vault):
        assert (inside, after) == ("off", "on")


def test_plan_for_transaction_refuses_what_is_not_a_setting_name():
    """A name or value that could carry SQL is refused before anything is sent."""
    with pytest.raises(ValueError, match="not a planner setting"):
        dialect._settings_sql((("enable_hashjoin", "off'); DROP TABLE x; --"),))


async def test_other_sessions_working_counts_a_running_statement_but_not_its_own(vault):
    """PostgreSQL: an idle vault shows no other session at work, another connection inside
    `pg_sleep` shows one; the asking session never counts itself. SQLite has no such view:
    always 0."""

    async def working() -> int:
        # A transaction of its own per look: PostgreSQL keeps one picture of the activity
        # for the rest of a transaction.
        async with vault.engine.connect() as conn:
            return await dialect.other_sessions_working(conn)

    assert await working() == 0
    if is_sqlite(vault):
        return
    async with vault.engine.connect() as other:
        sleeping = asyncio.create_task(other.execute(text("SELECT pg_sleep(1)")))
        seen = 0
        for _ in range(50):
            seen = await working()
            if seen:
                break
            await asyncio.sleep(0.02)
        await sleeping
    assert seen == 1
    assert await working() == 0
