"""The `tresor` command: start-up failures, db upgrade, openapi, and clients create / list /
revoke."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import select

from api.cli import main
from vault.admin.authentication import ClientAuthenticator
from vault.context import VaultContext
from vault.crypto import LocalKeyring
from vault.settings import Settings
from vault.storage.audit_tables import audit_events
from vault.storage.db import alembic_config
from vault.storage.tables import metadata

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"


def _env(data_dir: Path, policies: Path = POLICIES, db_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_")}
    env.update(TRESOR_DATA_DIR=str(data_dir), TRESOR_POLICIES=str(policies))
    if db_url:
        env["TRESOR_DATABASE_URL"] = db_url
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `tresor ARGS`; a command that is still running at the timeout (e.g. serving) is killed
    and fails the test."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"`tresor {' '.join(args)}` did not exit within {timeout}s")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> Settings:
    """Environment for in-process `tresor` calls against a migrated database (both backends) with a
    keyring."""
    for key in [k for k in os.environ if k.startswith("TRESOR_")]:
        monkeypatch.delenv(key)
    data = tmp_path / "cli-data"
    data.mkdir()
    monkeypatch.setenv("TRESOR_DATA_DIR", str(data))
    monkeypatch.setenv("TRESOR_POLICIES", str(POLICIES))
    monkeypatch.setenv("TRESOR_DATABASE_URL", db_url)
    settings = Settings.from_env()
    LocalKeyring.create(settings.keyring_path)
    return settings


# --- start-up failures -----------------------------------------------------------------


def test_init_with_a_broken_catalogue_creates_nothing(tmp_path: Path):
    """`tresor init` with an invalid purpose catalogue exits 2 naming it and creates no data dir or
    keyring."""
    bad = tmp_path / "policies"
    bad.mkdir()
    text = (POLICIES / "purposes.toml").read_text(encoding="utf-8")
    (bad / "purposes.toml").write_text(
        text.replace('lawful_basis = "contract"', 'lawful_basis = "handshake"', 1)
    )
    data = tmp_path / "data"
    result = _run(_env(data, bad), "init")
    assert result.returncode == 2
    assert "invalid purpose catalogue" in result.stderr and "handshake" in result.stderr
    assert "line " in result.stderr and "Traceback" not in result.stderr
    assert not data.exists()


def test_serve_without_a_keyring_stops_and_points_to_init(tmp_path: Path):
    """`tresor serve` before `tresor init` exits 2 at once with a hint instead of serving."""
    result = _run(_env(tmp_path / "data"), "serve", "--port", str(_free_port()), timeout=30)
    assert result.returncode == 2
    assert "keyring" in result.stderr and "tresor init" in result.stderr
    assert "Traceback" not in result.stderr and "serving" not in result.stdout


def test_serve_with_a_missing_catalogue_stops(tmp_path: Path):
    """`tresor serve` with a policies directory lacking purposes.toml exits 2 naming the file."""
    env = _env(tmp_path / "data")
    assert _run(env, "init").returncode == 0
    env["TRESOR_POLICIES"] = str(tmp_path / "nowhere")
    result = _run(env, "serve", "--port", str(_free_port()), timeout=30)
    assert result.returncode == 2
    assert "invalid purpose catalogue" in result.stderr and "purposes.toml" in result.stderr


# --- db upgrade ------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_in_a_fresh_data_dir(tmp_path: Path):
    """`tresor db upgrade` creates the embedded SQLite database (and its data dir) at head, and is
    idempotent."""
    data = tmp_path / "data"
    env = _env(data)
    first = _run(env, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert "migrated to head" in first.stdout
    with closing(sqlite3.connect(data / "tresor.sqlite3")) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {t.name for t in metadata.sorted_tables} <= names
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert version == (head,)
    again = _run(env, "db", "upgrade")
    assert again.returncode == 0, again.stderr


def test_db_upgrade_on_a_migrated_database_is_a_no_op(cli_env: Settings, capsys):
    """Upgrading an already migrated database (either backend) succeeds without changes."""
    assert main(["db", "upgrade"]) == 0
    assert "migrated to head" in capsys.readouterr().out


# --- openapi ---------------------------------------------------------------------------


def test_openapi_prints_the_document(capsys):
    """`tresor openapi` prints the app's OpenAPI document as JSON, lookup included."""
    from api.app import openapi_document

    assert main(["openapi"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["openapi"].startswith("3.") and doc["info"]["title"] == "Tresor"
    assert "/v1/lookup" in doc["paths"]
    assert doc == json.loads(json.dumps(openapi_document()))


# --- clients ---------------------------------------------------------------------------


def _authenticate(settings: Settings, key: str):
    async def go():
        ctx = VaultContext.open(settings)
        auth = ClientAuthenticator(ctx, ttl=0)
        try:
            return await auth.authenticate(key)
        finally:
            await auth.drain()  # the last-use write
            await ctx.close()

    return asyncio.run(go())


def _audit_actors(settings: Settings) -> list[tuple[str, str, str]]:
    async def go():
        ctx = VaultContext.open(settings)
        try:
            async with ctx.engine.connect() as conn:
                rows = (await conn.execute(select(audit_events).order_by(audit_events.c.seq))).all()
            return [(r.actor_type, r.actor_id, r.action) for r in rows]
        finally:
            await ctx.close()

    return asyncio.run(go())


def test_clients_create_prints_the_key_last(cli_env: Settings, capsys):
    """`tresor clients create` prints a working API key as its last line and audits the admin at the
    CLI."""
    argv = [
        "clients",
        "create",
        "shop",
        "--role",
        "lookup",
        "--purpose",
        "order.delivery",
        "--purpose",
        "invoice.postal",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "created client shop (role lookup, purposes invoice.postal,order.delivery)"
    key = out[-1]
    assert key.startswith("tresor_")
    info = _authenticate(cli_env, key)
    assert info is not None and info.name == "shop"
    assert info.purposes == frozenset({"order.delivery", "invoice.postal"})
    ((actor_type, actor_id, action),) = _audit_actors(cli_env)
    assert actor_type == "admin" and actor_id.startswith("cli@") and action == "admin:client:create"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["clients", "create", "shop", "--role", "lookup"], "purpose"),
        (["clients", "create", "shop", "--role", "lookup", "--purpose", "spam.all"], "spam.all"),
        (["clients", "create", "Shop!", "--role", "writer"], "name"),
    ],
)
def test_clients_create_refuses_bad_input(cli_env: Settings, capsys, argv, message):
    """A lookup client without purpose, an unknown purpose or a bad name is a usage error
    (exit 2) with the reason, and stores nothing."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and message in captured.err
    assert "tresor_" not in captured.out
    assert main(["clients", "list"]) == 0
    assert capsys.readouterr().out == ""


def test_clients_create_refuses_an_unknown_role(cli_env: Settings, capsys):
    """An unknown role is a usage error (exit 2) from the argument parser."""
    with pytest.raises(SystemExit) as info:
        main(["clients", "create", "shop", "--role", "root"])
    assert info.value.code == 2
    assert "role" in capsys.readouterr().err


def test_clients_create_duplicate_name_fails(cli_env: Settings, capsys):
    """Creating a client under a taken name exits 1 and prints no key."""
    assert main(["clients", "create", "crm", "--role", "writer"]) == 0
    capsys.readouterr()
    assert main(["clients", "create", "crm", "--role", "dpo"]) == 1
    captured = capsys.readouterr()
    assert "already exists" in captured.err and "tresor_" not in captured.out


def test_clients_list_and_revoke(cli_env: Settings, capsys):
    """`clients list` shows every client sorted by name; `clients revoke` ends a key at once and
    twice is an error."""
    assert (
        main(["clients", "create", "shop", "--role", "lookup", "--purpose", "order.delivery"]) == 0
    )
    shop_key = capsys.readouterr().out.splitlines()[-1]
    assert main(["clients", "create", "crm", "--role", "writer"]) == 0
    capsys.readouterr()

    assert main(["clients", "list"]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [line[:4] for line in lines] == [
        ["crm", "writer", "-", "active"],
        ["shop", "lookup", "order.delivery", "active"],
    ]
    assert [line[5:] for line in lines] == [["used never", "rate -", "lookups/day -"]] * 2
    assert all(line[4].startswith("key 20") for line in lines)

    assert main(["clients", "revoke", "shop"]) == 0
    assert capsys.readouterr().out.strip() == "revoked client shop"
    assert _authenticate(cli_env, shop_key) is None

    assert main(["clients", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("crm\twriter\t-\tactive\t")
    assert lines[1].startswith("shop\tlookup\torder.delivery\trevoked 20")

    assert main(["clients", "revoke", "shop"]) == 1
    assert "no active client named shop" in capsys.readouterr().err
    actions = [a for _, _, a in _audit_actors(cli_env)]
    assert actions.count("admin:client:revoke") == 1


# --- audit verify against the checkpoint file -------------------------------------------------


def _append_events(settings: Settings, n: int) -> None:
    from vault.audit.events import Actor, AuditAction, Decision, record

    async def go() -> None:
        ctx = VaultContext.open(settings)
        try:
            for i in range(n):
                async with ctx.transaction() as conn:
                    await record(
                        conn,
                        at=ctx.clock.now(),
                        actor=Actor("client", "shop", f"r-{i}"),
                        action=AuditAction.LOOKUP,
                        decision=Decision.DENY,
                        reason="no_consent",
                    )
        finally:
            await ctx.close()

    asyncio.run(go())


def _truncate_after(settings: Settings, position: int) -> None:
    """A database writer deletes the newest events, their seals and checkpoint rows."""
    from sqlalchemy import delete

    from vault.storage.audit_tables import audit_checkpoints, audit_seals

    async def go() -> None:
        ctx = VaultContext.open(settings)
        try:
            async with ctx.engine.begin() as conn:
                newer = select(audit_seals.c.seq).where(audit_seals.c.chain_pos > position)
                await conn.execute(delete(audit_events).where(audit_events.c.seq.in_(newer)))
                await conn.execute(delete(audit_seals).where(audit_seals.c.chain_pos > position))
                await conn.execute(
                    delete(audit_checkpoints).where(audit_checkpoints.c.chain_pos > position)
                )
        finally:
            await ctx.close()

    asyncio.run(go())


def test_audit_verify_names_the_position_of_a_truncated_tail(cli_env: Settings, capsys, tmp_path):
    """After the newest events were deleted with their seals and checkpoint rows, `tresor
    audit verify` exits 1 naming the position the checkpoint file still covers; a witness
    copy made by `tresor audit witness` catches it as well."""
    _append_events(cli_env, 4)
    assert main(["audit", "seal"]) == 0
    _append_events(cli_env, 3)
    assert main(["audit", "seal"]) == 0
    capsys.readouterr()
    assert main(["audit", "witness"]) == 0
    witness = tmp_path / "witness.jsonl"
    witness.write_text(capsys.readouterr().out)
    assert main(["audit", "verify", "--nice", "0"]) == 0
    assert "(position 7) matches" in capsys.readouterr().out
    _truncate_after(cli_env, 4)
    assert main(["audit", "verify", "--nice", "0"]) == 1
    err = capsys.readouterr().err
    assert "position 7" in err and "truncated" in err, err
    cli_env.audit_checkpoint_path.unlink()
    assert main(["audit", "verify", "--nice", "0", "--checkpoints", str(witness)]) == 1
    assert "position 7" in capsys.readouterr().err


def test_audit_verify_checks_with_an_exported_public_key_only(cli_env: Settings, capsys, tmp_path):
    """`tresor audit verify --public-key` passes with the key `tresor audit public-key`
    exported, fails (1) with another Ed25519 key, and refuses (2) a file that is no Ed25519
    public key, naming the file."""
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from vault.crypto import Signer

    _append_events(cli_env, 3)
    assert main(["audit", "seal"]) == 0
    capsys.readouterr()
    assert main(["audit", "public-key"]) == 0
    ours = tmp_path / "ours.pem"
    ours.write_text(capsys.readouterr().out)
    assert main(["audit", "verify", "--nice", "0", "--public-key", str(ours)]) == 0
    other = tmp_path / "other.pem"
    other.write_text(Signer(bytes(range(32))).verify_key.pem())
    assert main(["audit", "verify", "--nice", "0", "--public-key", str(other)]) == 1
    assert "bad signature" in capsys.readouterr().err
    ec = tmp_path / "ec.pem"
    ec.write_bytes(
        generate_private_key(SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    assert main(["audit", "verify", "--nice", "0", "--public-key", str(ec)]) == 2
    assert f"{ec} is not an Ed25519 public key" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    assert main(["audit", "verify", "--nice", "0", "--public-key", str(garbage)]) == 2


@pytest.mark.parametrize("inline", [True, False])
def test_an_app_with_its_own_vault_runs_the_jobs_as_the_settings_say(
    cli_env: Settings, inline: bool
):
    """The app `api.asgi` builds in each worker runs the periodic jobs itself only while
    `Settings.inline_jobs` (TRESOR_INLINE_JOBS) is true."""
    import dataclasses

    from litestar.testing import TestClient

    from api.app import create_app

    app = create_app(dataclasses.replace(cli_env, inline_jobs=inline), configure_logs=False)
    with TestClient(app):
        assert bool(app.state.jobs) is inline


def test_retention_and_export_print_a_json_summary_with_json(cli_env: Settings, capsys):
    """`retention run --json` prints one JSON line of counts; `audit export --json` keeps
    stdout for the events and puts its summary line on stderr."""
    _append_events(cli_env, 3)
    capsys.readouterr()
    assert main(["retention", "run", "--nice", "0", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["command"] == "retention run"
    assert summary["erased"] == 0 and summary["expired"] == 0 and summary["seconds"] >= 0
    assert main(["audit", "export", "--nice", "0", "--json"]) == 0
    out, err = capsys.readouterr()
    exported = [json.loads(line) for line in out.splitlines()]
    assert len(exported) >= 3
    line = json.loads(err.strip().splitlines()[-1])
    assert line["command"] == "audit export" and line["exported"] == len(exported)
    assert line["done"] == len(exported)


def test_ctrl_c_exits_130_and_says_a_rerun_resumes(cli_env: Settings, capsys, monkeypatch):
    """An interrupted command exits with 130 and tells the operator to run it again."""
    import vault.rights.retention as retention

    async def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(retention, "run_retention", interrupted)
    assert main(["retention", "run", "--nice", "0"]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err


def test_serve_help_says_what_workers_do_on_sqlite():
    """`tresor serve --help` tells that on SQLite more workers share one write lock."""
    from api.cli import build_parser

    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    text = " ".join(serve.format_help().split())
    assert "On SQLite" in text and "one write lock" in text and "not write throughput" in text
