"""Benchmark of the hot path: POST /v1/lookup against a baseline in the same run.

For each database it initialises a fresh Tresor (keyring + migrations), seeds N subjects
with a contract basis through the vault's own crypto, drives the baseline
(bench/baseline_app.py: one row by primary key, raw asyncpg / aiosqlite, no checks, no
audit) with wrk (32 connections, random subject ids), then starts `tresor serve` and drives
`POST /v1/lookup` with the same script, each phase on a settled database (VACUUM ANALYZE,
CHECKPOINT), and prints one JSON object with requests per second, p50 and p99 of both and
`ratio` = lookup / baseline.

Usage: .venv/bin/python bench/lookup.py [--subjects 100000] [--duration 15] [--db postgresql,sqlite]
Needs wrk (Debian package `wrk`) and, for PostgreSQL, the server in TRESOR_BENCH_PG_URL
(default postgresql+asyncpg://postgres@127.0.0.1:5432/test; a database tresor_bench is
created and dropped there, or the one named by TRESOR_BENCH_DB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.seed import seed_sync  # noqa: E402 - imported after the sys.path setup above
from vault.context import VaultContext  # noqa: E402 - imported after the sys.path setup above
from vault.settings import Settings  # noqa: E402 - imported after the sys.path setup above
from vault.storage.db import make_engine  # noqa: E402 - imported after the sys.path setup above

BIN = Path(sys.executable).parent
#: TRESOR_BENCH_PROFILE=dir: record the server with py-spy (pip install py-spy) into dir.
PROFILE_DIR = os.environ.get("TRESOR_BENCH_PROFILE", "")
PG_ADMIN = os.environ.get(
    "TRESOR_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
#: The database created and dropped for the run (TRESOR_BENCH_DB): runs sharing a server
#: at the same time need names of their own, or one drops the other's database.
BENCH_DB = os.environ.get("TRESOR_BENCH_DB", "tresor_bench")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server at {url} did not come up")


def wait_port(port: int, timeout: float = 180) -> None:
    """Wait until something accepts connections on `port` (the baseline app has no health
    route; on a loaded machine its start-up took longer than a fixed pause)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port}")


async def _admin(*statements: str, url: str = PG_ADMIN) -> None:
    """Statements outside a transaction (CREATE DATABASE, VACUUM, CHECKPOINT)."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            for sql in statements:
                await conn.execute(text(sql))
    finally:
        await engine.dispose()


def run_wrk(
    port: int,
    env: dict[str, str],
    duration: int,
    connections: int,
    script: str = "lookup.lua",
) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "5s",
            "-s",
            str(ROOT / "bench" / script),
            f"http://127.0.0.1:{port}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    return json.loads(line[len("WRKJSON ") :])


def settle(kind: str, settings: Settings) -> None:
    """Bring the database to a quiet state before a measured phase."""
    if kind != "postgresql":
        return

    asyncio.run(_admin("VACUUM ANALYZE", "CHECKPOINT", url=settings.effective_database_url))
    time.sleep(1)


def attach_profiler(pid: int, name: str) -> subprocess.Popen[bytes] | None:
    """With TRESOR_BENCH_PROFILE: py-spy samples process `pid` from now until
    `detach_profiler`, so the profile holds the measured phase only (not start-up, seeding
    or waiting), and the measured process stays the server itself (its CPU time, its RSS)."""
    if not PROFILE_DIR:
        return None
    profiler = subprocess.Popen(
        [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "200",
            "-o",
            str(Path(PROFILE_DIR) / f"{name}.txt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # attached before the phase starts
    return profiler


def detach_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        stop(profiler)  # SIGINT: py-spy writes its file


def stop(proc: subprocess.Popen[bytes]) -> None:
    # SIGINT: uvicorn shuts down cleanly, and py-spy (when profiling) writes its file.
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bench_db(
    kind: str, n: int, duration: int, connections: int, workers: int = 1
) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix=f"tresor-bench-{kind}-"))
    env = {
        **os.environ,
        "TRESOR_DATA_DIR": str(work / "data"),
        "TRESOR_POLICIES": str(ROOT / "policies"),
        "TRESOR_LOG_LEVEL": "WARNING",
    }
    if kind == "postgresql":
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
        asyncio.run(_admin(f'CREATE DATABASE "{BENCH_DB}"'))
        env["TRESOR_DATABASE_URL"] = (
            make_url(PG_ADMIN).set(database=BENCH_DB).render_as_string(hide_password=False)
        )
    else:
        env.pop("TRESOR_DATABASE_URL", None)
    tresor = str(BIN / "tresor")
    subprocess.run([tresor, "init"], env=env, check=True, capture_output=True)
    key = (
        subprocess.run(
            [
                tresor,
                "clients",
                "create",
                "bench",
                "--role",
                "lookup",
                "--purpose",
                "order.delivery",
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    settings = Settings.from_env(env)
    started = time.perf_counter()
    ids = seed_sync(lambda: VaultContext.open(settings), n)
    seed_seconds = time.perf_counter() - started
    ids_file = work / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    wrk_env = {**env, "BENCH_IDS": str(ids_file), "BENCH_KEY": key}

    result: dict[str, object] = {
        "subjects": n,
        "workers": workers,
        "seed_seconds": round(seed_seconds, 1),
    }
    # The baseline runs first, on the freshly seeded database, and each phase starts from a
    # settled database (checkpoint, analyze): the lookup phase writes audit rows, whose
    # flushing and autovacuum would otherwise slow a baseline measured after it.
    settle(kind, settings)
    db_url = settings.effective_database_url
    port = free_port()
    proc = subprocess.Popen(
        [
            str(BIN / "uvicorn"),
            "bench.baseline_app:app",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**env, "BENCH_DB_URL": db_url},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        run_wrk(port, wrk_env, 3, connections)
        result["baseline"] = run_wrk(port, wrk_env, duration, connections)
    finally:
        stop(proc)
    settle(kind, settings)
    port = free_port()
    log = open(work / "serve.log", "wb")
    command = [tresor, "serve", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_up(f"http://127.0.0.1:{port}/health")
        except RuntimeError:
            sys.stderr.write((work / "serve.log").read_text()[-3000:])
            raise
        run_wrk(port, wrk_env, 3, connections)  # warm-up: caches, pool, JIT-free but fair
        profiler = attach_profiler(proc.pid, f"lookup-{kind}")
        try:
            result["lookup"] = run_wrk(port, wrk_env, duration, connections)
        finally:
            detach_profiler(profiler)
    finally:
        stop(proc)

    lookup, baseline = result["lookup"], result["baseline"]
    result["ratio"] = round(lookup["rps"] / baseline["rps"], 3)
    if kind == "postgresql":
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
    shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subjects", type=int, default=100_000)
    p.add_argument("--duration", type=int, default=15)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes, the same number for Tresor and the baseline",
    )
    p.add_argument("--db", default="postgresql,sqlite")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    out = {
        kind: bench_db(kind, args.subjects, args.duration, args.connections, args.workers)
        for kind in args.db.split(",")
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
