"""Dropping a month of the audit trail with its seals, timed on PostgreSQL (issue 19).

Seeds a fresh database of its own (`--db-name`, default `tresor_seals_bench`) with `--events`
events stamped in the month before last and a tenth as many in the last month, every one
with a seal (plain SQL: the timing of the drop does not depend on the MACs' values), then
times `partitions.drop_partition` of the older month and prints one JSON line.

Run it with this checkout for the seal blocks (migration 0037) and with an older checkout
on `PYTHONPATH` for the single seal table it replaces, whose drop deletes the month's seals
row by row in the drop's transaction:

    PYTHONPATH=/work/old .venv/bin/python /work/old/bench/seal_prune.py --db-name x_old

With blocks, `--block` sets their size for the seeded trail (the migration's 2^30 would put
2 M seals in one block): choose it so that a month spans several blocks as 8.6 billion
events a month span eight blocks of 2^30.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from vault.audit import partitions
from vault.context import VaultContext
from vault.crypto import LocalKeyring
from vault.settings import Settings
from vault.storage.db import upgrade

ROOT = Path(__file__).resolve().parent.parent


def _months_back(now: datetime, count: int) -> datetime:
    year, month = now.year, now.month - count
    while month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=UTC)


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _seed(dsn: str, old: datetime, new: datetime, events: int) -> None:
    """`events` events spread over `old`'s first 27 days, a tenth as many over `new`'s, and
    a seal for each."""
    conn = await asyncpg.connect(dsn)
    try:
        for start, count in ((old, events), (new, max(events // 10, 1))):
            await conn.execute(
                "INSERT INTO audit_events (at, actor_type, actor_id, action, decision) "
                "SELECT $1::timestamptz + (g * interval '27 days' / $2::int), "
                "'client', 'bench', 'lookup', 'allow' FROM generate_series(1, $2::int) g",
                start,
                count,
            )
        await conn.execute(
            "INSERT INTO audit_seals (seq, chain_pos, chain_mac) "
            "SELECT seq, seq, md5(seq::text) || md5(seq::text) FROM audit_events ORDER BY seq"
        )
        await conn.execute("ANALYZE audit_events")
        await conn.execute("ANALYZE audit_seals")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _blocks(ctx: VaultContext, block: int, ahead: int) -> int:
    """Re-lay the (still empty) seal table in `ahead` blocks of `block`; the blocks, 0
    without seal blocks (the older checkout)."""
    relayout = getattr(partitions, "ensure_seal_blocks", None)
    if relayout is None:
        return 0
    from vault.audit import seal_blocks

    async with ctx.transaction() as conn:
        for found in await seal_blocks.blocks(conn):
            await conn.exec_driver_sql(f"DROP TABLE {found.name}")
    await relayout(ctx, block=block, ahead=ahead)
    return len(await partitions.list_seal_blocks(ctx))


async def _run(args: argparse.Namespace, url: str, work: Path) -> dict[str, object]:
    settings = Settings(data_dir=work, database_url=url, policies_dir=ROOT / "policies")
    LocalKeyring.create(settings.keyring_path)
    ctx = VaultContext.open(settings)
    try:
        now = ctx.clock.now()
        old, new = _months_back(now, 2), _months_back(now, 1)
        await partitions.ensure_ahead(ctx, old, months=3)
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        blocks = await _blocks(ctx, args.block, args.events * 11 // 10 // args.block + 2)
        await _seed(dsn, old, new, args.events)
        cpu, wall = time.process_time(), time.perf_counter()
        dropped = await partitions.drop_partition(ctx, old.date())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await ctx.close()
    return {
        "events": args.events,
        "seal_blocks_before": blocks,
        "dropped": repr(dropped),
        "seconds": round(wall, 3),
        "client_cpu_seconds": round(cpu, 3),
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--block", type=int, default=2**18)
    parser.add_argument("--db-name", default="tresor_seals_bench")
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
        with tempfile.TemporaryDirectory() as work:
            print(json.dumps(asyncio.run(_run(args, target, Path(work)))))
    finally:
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
