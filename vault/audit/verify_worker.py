"""Ranges of the audit chain checked in worker processes, one per core (PostgreSQL).

The workers used to be a `ProcessPoolExecutor` of spawned processes fed through a
`multiprocessing.Manager` queue. Spawning re-ran the `tresor` script in every child, which
imported the whole CLI and vault (0.8 s of CPU each, three processes with the manager's),
and each of eight ranges opened an SQLAlchemy engine of its own: at a million events that
start-up was as long as the work, and two workers were slower than one.

Now each worker is `python -m vault.audit.verify_worker`, which imports only the standard
library, asyncpg and `vault.audit.verify_stream`, opens one connection, and takes ranges
one at a time over its stdin (JSON lines), so a worker that finishes early takes the next
range instead of waiting. It answers with JSON lines on stdout: `{"n": k}` after every
chunk (progress) and `{"result": ...}` after every range. The chain key reaches it on the
first line through the pipe, never on its command line or in its environment. Nothing on
these lines is a contact value: positions, sequence numbers and MACs only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg

from vault.audit.verify_state import RangeJob, RangeResult, Statements
from vault.audit.verify_stream import SESSION, check_range


def _tuple(value: Any) -> Any:
    return tuple(value) if value is not None else None


def _statements(raw: dict[str, Any]) -> Statements:
    return Statements(**{**raw, "quoted": tuple(raw["quoted"])})


def _job(raw: dict[str, Any]) -> RangeJob:
    return RangeJob(raw["lo"], raw["hi"], _tuple(raw["outside"]), _tuple(raw["start"]))


def _result(raw: dict[str, Any]) -> RangeResult:
    return RangeResult(
        raw["lo"],
        raw["verified"],
        _tuple(raw["end"]),
        _tuple(raw["broken"]),
        _tuple(raw["last_checkpoint"]),
        raw["behind"],
    )


async def _serve() -> None:
    """The worker: the first stdin line says where and with which key, each further line
    is a range; stdin's end ends the worker."""
    hello = json.loads(sys.stdin.readline())
    key, sql = bytes.fromhex(hello["key"]), _statements(hello["sql"])
    out = sys.stdout

    def say(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    conn = await asyncpg.connect(hello["dsn"], server_settings=SESSION)
    try:
        while line := sys.stdin.readline():
            job = _job(json.loads(line))
            result = await check_range(conn, sql, key, job, lambda n: say({"n": n}))
            say({"result": asdict(result)})
    finally:
        await conn.close()


def _child_env() -> dict[str, str]:
    """This environment, with the directory this `vault` package was imported from first
    on the worker's path (a parent that put it on `sys.path` itself, as the benches do)."""
    home = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": home + (os.pathsep + path if path else "")}


class WorkerFailed(RuntimeError):
    """A worker ended without answering (killed, or it could not reach the database)."""


async def _drive(
    hello: bytes,
    jobs: list[RangeJob],
    results: list[RangeResult],
    tick: Callable[[int], None],
) -> None:
    """One worker: hands it ranges until none are left (or a break lies before them)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vault.audit.verify_worker",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=_child_env(),
    )
    stdin, stdout = proc.stdin, proc.stdout
    if stdin is None or stdout is None:
        raise WorkerFailed("a verify worker has no pipes")
    try:
        stdin.write(hello)
        while jobs:
            first_break = min((r.broken[0] for r in results if r.broken), default=None)
            if first_break is not None and jobs[0].lo >= first_break:
                break  # what lies after a break is not needed
            job = jobs.pop(0)
            stdin.write(json.dumps(asdict(job)).encode() + b"\n")
            await stdin.drain()
            while True:
                line = await stdout.readline()
                if not line:
                    raise WorkerFailed(f"a verify worker ended with status {await proc.wait()}")
                message = json.loads(line)
                if "n" in message:
                    tick(int(message["n"]))
                    continue
                results.append(_result(message["result"]))
                break
        stdin.close()
        await proc.wait()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def run_ranges(
    dsn: str,
    key: bytes,
    sql: Statements,
    jobs: list[RangeJob],
    workers: int,
    tick: Callable[[int], None],
) -> list[RangeResult]:
    """Check `jobs` in `workers` processes, each taking the next range when done; the
    results in range order. Ctrl-C or a failure ends every worker."""
    hello = json.dumps({"dsn": dsn, "key": key.hex(), "sql": asdict(sql)}).encode() + b"\n"
    queue, results = sorted(jobs, key=lambda j: j.lo), []  # type: ignore[var-annotated]
    drivers = [
        asyncio.ensure_future(_drive(hello, queue, results, tick))
        for _ in range(min(workers, len(jobs)))
    ]
    try:
        await asyncio.gather(*drivers)
    finally:
        for driver in drivers:
            driver.cancel()
        await asyncio.gather(*drivers, return_exceptions=True)
    return sorted(results, key=lambda r: r.lo)


if __name__ == "__main__":
    asyncio.run(_serve())
