"""The real `tresor` console script: init, clients create, keys rotate / status / retire."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.factories import api, bearer, person
from vault.context import VaultContext
from vault.settings import Settings
from vault.subjects.store import decrypt_fields, load_subject

ROOT = Path(__file__).resolve().parents[2]
TRESOR = Path(sys.executable).parent / "tresor"


def _env(data_dir: Path, db_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_")}
    env.update(TRESOR_DATA_DIR=str(data_dir), TRESOR_POLICIES=str(ROOT / "policies"))
    if db_url:
        env["TRESOR_DATABASE_URL"] = db_url
    return env


def tresor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TRESOR), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


async def _create_subjects(env: dict[str, str], key: str, seeds: range) -> dict[str, Any]:
    """Create subjects over HTTP with the CLI-issued writer key; returns id -> decrypted fields."""
    ctx = VaultContext.open(Settings.from_env(env))
    try:
        async with api(ctx) as http:
            sids = []
            for i in seeds:
                r = await http.post("/v1/subjects", json=person(i), headers=bearer(key))
                assert r.status_code == 201, r.text
                sids.append(r.json()["subject_id"])
    finally:
        await ctx.close()
    return await _read(env, sids)


async def _read(env: dict[str, str], sids: list[str]) -> dict[str, Any]:
    """Decrypt every field of the subjects in a fresh context (as a new process would)."""
    ctx = VaultContext.open(Settings.from_env(env))
    try:
        out = {}
        for sid in sids:
            async with ctx.transaction() as conn:
                row = await load_subject(conn, sid)
            out[sid] = (row.kek_version, decrypt_fields(ctx, row, ("email", "name", "phone")))
        return out
    finally:
        await ctx.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_init_creates_a_0600_keyring_and_refuses_a_second_time(db_url: str, data_dir: Path) -> None:
    """`tresor init` creates the keyring (0600) once; a second init fails and changes no key."""
    env = _env(data_dir, db_url)
    out = _ok(tresor(env, "init"))
    keyring = data_dir / "keyring.json"
    assert f"keyring: {keyring} (created, mode 0600)" in out
    assert "(migrated to head)" in out
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    before = keyring.read_bytes()

    again = tresor(env, "init")

    assert again.returncode != 0
    assert "refusing to overwrite keys" in again.stderr
    assert keyring.read_bytes() == before
    assert "(kept)" in _ok(tresor(env, "init", "--if-missing"))
    assert keyring.read_bytes() == before


def test_rotate_status_retire(db_url: str, data_dir: Path) -> None:
    """Rotate re-wraps every DEK under v2, status shows it, retire drops v1, data stays readable."""
    env = _env(data_dir, db_url)
    _ok(tresor(env, "init"))
    created = _ok(tresor(env, "clients", "create", "crm", "--role", "writer"))
    key = created.strip().splitlines()[-1]
    assert key.startswith("tresor_")
    before = asyncio.run(_create_subjects(env, key, range(3)))
    assert {v for v, _ in before.values()} == {1}
    assert "KEK v1 (active): 3 DEKs" in _ok(tresor(env, "keys", "status"))

    out = _ok(tresor(env, "keys", "rotate"))

    assert "KEK version 2 active; re-wrapped 3 DEKs; 0 still under older versions" in out
    status = _ok(tresor(env, "keys", "status")).splitlines()
    assert status == ["KEK v1: 0 DEKs", "KEK v2 (active): 3 DEKs"]
    assert _ok(tresor(env, "keys", "retire")).strip() == "retired KEK versions: 1"
    assert _ok(tresor(env, "keys", "status")).splitlines() == ["KEK v2 (active): 3 DEKs"]
    assert _ok(tresor(env, "keys", "retire")).strip() == "retired KEK versions: none"
    assert stat.S_IMODE((data_dir / "keyring.json").stat().st_mode) == 0o600
    after = asyncio.run(_read(env, list(before)))
    assert after == {sid: (2, fields) for sid, (_, fields) in before.items()}


def test_keys_without_a_keyring_points_to_init(tmp_path: Path) -> None:
    """`tresor keys rotate` before `tresor init` exits 2 and suggests running init."""
    result = tresor(_env(tmp_path / "empty"), "keys", "rotate")
    assert result.returncode == 2
    assert "run `tresor init` first?" in result.stderr
    assert "Traceback" not in result.stderr


def test_rotate_and_verify_print_one_json_summary_with_json(db_url: str, data_dir: Path) -> None:
    """`--json` makes rotate and verify end with one JSON line of counts and seconds (no
    identifiers), and `verify --since-checkpoint` starts after the recorded checkpoint."""
    env = _env(data_dir, db_url)
    _ok(tresor(env, "init"))
    key = _ok(tresor(env, "clients", "create", "crm", "--role", "writer")).strip().splitlines()[-1]
    sids = list(asyncio.run(_create_subjects(env, key, range(3))))

    rotated = json.loads(_ok(tresor(env, "keys", "rotate", "--json")).strip().splitlines()[-1])

    assert rotated["command"] == "keys rotate"
    assert (rotated["rewrapped"], rotated["remaining"], rotated["done"]) == (3, 0, 3)
    assert rotated["seconds"] >= 0 and rotated["rate"] >= 0
    _ok(tresor(env, "audit", "seal"))
    full = json.loads(_ok(tresor(env, "audit", "verify", "--json")).strip().splitlines()[-1])
    assert full["ok"] is True and full["verified"] > 0 and full["started_after"] == 0
    _ok(tresor(env, "audit", "seal"))
    since = json.loads(
        _ok(tresor(env, "audit", "verify", "--since-checkpoint", "--json")).splitlines()[-1]
    )
    assert since["ok"] is True and since["started_after"] == full["verified"]
    for line in (rotated, full, since):
        assert not any(sid in json.dumps(line) for sid in sids)


async def _seed_direct(env: dict[str, str], n: int) -> list[str]:
    """`n` subjects written through the store (faster than over HTTP)."""
    from tests.support.factories import WRITER
    from vault.subjects.store import create_subject

    ctx = VaultContext.open(Settings.from_env(env))
    try:
        return [await create_subject(ctx, WRITER, person(i)) for i in range(n)]
    finally:
        await ctx.close()


async def _versions(env: dict[str, str]) -> dict[int, int]:
    from vault.admin.keys import versions_in_use

    ctx = VaultContext.open(Settings.from_env(env))
    try:
        return await versions_in_use(ctx)
    finally:
        await ctx.close()


async def _rewrap_counts(env: dict[str, str]) -> list[int]:
    from sqlalchemy import select

    from vault.audit.events import AuditAction
    from vault.storage.audit_tables import audit_events

    ctx = VaultContext.open(Settings.from_env(env))
    try:
        async with ctx.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(audit_events.c.detail).where(
                        audit_events.c.action == AuditAction.KEYS_REWRAP.value
                    )
                )
            ).all()
        return [json.loads(r.detail)["count"] for r in rows]
    finally:
        await ctx.close()


#: DEKs the killed rotation starts on.
DEKS_TO_KILL = 2000


def test_rotate_killed_mid_way_resumes_without_losing_a_dek(db_url: str, data_dir: Path) -> None:
    """SIGKILL during `keys rotate` leaves every DEK readable under v1 or v2 and audited as
    far as it got; `keys rotate --resume` re-wraps exactly the rest, none twice. Enough
    DEKs in batches of 2 that the rotation outlasts the poll that sees its first batch
    (300 were all re-wrapped before a poll on a fast machine)."""
    import signal
    import time

    env = _env(data_dir, db_url)
    _ok(tresor(env, "init"))
    sids = asyncio.run(_seed_direct(env, DEKS_TO_KILL))
    before = asyncio.run(_read(env, sids))
    proc = subprocess.Popen(
        [str(TRESOR), "keys", "rotate", "--batch", "2", "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not asyncio.run(_rewrap_counts(env)) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    at_kill = asyncio.run(_versions(env))
    assert at_kill.get(1, 0) > 0, f"rotation finished before the kill: {at_kill}"
    assert sum(at_kill.values()) == DEKS_TO_KILL
    assert sum(asyncio.run(_rewrap_counts(env))) == at_kill.get(2, 0)

    out = _ok(tresor(env, "keys", "rotate", "--resume"))

    assert f"KEK version 2 active; re-wrapped {at_kill[1]} DEKs; 0 still under" in out
    assert asyncio.run(_versions(env)) == {2: DEKS_TO_KILL}
    assert sum(asyncio.run(_rewrap_counts(env))) == DEKS_TO_KILL
    after = asyncio.run(_read(env, sids))
    assert {sid: fields for sid, (_, fields) in after.items()} == {
        sid: fields for sid, (_, fields) in before.items()
    }
