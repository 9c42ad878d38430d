"""Migration 0037: on PostgreSQL `audit_seals` becomes blocks of sequence numbers keeping
every seal and a verifiable chain, and goes back to one table; SQLite is left alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command

from tests.conftest import POLICIES
from tests.support.audit_trail import record_sealed_lookups, verify_chain
from tests.vault.storage.test_audit_partitions_migration import _query, fresh_pg
from vault.crypto import LocalKeyring
from vault.settings import Settings
from vault.storage.audit_tables import audit_seals
from vault.storage.db import alembic_config, upgrade

__all__ = ["fresh_pg"]  # the fixture used here
SEALS = "SELECT seq, chain_pos, chain_mac FROM audit_seals ORDER BY seq"
KIND = "SELECT relkind::text FROM pg_class WHERE relname = 'audit_seals'"


def test_upgrade_moves_the_seals_into_blocks_and_downgrade_joins_them(fresh_pg):
    """Seals stored before 0037 are all in their block afterwards (from the lowest seal's
    block to two past the newest seal's, plus DEFAULT, which stays empty), the chain verifies and
    goes on; downgrading puts every seal back into one table that verifies as well."""
    url, settings = fresh_pg
    cfg = alembic_config(url)
    command.upgrade(cfg, "0036")
    asyncio.run(record_sealed_lookups(settings, 5))
    before = asyncio.run(_query(url, SEALS))
    command.upgrade(cfg, "head")

    assert asyncio.run(_query(url, KIND)) == [("p",)]
    assert asyncio.run(_query(url, SEALS)) == before and len(before) == 5
    assert asyncio.run(_query(url, "SELECT seq FROM audit_seals_from_0 ORDER BY seq")) == [
        (seq,) for seq, _, _ in before
    ]
    assert asyncio.run(_query(url, "SELECT count(*) FROM audit_seals_default")) == [(0,)]
    blocks = asyncio.run(
        _query(url, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_seals'::regclass")
    )
    assert blocks == [(3 + 1,)]  # the newest seal's block, two after it, and DEFAULT
    asyncio.run(record_sealed_lookups(settings, 1))
    report = asyncio.run(verify_chain(settings))
    assert report.ok and report.verified == 6, report

    joined = asyncio.run(_query(url, SEALS))
    command.downgrade(cfg, "0036")
    assert asyncio.run(_query(url, KIND)) == [("r",)]
    assert asyncio.run(_query(url, SEALS)) == joined
    assert (
        asyncio.run(_query(url, "SELECT relname FROM pg_class WHERE relname LIKE 'audit_seals_%'"))
        == []
    )  # no block or DEFAULT left behind
    command.upgrade(cfg, "head")
    report = asyncio.run(verify_chain(settings))
    assert report.ok and report.verified == 6, report


def test_the_seal_table_is_partitioned_as_the_model_says(postgres):
    """On PostgreSQL `audit_seals` is partitioned by the model's `postgresql_partition_by`
    (the autogenerate comparison does not check it)."""
    (key,) = asyncio.run(_query(postgres.url, "SELECT pg_get_partkeydef('audit_seals'::regclass)"))
    assert key[0] == audit_seals.dialect_options["postgresql"]["partition_by"]


def test_sqlite_keeps_one_seal_table(tmp_path: Path):
    """On SQLite 0037 changes nothing: `audit_seals` stays one table and the chain verifies."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'one.sqlite3'}"
    upgrade(url)
    settings = Settings(data_dir=tmp_path, database_url=url, policies_dir=POLICIES)
    LocalKeyring.create(settings.keyring_path)
    asyncio.run(record_sealed_lookups(settings, 3))
    kinds = asyncio.run(
        _query(url, "SELECT type FROM sqlite_master WHERE name LIKE 'audit_seals%'")
    )
    assert kinds == [("table",)]
    report = asyncio.run(verify_chain(settings))
    assert report.ok and report.verified == 3, report
