"""Benchmark of bulk resolution: POST /v1/lookup/batch against a baseline in the same run.

Initialises a fresh Tresor on PostgreSQL or SQLite (`--db`; keyring + migrations), seeds N
subjects with a contract basis for `order.delivery` through the vault's own crypto
(bench/seed.py), settles the database (PostgreSQL: VACUUM ANALYZE, CHECKPOINT), starts
`tresor serve`, waits until its jobs process is done with the retention sweep it starts
with, and resolves every subject through the real HTTP endpoint in batches of 10,000
subject ids, consuming the NDJSON stream line by line (every line checked to be an allowed
answer). Then the baseline: the same rows, fetched in the same chunking (500 ids per `SELECT ...
WHERE id IN (...)`) in this process with the vault's crypto, decrypting the same fields, with no
purpose check, no audit, no HTTP, no JSON. Prints one JSON object: audited records per second, the
server's peak RSS (VmHWM of the `tresor serve` process), the baseline's records per second and
`ratio` = batch / baseline.

Usage: .venv/bin/python bench/bulk.py [--subjects 100000] [--batch 10000] [--concurrency 1]
[--db postgresql|sqlite]. SQLite: the embedded file in a temporary data directory.
PostgreSQL from TRESOR_BENCH_PG_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/test;
a database tresor_bench is created and dropped there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
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
    settle,
    stop,
    wait_up,
)
from bench.seed import seed_sync  # noqa: E402 - imported after the sys.path setup above
from vault.access import bulk  # noqa: E402 - imported after the sys.path setup above
from vault.audit import chain as audit_chain  # noqa: E402 - imported after the sys.path setup above
from vault.context import VaultContext  # noqa: E402 - imported after the sys.path setup above
from vault.settings import Settings  # noqa: E402 - imported after the sys.path setup above
from vault.storage.tables import subjects  # noqa: E402 - imported after the sys.path setup above
from vault.subjects.store import decrypt_fields  # noqa: E402 - imported after the sys.path setup above

PURPOSE = "order.delivery"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _other_cpu(server_pid: int) -> dict[str, float]:
    """CPU seconds so far of PostgreSQL's processes, the server's jobs process and this
    client, to see who the 2 cores went to."""
    postgres = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    postgres += cpu_seconds(int(entry.name))
            except OSError:
                continue
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "postgresql": postgres,
        "jobs": sum(cpu_seconds(c) for c in _jobs_pids(server_pid)),
        "client": usage.ru_utime + usage.ru_stime,
    }


def _jobs_pids(server_pid: int) -> list[int]:
    return [
        int(c)
        for task in Path(f"/proc/{server_pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]


def wait_jobs_idle(server_pid: int, limit: float = 120.0) -> float:
    """Wait until the server's jobs process has gone quiet; returns the seconds waited.

    The jobs process starts with a retention sweep, which on 100,000 subjects keeps
    PostgreSQL busy for about a second (its anti-joins over subjects and consents), and it
    runs once per `TRESOR_RETENTION_INTERVAL` after that. A batch measured during that first
    sweep measures the sweep as well. Quiet: less than 10 ms of CPU in each of four
    consecutive quarter seconds."""
    started = time.perf_counter()
    quiet = 0
    last = sum(cpu_seconds(p) for p in _jobs_pids(server_pid))
    while quiet < 4 and time.perf_counter() - started < limit:
        time.sleep(0.25)
        now = sum(cpu_seconds(p) for p in _jobs_pids(server_pid))
        quiet = quiet + 1 if now - last < 0.01 else 0
        last = now
    return round(time.perf_counter() - started, 1)


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


async def _resolve(port: int, key: str, ids: list[str], batch: int, concurrency: int) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    batches = [ids[s : s + batch] for s in range(0, len(ids), batch)]
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    total = 0

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal total
        while not queue.empty():
            chunk = queue.get_nowait()
            body = {"purpose": PURPOSE, "subject_ids": chunk}
            async with http.stream("POST", "/v1/lookup/batch", json=body, headers=headers) as r:
                if r.status_code != 200:
                    raise RuntimeError(f"batch answered {r.status_code}: {await r.aread()!r}")
                # Consumed incrementally, checked cheaply (the client shares the 2 cores
                # with the server and PostgreSQL): every line must be an allowed answer.
                n = allowed = 0
                tail = b""
                async for part in r.aiter_bytes():
                    part = tail + part
                    cut = part.rfind(b"\n") + 1
                    done, tail = part[:cut], part[cut:]
                    n += done.count(b"\n")
                    allowed += done.count(b'"fields":')
                if tail or allowed != n:
                    raise RuntimeError(f"{n - allowed} of {n} lines were not allowed answers")
                if n != len(chunk):
                    raise RuntimeError(f"{n} lines for {len(chunk)} identifiers")
                total += n

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return total


async def _baseline(settings: Settings, ids: list[str], fields: tuple[str, ...]) -> float:
    """Read and decrypt the same rows in the same chunking: no checks, no audit, no HTTP."""
    ctx = VaultContext.open(settings)
    # The columns the batch reads for deciding and decrypting (the sealed columns of the
    # purpose's fields only, as the batch does), selected the same way.
    columns = [
        subjects.c.id,
        subjects.c.status,
        subjects.c.kek_version,
        subjects.c.wrapped_dek,
        subjects.c.dek_version,
        subjects.c.contact_revision,
        *(subjects.c[f"{f}_ct"] for f in fields),
    ]
    stmt = select(*columns).where(
        subjects.c.id == any_(bindparam("ids", type_=ARRAY(String)))
        if ctx.engine.dialect.name == "postgresql"
        else subjects.c.id.in_(bindparam("ids", expanding=True))
    )
    try:
        started = time.perf_counter()
        n = 0
        for start in range(0, len(ids), bulk.CHUNK):
            async with ctx.engine.connect() as conn:
                rows = (await conn.execute(stmt, {"ids": ids[start : start + bulk.CHUNK]})).all()
            for row in rows:
                decrypt_fields(ctx, row, fields, cache_key=False)  # as the batch does
                n += 1
        seconds = time.perf_counter() - started
    finally:
        await ctx.close()
    if n != len(ids):
        raise SystemExit(f"baseline decrypted {n} of {len(ids)} subjects")
    return seconds


async def _sealed_after(settings: Settings, limit: float = 300.0) -> float | None:
    """Seconds until the sealer has chained every event (None if not within `limit`)."""
    ctx = VaultContext.open(settings)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < limit:
            if await audit_chain.unsealed_count(ctx) == 0:
                return round(time.perf_counter() - started, 1)
            await asyncio.sleep(0.1)
        return None
    finally:
        await ctx.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subjects", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=bulk.MAX_IDENTIFIERS)
    p.add_argument("--concurrency", type=int, default=1, help="batches in flight at once")
    p.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    args = p.parse_args()
    pg = args.db == "postgresql"

    work = Path(tempfile.mkdtemp(prefix="tresor-bench-bulk-"))
    env = {
        **os.environ,
        "TRESOR_DATA_DIR": str(work / "data"),
        "TRESOR_POLICIES": str(ROOT / "policies"),
        "TRESOR_LOG_LEVEL": "WARNING",
    }
    env.pop("TRESOR_DATABASE_URL", None)  # SQLite: the file in the data directory
    if pg:
        asyncio.run(_admin("DROP DATABASE IF EXISTS tresor_bench WITH (FORCE)"))
        asyncio.run(_admin("CREATE DATABASE tresor_bench"))
        env["TRESOR_DATABASE_URL"] = (
            make_url(PG_ADMIN).set(database="tresor_bench").render_as_string(hide_password=False)
        )
    tresor = str(BIN / "tresor")
    try:
        subprocess.run([tresor, "init"], env=env, check=True, capture_output=True)
        key = (
            subprocess.run(
                [tresor, "clients", "create", "bench", "--role", "lookup", "--purpose", PURPOSE],
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
        ids = seed_sync(lambda: VaultContext.open(settings), args.subjects)
        seed_seconds = time.perf_counter() - started
        settle(args.db, settings)  # fresh statistics, as autovacuum would leave them

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
            jobs_settled = wait_jobs_idle(proc.pid)
            rss_idle = peak_rss_kib(proc.pid)
            cpu_before = cpu_seconds(proc.pid)
            others_before = _other_cpu(proc.pid)
            profiler = attach_profiler(proc.pid, f"bulk-{args.db}")
            started = time.perf_counter()
            try:
                resolved = asyncio.run(_resolve(port, key, ids, args.batch, args.concurrency))
            finally:
                batch_seconds = time.perf_counter() - started
                detach_profiler(profiler)
            server_cpu = cpu_seconds(proc.pid) - cpu_before
            others = {k: round(v - others_before[k], 2) for k, v in _other_cpu(proc.pid).items()}
            rss_peak = peak_rss_kib(proc.pid)
            # The sealer (its own process, lower priority) chains the events after the fact;
            # how far behind it was when the last line arrived is part of the picture.
            sealed_after = asyncio.run(_sealed_after(settings))
        finally:
            stop(proc)

        purpose = VaultContext.open(settings).catalogue.get(PURPOSE)
        if purpose is None:
            raise SystemExit(f"the catalogue lacks {PURPOSE}")
        base_seconds = asyncio.run(_baseline(settings, ids, purpose.fields))
        batch_rps = resolved / batch_seconds
        base_rps = len(ids) / base_seconds
        out = {
            "database": args.db,
            "subjects": args.subjects,
            "seed_seconds": round(seed_seconds, 1),
            "waited_for_startup_jobs_seconds": jobs_settled,
            "batch_size": args.batch,
            "chunk_per_transaction": bulk.CHUNK,
            "concurrency": args.concurrency,
            "batch": {
                "records": resolved,
                "seconds": round(batch_seconds, 2),
                "audited_records_per_s": round(batch_rps),
                # Below 1.0: the server waited (on PostgreSQL, or for a CPU) part of the time.
                "server_cpu_share": round(server_cpu / batch_seconds, 2),
                # CPU seconds each party spent during the batch run (2 cores in all).
                "cpu_seconds": {"server": round(server_cpu, 2), **others},
            },
            "server_rss_kib": {"after_start": rss_idle, "peak_VmHWM": rss_peak},
            "audit_chain_sealed_seconds_after_batch": sealed_after,
            "baseline": {
                "what": "same rows, same chunking, read + decrypt in-process; "
                "no checks, audit, HTTP or JSON",
                "seconds": round(base_seconds, 2),
                "records_per_s": round(base_rps),
            },
            "ratio": round(batch_rps / base_rps, 3),
            "target": {"audited_records_per_s": 20_000, "ratio": 0.5},
        }
        print(json.dumps(out, indent=2))
    finally:
        if pg:
            asyncio.run(_admin("DROP DATABASE IF EXISTS tresor_bench WITH (FORCE)"))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
