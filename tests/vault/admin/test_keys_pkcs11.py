"""KEKs on a SoftHSM2 token, on both databases: rotation on the token, migration from the
local keyring (every DEK and retained-field key, resumable after a crash), retirement of the
local versions, and lookups that keep returning the right data throughout."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.support.db import audit_trail
from tests.support.dsar import DPO, contract, erase, invoice, look, new_subject, retained_rows
from tests.support.factories import ADMIN
from tests.support.softhsm import SoftToken
from vault.admin.keys import (
    migrate_to_pkcs11,
    retained_versions_in_use,
    retire_unused,
    rewrap_all,
    rotate,
    versions_in_use,
)
from vault.audit.events import AuditAction
from vault.clock import FrozenClock
from vault.context import VaultContext
from vault.crypto import DecryptionError, KeyringError, LocalKeyring
from vault.rights.export import build_export
from vault.settings import Settings
from vault.storage.tables import subjects

DELIVERY = ("name", "phone", "postal_address")


@pytest.fixture
async def local_vault(settings: Settings, clock: FrozenClock) -> AsyncIterator[VaultContext]:
    """A vault on the local keyring (the state before a migration)."""
    LocalKeyring.create(settings.keyring_path)
    ctx = VaultContext.open(settings, clock=clock)
    yield ctx
    await ctx.close()


async def _open(settings: Settings, token: SoftToken, clock: FrozenClock) -> VaultContext:
    return VaultContext.open(token.settings(settings), clock=clock)


async def _people(vault: VaultContext, seeds: range) -> dict[str, dict[str, Any]]:
    """Subjects with a delivery contract: id -> the fields a delivery lookup returns."""
    out = {}
    for seed in seeds:
        sid, data = await new_subject(vault, seed)
        await contract(vault, sid)
        out[sid] = {f: data[f] for f in DELIVERY}
    return out


async def _lookups(vault: VaultContext, people: dict[str, dict[str, Any]]) -> None:
    """Every subject's delivery lookup returns exactly its own data."""
    for sid, expected in people.items():
        vault.deks.forget(sid)  # unwrap through the provider, not the DEK cache
        result = await look(vault, "order.delivery", "subject_id", sid)
        assert result.fields == expected


async def _blobs(vault: VaultContext) -> dict[str, tuple[int, bytes]]:
    async with vault.engine.connect() as conn:
        rows = (await conn.execute(select(subjects))).all()
    return {r.id: (r.kek_version, bytes(r.wrapped_dek)) for r in rows if r.wrapped_dek}


async def _events(vault: VaultContext, action: AuditAction) -> list[dict[str, Any]]:
    return [json.loads(r.detail) for r in await audit_trail(vault, action)]


async def test_rotate_on_pkcs11_rewraps_every_dek_and_lookups_stay_correct(
    local_vault: VaultContext, settings: Settings, token: SoftToken, clock: FrozenClock
) -> None:
    """On the token, rotation generates a new token key, re-wraps all DEKs under it, and every
    lookup (DEK cache emptied) still returns the subject's own data."""
    await local_vault.close()
    vault = await _open(settings, token, clock)
    try:
        people = await _people(vault, range(20))
        assert await versions_in_use(vault) == {1: 20}  # no token key yet: wraps stay local
        first = await rotate(vault, ADMIN)
        assert (first.new_version, first.rewrapped, first.remaining) == (2, 20, 0)
        before = await _blobs(vault)

        report = await rotate(vault, ADMIN)

        assert (report.new_version, report.rewrapped, report.remaining) == (3, 20, 0)
        assert await versions_in_use(vault) == {3: 20}
        after = await _blobs(vault)
        assert all(after[sid][1] != before[sid][1] for sid in people)
        assert vault.kek.location(3) == "pkcs11"
        await _lookups(vault, people)
        new_sid, _ = await new_subject(vault, 99)
        assert (await _blobs(vault))[new_sid][0] == 3
        assert await retire_unused(vault, ADMIN) == [1, 2]
        assert vault.kek.versions() == [3]
        await _lookups(vault, people)
    finally:
        await vault.close()


async def test_migration_rewraps_every_dek_and_retained_key_then_local_keys_retire(
    local_vault: VaultContext, settings: Settings, token: SoftToken, clock: FrozenClock
) -> None:
    """Migration puts every subject DEK and retained-field key under the first token KEK,
    lookups and the retained invoice fields stay readable, the local versions retire, and the
    keyring file then decrypts nothing: no KEK in it, old wrapped DEKs no longer open."""
    people = await _people(local_vault, range(100, 112))
    erased, erased_data = await new_subject(local_vault, 150)
    await invoice(local_vault, erased)
    await erase(local_vault, DPO, erased)
    local_vault.kek.add_version()  # local v1 and v2 in use
    people |= await _people(local_vault, range(112, 115))
    assert await versions_in_use(local_vault) == {1: 12, 2: 3}
    assert await retained_versions_in_use(local_vault) == {1: 1}
    old_blobs = await _blobs(local_vault)
    await local_vault.close()

    vault = await _open(settings, token, clock)
    try:
        report = await migrate_to_pkcs11(vault, ADMIN)

        assert (report.token_version, report.created) == (3, True)
        assert (report.rewrapped, report.remaining_local) == (16, 0)
        assert await versions_in_use(vault) == {3: 15}
        assert await retained_versions_in_use(vault) == {3: 1}
        await _lookups(vault, people)
        (kept,) = await retained_rows(vault, erased)
        vault.deks.forget(f"retained:{kept.id}")
        export = await build_export(vault, DPO, erased)
        assert (
            export["retention"]["retained_after_erasure"][0]["fields"]["name"]
            == (erased_data["name"])
        )
        assert await _events(vault, AuditAction.KEYS_ROTATE) == [
            {"new_version": 3, "provider": "pkcs11", "migration": True}
        ]
        rewraps = await _events(vault, AuditAction.KEYS_REWRAP)
        assert sum(e["count"] for e in rewraps) == 16
        assert {e["to_version"] for e in rewraps} == {3}

        assert await retire_unused(vault, ADMIN) == [1, 2]

        assert await _events(vault, AuditAction.KEYS_RETIRE) == [{"retired": [1, 2]}]
        assert vault.kek.versions() == [3]
        for sid, (version, blob) in old_blobs.items():
            with pytest.raises(DecryptionError):
                vault.kek.unwrap(sid, version, blob)
        await _lookups(vault, people)
    finally:
        await vault.close()
    doc = json.loads(settings.keyring_path.read_text(encoding="utf-8"))
    assert doc["keks"] == {} and doc["active_kek"] == 0
    with pytest.raises(KeyringError):
        VaultContext.open(settings, clock=clock)  # the file alone opens nothing any more
    fresh = await _open(settings, token, clock)
    try:
        await _lookups(fresh, people)
    finally:
        await fresh.close()


async def test_a_migration_interrupted_midway_keeps_every_row_readable_and_resumes(
    local_vault: VaultContext,
    settings: Settings,
    token: SoftToken,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A crash in the middle of a re-wrap batch leaves rows on the local and the token version
    (the broken batch rolled back), a fresh process reads them all, and running the migration
    again finishes it without creating a second token key."""
    people = await _people(local_vault, range(200, 230))
    await local_vault.close()
    vault = await _open(settings, token, clock)
    try:
        real = vault.deks.rewrap_many
        calls, first = 0, 0

        def crashing(items: list[tuple[str, int, bytes]]) -> list[tuple[int, bytes]]:
            nonlocal calls, first
            calls += 1
            first = first or len(items)
            if calls == 2:  # the second batch, its keys half re-wrapped on the token
                real(items[:5])
                raise RuntimeError("power cut")
            return real(items)

        monkeypatch.setattr(vault.deks, "rewrap_many", crashing)
        assert vault.kek.add_version() == 2  # what migrate_to_pkcs11 does first
        with pytest.raises(RuntimeError, match="power cut"):
            await rewrap_all(vault, ADMIN, batch=7)
        assert 0 < first <= 7  # 7 by key; on PostgreSQL a pass over a window of 7 pages
        assert await versions_in_use(vault) == {1: 30 - first, 2: first}
    finally:
        await vault.close()

    resumed = await _open(settings, token, clock)
    try:
        await _lookups(resumed, people)
        report = await migrate_to_pkcs11(resumed, ADMIN)
        assert (report.token_version, report.created) == (2, False)
        assert (report.rewrapped, report.remaining_local) == (30 - first, 0)
        assert await versions_in_use(resumed) == {2: 30}
        assert resumed.kek.versions() == [1, 2]
        await _lookups(resumed, people)
    finally:
        await resumed.close()
