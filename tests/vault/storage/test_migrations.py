"""Models and migrations agree on both databases, and the migrations run down and up again."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from tests.conftest import POLICIES
from tests.support.audit_trail import record_sealed_lookups, verify_chain
from vault.crypto import LocalKeyring
from vault.settings import Settings
from vault.storage.audit_tables import include_name
from vault.storage.db import alembic_config, make_engine, upgrade
from vault.storage.tables import metadata

TABLES = {t.name for t in metadata.sorted_tables}
#: migrations/env.py's lock (not importable: alembic runs that file, it is not a module).
MIGRATION_LOCK_ID = 0x7472_6573_6F72_0002


async def _diff(url: str) -> list:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:

            def compare(sync_conn):
                ctx = MigrationContext.configure(
                    sync_conn, opts={"compare_type": True, "include_name": include_name}
                )
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
    """A database built by the migrations has exactly the schema the models describe (empty
    autogenerate diff)."""
    assert asyncio.run(_diff(db_url)) == []


def _down_and_up(url: str) -> None:
    cfg = alembic_config(url)
    command.downgrade(cfg, "base")
    assert asyncio.run(_tables(url)) - {"alembic_version"} == set()
    command.upgrade(cfg, "head")
    assert TABLES <= asyncio.run(_tables(url))
    assert asyncio.run(_diff(url)) == []


def test_downgrade_to_base_and_upgrade_again_on_sqlite(tmp_path: Path):
    """On a fresh SQLite file the migrations go up, all the way down, and up again to the model
    schema."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.sqlite3'}"
    upgrade(url)
    assert TABLES <= asyncio.run(_tables(url))
    _down_and_up(url)


def test_downgrade_to_base_and_upgrade_again_on_postgresql(postgres):
    """On a fresh PostgreSQL database the migrations go up, all the way down, and up again to the
    model schema."""
    name = f"tresor_migr_{uuid.uuid4().hex[:10]}"
    asyncio.run(postgres._admin(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(postgres.url).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        _down_and_up(url)
    finally:
        asyncio.run(postgres._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_second_migrator_waits_for_the_migration_lock_on_postgresql(postgres):
    """While another session holds the migration advisory lock, `upgrade` waits for it and
    then migrates once it is released."""
    import asyncpg

    name = f"tresor_migr_{uuid.uuid4().hex[:10]}"
    asyncio.run(postgres._admin(f'CREATE DATABASE "{name}"'))
    loop = asyncio.new_event_loop()
    try:
        url = make_url(postgres.url).set(database=name)
        holder = loop.run_until_complete(
            asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
        )
        loop.run_until_complete(holder.execute(f"SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"))
        migrator = threading.Thread(
            target=upgrade, args=(url.render_as_string(hide_password=False),)
        )
        migrator.start()
        waiting = 0
        for _ in range(100):
            waiting = loop.run_until_complete(
                holder.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                )
            )
            if waiting or not migrator.is_alive():
                break
            time.sleep(0.1)
        assert waiting == 1 and migrator.is_alive()
        loop.run_until_complete(holder.execute(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
        migrator.join(120)
        assert not migrator.is_alive()
        assert TABLES <= asyncio.run(_tables(url.render_as_string(hide_password=False)))
        loop.run_until_complete(holder.close())
    finally:
        loop.close()
        asyncio.run(postgres._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _event_positions(url: str) -> list[int | None]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT chain_pos FROM audit_events ORDER BY seq"))
            return [r[0] for r in rows]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_seals_survive_moving_between_the_event_columns_and_their_own_table(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
):
    """Going down to 0009 puts every seal back into its event's columns and coming up to
    0010 moves them into `audit_seals` again: a chain sealed on either layout verifies."""
    if backend == "sqlite":
        url, drop = f"sqlite+aiosqlite:///{tmp_path / 'chain.sqlite3'}", None
    else:
        postgres = request.getfixturevalue("postgres")
        name = f"tresor_migr_{uuid.uuid4().hex[:10]}"
        asyncio.run(postgres._admin(f'CREATE DATABASE "{name}"'))
        url = make_url(postgres.url).set(database=name).render_as_string(hide_password=False)
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    try:
        upgrade(url)
        settings = Settings(data_dir=tmp_path, database_url=url, policies_dir=POLICIES)
        LocalKeyring.create(settings.keyring_path)
        asyncio.run(record_sealed_lookups(settings, 5))
        cfg = alembic_config(url)
        command.downgrade(cfg, "0009")
        assert asyncio.run(_event_positions(url)) == [1, 2, 3, 4, 5]
        command.upgrade(cfg, "head")
        report = asyncio.run(verify_chain(settings))
        assert report.ok and report.verified == 5 and report.unsealed == 0, report
    finally:
        if drop is not None:
            asyncio.run(request.getfixturevalue("postgres")._admin(drop))
