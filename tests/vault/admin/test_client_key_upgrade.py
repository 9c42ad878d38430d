"""An API key issued before migration 0015 keeps working across the upgrade, on both
databases: the migration marks its hash as legacy and its first use re-hashes it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from tests.conftest import POLICIES
from vault.admin.authentication import ClientAuthenticator
from vault.admin.clients import CURRENT_HASH, KEY_PREFIX, key_hash
from vault.context import VaultContext
from vault.crypto import LocalKeyring
from vault.settings import Settings
from vault.storage.db import alembic_config, make_engine
from vault.storage.tables import clients


async def _insert_as_0014(url: str, client_key: bytes, key: str) -> None:
    """The row `create_client` wrote before 0015: HMAC under the raw server secret, and no
    version column yet."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO clients (id, name, role, purposes, key_hash, created_at) "
                    "VALUES (:id, 'shop', 'lookup', '[\"order.delivery\"]', :hash, :at)"
                ),
                {
                    "id": str(uuid.uuid4()),
                    "hash": hmac.new(client_key, key.encode(), hashlib.sha256).hexdigest(),
                    "at": datetime(2026, 1, 1, tzinfo=UTC),
                },
            )
    finally:
        await engine.dispose()


async def _use_key(settings: Settings, key: str) -> tuple[str | None, str | None, list[tuple]]:
    ctx = VaultContext.open(settings)
    try:
        authenticators = [ClientAuthenticator(ctx, ttl=0) for _ in range(2)]
        first = await authenticators[0].authenticate(key)
        second = await authenticators[1].authenticate(key)
        # Each marks the key's last use in the background: wait for those writes, or a
        # connection still checked out when the engine closes is collected later as garbage.
        for authenticator in authenticators:
            await authenticator.drain()
        async with ctx.engine.connect() as conn:
            rows = (
                await conn.execute(select(clients.c.key_hash, clients.c.key_hash_version))
            ).all()
        expected = key_hash(ctx, key)
        return (
            first and first.name,
            second and second.name,
            [(r.key_hash == expected, r.key_hash_version) for r in rows],
        )
    finally:
        await ctx.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_key_from_before_0015_authenticates_after_the_upgrade(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
):
    """A client row written at revision 0014 comes up as hash version 1, its key signs in
    (twice), and the row then holds the derived-key hash as version 2."""
    if backend == "sqlite":
        url, drop = f"sqlite+aiosqlite:///{tmp_path / 'keys.sqlite3'}", None
    else:
        postgres = request.getfixturevalue("postgres")
        name = f"tresor_keys_{uuid.uuid4().hex[:10]}"
        asyncio.run(postgres._admin(f'CREATE DATABASE "{name}"'))
        url = make_url(postgres.url).set(database=name).render_as_string(hide_password=False)
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    try:
        cfg = alembic_config(url)
        command.upgrade(cfg, "0014")
        settings = Settings(data_dir=tmp_path, database_url=url, policies_dir=POLICIES)
        keyring = LocalKeyring.create(settings.keyring_path)
        key = KEY_PREFIX + "k" * 43
        asyncio.run(_insert_as_0014(url, keyring.secrets.client_key, key))
        command.upgrade(cfg, "head")
        first, second, rows = asyncio.run(_use_key(settings, key))
        assert (first, second) == ("shop", "shop")
        assert rows == [(True, CURRENT_HASH)]
    finally:
        if drop is not None:
            asyncio.run(request.getfixturevalue("postgres")._admin(drop))
