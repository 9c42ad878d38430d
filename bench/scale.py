"""Scale benchmark: seed N subjects and M audit events fast, then measure what grows.

Seeds (binary COPY) into a PostgreSQL database of its own (`--db-name`, default
tresor_scale, dropped and created), subjects with a contract basis through the vault's own
crypto and lookup-like audit events spread over the last months, sealed by the vault's
sealer; then measures and prints one JSON object (see `measure`): lookup p50/p99 and req/s
at the small and at the full size, bytes on disk per subject and per event, rotate DEKs/s,
verify events/s, retention sweep seconds with 1 % of subjects due (and the next sweep's,
with nothing due; and how long listing the due subjects takes the old way, anti-joins over
every subject, against the stamps of migration 0027, in the same run), the audit search
p99 for one subject, and the machine's load average.

Usage: .venv/bin/python bench/scale.py [--subjects 1000000] [--events 10000000]
       [--small 100000] [--duration 10] [--workers 2] [--keyops-only] [--softhsm-only N]
Needs wrk and the server in TRESOR_BENCH_PG_URL (default
postgresql+asyncpg://postgres@127.0.0.1:5432/test).
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
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.progress import CliProgress  # noqa: E402 - imported after the sys.path setup above
from bench import scale_lifecycle  # noqa: E402
from bench.lookup import (  # noqa: E402
    BIN,
    PG_ADMIN,
    _admin,
    free_port,
    run_wrk,
    settle,
    stop,
    wait_up,
)
from bench.seed import _person  # noqa: E402
from vault.audit import chain, chain_links  # noqa: E402
from vault.bases.consents import sealed_texts  # noqa: E402
from vault.context import VaultContext  # noqa: E402
from vault.settings import Settings  # noqa: E402
from vault.storage.pg_direct import asyncpg_dsn  # noqa: E402
from vault.subjects.contact import normalise_contact  # noqa: E402
from vault.subjects.store import sealed_columns  # noqa: E402

CHUNK = 5000


def _subject_rows(ctx: VaultContext, start: int, stop_at: int) -> Iterator[tuple[dict, dict]]:
    now = ctx.clock.now()
    for i in range(start, stop_at):
        sid = str(uuid.uuid4())
        dek, kek_version, wrapped = ctx.deks.new_dek(sid)
        fields = {k: v for k, v in normalise_contact(_person(i)).items() if v is not None}
        basis_id = str(uuid.uuid4())
        yield (
            {
                "id": sid,
                "status": "active",
                "kek_version": kek_version,
                "wrapped_dek": wrapped,
                "dek_version": 1,
                "contact_revision": 1,
                "created_at": now,
                "updated_at": now,
                **sealed_columns(ctx, sid, dek, 1, fields, revision=1),
            },
            {
                "id": basis_id,
                "subject_id": sid,
                "purpose": "order.delivery",
                "basis": "contract",
                "status": "active",
                **sealed_texts(dek, sid, 1, basis_id, reference=f"order {i}"),
                "created_at": now,
                "granted_at": now,
            },
        )


async def seed_subjects(
    ctx: VaultContext, conn: asyncpg.Connection, start: int, stop_at: int, ids: list[str]
) -> None:
    """Subjects `start`..`stop_at` with a contract basis, COPY in chunks."""
    with CliProgress() as progress:
        progress.begin("seed subjects", stop_at - start)
        for lo in range(start, stop_at, CHUNK):
            pairs = list(_subject_rows(ctx, lo, min(stop_at, lo + CHUNK)))
            for table, rows in (
                ("subjects", [p[0] for p in pairs]),
                ("consents", [p[1] for p in pairs]),
            ):
                columns = list(rows[0])
                await conn.copy_records_to_table(
                    table, records=[tuple(r[c] for c in columns) for r in rows], columns=columns
                )
            ids.extend(p[0]["id"] for p in pairs)
            progress.advance(len(pairs))


async def seed_events(
    ctx: VaultContext, conn: asyncpg.Connection, m: int, ids: list[str], months: int
) -> None:
    """`m` lookup events over the last `months` months (time rising with seq), COPY."""
    columns = [c for c in chain_links.EVENT_COLUMNS if c != "seq"]
    now = ctx.clock.now()
    first = now - timedelta(days=30 * months)
    step = (now - first) / max(m, 1)
    with CliProgress() as progress:
        progress.begin("seed events", m)
        for lo in range(0, m, 50_000):
            records = []
            for i in range(lo, min(m, lo + 50_000)):
                records.append(
                    (
                        first + step * i,
                        None,
                        "client",
                        "bench",
                        "lookup",
                        ids[i % len(ids)],
                        "order.delivery",
                        "name,phone,postal_address",
                        "allow",
                        None,
                        None,
                        None,
                    )
                )
            await conn.copy_records_to_table("audit_events", records=records, columns=columns)
            progress.advance(len(records))


async def seal(ctx: VaultContext, m: int) -> float:
    started = time.perf_counter()
    with CliProgress() as progress:
        progress.begin("seal events", m)
        while True:
            report = await chain.seal_pending(
                ctx, batch=50_000, grace=timedelta(0), checkpoint_every=100_000
            )
            if not report.sealed:
                break
            progress.advance(report.sealed)
    await chain.checkpoint_head(ctx)
    return time.perf_counter() - started


async def sizes(url: str, n: int, m: int) -> dict[str, float]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        # Every partition's size (a partitioned table's own size is 0): the trail and its
        # seals are partitioned on PostgreSQL, the subjects are not (the tree is the table).
        q = (
            "SELECT (pg_total_relation_size($1::regclass) + coalesce((SELECT "
            "sum(pg_total_relation_size(relid)) FROM pg_partition_tree($1::regclass) "
            "WHERE relid <> $1::regclass), 0))::bigint"
        )
        subj = sum([await conn.fetchval(q, t) for t in ("subjects", "consents")])
        events = sum([await conn.fetchval(q, t) for t in ("audit_events", "audit_seals")])
    finally:
        await conn.close()
    return {
        "bytes_per_subject": round(subj / max(n, 1), 1),
        "bytes_per_event": round(events / max(m, 1), 1),
    }


async def make_due(url: str, share: float) -> int:
    """End the contract basis of `share` of the subjects twenty years ago: their retention
    has run out, so the next sweep erases them. Like the vault's own writers
    (`vault.subjects.retention_schedule`), ending a basis stamps its subject for the sweep."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with conn.transaction():
            status = await conn.execute(
                "UPDATE consents SET status = 'ended', "
                "withdrawn_at = now() - interval '20 years' "
                "WHERE id IN (SELECT id FROM consents ORDER BY id LIMIT "
                "(SELECT (count(*) * $1::float8)::int FROM consents))",
                share,
            )
            await conn.execute(
                "UPDATE subjects SET retention_check_at = now() WHERE id IN "
                "(SELECT subject_id FROM consents WHERE status = 'ended')"
            )
        await conn.execute("ANALYZE consents")
        await conn.execute("ANALYZE subjects")
        return int(status.rsplit(" ", 1)[-1])
    finally:
        await conn.close()


async def due_ids(url: str) -> set[str]:
    """The subjects stamped for the sweep (those `make_due` made due)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch("SELECT id FROM subjects WHERE retention_check_at IS NOT NULL")
        return {r["id"] for r in rows}
    finally:
        await conn.close()


#: How the sweep chose the subjects to look at before migration 0027: every subject
#: anti-joined with its bases, page by page, and the count of subjects without a basis.
ANTI_JOIN_PAGE = (
    "SELECT s.id FROM subjects s WHERE s.status IN ('active', 'restricted') "
    "AND EXISTS (SELECT 1 FROM consents c WHERE c.subject_id = s.id) "
    "AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.subject_id = s.id "
    "AND c.status IN ('granted', 'active', 'pending_confirmation')) "
    "AND s.id > $1 ORDER BY s.id LIMIT 500"
)
WITHOUT_BASIS = (
    "SELECT count(*) FROM subjects s WHERE s.status = 'active' "
    "AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.subject_id = s.id)"
)
#: How it chooses them now: the subjects stamped due, by index.
STAMPED_PAGE = (
    "SELECT id, retention_check_at FROM subjects WHERE retention_check_at <= now() "
    "AND (retention_check_at, id) > ($1, $2) ORDER BY retention_check_at, id LIMIT 500"
)


async def retention_selection(url: str, runs: int = 5) -> dict[str, Any]:
    """Median seconds to list every subject due, the old way (anti-joins) and the new one
    (stamps), measured in the same run on the same data: the sweep's cost apart from the
    erasures themselves, which are O(due) either way."""
    conn = await asyncpg.connect(asyncpg_dsn(url))

    async def anti_join() -> int:
        found, after = 0, ""
        while True:
            rows = await conn.fetch(ANTI_JOIN_PAGE, after)
            found += len(rows)
            if len(rows) < 500:
                await conn.fetchval(WITHOUT_BASIS)
                return found
            after = rows[-1]["id"]

    async def stamped() -> int:
        found, after = 0, (datetime(1970, 1, 1, tzinfo=UTC), "")
        while True:
            rows = await conn.fetch(STAMPED_PAGE, *after)
            found += len(rows)
            if len(rows) < 500:
                return found
            after = (rows[-1]["retention_check_at"], rows[-1]["id"])

    try:
        out: dict[str, Any] = {}
        for name, way in (("anti_join", anti_join), ("stamped", stamped)):
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                out[f"{name}_found"] = await way()
                times.append(time.perf_counter() - t0)
            out[f"{name}_seconds"] = round(sorted(times)[runs // 2], 4)
        out["ratio"] = round(out["anti_join_seconds"] / max(out["stamped_seconds"], 1e-6), 1)
        return out
    finally:
        await conn.close()


async def idle_sweep_seconds(settings: Settings, runs: int = 5) -> float:
    """Median seconds of `run_retention` in one process when nothing is due (no start-up
    of the command counted): what every periodic sweep of a settled vault costs."""
    from vault.rights.retention import run_retention

    ctx = VaultContext.open(settings)
    try:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            await run_retention(ctx)
            times.append(time.perf_counter() - t0)
        return round(sorted(times)[runs // 2], 4)
    finally:
        await ctx.close()


async def audit_search_p99(settings: Settings, ids: list[str], n: int = 200) -> dict[str, float]:
    """The DPO console's search for one subject's events (first page), `n` random subjects."""
    import random

    from vault.audit.events import Actor
    from vault.audit.query import AuditFilter, search

    ctx = VaultContext.open(settings)
    dpo = Actor("client", "bench-dpo")
    times = []
    try:
        for sid in random.sample(ids, min(n, len(ids))):
            t0 = time.perf_counter()
            await search(ctx, dpo, AuditFilter(subject_id=sid))
            times.append(time.perf_counter() - t0)
    finally:
        await ctx.close()
    times.sort()
    return {
        "p50_ms": round(times[len(times) // 2] * 1000, 2),
        "p99_ms": round(times[int(len(times) * 0.99) - 1] * 1000, 2),
    }


def tresor(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run a `tresor ... --json` command; its JSON summary line, plus the CPU seconds the
    command and its worker processes used (`cpu_seconds`, start-up included) and per unit
    done (`cpu_us_per_item`): on a shared machine these say more than the rate."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [str(BIN / "tresor"), *args, "--json"], env=env, capture_output=True, text=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode not in (0, 1):
        raise RuntimeError(out.stderr[-2000:])
    summary = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary["cpu_seconds"] = round(cpu, 2)
    if summary.get("done"):
        summary["cpu_us_per_item"] = round(cpu / summary["done"] * 1e6, 2)
    summary["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return summary


def lookups(
    env: dict[str, str],
    ids: list[str],
    key: str,
    work: Path,
    duration: int,
    during: list[str] | None = None,
    when_measured: Callable[[], Any] | None = None,
) -> Any:
    """wrk against `tresor serve` (32 connections, random subjects); with `during`, that
    `tresor` command runs alongside the measured phase: (wrk result, its JSON summary),
    and with `when_measured` also what it returns, called as the measured phase ends."""
    ids_file = work / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    port = free_port()
    log = open(work / "serve.log", "wb")
    # The server's own periodic retention sweep runs at its start: in the retention phase
    # it erased part of the due subjects alongside the measured `retention run` (which
    # then reported fewer erasures than were due) and loaded the hot path it measures.
    serve_env = {**env, "TRESOR_RETENTION_INTERVAL": "0"}
    proc = subprocess.Popen(
        [str(BIN / "tresor"), "serve", "--port", str(port)],
        env=serve_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_up(f"http://127.0.0.1:{port}/health")
        wrk_env = {**env, "BENCH_IDS": str(ids_file), "BENCH_KEY": key}
        run_wrk(port, wrk_env, 3, 32)
        if during is None:
            return run_wrk(port, wrk_env, duration, 32)
        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(tresor, env, *during)
            time.sleep(1)  # the command's start-up (imports, a version added) is not its work
            measured = run_wrk(port, wrk_env, duration, 32)
            if when_measured is not None:
                seen = when_measured()
                return measured, job.result(), seen
            return measured, job.result()
    finally:
        stop(proc)


SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")


async def token_rewrap(settings: Settings, url: str, n: int = 2000) -> dict[str, float]:
    """DEKs per second the token re-wraps in one process without the database: one call
    per DEK (the way before batches) against one batch call (`rewrap_many`), same run."""
    ctx = VaultContext.open(settings)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT id, kek_version, wrapped_dek FROM subjects ORDER BY id LIMIT $1", n
        )
        items = [(r["id"], r["kek_version"], bytes(r["wrapped_dek"])) for r in rows]
        t0 = time.perf_counter()
        for item in items:
            ctx.deks.rewrap(*item)
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        ctx.deks.rewrap_many(items)
        batched = time.perf_counter() - t0
        return {
            "one_call_per_dek": round(len(items) / one, 1),
            "batched": round(len(items) / batched, 1),
        }
    finally:
        await conn.close()
        await ctx.close()


def _in_process(env: dict[str, str], url: str) -> dict[str, float]:
    """`token_rewrap` here: the token library reads its configuration from this process's
    environment."""
    os.environ["SOFTHSM2_CONF"] = env["SOFTHSM2_CONF"]
    return asyncio.run(token_rewrap(Settings.from_env(env), url))


def softhsm_rotation(n: int, workers: int, db_name: str) -> dict[str, Any]:
    """Key operations on a SoftHSM2 token: `n` subjects seeded under the keyring file, moved
    onto the token (`keys migrate-to-pkcs11`), then rotated on it (`keys rotate`)."""
    import secrets

    work = Path(tempfile.mkdtemp(prefix="tresor-scale-hsm-"))
    tokens = work / "tokens"
    tokens.mkdir()
    conf = work / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    pin = secrets.token_hex(8)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "tresor-bench"]
        + ["--so-pin", secrets.token_hex(8), "--pin", pin],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        check=True,
        capture_output=True,
    )
    pin_file = work / "user.pin"
    pin_file.write_text(pin + "\n")
    pin_file.chmod(0o600)
    name = f"{db_name}_hsm"
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    env = {
        **os.environ,
        "TRESOR_DATA_DIR": str(work / "data"),
        "TRESOR_POLICIES": str(ROOT / "policies"),
        "TRESOR_LOG_LEVEL": "WARNING",
        "TRESOR_DATABASE_URL": url,
    }
    try:
        subprocess.run([str(BIN / "tresor"), "init"], env=env, check=True, capture_output=True)

        async def seed() -> None:
            ctx = VaultContext.open(Settings.from_env(env))
            conn = await asyncpg.connect(asyncpg_dsn(url))
            try:
                await seed_subjects(ctx, conn, 0, n, [])
            finally:
                await conn.close()
                await ctx.close()

        asyncio.run(seed())
        hsm = {
            **env,
            "SOFTHSM2_CONF": str(conf),
            "TRESOR_KEK_PROVIDER": "pkcs11",
            "TRESOR_PKCS11_MODULE": str(SOFTHSM_MODULE),
            "TRESOR_PKCS11_TOKEN": "tresor-bench",
            "TRESOR_PKCS11_PIN_FILE": str(pin_file),
        }
        return {
            "subjects": n,
            "migrate_to_pkcs11": tresor(
                hsm, "keys", "migrate-to-pkcs11", "--workers", str(workers)
            ),
            "rotate": tresor(hsm, "keys", "rotate", "--workers", str(workers), "--no-pace"),
            "rotate_one_process": tresor(hsm, "keys", "rotate", "--workers", "1", "--no-pace"),
            "token_rewrap_per_core": _in_process(hsm, url),
        }
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        shutil.rmtree(work, ignore_errors=True)


def keyops(
    env: dict[str, str], settings: Settings, url: str, workers: int, result: dict[str, Any]
) -> None:
    """Rotate and verify (all workers, then one process), next to their ceilings measured
    in the same run (`bench.ceilings`), and each rate as a share of its ceiling. Rotate
    runs flat out here (`--no-pace --nice 0`): set against the hardware's ceilings, its
    speed must not depend on how busy the shared machine happens to be; the paced rotation
    operators get by default is measured under lookups (`rotate_under_lookups`)."""
    from bench.ceilings import ceilings

    flat_out = ("--no-pace", "--nice", "0")
    result["ceilings"] = top = asyncio.run(ceilings(settings, url))
    result["rotate"] = tresor(env, "keys", "rotate", "--workers", str(workers), *flat_out)
    result["rotate_one_process"] = tresor(env, "keys", "rotate", "--workers", "1", *flat_out)
    result["verify"] = tresor(env, "audit", "verify", "--workers", str(workers))
    result["verify_one_process"] = tresor(env, "audit", "verify", "--workers", "1")
    result["verify_since_checkpoint"] = tresor(env, "audit", "verify", "--since-checkpoint")

    def ratio(rate: float, ceiling: float) -> float:
        return round(rate / ceiling, 3) if ceiling else 0.0

    result["ratios"] = {
        "rotate_to_pg_update": ratio(result["rotate"]["rate"], top["pg_update_rows_per_s"]),
        "rotate_to_pg_unnest_update_2conn": ratio(
            result["rotate"]["rate"], top["pg_unnest_update_rows_per_s_2conn"]
        ),
        "rotate_one_process_to_pg_unnest_update": ratio(
            result["rotate_one_process"]["rate"], top["pg_unnest_update_rows_per_s"]
        ),
        "verify_to_pg_read_2conn": ratio(
            result["verify"]["rate"], top["pg_read_events_per_s_2conn"]
        ),
        "verify_one_process_to_pg_read": ratio(
            result["verify_one_process"]["rate"], top["pg_read_events_per_s"]
        ),
        "verify_one_process_to_walk": ratio(
            result["verify_one_process"]["rate"], top["verify_walk_per_core"]
        ),
        "verify_workers_to_one_process": ratio(
            result["verify"]["rate"], result["verify_one_process"]["rate"]
        ),
        "rotate_workers_to_one_process": ratio(
            result["rotate"]["rate"], result["rotate_one_process"]["rate"]
        ),
    }


#: What a rotation costs the server, read before and after it (cluster-wide counters, so a
#: measurement holds the quiet lock): log bytes and full-page images, checkpoints asked
#: for by a full log against those of the timeout, buffers written by backends themselves,
#: and the subjects table's updates, heap-only updates and size.
SERVER_COUNTERS = (
    "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn AS wal_bytes, "
    "(SELECT wal_fpi FROM pg_stat_wal) AS wal_fpi, "
    "(SELECT checkpoints_req FROM pg_stat_bgwriter) AS checkpoints_req, "
    "(SELECT checkpoints_timed FROM pg_stat_bgwriter) AS checkpoints_timed, "
    "(SELECT buffers_backend FROM pg_stat_bgwriter) AS buffers_backend, "
    "(SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'subjects') AS upd, "
    "(SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'subjects') AS hot_upd, "
    "pg_relation_size('subjects') AS heap_bytes, "
    "pg_total_relation_size('subjects') AS total_bytes"
)


async def server_counters(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        return {k: int(v) for k, v in dict(await conn.fetchrow(SERVER_COUNTERS)).items()}
    finally:
        await conn.close()


async def newest_version(url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(await conn.fetchval("SELECT max(kek_version) FROM subjects"))
    finally:
        await conn.close()


def _moved_past(url: str, version: int) -> int:
    return asyncio.run(moved_past(url, version))


async def moved_past(url: str, version: int) -> int:
    """Subjects whose key is wrapped under a version newer than `version`."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        query = "SELECT count(*) FROM subjects WHERE kek_version > $1"
        return int(await conn.fetchval(query, version))
    finally:
        await conn.close()


def rotation_cost(before: dict[str, int], after: dict[str, int], keys: int) -> dict[str, Any]:
    """The counters' change over one rotation of `keys` keys, per key where that reads."""
    d = {k: after[k] - before[k] for k in before}
    per = max(keys, 1)
    return {
        "keys": keys,
        "wal_bytes": d["wal_bytes"],
        "wal_bytes_per_key": round(d["wal_bytes"] / per, 1),
        "wal_fpi": d["wal_fpi"],
        "fpi_per_key": round(d["wal_fpi"] / per, 3),
        "checkpoints_req": d["checkpoints_req"],
        "checkpoints_timed": d["checkpoints_timed"],
        "buffers_backend": d["buffers_backend"],
        "hot_ratio": round(d["hot_upd"] / d["upd"], 3) if d["upd"] else None,
        "heap_growth": round(after["heap_bytes"] / before["heap_bytes"] - 1, 3),
        "total_growth": round(after["total_bytes"] / before["total_bytes"] - 1, 3),
    }


def rotate_latency(
    env: dict[str, str],
    url: str,
    ids: list[str],
    key: str,
    work: Path,
    args: Any,
    result: dict[str, Any],
) -> None:
    """The quality bar "lookup p99 while rotate runs at full speed stays within 2x of its
    idle value": wrk idle, then wrk while `keys rotate` runs with every worker as operators
    run it (nice 10, paced: `vault.admin.pacing`), then while it runs flat out (`--no-pace
    --nice 0`), then idle again; same size, same run, so the ratios compare like with like."""
    result["lookup_idle"] = idle = lookups(env, ids, key, work, args.duration)
    flat_out = ["--no-pace", "--nice", "0"]
    for name, extra in (("", []), ("_unpaced", flat_out)):
        during = ["keys", "rotate", "--workers", str(args.workers), *extra]
        before = asyncio.run(server_counters(url))
        start_version = asyncio.run(newest_version(url))
        wrk, rotated, moved = lookups(
            env,
            ids,
            key,
            work,
            args.duration,
            during,
            partial(_moved_past, url, start_version),
        )
        result[f"lookup_during_rotate{name}"], result[f"rotate_under_lookups{name}"] = wrk, rotated
        # How far the rotation got while the lookups ran: its speed under them, which
        # the command's own rate (lookups for its first seconds only) does not say.
        result[f"rotate{name}_keys_while_lookups_ran"] = moved
        result[f"rotate{name}_keys_per_s_while_lookups_ran"] = round(moved / args.duration, 1)
        cost = rotation_cost(before, asyncio.run(server_counters(url)), rotated.get("done", 0))
        result[f"rotate_under_lookups{name}_server"] = cost
        if idle.get("p99_ms"):
            ratio = round(wrk["p99_ms"] / idle["p99_ms"], 2)
            result[f"lookup_p99_during_rotate{name}_to_idle"] = ratio
    result["lookup_idle_after"] = lookups(env, ids, key, work, args.duration)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subjects", type=int, default=1_000_000)
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--small", type=int, default=100_000, help="size of the first lookup run")
    p.add_argument("--months", type=int, default=6, help="months the events are spread over")
    p.add_argument("--duration", type=int, default=10, help="seconds per lookup run")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--db-name", default="tresor_scale")
    p.add_argument("--skip-lookups", action="store_true")
    p.add_argument(
        "--retention-only",
        action="store_true",
        help="after seeding, measure only the retention sweeps (1 %% due, then nothing due)",
    )
    p.add_argument(
        "--lifecycle-only",
        action="store_true",
        help="after seeding, measure only archive and prune (with lookups while archiving)",
    )
    p.add_argument(
        "--keyops-only",
        action="store_true",
        help="after seeding, measure only rotate and verify with their ceilings (no lookups)",
    )
    p.add_argument(
        "--rotate-latency",
        action="store_true",
        help="with --keyops-only: lookups idle and while `keys rotate` runs, and their p99 ratio",
    )
    p.add_argument(
        "--softhsm-only",
        type=int,
        metavar="N",
        help="only measure key operations on a SoftHSM2 token with N subjects",
    )
    args = p.parse_args()
    if args.softhsm_only:
        result = softhsm_rotation(args.softhsm_only, args.workers, args.db_name)
        result["load_average"] = os.getloadavg()
        print(json.dumps(result, indent=2))
        return

    work = Path(tempfile.mkdtemp(prefix="tresor-scale-"))
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {args.db_name} WITH (FORCE)"))
    asyncio.run(_admin(f"CREATE DATABASE {args.db_name}"))
    url = make_url(PG_ADMIN).set(database=args.db_name).render_as_string(hide_password=False)
    env = {
        **os.environ,
        "TRESOR_DATA_DIR": str(work / "data"),
        "TRESOR_POLICIES": str(ROOT / "policies"),
        "TRESOR_LOG_LEVEL": "WARNING",
        "TRESOR_DATABASE_URL": url,
    }
    tresor_bin = str(BIN / "tresor")
    subprocess.run([tresor_bin, "init"], env=env, check=True, capture_output=True)
    key = (
        subprocess.run(
            [tresor_bin, "clients", "create", "bench", "--role", "lookup"]
            + ["--purpose", "order.delivery"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    settings = Settings.from_env(env)
    result: dict[str, Any] = {
        "subjects": args.subjects,
        "events": args.events,
        "workers": args.workers,
        "cores": os.cpu_count(),
    }
    ids: list[str] = []
    result["partitions_created"] = asyncio.run(
        scale_lifecycle.partitions_for_seed(settings, args.months)
    )

    async def seed_part(start: int, stop_at: int, events: int) -> dict[str, float]:
        ctx = VaultContext.open(settings)
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            t0 = time.perf_counter()
            await seed_subjects(ctx, conn, start, stop_at, ids)
            out = {"subjects_seconds": round(time.perf_counter() - t0, 1)}
            if events:
                t0 = time.perf_counter()
                await seed_events(ctx, conn, events, ids, args.months)
                out["events_seconds"] = round(time.perf_counter() - t0, 1)
                out["seal_seconds"] = round(await seal(ctx, events), 1)
            return out
        finally:
            await conn.close()
            await ctx.close()

    small = min(args.small, args.subjects)
    if args.keyops_only:
        args.skip_lookups = True
    result["seed_small"] = asyncio.run(seed_part(0, small, 0))
    if not args.skip_lookups:
        settle("postgresql", settings)
        result["lookup_small"] = lookups(env, ids, key, work, args.duration)
    result["seed_rest"] = asyncio.run(seed_part(small, args.subjects, args.events))
    settle("postgresql", settings)
    if not args.skip_lookups:
        result["lookup_full"] = lookups(env, ids, key, work, args.duration)
        result["lookup_ratio"] = round(
            result["lookup_full"]["rps"] / result["lookup_small"]["rps"], 3
        )
    result.update(asyncio.run(sizes(url, args.subjects, args.events)))
    try:
        if args.lifecycle_only:
            scale_lifecycle.archive_and_prune(env, ids, key, work, args, result, tresor, lookups)
            return
        if not args.skip_lookups:
            during = ["keys", "rotate", "--workers", str(args.workers)]
            wrk, rotated = lookups(env, ids, key, work, args.duration, during)
            result["lookup_during_rotate"], result["rotate_under_lookups"] = wrk, rotated
        if args.keyops_only:
            if args.rotate_latency:
                rotate_latency(env, url, ids, key, work, args, result)
            keyops(env, settings, url, args.workers, result)
            return
        result["retention_due"] = asyncio.run(make_due(url, 0.01))
        result["retention_selection"] = asyncio.run(retention_selection(url))
        # Lookups of the subjects being erased answer "no basis" and then "erased" (4xx,
        # which wrk counts as errors): from here on wrk asks for the others only (in this
        # phase and every later one), so any error is real.
        due = asyncio.run(due_ids(url))
        kept = [i for i in ids if i not in due]
        if args.skip_lookups:
            result["retention"] = tresor(env, "retention", "run")
        else:
            wrk, swept = lookups(env, kept, key, work, args.duration, ["retention", "run"])
            result["lookup_during_retention"], result["retention"] = wrk, swept
        # The steady state: the next sweep finds nothing due; it must not cost O(subjects).
        result["retention_nothing_due"] = tresor(env, "retention", "run")
        result["retention_nothing_due_in_process_seconds"] = asyncio.run(
            idle_sweep_seconds(settings)
        )
        if args.retention_only:
            return
        keyops(env, settings, url, args.workers, result)
        result["audit_search_one_subject"] = asyncio.run(audit_search_p99(settings, kept))
        scale_lifecycle.archive_and_prune(env, kept, key, work, args, result, tresor, lookups)
    finally:
        scale_lifecycle.p99_ratios(result)
        result["load_average"] = os.getloadavg()
        print(json.dumps(result, indent=2, default=str))
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {args.db_name} WITH (FORCE)"))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
