"""Nothing lost, nothing extra (issue 16), on PostgreSQL: two `tresor jobs` nodes deliver
the notices of many changes to reference receivers that fail 30 % of requests and are down
for a while. Every notice the outbox calls for arrives (counted against the outbox), the
nodes never record one delivery twice, none goes to a recipient that never got the
subject's data, and no contact value is in any payload or log line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from examples.receiver.app import ReceiverState, create_receiver
from tests.conftest import POLICIES
from tests.support.dsar import ALL_PURPOSES, erase, plaintext_values
from tests.support.factories import ADMIN, WRITER, person
from tests.support.receiver import Faults, serving
from tests.support.server import free_port
from vault.access import lookup as lookup_mod
from vault.admin.clients import create_client
from vault.audit.events import Actor
from vault.bases.consents import record_basis
from vault.context import VaultContext
from vault.crypto import LocalKeyring
from vault.recipients import registry
from vault.recipients.signing import decode_secret
from vault.rights.restriction import restrict
from vault.settings import Settings
from vault.storage.recipient_tables import deliveries, domain_events, recipients
from vault.subjects.store import create_subject

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TRESOR = str(Path(sys.executable).with_name("tresor"))
SUBJECTS = 40
NAMES = ("mailer", "callcentre", "never")


class Dispatch:
    """One port, one reference receiver per recipient under `/<name>/...`."""

    def __init__(self, apps: dict[str, Any]) -> None:
        self.apps = apps

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        _, name, rest = scope["path"].split("/", 2)
        await self.apps[name](
            {**scope, "path": "/" + rest, "raw_path": b"/" + rest.encode()}, receive, send
        )


def _node(settings: Settings, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRESOR_")},
        "TRESOR_DATA_DIR": str(settings.data_dir),
        "TRESOR_DATABASE_URL": settings.database_url,
        "TRESOR_POLICIES": str(POLICIES),
        "TRESOR_NOTIFY_INTERVAL": "0.1",
        "TRESOR_NOTIFY_RETRY_SECONDS": "0.2",
        "TRESOR_NOTIFY_RETRY_MAX_SECONDS": "1",
        "TRESOR_RETENTION_INTERVAL": "0",
        "TRESOR_PUBLIC_URL": "http://127.0.0.1:9",
        **extra,
    }
    with log.open("wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen([TRESOR, "jobs"], env=env, stdout=out, stderr=subprocess.STDOUT)


async def _rows(ctx: VaultContext) -> tuple[list[Any], list[Any]]:
    async with ctx.engine.connect() as conn:
        events = (await conn.execute(select(domain_events))).all()
        rows = (
            await conn.execute(
                select(deliveries, recipients.c.name.label("recipient")).join(
                    recipients, recipients.c.id == deliveries.c.recipient_id
                )
            )
        ).all()
    return list(events), list(rows)


async def test_two_nodes_deliver_every_notice_and_nothing_extra(postgres, tmp_path: Path):
    """See the module docstring."""
    await postgres.truncate()
    data = tmp_path / "data"
    data.mkdir()
    LocalKeyring.create(data / "keyring.json")
    settings = Settings(
        data_dir=data, database_url=postgres.url, policies_dir=POLICIES, client_cache_seconds=0
    )
    ctx = VaultContext.open(settings)
    states = {name: ReceiverState(keys=[]) for name in NAMES}
    faults = Faults(fail_rate=0.3, seed=16)
    app = faults.wrap(Dispatch({n: create_receiver(s) for n, s in states.items()}))
    port = free_port()
    nodes: list[subprocess.Popen[bytes]] = []
    logs = [tmp_path / "node1.log", tmp_path / "node2.log"]
    plaintexts: list[str] = []
    try:
        for name in NAMES:
            await create_client(ctx, ADMIN, name, "lookup", sorted(ALL_PURPOSES))
            _, secret = await registry.create_recipient(
                ctx,
                ADMIN,
                name=name,
                kind="client",
                transport="webhook",
                target=f"http://127.0.0.1:{port}/{name}/tresor/notices",
            )
            assert secret
            states[name].keys.append(decode_secret(secret))
        sids = []
        for i in range(SUBJECTS):
            values = person(1600 + i)
            plaintexts += plaintext_values(values)
            sid = await create_subject(ctx, WRITER, values)
            await record_basis(ctx, WRITER, sid, "order.delivery", reference="order 1")
            sids.append(sid)
            for name in ("mailer", "callcentre")[: 1 + i % 2]:
                await lookup_mod.lookup(
                    ctx,
                    Actor("client", name),
                    ALL_PURPOSES,
                    purpose_id="order.delivery",
                    identifier_kind="subject_id",
                    identifier=sid,
                )
        nodes = [_node(settings, log) for log in logs]
        async with serving(app, port):
            for i, sid in enumerate(sids):
                if i % 3 == 0:
                    await restrict(ctx, Actor("dpo", "anna"), sid)
                await erase(ctx, Actor("dpo", "anna"), sid)
            await asyncio.sleep(1.0)
        await asyncio.sleep(3.0)  # the receivers are down for a while
        async with serving(app, port):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                _, rows = await _rows(ctx)
                if rows and all(r.status == "delivered" for r in rows):
                    break
                await asyncio.sleep(0.5)
        events, rows = await _rows(ctx)
    finally:
        for node in nodes:
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            node.wait(timeout=60)
        await ctx.close()

    # Counted against the outbox: each erasure (basis ended + erased) and restriction
    # concerns the clients that looked the subject up; never the third one.
    looked = {sid: ("mailer", "callcentre")[: 1 + i % 2] for i, sid in enumerate(sids)}
    expected = {(e.id, name) for e in events for name in looked[e.subject_id]}
    assert len(events) == SUBJECTS * 2 + len(range(0, SUBJECTS, 3))
    by_event = {e.seq: e.id for e in events}
    got = {(by_event[r.event_seq], r.recipient) for r in rows}
    assert got == expected
    assert {r.status for r in rows} == {"delivered"}
    for name in ("mailer", "callcentre"):
        ids = {r.id for r in rows if r.recipient == name}
        assert states[name].seen == ids, name  # every one arrived, de-duplicated by id
    assert states["never"].seen == set() and not [r for r in rows if r.recipient == "never"]
    assert faults.failed > 0 and faults.requests > len(rows)

    # Both nodes delivered, and together they recorded each delivery exactly once.
    per_node = []
    for log in logs:
        runs = [json.loads(line) for line in log.read_text().splitlines() if "notify_run" in line]
        per_node.append(sum(r["delivered"] for r in runs))
    assert all(n > 0 for n in per_node), per_node
    assert sum(per_node) == len(rows)

    # No contact value in any payload or log line.
    text = json.dumps([s.handled for s in states.values()]) + "".join(
        log.read_text() for log in logs
    )
    assert not [v for v in plaintexts if v in text]


class Slow:
    """Each notice takes a while to answer, so a node is killed in the middle of a round."""

    def __init__(self, app: Any, delay: float) -> None:
        self.app, self.delay, self.requests = app, delay, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests += 1
            await asyncio.sleep(self.delay)
        await self.app(scope, receive, send)


async def test_a_node_killed_while_delivering_loses_nothing(postgres, tmp_path: Path):
    """SIGKILL of the only node while notices are in flight: after a new node starts and
    the killed node's claims run out, every notice has arrived at least once, and the
    receiver de-duplicated every repeat by its id."""
    await postgres.truncate()
    data = tmp_path / "data"
    data.mkdir()
    LocalKeyring.create(data / "keyring.json")
    settings = Settings(
        data_dir=data, database_url=postgres.url, policies_dir=POLICIES, client_cache_seconds=0
    )
    ctx = VaultContext.open(settings)
    state = ReceiverState(keys=[])
    slow = Slow(create_receiver(state), 0.05)
    port = free_port()
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        await create_client(ctx, ADMIN, "mailer", "lookup", sorted(ALL_PURPOSES))
        _, secret = await registry.create_recipient(
            ctx,
            ADMIN,
            name="mailer",
            kind="client",
            transport="webhook",
            target=f"http://127.0.0.1:{port}/tresor/notices",
        )
        assert secret
        state.keys.append(decode_secret(secret))
        for i in range(SUBJECTS):
            sid = await create_subject(ctx, WRITER, person(1700 + i))
            await record_basis(ctx, WRITER, sid, "order.delivery", reference="order 1")
            await lookup_mod.lookup(
                ctx,
                Actor("client", "mailer"),
                ALL_PURPOSES,
                purpose_id="order.delivery",
                identifier_kind="subject_id",
                identifier=sid,
            )
            await erase(ctx, Actor("dpo", "anna"), sid)
        async with serving(slow, port):
            first = _node(settings, tmp_path / "first.log", TRESOR_NOTIFY_TIMEOUT="1")
            nodes.append(first)
            deadline = time.monotonic() + 60
            while len(state.seen) < 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            _, rows = await _rows(ctx)
            # Killed mid-way: notices arrived, but not all of them are recorded as delivered.
            assert state.seen and sum(r.status == "delivered" for r in rows) < len(rows)
            nodes.append(_node(settings, tmp_path / "second.log", TRESOR_NOTIFY_TIMEOUT="1"))
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                _, rows = await _rows(ctx)
                if rows and all(r.status == "delivered" for r in rows):
                    break
                await asyncio.sleep(0.25)
        _, rows = await _rows(ctx)
    finally:
        for node in nodes:
            if node.poll() is None:
                node.send_signal(signal.SIGTERM)
                node.wait(timeout=60)
        await ctx.close()
    assert len(rows) == SUBJECTS * 2
    assert {r.status for r in rows} == {"delivered"}
    assert state.seen == {r.id for r in rows}  # every notice arrived, each id handled once
    assert len(state.handled) == len(rows)
    assert slow.requests > len(rows)  # the killed node's sends were repeated, same ids
