"""Benchmark of writes: subject creation and consent recording against a baseline in the
same run (issue 18 item 3).

For each database it initialises a fresh Tresor (keyring + migrations), seeds N subjects
(the consents go to random ones among them), drives the baseline (bench/baseline_app.py: one
INSERT of the request's bytes and a COMMIT, no validation, no encryption, no audit) with wrk,
then `tresor serve` with the same load: `POST /v1/subjects` (a new e-mail address and a name
each time: validated, both fields sealed, the blind index written, audited, committed) and
`POST /v1/subjects/{id}/consents` (an explicit SMS-offers consent with its evidence: sealed
reference, history row, audited, committed). Prints one JSON object per database with
requests per second, p50 and p99 of each, and `ratio` = Tresor / baseline.

Usage: .venv/bin/python bench/writes.py [--subjects 20000] [--duration 10] [--connections 32]
[--db postgresql,sqlite]. Needs wrk; PostgreSQL from TRESOR_BENCH_PG_URL as bench/lookup.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lookup import (  # noqa: E402 - imported after the sys.path setup above
    BIN,
    PG_ADMIN,
    _admin,
    attach_profiler,
    detach_profiler,
    free_port,
    run_wrk,
    settle,
    stop,
    wait_up,
)
from bench.seed import seed_sync  # noqa: E402 - imported after the sys.path setup above
from vault.context import VaultContext  # noqa: E402 - imported after the sys.path setup above
from vault.settings import Settings  # noqa: E402 - imported after the sys.path setup above

MODES = ("subject", "consent")


def _writer_key(tresor: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [tresor, "clients", "create", "bench-writer", "--role", "writer"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.strip().splitlines()[-1]


def _drive(
    port: int,
    env: dict[str, str],
    duration: int,
    connections: int,
    profile: tuple[int, str] | None = None,
) -> dict[str, object]:
    """Warm up, then measure each mode once; `profile=(pid, name)`: py-spy samples that
    process during each measured run (TRESOR_BENCH_PROFILE, file `name-mode.txt`)."""
    out: dict[str, object] = {}
    for mode in MODES:
        mode_env = {**env, "BENCH_MODE": mode}
        run_wrk(port, mode_env, 2, connections, "writes.lua")
        profiler = attach_profiler(profile[0], f"{profile[1]}-{mode}") if profile else None
        try:
            out[mode] = run_wrk(port, mode_env, duration, connections, "writes.lua")
        finally:
            detach_profiler(profiler)
    return out


def _wait_port(port: int, timeout: float = 30) -> None:
    """Until something accepts connections on the port (the baseline has no /health)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port}")


def bench_db(kind: str, n: int, duration: int, connections: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix=f"tresor-writes-{kind}-"))
    env = {
        **os.environ,
        "TRESOR_DATA_DIR": str(work / "data"),
        "TRESOR_POLICIES": str(ROOT / "policies"),
        "TRESOR_LOG_LEVEL": "WARNING",
    }
    if kind == "postgresql":
        asyncio.run(_admin("DROP DATABASE IF EXISTS tresor_bench WITH (FORCE)"))
        asyncio.run(_admin("CREATE DATABASE tresor_bench"))
        env["TRESOR_DATABASE_URL"] = (
            make_url(PG_ADMIN).set(database="tresor_bench").render_as_string(hide_password=False)
        )
    else:
        env.pop("TRESOR_DATABASE_URL", None)
    tresor = str(BIN / "tresor")
    subprocess.run([tresor, "init"], env=env, check=True, capture_output=True)
    key = _writer_key(tresor, env)
    settings = Settings.from_env(env)
    ids = seed_sync(lambda: VaultContext.open(settings), n)
    ids_file = work / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    wrk_env = {**env, "BENCH_IDS": str(ids_file), "BENCH_KEY": key}
    result: dict[str, object] = {"subjects": n, "connections": connections}

    settle(kind, settings)
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "uvicorn"), "bench.baseline_app:app", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        env={**env, "BENCH_DB_URL": settings.effective_database_url},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_port(port)
        result["baseline"] = _drive(port, wrk_env, duration, connections)
    finally:
        stop(proc)

    settle(kind, settings)
    port = free_port()
    log = open(work / "serve.log", "wb")
    command = [tresor, "serve", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_up(f"http://127.0.0.1:{port}/health")
        except RuntimeError:
            sys.stderr.write((work / "serve.log").read_text()[-3000:])
            raise
        result["tresor"] = _drive(
            port, wrk_env, duration, connections, (proc.pid, f"writes-{kind}")
        )
    finally:
        stop(proc)

    base: dict[str, dict[str, float]] = result["baseline"]  # type: ignore[assignment]
    ours: dict[str, dict[str, float]] = result["tresor"]  # type: ignore[assignment]
    result["ratio"] = {m: round(ours[m]["rps"] / base[m]["rps"], 3) for m in MODES}
    if kind == "postgresql":
        asyncio.run(_admin("DROP DATABASE IF EXISTS tresor_bench WITH (FORCE)"))
    shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subjects", type=int, default=20_000)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--db", default="postgresql,sqlite")
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    out = {
        kind: bench_db(kind, args.subjects, args.duration, args.connections)
        for kind in args.db.split(",")
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
