"""Migration 0027 stamps, for the first sweep after the upgrade, exactly the subjects the
old sweep looked at on every run (active or restricted, no basis in force), and the sweep
then erases a subject that was due before the upgrade, on both databases."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from tests.conftest import POLICIES
from vault.context import VaultContext
from vault.crypto import LocalKeyring
from vault.rights.retention import run_retention
from vault.settings import Settings
from vault.storage.db import alembic_config, make_engine
from vault.storage.tables import subjects

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
#: subject -> (its status, the status of its one basis or None)
ROWS = {
    "ended-long-ago": ("active", "ended"),
    "contract-in-force": ("active", "active"),
    "restricted-ended": ("restricted", "ended"),
    "no-basis": ("active", None),
    "already-erased": ("erased", "ended"),
}


async def _insert_as_0021(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            for sid, (status, basis) in ROWS.items():
                await conn.execute(
                    text(
                        "INSERT INTO subjects (id, status, dek_version, contact_revision, "
                        "created_at, updated_at) VALUES (:id, :status, 1, 1, :at, :at)"
                    ),
                    {"id": sid, "status": status, "at": LONG_AGO},
                )
                if basis is None:
                    continue
                await conn.execute(
                    text(
                        "INSERT INTO consents (id, subject_id, purpose, basis, status, "
                        "created_at, withdrawn_at) VALUES (:id, :sid, 'order.delivery', "
                        "'contract', :status, :at, :ended)"
                    ),
                    {
                        "id": f"c-{sid}",
                        "sid": sid,
                        "status": basis,
                        "at": LONG_AGO,
                        "ended": LONG_AGO + timedelta(days=1) if basis == "ended" else None,
                    },
                )
    finally:
        await engine.dispose()


async def _stamped_then_swept(settings: Settings) -> tuple[set[str], int, set[str]]:
    ctx = VaultContext.open(settings)
    try:
        async with ctx.engine.connect() as conn:
            stamped = set(
                (
                    await conn.execute(
                        select(subjects.c.id).where(subjects.c.retention_check_at.is_not(None))
                    )
                ).scalars()
            )
        report = await run_retention(ctx)
        async with ctx.engine.connect() as conn:
            left = set(
                (
                    await conn.execute(
                        select(subjects.c.id).where(subjects.c.retention_check_at.is_not(None))
                    )
                ).scalars()
            )
        return stamped, report.erased, left
    finally:
        await ctx.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_upgrade_stamps_the_subjects_without_a_basis_in_force(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
):
    """After the upgrade exactly the active or restricted subjects without a basis in force
    are stamped; the first sweep erases the one due long ago and leaves only the restricted
    one (skipped) stamped."""
    if backend == "sqlite":
        url, drop = f"sqlite+aiosqlite:///{tmp_path / 'stamps.sqlite3'}", None
    else:
        postgres = request.getfixturevalue("postgres")
        name = f"tresor_stamps_{uuid.uuid4().hex[:10]}"
        asyncio.run(postgres._admin(f'CREATE DATABASE "{name}"'))
        url = make_url(postgres.url).set(database=name).render_as_string(hide_password=False)
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    try:
        cfg = alembic_config(url)
        command.upgrade(cfg, "0021")
        asyncio.run(_insert_as_0021(url))
        command.upgrade(cfg, "head")
        settings = Settings(data_dir=tmp_path, database_url=url, policies_dir=POLICIES)
        LocalKeyring.create(settings.keyring_path)
        stamped, erased, left = asyncio.run(_stamped_then_swept(settings))
        assert stamped == {"ended-long-ago", "restricted-ended", "no-basis"}
        assert erased == 1
        assert left == {"restricted-ended"}
    finally:
        if drop is not None:
            asyncio.run(request.getfixturevalue("postgres")._admin(drop))
