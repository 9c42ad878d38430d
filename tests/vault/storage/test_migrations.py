"""Models and migrations agree on both databases, and the migrations run down and up again."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from vault.storage.db import alembic_config, make_engine, upgrade
from vault.storage.tables import metadata

TABLES = {t.name for t in metadata.sorted_tables}


async def _diff(url: str) -> list:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:

            def compare(sync_conn):  # type: ignore[no-untyped-def]
                ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return compare_metadata(ctx, metadata)

            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


def test_models_and_migrations_agree(db_url: str):
    """A database built by the migrations has exactly the schema the models describe (empty autogenerate diff)."""
    assert asyncio.run(_diff(db_url)) == []


def _down_and_up(url: str) -> None:
    cfg = alembic_config(url)
    command.downgrade(cfg, "base")
    assert asyncio.run(_tables(url)) - {"alembic_version"} == set()
    command.upgrade(cfg, "head")
    assert TABLES <= asyncio.run(_tables(url))
    assert asyncio.run(_diff(url)) == []


def test_downgrade_to_base_and_upgrade_again_on_sqlite(tmp_path: Path):
    """On a fresh SQLite file the migrations go up, all the way down, and up again to the model schema."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.sqlite3'}"
    upgrade(url)
    assert TABLES <= asyncio.run(_tables(url))
    _down_and_up(url)


def test_downgrade_to_base_and_upgrade_again_on_postgresql(postgres):
    """On a fresh PostgreSQL database the migrations go up, all the way down, and up again to the model schema."""
    name = f"tresor_migr_{uuid.uuid4().hex[:10]}"
    asyncio.run(postgres._admin(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(postgres.url).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        _down_and_up(url)
    finally:
        asyncio.run(postgres._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
