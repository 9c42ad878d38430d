"""`tresor serve --workers 2` on one PostgreSQL under a mixed load: both worker processes
serve, every lookup answered has exactly one audit event, the contact basket is never
overspent, and after SIGTERM the audit chain verifies with nothing left unsealed.

Which worker answered is read from the prometheus-client multiprocess files the workers
write (one file per worker pid, `tresor serve --workers` sets PROMETHEUS_MULTIPROC_DIR), and
the pids are matched against the children of the `tresor serve` process in /proc.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import POLICIES
from tests.support.factories import person
from tests.support.server import free_port
from vault.audit.chain_links import EVENTS_WITH_SEALS
from vault.catalogue.contact_pressure import load_rules
from vault.storage.audit_tables import audit_events, audit_seals
from vault.storage.db import make_engine
from vault.storage.outreach_tables import contact_budgets, contacts

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TRESOR = str(Path(sys.executable).with_name("tresor"))
CONCURRENCY = 32
HOT_SUBJECTS = 3
CONTACTS_PER_HOT_SUBJECT = 40
PLAIN_LOOKUPS = 240
CREATIONS = 30
LOOKUP_ACTION = "client:contact:lookup"
SMS_EVIDENCE = {
    "touchpoint": "shop.counter",
    "method": "signature",
    "notice_version": "2026-10",
    "language": "de",
    "explicit": True,
}


def _worker_pids(master: int) -> set[int]:
    """Children of `master` that are multiprocessing-spawned workers (not its resource tracker)."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == master and b"spawn_main" in cmdline:
            found.add(int(entry))
    return found


def _lookups_per_pid(metrics_dir: Path) -> dict[int, int]:
    """Responses to POST /v1/lookup per worker pid, from the multiprocess counter files."""
    from prometheus_client.mmap_dict import MmapedDict

    out: dict[int, int] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample, labels, _ = json.loads(key)
            if (
                sample == "tresor_http_requests_total"
                and labels.get("route") == "/v1/lookup"
                and labels.get("method") == "POST"
            ):
                out[pid] = out.get(pid, 0) + int(value)
    return out


async def _wait_healthy(base: str, proc: subprocess.Popen[str]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if (await http.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail("tresor serve --workers 2 did not come up")


async def _drive(base: str, keys: dict[str, str]) -> dict[str, Any]:
    """Seed, then the mixed load at CONCURRENCY; returns request ids and counts."""
    writer = {"Authorization": f"Bearer {keys['writer']}"}
    shop = {"Authorization": f"Bearer {keys['shop']}"}
    out: dict[str, Any] = {"lookup_ids": [], "by_status": Counter(), "contact_ok": Counter()}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, timeout=20, limits=limits) as http:
        seeded: list[str] = []
        for i in range(12):
            r = await http.post("/v1/subjects", json=person(3000 + i), headers=writer)
            assert r.status_code == 201, r.text
            sid = r.json()["subject_id"]
            for purpose in ("order.delivery", "account.service"):
                r = await http.post(
                    f"/v1/subjects/{sid}/consents",
                    json={"purpose": purpose, "reference": f"Vertrag {i}"},
                    headers=writer,
                )
                assert r.status_code == 201, r.text
            seeded.append(sid)
        hot = seeded[:HOT_SUBJECTS]
        rng = random.Random(7)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def lookup(body: dict[str, Any]) -> None:
            async with gate:
                r = await http.post("/v1/lookup", json=body, headers=shop)
            assert r.status_code in (200, 403, 404), r.text
            out["lookup_ids"].append(r.headers["x-request-id"])
            out["by_status"][r.status_code] += 1
            if "contact" in body and r.status_code == 200:
                out["contact_ok"][body["subject_id"]] += 1
            elif "contact" in body:
                assert r.json()["reason"] == "contact_budget_exhausted", r.text

        def contact_lookup(n: int) -> Any:
            purpose = "order.delivery" if n % 3 else "account.service"  # 3 and 2 points
            brand = ("tresor", "tresor_outlet", "tresor_finance")[n % 3]
            return lookup(
                {
                    "purpose": purpose,
                    "subject_id": hot[n % HOT_SUBJECTS],
                    "contact": {"brand": brand},
                }
            )

        def plain_lookup(n: int) -> Any:
            roll = rng.random()
            if roll < 0.8:
                body = {
                    "purpose": rng.choice(["order.delivery", "account.service"]),
                    "subject_id": rng.choice(seeded),
                }
            elif roll < 0.9:
                body = {"purpose": "offers.sms", "subject_id": rng.choice(seeded)}  # no consent
            else:
                body = {
                    "purpose": "order.delivery",
                    "subject_id": f"00000000-0000-4000-8000-{n:012d}",
                }
            return lookup(body)

        async def creation_and_grant(n: int) -> None:
            async with gate:
                r = await http.post("/v1/subjects", json=person(6000 + n), headers=writer)
            assert r.status_code == 201, r.text
            async with gate:
                r = await http.post(
                    f"/v1/subjects/{r.json()['subject_id']}/consents",
                    json={"purpose": "offers.sms", "evidence": SMS_EVIDENCE},
                    headers=writer,
                )
            assert r.status_code == 201 and r.json()["status"] == "granted", r.text

        jobs = [contact_lookup(n) for n in range(HOT_SUBJECTS * CONTACTS_PER_HOT_SUBJECT)]
        jobs += [plain_lookup(n) for n in range(PLAIN_LOOKUPS)]
        jobs += [creation_and_grant(n) for n in range(CREATIONS)]
        rng.shuffle(jobs)
        await asyncio.wait_for(asyncio.gather(*jobs), timeout=30)
    return out


async def _database_facts(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            per_request = (
                await conn.execute(
                    select(audit_events.c.request_id, func.count())
                    .where(audit_events.c.action == LOOKUP_ACTION)
                    .group_by(audit_events.c.request_id)
                )
            ).all()
            unsealed = (
                await conn.execute(
                    select(func.count())
                    .select_from(EVENTS_WITH_SEALS)
                    .where(audit_seals.c.seq.is_(None))
                )
            ).scalar_one()
            budgets = {
                (r.subject_id, r.month): r.used_tenths
                for r in await conn.execute(select(contact_budgets))
            }
            spent = {
                (r.subject_id, r.month): (r.total, r.n)
                for r in await conn.execute(
                    select(
                        contacts.c.subject_id,
                        contacts.c.month,
                        func.sum(contacts.c.points_tenths).label("total"),
                        func.count().label("n"),
                    ).group_by(contacts.c.subject_id, contacts.c.month)
                )
            }
    finally:
        await engine.dispose()
    return {
        "per_request": {r[0]: r[1] for r in per_request},
        "unsealed": unsealed,
        "budgets": budgets,
        "spent": spent,
    }


def test_two_workers_serve_audit_every_lookup_and_never_overspend(postgres, tmp_path):
    """Mixed load on `serve --workers 2`: both workers answer, one audit event per lookup
    response, contacts stay within the service reserve, verify passes."""
    asyncio.run(postgres.truncate())
    assert postgres.url
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "TRESOR_DATA_DIR": str(data_dir),
        "TRESOR_POLICIES": str(POLICIES),
        "TRESOR_DATABASE_URL": postgres.url,
        "TRESOR_SEAL_INTERVAL": "0.05",
        "TRESOR_RETENTION_INTERVAL": "0",
        "TRESOR_CLIENT_CACHE_SECONDS": "30",
        "TRESOR_DB_POOL_SIZE": "20",
        "TRESOR_LOG_LEVEL": "WARNING",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([TRESOR, *args], env=env, capture_output=True, text=True, timeout=60)

    assert cli("init").returncode == 0
    key = lambda *a: cli("clients", "create", *a).stdout.strip().splitlines()[-1]  # noqa: E731 - a one-line helper
    keys = {
        "writer": key("crm", "--role", "writer"),
        "shop": key(
            "shop",
            "--role",
            "lookup",
            "--purpose",
            "order.delivery",
            "--purpose",
            "account.service",
            "--purpose",
            "offers.sms",
        ),
    }
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [TRESOR, "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            asyncio.run(_wait_healthy(base, proc))
            load = asyncio.run(_drive(base, keys))
            workers = _worker_pids(proc.pid)
            served = _lookups_per_pid(data_dir / "metrics")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                pytest.fail("serve --workers 2 did not stop within 25 s of SIGTERM")
    # uvicorn re-raises the signal after its graceful shutdown, so -SIGTERM is a clean exit.
    assert code in (0, -signal.SIGTERM), log_path.read_text()

    lookups = HOT_SUBJECTS * CONTACTS_PER_HOT_SUBJECT + PLAIN_LOOKUPS
    assert len(load["lookup_ids"]) == lookups == len(set(load["lookup_ids"]))
    assert set(load["by_status"]) == {200, 403, 404}, load["by_status"]

    # Both worker processes exist and both answered lookups; together they answered all.
    assert len(workers) == 2, workers
    assert set(served) == workers, (served, workers)
    assert all(n > 0 for n in served.values()) and sum(served.values()) == lookups, served

    facts = asyncio.run(_database_facts(postgres.url))
    # Exactly one audit event for every lookup response (allowed, denied or not found).
    assert facts["per_request"] == {rid: 1 for rid in load["lookup_ids"]}

    # The service reserve (every contact here is a service message): each month's contacts
    # never exceed the reserve plus the overdraft of the `normal` priority they used, and
    # the basket counter they lock stays untouched (service never fills the basket).
    rules = load_rules(POLICIES)
    limit = rules.limit_tenths("service") + rules.priorities["normal"].overdraft_tenths
    assert facts["budgets"] and facts["budgets"].keys() == facts["spent"].keys()
    for (sid, month), used in facts["budgets"].items():
        total, n = facts["spent"][(sid, month)]
        assert used == 0 and total <= limit, (sid, month, used, total)
        assert n == load["contact_ok"][sid]  # every contact recorded was a 200, and vice versa
        assert total > limit - 30, "the reserve was filled, not just refused"

    assert facts["unsealed"] == 0, "a clean shutdown of both workers seals everything"
    out = cli("audit", "verify")
    assert out.returncode == 0, out.stderr
    assert " 0 not sealed" in out.stdout, out.stdout
