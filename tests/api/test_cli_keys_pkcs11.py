"""The real `tresor` command on a SoftHSM2 token: `keys migrate-to-pkcs11`, `status`,
`rotate`, `retire`, and `tresor serve` wrapping new subjects' DEKs on the token."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.factories import api, bearer, person
from tests.support.server import serve
from tests.support.softhsm import SoftToken
from vault.context import VaultContext
from vault.settings import Settings
from vault.subjects.store import decrypt_fields, load_subject

ROOT = Path(__file__).resolve().parents[2]
TRESOR = Path(sys.executable).parent / "tresor"
FIELDS = ("email", "name", "phone", "postal_address")


def _env(data_dir: Path, db_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRESOR_", "SOFTHSM2_"))}
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


async def _create(env: dict[str, str], key: str, seeds: range) -> list[str]:
    ctx = VaultContext.open(Settings.from_env(env))
    try:
        async with api(ctx) as http:
            sids = []
            for i in seeds:
                r = await http.post("/v1/subjects", json=person(i), headers=bearer(key))
                assert r.status_code == 201, r.text
                sids.append(r.json()["subject_id"])
        return sids
    finally:
        await ctx.close()


async def _read(env: dict[str, str], sids: list[str]) -> dict[str, Any]:
    """Every subject's KEK version and decrypted fields, read by a fresh context."""
    ctx = VaultContext.open(Settings.from_env(env))
    try:
        out = {}
        for sid in sids:
            async with ctx.transaction() as conn:
                row = await load_subject(conn, sid)
            out[sid] = (row.kek_version, decrypt_fields(ctx, row, FIELDS))
        return out
    finally:
        await ctx.close()


def test_migrate_rotate_retire_on_the_token(db_url: str, tmp_path: Path, token: SoftToken) -> None:
    """From a local keyring: migrate moves every DEK to the first token KEK (and is idempotent),
    rotate adds a second token KEK, retire drops the local and the old token version, and
    the data reads the same; the local provider alone can then open nothing."""
    local = _env(tmp_path / "data", db_url)
    hsm = {**local, **token.env()}
    _ok(tresor(local, "init"))
    key = _ok(tresor(local, "clients", "create", "crm", "--role", "writer")).splitlines()[-1]
    sids = asyncio.run(_create(local, key, range(3)))
    before = asyncio.run(_read(local, sids))
    refused = tresor(local, "keys", "migrate-to-pkcs11")
    # a setting that does not fit the command: a usage error, like every bad setting
    assert refused.returncode == 2 and "TRESOR_KEK_PROVIDER=pkcs11" in refused.stderr
    assert _ok(tresor(hsm, "keys", "status")).splitlines() == ["KEK v1 [local] (active): 3 DEKs"]

    out = _ok(tresor(hsm, "keys", "migrate-to-pkcs11"))

    assert out.strip() == (
        "KEK version 2 on the PKCS#11 token active (created); re-wrapped 3 keys; "
        "0 still under keyring-file versions"
    )
    assert "(already on the token); re-wrapped 0 keys" in _ok(
        tresor(hsm, "keys", "migrate-to-pkcs11")
    )
    assert _ok(tresor(hsm, "keys", "status")).splitlines() == [
        "KEK v1 [local]: 0 DEKs",
        "KEK v2 [pkcs11] (active): 3 DEKs",
    ]
    assert "KEK version 3 active; re-wrapped 3 DEKs; 0 still under older versions" in _ok(
        tresor(hsm, "keys", "rotate")
    )
    assert _ok(tresor(hsm, "keys", "retire")).strip() == "retired KEK versions: 1, 2"
    assert _ok(tresor(hsm, "keys", "status")).splitlines() == ["KEK v3 [pkcs11] (active): 3 DEKs"]
    after = asyncio.run(_read(hsm, sids))
    assert after == {sid: (3, fields) for sid, (_, fields) in before.items()}
    alone = tresor(local, "keys", "status")
    assert alone.returncode == 2 and "Traceback" not in alone.stderr
    assert "they live on a PKCS#11 token" in alone.stderr


def test_a_wrong_pin_stops_the_command_without_showing_the_pin(
    tmp_path: Path, token: SoftToken
) -> None:
    """With a wrong PIN in TRESOR_PKCS11_PIN the command exits 2, names the failed login and
    never prints the PIN."""
    env = {**_env(tmp_path / "data"), **token.env()}
    _ok(tresor(env, "init"))
    del env["TRESOR_PKCS11_PIN_FILE"]
    env["TRESOR_PKCS11_PIN"] = "wrong-pin-8642"
    result = tresor(env, "keys", "status")
    assert result.returncode == 2
    assert "login to PKCS#11 token" in result.stderr
    assert "8642" not in result.stderr + result.stdout
    assert token.pin not in result.stderr + result.stdout


def test_serve_on_the_token_wraps_new_subjects_there(tmp_path: Path, token: SoftToken) -> None:
    """A running `tresor serve` on pkcs11 picks up the token KEK a migration created (no
    restart), wraps new subjects' DEKs on the token, and serves their lookups."""
    with serve(tmp_path, **token.env()) as served:
        writer = served.client("crm", "writer")
        shop = served.client("shop", "lookup", "order.delivery")
        status, first = served.call("POST", "/v1/subjects", writer, person(1))
        assert status == 201
        assert "KEK version 2 on the PKCS#11 token active (created)" in served.cli(
            "keys", "migrate-to-pkcs11"
        )
        created = [first["subject_id"]]
        for seed in (2, 3):
            status, body = served.call("POST", "/v1/subjects", writer, person(seed))
            assert status == 201
            created.append(body["subject_id"])
        for seed, sid in zip((1, 2, 3), created, strict=True):
            status, _ = served.call(
                "POST",
                f"/v1/subjects/{sid}/consents",
                writer,
                {"purpose": "order.delivery", "reference": f"order {seed}"},
            )
            assert status == 201
            status, body = served.call(
                "POST", "/v1/lookup", shop, {"purpose": "order.delivery", "subject_id": sid}
            )
            assert status == 200, body
            assert body["fields"]["name"] == person(seed)["name"]
        assert served.cli("keys", "status").splitlines() == [
            "KEK v1 [local]: 0 DEKs",
            "KEK v2 [pkcs11] (active): 3 DEKs",
        ]
