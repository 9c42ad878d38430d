"""`tresor audit archive`, `audit prune` and `audit verify --archive` as processes: bad
input, an S3-compatible store (moto's server), and crashes (SIGKILL) mid-way."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlalchemy import func, select

from vault.audit import chain as audit_chain
from vault.audit.events import Actor, AuditAction, Decision, record
from vault.clock import FrozenClock
from vault.context import VaultContext
from vault.storage.audit_tables import audit_archives, audit_events

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
MONTHS = {"2026-01": 3, "2026-02": 3, "2026-03": 2}

#: Runs `tresor` with a SIGKILL of its own process injected at one point (argv[1]).
CRASHING = """
import os, signal, sys
point, argv = sys.argv[1], sys.argv[2:]
calls = []

def kill_on(n):
    calls.append(1)
    if len(calls) == n:
        os.kill(os.getpid(), signal.SIGKILL)

if point == "after-upload":  # the second month is uploaded, not yet recorded
    import vault.audit.archive as archive
    record = archive._record
    async def recording(*args):
        kill_on(2)
        return await record(*args)
    archive._record = recording
elif point == "mid-upload":  # the second segment is half way to its final name
    import shutil
    import vault.audit.archive_store as store
    copy = shutil.copyfile
    def copying(src, dst):
        copy(src, dst)
        if str(src).endswith(".jsonl.gz"):
            kill_on(2)
    store.shutil.copyfile = copying
elif point == "mid-prune":  # the first batch of a month is deleted, the rest not
    import vault.audit.prune as prune
    prune.BATCH = 2
    delete = prune.delete
    def deleting(table):
        kill_on(3)
        return delete(table)
    prune.delete = deleting
from api.cli import main
sys.exit(main(argv))
"""


def _env(vault: VaultContext, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRESOR_", "AWS_"))}
    env.update(
        TRESOR_DATA_DIR=str(vault.settings.data_dir),
        TRESOR_DATABASE_URL=vault.settings.database_url,
        TRESOR_POLICIES=str(POLICIES),
        **extra,
    )
    return env


def _tresor(env: dict[str, str], *args: str, crash: str | None = None) -> Any:
    command = [sys.executable, "-m", "api.cli", *args]
    if crash is not None:
        command = [sys.executable, "-c", CRASHING, crash, *args]
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


async def _trail(vault: VaultContext, clock: FrozenClock) -> None:
    for month, n in MONTHS.items():
        for i in range(n):
            clock.set(datetime.fromisoformat(f"{month}-10T08:00:00+00:00") + timedelta(hours=i))
            async with vault.transaction() as conn:
                await record(
                    conn,
                    at=vault.clock.now(),
                    actor=Actor("client", "shop", f"req-{month}-{i}"),
                    action=AuditAction.LOOKUP,
                    decision=Decision.ALLOW,
                    subject_id="0f0e0d0c-0b0a-4908-8706-050403020100",
                    purpose="order.delivery",
                    fields=["name"],
                )
        await audit_chain.seal_all(vault, grace=timedelta(0))


async def _lookups(vault: VaultContext) -> int:
    """Events of the trail made in `_trail` (archive and prune add events of their own)."""
    async with vault.engine.connect() as conn:
        query = select(func.count()).where(audit_events.c.action == "client:contact:lookup")
        return int((await conn.execute(query)).scalar_one())


async def _months(vault: VaultContext) -> list[str]:
    async with vault.engine.connect() as conn:
        rows = await conn.execute(select(audit_archives.c.month).order_by(audit_archives.c.month))
        return [row[0] for row in rows]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "args",
    [
        ("--before", "2026-13"),
        ("--before", "2026-03", "--to", "s3://bucket/audit"),
        ("--before", "2026-03", "--to", "/nonexistent/archive"),
    ],
)
async def test_bad_input_is_one_error_line_and_changes_nothing(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """A month 13, an S3 endpoint nobody listens on and a missing directory each end in
    one `error:` line and exit status 2, with nothing archived."""
    await _trail(vault, clock)
    target = tmp_path / "archive"
    target.mkdir()
    env = _env(
        vault,
        TRESOR_ARCHIVE_URL=str(target),
        TRESOR_ARCHIVE_S3_ENDPOINT=f"http://127.0.0.1:{_free_port()}",
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",  # noqa: S106 - moto's dummy credentials
        AWS_DEFAULT_REGION="us-east-1",
    )
    done = _tresor(env, "audit", "archive", *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert await _months(vault) == [] and list(target.iterdir()) == []


@pytest.fixture
def s3() -> Iterator[dict[str, str]]:
    """moto's S3-compatible server on a free port, with an empty bucket `audit`."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {
        "TRESOR_ARCHIVE_S3_ENDPOINT": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    boto3.client(
        "s3",
        endpoint_url=env["TRESOR_ARCHIVE_S3_ENDPOINT"],
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106 - moto's dummy credentials
        region_name="us-east-1",
    ).create_bucket(Bucket="audit")
    try:
        yield env
    finally:
        server.stop()


async def test_archive_to_s3_then_prune_then_verify_archive(
    vault: VaultContext, clock: FrozenClock, s3: dict[str, str]
) -> None:
    """Through an S3-compatible store: two months archived (`--json` summary), the same
    command again archives nothing, prune deletes their six events, and `verify --archive`
    and plain `verify` both pass."""
    await _trail(vault, clock)
    env = _env(vault, TRESOR_ARCHIVE_URL="s3://audit/tresor", **s3)
    done = _tresor(env, "audit", "archive", "--before", "2026-03", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["months"] == ["2026-01", "2026-02"] and summary["events"] == 6
    again = _tresor(env, "audit", "archive", "--before", "2026-03", "--json")
    assert json.loads(again.stdout.strip().splitlines()[-1])["months"] == []

    pruned = _tresor(env, "audit", "prune", "--months", "1", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout.strip().splitlines()[-1])["events"] == 6
    assert await _lookups(vault) == 2
    checked = _tresor(env, "audit", "verify", "--archive", "--json")
    assert checked.returncode == 0, checked.stderr
    result = json.loads(checked.stdout.strip().splitlines()[-1])
    assert (result["archived"], result["segments"], result["verified"]) == (6, 2, 2)
    plain = _tresor(env, "audit", "verify")
    assert plain.returncode == 0, plain.stderr


@pytest.mark.parametrize("point", ["after-upload", "mid-upload"])
async def test_a_killed_archive_resumes_without_archiving_twice(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path, point: str
) -> None:
    """SIGKILL while the second month is uploaded (or uploaded but not yet recorded)
    leaves one month recorded and every event in place; the next run records the rest
    once each, and the archive and the live table verify as one chain."""
    await _trail(vault, clock)
    target = tmp_path / "archive"
    target.mkdir()
    env = _env(vault, TRESOR_ARCHIVE_URL=str(target))
    killed = _tresor(env, "audit", "archive", "--before", "2026-04", crash=point)
    assert killed.returncode == -9
    assert await _months(vault) == ["2026-01"] and await _lookups(vault) == 8

    done = _tresor(env, "audit", "archive", "--before", "2026-04")
    assert done.returncode == 0, done.stderr
    assert await _months(vault) == ["2026-01", "2026-02", "2026-03"]
    names = sorted(p.name for p in target.iterdir() if not p.name.startswith("."))
    assert names == [
        "audit-2026-01.jsonl.gz",
        "audit-2026-02.jsonl.gz",
        "audit-2026-03.jsonl.gz",
        "audit-manifest.json",
    ]
    checked = _tresor(env, "audit", "verify", "--archive")
    assert checked.returncode == 0, checked.stderr
    assert "8 archived events in 3 segments" in checked.stdout


async def test_a_killed_prune_resumes_and_the_chain_stays_verifiable(
    vault: VaultContext, clock: FrozenClock, tmp_path: Path
) -> None:
    """SIGKILL after the first batch of a month's deletion: plain `verify` still passes
    (the month counts as pruned), the next prune finishes it, and unarchived March stays."""
    await _trail(vault, clock)
    target = tmp_path / "archive"
    target.mkdir()
    env = _env(vault, TRESOR_ARCHIVE_URL=str(target))
    assert _tresor(env, "audit", "archive", "--before", "2026-03").returncode == 0
    killed = _tresor(env, "audit", "prune", "--months", "1", crash="mid-prune")
    assert killed.returncode == -9
    assert await _lookups(vault) == 6  # the first batch: two of January's three events
    plain = _tresor(env, "audit", "verify")
    assert plain.returncode == 0, plain.stderr

    done = _tresor(env, "audit", "prune", "--months", "1")
    assert done.returncode == 0, done.stderr
    assert await _lookups(vault) == 2  # March: never archived, never pruned
    async with vault.engine.connect() as conn:
        query = select(audit_events.c.action, audit_events.c.actor_type)
        actions = sorted(tuple(row) for row in await conn.execute(query))
    assert actions.count(("admin:audit:prune", "admin")) == 2  # one per month, not one per run
    checked = _tresor(env, "audit", "verify", "--archive")
    assert checked.returncode == 0, checked.stderr
