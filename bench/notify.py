"""Benchmark of recipient notices (issue 16): deliveries per second from commit to the
receiver's 2xx over loopback, and commit-to-delivery latency at a steady event rate.

Creates a fresh PostgreSQL database, registers 5 client recipients (webhooks to one
reference receiver, examples/receiver, in a process of its own, verifying every
signature), writes the audit trail of 5 lookups per subject (so each of the 5 recipients
received every subject's data), then commits `--erasures` `subject.erased` events in one
transaction and times until every one of the (erasures x 5) deliveries is `delivered`
(fan-out from the audit trail included). Then `--rate` events per second for `--seconds`
seconds, one transaction each, and the p50/p99 of delivered_at - occurred_at. Deliveries run
in this process (one node); latencies cover every steady-phase delivery. On a shared machine
the rate follows the load, so the CPU milliseconds per delivery of this process and of the
receiver are printed too (with the load average): they compare runs better.

The ceiling, in the same run and against the same receiver process: as many signed notices
posted by bare clients with the same concurrency (5 recipients x `PER_RECIPIENT`
connections), once through raw keep-alive sockets (what the receiver can take at all) and
once through plain httpx clients (what the HTTP library costs without Tresor's database
work). `ratio_to_raw` / `ratio_to_httpx` put Tresor's rate against them. Prints one JSON
object.

Usage: .venv/bin/python bench/notify.py [--erasures 10000] [--rate 100] [--seconds 10]
[--no-ceilings]. PostgreSQL from TRESOR_BENCH_PG_URL (a database tresor_bench_notify, or
TRESOR_BENCH_NOTIFY_DB, is created and dropped). With TRESOR_BENCH_PROFILE=dir, py-spy
records this process during the throughput phase only (dir/notify.txt, raw stacks).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api import event_loop  # noqa: E402 - after sys.path
from api.gc_tuning import tune_gc_for_long_running  # noqa: E402 - after sys.path
from bench.lookup import (  # noqa: E402 - after sys.path
    BIN,
    PG_ADMIN,
    _admin,
    attach_profiler,
    detach_profiler,
    free_port,
    stop,
)
from examples.receiver.app import decode_secret  # noqa: E402 - after sys.path
from vault.admin.clients import create_client  # noqa: E402 - after sys.path
from vault.audit.events import SYSTEM, Actor, AuditAction, Decision, event_row  # noqa: E402
from vault.context import VaultContext  # noqa: E402 - after sys.path
from vault.crypto import LocalKeyring  # noqa: E402 - after sys.path
from vault.recipients import registry, signing  # noqa: E402 - after sys.path
from vault.recipients.delivery import Deliverer  # noqa: E402 - after sys.path
from vault.recipients.transports import PER_RECIPIENT  # noqa: E402 - after sys.path
from vault.settings import Settings  # noqa: E402 - after sys.path
from vault.storage.audit_tables import audit_events  # noqa: E402 - after sys.path
from vault.storage.db import upgrade  # noqa: E402 - after sys.path
from vault.storage.recipient_tables import deliveries, domain_events  # noqa: E402

RECIPIENTS = 5
PURPOSE = "order.delivery"


def _event(subject_id: str, at: datetime) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "type": "subject.erased",
        "subject_id": subject_id,
        "purposes": json.dumps([PURPOSE]),
        "fields": None,
        "occurred_at": at,
        "fanned_out_at": None,
    }


async def _pending(ctx: VaultContext) -> int:
    async with ctx.engine.connect() as conn:
        undelivered = select(func.count()).where(deliveries.c.status != "delivered")
        unfanned = select(func.count()).where(domain_events.c.fanned_out_at.is_(None))
        return int((await conn.execute(undelivered)).scalar_one()) + int(
            (await conn.execute(unfanned)).scalar_one()
        )


async def run(args: argparse.Namespace, url: str, data: Path) -> dict[str, object]:
    settings = Settings(data_dir=data, database_url=url, client_cache_seconds=0)
    ctx = VaultContext.open(settings)
    port = free_port()
    names = [f"system{i}" for i in range(RECIPIENTS)]
    secrets = []
    for name in names:
        await create_client(ctx, SYSTEM, name, "lookup", [PURPOSE])
        _, secret = await registry.create_recipient(
            ctx,
            SYSTEM,
            name=name,
            kind="client",
            transport="webhook",
            target=f"http://127.0.0.1:{port}/tresor/notices",
        )
        secrets.append(secret or "")
    env = {**os.environ, "RECEIVER_SECRETS": " ".join(secrets), "PYTHONPATH": str(ROOT)}
    receiver = subprocess.Popen(
        [
            str(BIN / "uvicorn"),
            "--factory",
            "examples.receiver.serve:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--no-proxy-headers",
        ],
        env=env,
    )
    deliverer = Deliverer(ctx)
    try:
        await asyncio.sleep(2)
        subjects = [str(uuid.uuid4()) for _ in range(args.erasures)]
        now = datetime.now(UTC)
        async with ctx.transaction() as conn:
            rows = [
                event_row(
                    at=now,
                    actor=Actor("client", n),
                    action=AuditAction.LOOKUP,
                    decision=Decision.ALLOW,
                    subject_id=s,
                    purpose=PURPOSE,
                )
                for s in subjects
                for n in names
            ]
            for i in range(0, len(rows), 5000):
                await conn.execute(insert(audit_events), rows[i : i + 5000])
        # Throughput: all erasures committed at once, then fanned out and delivered.
        profiler = attach_profiler(os.getpid(), "notify")
        started = time.monotonic()
        cpu_started, receiver_cpu_started = time.process_time(), _cpu_seconds(receiver.pid)
        pg_cpu_started = await _backend_cpu(ctx)
        async with ctx.transaction() as conn:
            events = [_event(s, datetime.now(UTC)) for s in subjects]
            for i in range(0, len(events), 5000):
                await conn.execute(insert(domain_events), events[i : i + 5000])
        while await _pending(ctx):
            await deliverer.run(batch=2000)
        elapsed = time.monotonic() - started
        cpu = time.process_time() - cpu_started
        receiver_cpu = _cpu_seconds(receiver.pid) - receiver_cpu_started
        pg_cpu = _cpu_since(pg_cpu_started, await _backend_cpu(ctx))
        detach_profiler(profiler)
        total = args.erasures * RECIPIENTS
        keys = [decode_secret(x) for x in secrets]
        ceilings = await _ceilings(port, keys, total) if args.ceilings else {}
        # Latency: a steady rate of events, each its own commit, one node delivering.
        stop_at = time.monotonic() + args.seconds
        loop_task = asyncio.create_task(_deliver_loop(ctx, deliverer, stop_at))
        sent = 0
        steady_started = time.monotonic()
        while time.monotonic() < stop_at:
            async with ctx.transaction() as conn:
                await conn.execute(
                    insert(domain_events),
                    [_event(subjects[sent % len(subjects)], datetime.now(UTC))],
                )
            sent += 1
            # On an absolute schedule: the time a commit took is not added to the interval.
            await asyncio.sleep(max(0.0, steady_started + sent / args.rate - time.monotonic()))
        await loop_task
        async with ctx.engine.connect() as conn:
            lat = sorted(
                (r.delivered_at - r.occurred_at).total_seconds()
                for r in (
                    await conn.execute(
                        select(deliveries.c.delivered_at, domain_events.c.occurred_at)
                        .join(domain_events, domain_events.c.seq == deliveries.c.event_seq)
                        .where(domain_events.c.occurred_at > now)
                        .where(deliveries.c.delivered_at.is_not(None))
                        .where(domain_events.c.seq > args.erasures)
                    )
                ).all()
            )
        return {
            "erasures": args.erasures,
            "recipients": RECIPIENTS,
            "deliveries": total,
            "seconds": round(elapsed, 2),
            "deliveries_per_second": round(total / elapsed),
            **{
                key: value
                for name, rate in ceilings.items()
                for key, value in (
                    (f"ceiling_{name}_per_second", round(rate)),
                    (f"ratio_to_{name}", round(total / elapsed / rate, 3)),
                )
            },
            # CPU per delivery depends far less on what else the machine runs than the rate:
            # Tresor's side (this process, without PostgreSQL) and the receiver's.
            "tresor_cpu_ms_per_delivery": round(cpu * 1000 / total, 3),
            "receiver_cpu_ms_per_delivery": round(receiver_cpu * 1000 / total, 3),
            # PostgreSQL's backends serving this database (the claims, outcomes, fan-out).
            "postgres_cpu_ms_per_delivery": round(pg_cpu * 1000 / total, 3),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "steady_rate_events_per_second": args.rate,
            "steady_events": sent,
            # Below the asked rate when this process (writer and deliverer share it) lacks CPU.
            "steady_events_per_second_achieved": round(sent / args.seconds, 1),
            "steady_deliveries_measured": len(lat),
            "latency_p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
            "latency_p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 1) if lat else None,
        }
    finally:
        await deliverer.close()
        stop(receiver)
        await ctx.close()


async def _ceilings(port: int, keys: list[bytes], total: int) -> dict[str, float]:
    return {
        "raw": await _ceiling_raw(port, keys, total),
        "httpx": await _ceiling_httpx(port, keys, total),
    }


def _notice(i: int, keys: list[bytes]) -> tuple[bytes, dict[str, str]]:
    """A signed notice shaped like Tresor's, under recipient `i % 5`'s key, with a fresh id
    (the receiver de-duplicates ids)."""
    msg_id = f"ceiling_{uuid.uuid4().hex}"
    body = json.dumps(
        {
            "type": "subject.erased",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {
                "notification_id": msg_id,
                "event_id": str(uuid.uuid4()),
                "subject_id": str(uuid.uuid4()),
                "purposes": [PURPOSE],
                "occurred_at": datetime.now(UTC).isoformat(),
                "ack_url": "http://127.0.0.1:9/v1/notifications/x/ack",
            },
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    headers = signing.headers([keys[i % len(keys)]], msg_id, int(time.time()), body)
    return body, headers | {"content-type": "application/json"}


async def _ceiling_raw(port: int, keys: list[bytes], total: int) -> float:
    """Notices per second through bare keep-alive HTTP/1.1 sockets (no client library)."""
    connections = len(keys) * PER_RECIPIENT
    share = [total // connections + (i < total % connections) for i in range(connections)]

    async def worker(n: int, offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in range(n):
                body, headers = _notice(offset + i, keys)
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                writer.write(
                    f"POST /tresor/notices HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n{head}"
                    f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                status = await reader.readline()
                if b" 200 " not in status:
                    raise RuntimeError(f"receiver answered {status!r}")
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker(n, sum(share[:i])) for i, n in enumerate(share)))
    return total / (time.monotonic() - started)


async def _ceiling_httpx(port: int, keys: list[bytes], total: int) -> float:
    """Notices per second through one plain httpx client per recipient (as many
    connections as Tresor's), without pinning, database or retries."""
    url = f"http://127.0.0.1:{port}/tresor/notices"
    limits = httpx.Limits(max_connections=PER_RECIPIENT, max_keepalive_connections=PER_RECIPIENT)
    clients = [httpx.AsyncClient(limits=limits, trust_env=False) for _ in keys]
    gates = [asyncio.Semaphore(PER_RECIPIENT) for _ in keys]

    async def one(i: int) -> None:
        r = i % len(keys)
        async with gates[r]:  # signed when sent: on a slow run the last would go stale
            body, headers = _notice(i, keys)
            response = await clients[r].post(url, content=body, headers=headers)
        response.raise_for_status()

    started = time.monotonic()
    try:
        await asyncio.gather(*(one(i) for i in range(total)))
    finally:
        for client in clients:
            await client.aclose()
    return total / (time.monotonic() - started)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of another process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _backend_cpu(ctx: VaultContext) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to this database (the
    server runs on this machine; /proc shows its processes)."""
    async with ctx.engine.connect() as conn:
        pids = (
            await conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            )
        ).scalars()
        out = {}
        for pid in pids:
            with contextlib.suppress(OSError):
                out[int(pid)] = _cpu_seconds(int(pid))
        return out


def _cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """The backends' CPU between two `_backend_cpu` readings (one that connected in between
    counts from zero; one that disconnected in between is lost, the pool keeps them)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


async def _deliver_loop(ctx: VaultContext, deliverer: Deliverer, until: float) -> None:
    """Deliver until the steady phase is over and nothing is left (at most 120 s more)."""
    while time.monotonic() < until or (await _pending(ctx) and time.monotonic() < until + 120):
        await deliverer.run(batch=2000)
        await asyncio.sleep(0.01)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--erasures", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument(
        "--no-ceilings",
        dest="ceilings",
        action="store_false",
        help="skip the bare-socket and httpx ceilings (for profiling the delivery alone)",
    )
    args = p.parse_args()
    with scratch_database(os.environ.get("TRESOR_BENCH_NOTIFY_DB", "tresor_bench_notify")) as url:
        upgrade(url)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            LocalKeyring.create(data / "keyring.json")
            # This process delivers as a node's `tresor jobs` process does, which tunes its
            # garbage collection after start-up like `serve`, and runs on its event loop.
            tune_gc_for_long_running()
            print(json.dumps(event_loop.run(run(args, url, data))))


@contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A PostgreSQL database `name` made empty for the block and dropped after it; yields
    its URL. Runs sharing a server at the same time need names of their own."""
    url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    asyncio.run(
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    )
    try:
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
