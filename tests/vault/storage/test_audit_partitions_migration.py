"""Migration 0030: on PostgreSQL the audit trail becomes monthly partitions keeping every row,
the sequence and a verifiable chain, and goes back to one table; SQLite is left alone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.conftest import POLICIES
from tests.support.audit_trail import record_sealed_lookups, verify_chain
from vault.audit import partitions
from vault.context import VaultContext
from vault.crypto import LocalKeyring
from vault.settings import Settings
from vault.storage.audit_tables import audit_events
from vault.storage.db import alembic_config, make_engine, upgrade

MOMENTS = [
    datetime(2025, 3, 5, 8, 0, tzinfo=UTC),
    datetime(2025, 3, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2025, 4, 1, 0, 0, tzinfo=UTC),
    datetime(2025, 7, 14, 12, 0, tzinfo=UTC),
]


async def _query(url: str, sql: str) -> list[tuple]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(text(sql))]
    finally:
        await engine.dispose()


async def _months(settings: Settings) -> list[partitions.MonthPartition]:
    ctx = VaultContext.open(settings)
    try:
        return await partitions.months(ctx, exact=True)
    finally:
        await ctx.close()


def _month_after(month: date, n: int) -> date:
    for _ in range(n):
        month = partitions.next_month(month)
    return month


@pytest.fixture
def fresh_pg(postgres, tmp_path: Path):
    """A new PostgreSQL database (migrated by the test itself) and settings for it."""
    name = f"tresor_migr_{uuid.uuid4().hex[:10]}"
    asyncio.run(postgres._admin(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres.url).set(database=name).render_as_string(hide_password=False)
    settings = Settings(data_dir=tmp_path, database_url=url, policies_dir=POLICIES)
    LocalKeyring.create(settings.keyring_path)
    yield url, settings
    asyncio.run(postgres._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_upgrade_partitions_existing_rows_and_downgrade_joins_them(fresh_pg):
    """Events sealed before 0030 are all in their months' partitions afterwards (months with
    rows, the current one and three ahead, DEFAULT), the sequence goes on, the chain
    verifies; downgrading puts every row back into one table that verifies as well."""
    url, settings = fresh_pg
    cfg = alembic_config(url)
    command.upgrade(cfg, "0029")
    asyncio.run(record_sealed_lookups(settings, moments=MOMENTS))
    before = asyncio.run(_query(url, "SELECT seq, at, purpose FROM audit_events ORDER BY seq"))
    # Up to the head: the verifying code of this checkout reads tables of later revisions.
    command.upgrade(cfg, "head")

    after = asyncio.run(_query(url, "SELECT seq, at, purpose FROM audit_events ORDER BY seq"))
    assert after == before and len(after) == len(MOMENTS)
    listed = {p.month: p.rows for p in asyncio.run(_months(settings))}
    (today,) = asyncio.run(_query(url, "SELECT date_trunc('month', now() AT TIME ZONE 'UTC')"))
    current = date(today[0].year, today[0].month, 1)
    ahead = {_month_after(current, n): 0 for n in range(4)}
    assert listed == {date(2025, 3, 1): 2, date(2025, 4, 1): 1, date(2025, 7, 1): 1, **ahead} | {
        None: 0
    }
    report = asyncio.run(verify_chain(settings))
    assert report.ok and report.verified == len(MOMENTS), report

    # The sequence kept its place: the next event follows the last one, and seals too.
    asyncio.run(record_sealed_lookups(settings, moments=[datetime(2025, 7, 15, tzinfo=UTC)]))
    (top,) = asyncio.run(_query(url, "SELECT max(seq) FROM audit_events"))
    assert top[0] == before[-1][0] + 1
    assert asyncio.run(verify_chain(settings)).verified == len(MOMENTS) + 1

    joined = asyncio.run(_query(url, "SELECT * FROM audit_events ORDER BY seq"))
    command.downgrade(cfg, "0029")
    kinds = asyncio.run(
        _query(url, "SELECT relkind::text FROM pg_class WHERE relname = 'audit_events'")
    )
    assert kinds == [("r",)]
    assert len(asyncio.run(_query(url, "SELECT seq FROM audit_events"))) == len(MOMENTS) + 1
    assert (
        asyncio.run(
            _query(url, "SELECT relname FROM pg_class WHERE relname LIKE 'audit_events_y%'")
        )
        == []
    )
    # Every stored column of every event as it was (this checkout's verify needs the head).
    assert asyncio.run(_query(url, "SELECT * FROM audit_events ORDER BY seq")) == joined
    command.upgrade(cfg, "head")
    report = asyncio.run(verify_chain(settings))
    assert report.ok and report.verified == len(MOMENTS) + 1, report


def test_the_partitioned_table_is_what_the_model_says(postgres):
    """On PostgreSQL `audit_events` is partitioned by the model's `postgresql_partition_by`
    with the partition key in its primary key (the autogenerate comparison checks neither)."""
    (key,) = asyncio.run(_query(postgres.url, "SELECT pg_get_partkeydef('audit_events'::regclass)"))
    assert key[0] == audit_events.dialect_options["postgresql"]["partition_by"]
    primary = asyncio.run(
        _query(
            postgres.url,
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'audit_events'::regclass "
            "AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
        )
    )
    assert [name for (name,) in primary] == ["seq", "at"]


def test_sqlite_keeps_one_table(tmp_path: Path):
    """On SQLite 0030 changes nothing: `audit_events` stays one table and has no partitions
    to list."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'one.sqlite3'}"
    upgrade(url)
    settings = Settings(data_dir=tmp_path, database_url=url, policies_dir=POLICIES)
    LocalKeyring.create(settings.keyring_path)
    asyncio.run(record_sealed_lookups(settings, moments=MOMENTS))
    assert asyncio.run(_months(settings)) == []
    tables = asyncio.run(
        _query(url, "SELECT name FROM sqlite_master WHERE name LIKE 'audit_events%'")
    )
    assert tables == [("audit_events",)]
    assert asyncio.run(verify_chain(settings)).ok
