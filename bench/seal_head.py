"""The sealer's chain-head read over 30 / 300 / 1,200 seal blocks on PostgreSQL (issue 19).

Seeds a fresh database of its own (`--db-name`, default `tresor_seal_head_bench`) with
`audit_seals` in blocks of `SEAL_BLOCK`, one seal in every block but the two created ahead,
a thousand in the head's block and a checkpoint a little below the head, then times the
head read the way the sealer runs it (one transaction each, SQLAlchemy on asyncpg):

- `old`: `ORDER BY seq DESC LIMIT 1` over every block (the read before the bound);
- `new`: the newest checkpoint's `seq`, then the read bounded below by its block
  (`vault.audit.chain_head`), two statements.

Old and new alternate in rounds within one run (same load); prints one JSON line per block
count: wall ms per read, and CPU microseconds per read of this process and of the
PostgreSQL backend (from /proc, 10 ms ticks: each variant runs for at least `--seconds`).

    .venv/bin/python bench/seal_head.py --db-name NAME_head
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from vault.audit import chain_head
from vault.audit.seal_blocks import SEAL_BLOCK, block_name
from vault.storage.db import upgrade

_TICK = os.sysconf("SC_CLK_TCK")


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _backend_cpu(pid: int) -> float:
    """utime + stime of a PostgreSQL backend on this machine, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


async def _grow(engine: AsyncEngine, count: int) -> None:
    """Attach blocks until there are `count`, 50 per transaction (each takes locks)."""
    async with engine.connect() as conn:
        have = await conn.scalar(
            text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_seals'::regclass")
        )
    low = (int(have or 0) - 1) * SEAL_BLOCK  # DEFAULT is one of them
    target = count * SEAL_BLOCK
    while low < target:
        async with engine.begin() as conn:
            for _ in range(50):
                if low >= target:
                    break
                name, high = block_name(low), low + SEAL_BLOCK
                await conn.execute(text(f"CREATE TABLE {name} (LIKE audit_seals)"))
                await conn.execute(
                    text(
                        f"ALTER TABLE audit_seals ATTACH PARTITION {name} "
                        f"FOR VALUES FROM ({low}) TO ({high})"
                    )
                )
                low = high


async def _seed(engine: AsyncEngine, count: int) -> None:
    """One seal in every block below the head's, a thousand in the head's (the third from
    the top: two are created ahead), a checkpoint 500 below the head; then ANALYZE."""
    head_low = (count - 3) * SEAL_BLOCK
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE audit_seals, audit_checkpoints"))
        await conn.execute(
            text(
                "INSERT INTO audit_seals (seq, chain_pos, chain_mac) "
                "SELECT b * CAST(:block AS bigint) + 1, b + 1, md5(b::text) "
                "FROM generate_series(0, :below - 1) b"
            ),
            {"block": SEAL_BLOCK, "below": count - 3},
        )
        await conn.execute(
            text(
                "INSERT INTO audit_seals (seq, chain_pos, chain_mac) "
                "SELECT CAST(:low AS bigint) + g, :below + g, md5(g::text) "
                "FROM generate_series(1, 1000) g"
            ),
            {"low": head_low, "below": count - 3},
        )
        await conn.execute(
            text(
                "INSERT INTO audit_checkpoints (chain_pos, seq, head, at, key_id, signature) "
                "VALUES (:pos, CAST(:seq AS bigint), 'h', now(), 'k', 's')"
            ),
            {"pos": count - 3 + 500, "seq": head_low + 500},
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE audit_seals"))


async def _old(conn: AsyncConnection) -> Any:
    return (await conn.execute(chain_head.HEAD)).first()


async def _new(conn: AsyncConnection) -> Any:
    near = (await conn.execute(chain_head.CHECKPOINT_SEQ)).scalar()
    return await chain_head.read_head(conn, near)


async def _measure(
    engine: AsyncEngine, read: Callable[[AsyncConnection], Awaitable[Any]], seconds: float
) -> tuple[int, float, float, float]:
    """(reads, wall s, client CPU s, backend CPU s) of reads for at least `seconds`."""
    async with engine.connect() as conn:
        pid = int(await conn.scalar(text("SELECT pg_backend_pid()")) or 0)
        await conn.commit()
        for _ in range(10):  # warm: prepared statements, plan cache (generic after five)
            await read(conn)
            await conn.commit()
        backend, cpu, wall = _backend_cpu(pid), time.process_time(), time.perf_counter()
        reads = 0
        while time.perf_counter() - wall < seconds:
            await read(conn)
            await conn.commit()
            reads += 1
        return (
            reads,
            time.perf_counter() - wall,
            time.process_time() - cpu,
            _backend_cpu(pid) - backend,
        )


async def _run(url: str, counts: list[int], seconds: float, rounds: int) -> None:
    engine = create_async_engine(url)
    try:
        for count in counts:
            await _grow(engine, count)
            await _seed(engine, count)
            async with engine.connect() as conn:
                same = await _old(conn) == tuple(await _new(conn) or ())
            totals: dict[str, list[float]] = {"old": [0, 0, 0, 0], "new": [0, 0, 0, 0]}
            for _ in range(rounds):
                for name, read in (("old", _old), ("new", _new)):
                    for i, value in enumerate(await _measure(engine, read, seconds)):
                        totals[name][i] += value
            line: dict[str, Any] = {"blocks": count, "same_head": same}
            for name, (reads, wall, cpu, backend) in totals.items():
                line[name] = {
                    "reads": int(reads),
                    "ms_per_read": round(wall / reads * 1e3, 3),
                    "client_cpu_us_per_read": round(cpu / reads * 1e6, 1),
                    "backend_cpu_us_per_read": round(backend / reads * 1e6, 1),
                }
            line["load_average"] = os.getloadavg()
            print(json.dumps(line), flush=True)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", default="30,300,1200")
    parser.add_argument("--seconds", type=float, default=1.0, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db-name", default="tresor_seal_head_bench")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("TRESOR_BENCH_PG", "postgresql://postgres@127.0.0.1/test"),
    )
    args = parser.parse_args()
    admin = args.pg_url
    url = make_url(admin).set(drivername="postgresql+asyncpg", database=args.db_name)
    target = url.render_as_string(hide_password=False)
    asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)'))
    asyncio.run(_admin(admin, f'CREATE DATABASE "{args.db_name}"'))
    try:
        upgrade(target)
        counts = sorted(int(n) for n in args.blocks.split(","))
        asyncio.run(_run(target, counts, args.seconds, args.rounds))
    finally:
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
