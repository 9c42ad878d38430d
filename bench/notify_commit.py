"""Benchmark of what a delivery wake-up costs the writers (issue 16 item 1), in one run.

Concurrent writers commit small transactions (one row each, like a consent write's domain
event) on PostgreSQL for `--seconds` each way:

- `plain`: the row only (the baseline);
- `notify_in_transaction`: the row and `SELECT pg_notify(...)` inside the transaction (the
  former `dialect.notify_at_commit`): PostgreSQL takes a global lock on its notification
  queue at each such commit, so notifying commits queue behind each other;
- `wake_after_commit`: the row, then the wake-up asked of the process's `CommitWaker`
  (`storage.wakeup`), sent after the commit on its own connection, coalesced.

Prints one JSON object: commits per second and p99 commit time of each, each as a ratio to
`plain`, and how many NOTIFYs the waker sent. The load average is printed with it: on the
shared machine the absolute figures follow what else runs, the ratios much less.

Usage: .venv/bin/python bench/notify_commit.py [--writers 32] [--seconds 10] [--rounds 2]
PostgreSQL from TRESOR_BENCH_PG_URL (a database tresor_bench_wake is created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.notify import scratch_database  # noqa: E402 - after sys.path
from vault.storage.db import make_engine  # noqa: E402 - after sys.path
from vault.storage.wakeup import (  # noqa: E402 - after sys.path
    close_wakers,
    committed,
    wake_after_commit,
    waker_for,
)

CHANNEL = "tresor_bench_wake"
MODES = ("plain", "notify_in_transaction", "wake_after_commit")


async def _mode(url: str, mode: str, writers: int, seconds: float) -> dict[str, float]:
    engine = make_engine(url)
    times: list[float] = []
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS rows (id bigserial, at float8)"))
        stop_at = time.monotonic() + seconds

        async def writer() -> None:
            while time.monotonic() < stop_at:
                started = time.monotonic()
                async with engine.begin() as conn:
                    await conn.execute(text("INSERT INTO rows (at) VALUES (:t)"), {"t": started})
                    if mode == "notify_in_transaction":
                        await conn.execute(text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})
                    elif mode == "wake_after_commit":
                        wake_after_commit(conn, CHANNEL)
                if mode == "wake_after_commit":
                    committed(conn)
                times.append(time.monotonic() - started)

        await asyncio.gather(*(writer() for _ in range(writers)))
        sent = waker_for(engine).sent if mode == "wake_after_commit" else 0
        await close_wakers(engine)
    finally:
        await engine.dispose()
    times.sort()
    return {
        "commits_per_second": round(len(times) / seconds, 1),
        "p99_ms": round(times[int(len(times) * 0.99)] * 1000, 2),
        "notifies_sent": sent,
    }


async def run(url: str, writers: int, seconds: float, rounds: int) -> dict[str, object]:
    """`rounds` passes over the modes, interleaved so a change of the machine's load hits
    each mode alike; each mode's figures are its mean over the rounds."""
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            runs[mode].append(await _mode(url, mode, writers, seconds))
    figures = {
        mode: {k: round(sum(r[k] for r in rs) / len(rs), 2) for k in rs[0]}
        for mode, rs in runs.items()
    }
    base = figures["plain"]["commits_per_second"]
    for mode in MODES[1:]:
        figures[mode]["ratio_to_plain"] = round(figures[mode]["commits_per_second"] / base, 3)
    return {
        "writers": writers,
        "seconds": seconds,
        "rounds": rounds,
        **figures,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--writers", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    with scratch_database("tresor_bench_wake") as url:
        print(json.dumps(asyncio.run(run(url, args.writers, args.seconds, args.rounds))))


if __name__ == "__main__":
    main()
