"""Two `tresor serve` processes on one PostgreSQL under a mixed load: no gaps, no forks.

Both servers share the database and the keyring (one data dir), as two nodes behind a load
balancer would. The load alternates between them; meanwhile a probe samples which backend
holds the sealer's advisory lock and maps it to the server process that owns the socket, so
the test sees both sealers really running (and taking turns). After SIGTERM (a clean
shutdown seals everything), every lookup answered has exactly one audit event, the chain
positions run 1..N without a gap or a fork, `tresor audit verify` passes, and the contact
lookups aimed at two customers from both nodes never overspend their service reserve.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import POLICIES
from vault.audit.chain import SEALER_LOCK_ID

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TRESOR = str(Path(sys.executable).with_name("tresor"))
LOOKUPS_PER_SERVER = 300
CREATIONS = 30
CONCURRENCY = 24
LOCK_HIGH, LOCK_LOW = SEALER_LOCK_ID >> 32, SEALER_LOCK_ID & 0xFFFFFFFF


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _family(pid: int) -> list[int]:
    """`pid` and its child processes (the node's jobs process, which runs its sealer)."""
    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return [pid, *children]


def _socket_ports(pid: int) -> set[int]:
    """Local TCP ports of the sockets process `pid` and its children hold open (Linux /proc)."""
    inodes: set[str] = set()
    for member in _family(pid):
        try:
            for fd in os.listdir(f"/proc/{member}/fd"):
                try:
                    target = os.readlink(f"/proc/{member}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


class LockProbe:
    """Samples the holder of the sealer's advisory lock and attributes it to a server."""

    def __init__(self, dsn: str, pids: dict[int, str]) -> None:
        self.dsn = dsn
        self.pids = pids
        self.holders: dict[str, int] = {name: 0 for name in pids.values()}
        self.samples = 0
        self.both_at_once = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    async def _run(self) -> None:
        import asyncpg

        try:
            conn = await asyncpg.connect(self.dsn)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            return
        try:
            while not self._stop.is_set():
                rows = await conn.fetch(
                    "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 "
                    "AND l.objid = $2 AND l.objsubid = 1 AND l.database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())",
                    LOCK_HIGH,
                    LOCK_LOW,
                )
                self.samples += 1
                if len(rows) > 1:
                    self.both_at_once += 1  # two holders at once would be a broken lock
                for row in rows:
                    port = row["client_port"]
                    for pid, name in self.pids.items():
                        if port and port > 0 and port in _socket_ports(pid):
                            self.holders[name] += 1
                await asyncio.sleep(0.002)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            await conn.close()


async def _wait_healthy(base: str, proc: subprocess.Popen[str]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                if (await http.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    out = proc.stdout.read() if proc.stdout and proc.poll() is not None else ""
    pytest.fail(f"tresor serve on {base} did not come up: {out}")


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=25)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("a server did not shut down within 25 s of SIGTERM")
    finally:
        if proc.stdout:
            proc.stdout.close()


async def _drive(bases: list[str], keys: dict[str, str]) -> dict[str, Any]:
    """Seed subjects, then the mixed load alternating between the servers; count answers."""
    from tests.support.factories import person

    clients = [
        httpx.AsyncClient(base_url=b, timeout=15, limits=httpx.Limits(max_connections=CONCURRENCY))
        for b in bases
    ]
    writer = {"Authorization": f"Bearer {keys['writer']}"}
    shop = {"Authorization": f"Bearer {keys['shop']}"}
    counts: dict[str, Any] = {"lookups": 0, "by_status": {}, "created": 0, "per_server": [0, 0]}
    try:
        contracted: list[str] = []
        bare: list[str] = []
        for i in range(24):
            http = clients[i % 2]
            r = await http.post("/v1/subjects", json=person(1000 + i), headers=writer)
            assert r.status_code == 201, r.text
            sid = r.json()["subject_id"]
            counts["created"] += 1
            if i % 4 == 3:
                bare.append(sid)
                continue
            r = await clients[(i + 1) % 2].post(
                f"/v1/subjects/{sid}/consents",
                json={"purpose": "order.delivery", "reference": f"Bestellung {i}"},
                headers=writer,
            )
            assert r.status_code == 201, r.text
            contracted.append(sid)

        rng = random.Random(4)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one_lookup(n: int) -> None:
            server = n % 2
            roll = rng.random()
            if roll < 0.6 and n % 3 == 0:
                # An outbound letter (3 points) for one of two customers, from both nodes.
                body = {
                    "purpose": "order.delivery",
                    "subject_id": contracted[n % 2],
                    "contact": {"brand": ("tresor", "tresor_outlet")[n % 2]},
                }
            elif roll < 0.6:
                body = {"purpose": "order.delivery", "subject_id": rng.choice(contracted)}
            elif roll < 0.75:
                body = {"purpose": "order.delivery", "subject_id": rng.choice(bare)}
            elif roll < 0.9:
                body = {"purpose": "account.service", "subject_id": rng.choice(contracted)}
            else:
                body = {
                    "purpose": "order.delivery",
                    "subject_id": f"00000000-0000-4000-8000-{n:012d}",
                }
            async with gate:
                r = await clients[server].post("/v1/lookup", json=body, headers=shop)
            assert r.status_code in (200, 403, 404), r.text
            counts["lookups"] += 1
            counts["per_server"][server] += 1
            counts["by_status"][r.status_code] = counts["by_status"].get(r.status_code, 0) + 1

        async def one_creation(n: int) -> None:
            async with gate:
                r = await clients[n % 2].post("/v1/subjects", json=person(5000 + n), headers=writer)
            assert r.status_code == 201, r.text
            counts["created"] += 1

        jobs = [one_lookup(n) for n in range(2 * LOOKUPS_PER_SERVER)]
        jobs += [one_creation(n) for n in range(CREATIONS)]
        rng.shuffle(jobs)
        await asyncio.wait_for(asyncio.gather(*jobs), timeout=40)
    finally:
        for c in clients:
            await c.aclose()
    return counts


async def _dpo_counts(base: str, dpo_key: str) -> int:
    """Lookup events as the DPO API on the other node pages through them."""
    seen = 0
    params: dict[str, Any] = {"action": "lookup", "limit": 500}
    async with httpx.AsyncClient(base_url=base, timeout=15) as http:
        while True:
            r = await http.get(
                "/v1/audit", params=params, headers={"Authorization": f"Bearer {dpo_key}"}
            )
            assert r.status_code == 200, r.text
            seen += len(r.json()["items"])
            if not r.json()["next_cursor"]:
                return seen
            params["cursor"] = r.json()["next_cursor"]


async def _database_facts(url: str) -> dict[str, Any]:
    from sqlalchemy import func, select

    from vault.audit.chain_links import EVENTS_WITH_SEALS
    from vault.storage.audit_tables import audit_checkpoints, audit_events, audit_seals
    from vault.storage.db import make_engine
    from vault.storage.outreach_tables import contact_budgets, contacts

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(audit_events.c.seq, audit_seals.c.chain_pos, audit_events.c.action)
                    .select_from(EVENTS_WITH_SEALS)
                    .order_by(audit_events.c.seq)
                )
            ).all()
            checkpoints = (
                await conn.execute(select(func.count()).select_from(audit_checkpoints))
            ).scalar_one()
            budgets = {
                (r.subject_id, r.month): r.used_tenths
                for r in await conn.execute(select(contact_budgets))
            }
            spent = {
                (r.subject_id, r.month): r.total
                for r in await conn.execute(
                    select(
                        contacts.c.subject_id,
                        contacts.c.month,
                        func.sum(contacts.c.points_tenths).label("total"),
                    ).group_by(contacts.c.subject_id, contacts.c.month)
                )
            }
    finally:
        await engine.dispose()
    return {"rows": rows, "checkpoints": checkpoints, "budgets": budgets, "spent": spent}


def test_two_servers_on_one_postgres_lose_nothing_and_never_fork(postgres, tmp_path):
    """Mixed load over two nodes: events equal responses, positions 1..N, verify passes."""
    asyncio.run(postgres.truncate())
    assert postgres.url
    env = {
        **os.environ,
        "TRESOR_DATA_DIR": str(tmp_path / "data"),
        "TRESOR_POLICIES": str(POLICIES),
        "TRESOR_DATABASE_URL": postgres.url,
        "TRESOR_SEAL_INTERVAL": "0.05",
        "TRESOR_RETENTION_INTERVAL": "0",
        "TRESOR_CLIENT_CACHE_SECONDS": "30",
        "TRESOR_LOG_LEVEL": "WARNING",
    }

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([TRESOR, *args], env=env, capture_output=True, text=True, timeout=60)
        if check:
            assert out.returncode == 0, out.stderr
        return out

    cli("init")
    key = lambda *a: cli("clients", "create", *a).stdout.strip().splitlines()[-1]  # noqa: E731 - a one-line helper
    keys = {
        "writer": key("crm", "--role", "writer"),
        "shop": key("shop", "--role", "lookup", "--purpose", "order.delivery"),
        "dpo": key("datenschutz", "--role", "dpo"),
    }
    ports = [_free_port(), _free_port()]
    procs = [
        subprocess.Popen(
            [TRESOR, "serve", "--port", str(p)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for p in ports
    ]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    probe = LockProbe(
        postgres.url.replace("postgresql+asyncpg://", "postgresql://"),
        {procs[0].pid: "A", procs[1].pid: "B"},
    )
    try:

        async def up() -> None:
            await asyncio.gather(*(_wait_healthy(b, p) for b, p in zip(bases, procs, strict=True)))

        asyncio.run(up())
        probe.start()
        counts = asyncio.run(_drive(bases, keys))
        dpo_seen = asyncio.run(_dpo_counts(bases[1], keys["dpo"]))
        time.sleep(0.5)  # a few more sealer rounds on both nodes after the burst
    finally:
        probe.stop()
        codes = [_stop(p) for p in procs]
    # uvicorn re-raises the signal after its graceful shutdown, so -SIGTERM is a clean exit.
    assert all(code in (0, -signal.SIGTERM) for code in codes), codes
    assert probe.error is None, repr(probe.error)

    lookups = 2 * LOOKUPS_PER_SERVER
    assert counts["lookups"] == lookups and counts["per_server"] == [300, 300]
    assert set(counts["by_status"]) == {200, 403, 404}, counts["by_status"]
    assert dpo_seen == lookups  # the DPO API on the other node sees every read

    facts = asyncio.run(_database_facts(postgres.url))
    rows = facts["rows"]
    actions = [r.action for r in rows]
    assert actions.count("client:contact:lookup") == lookups  # denials and misses included
    assert actions.count("client:subject:create") == counts["created"] == 24 + CREATIONS
    positions = [r.chain_pos for r in rows]
    assert None not in positions, "a clean shutdown leaves nothing unsealed"
    assert positions == list(range(1, len(rows) + 1)), "chain positions have a gap or a fork"
    assert facts["checkpoints"] >= 2

    # Both sealers ran, taking turns on the advisory lock, never holding it together.
    assert probe.samples > 100
    assert probe.both_at_once == 0
    assert probe.holders["A"] > 0 and probe.holders["B"] > 0, probe.holders

    # No overspend: the letters are service messages, so each month's contacts stay within
    # the service reserve (all `normal` priority: no overdraft) and the basket counter they
    # lock stays at 0.
    from vault.catalogue.contact_pressure import load_rules

    rules = load_rules(POLICIES)
    limit = rules.limit_tenths("service") + rules.priorities["normal"].overdraft_tenths
    assert len(facts["budgets"]) == 2 and facts["budgets"].keys() == facts["spent"].keys()
    for month_key, used in facts["budgets"].items():
        spent = facts["spent"][month_key]
        assert used == 0 and spent <= limit, (month_key, used, spent)
        assert spent > limit - 30, "the reserve was filled, not just refused"

    out = cli("audit", "verify", check=False)
    assert out.returncode == 0, out.stderr
    assert (
        out.stdout.startswith(f"OK: {len(rows)} events verified") and " 0 not sealed" in out.stdout
    )
