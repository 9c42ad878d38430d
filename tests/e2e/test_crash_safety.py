"""Crash safety: SIGKILL the server during write load; every acknowledged write survives,
nothing half-written is visible, and the audit chain still verifies after a restart."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import POLICIES
from tests.support.server import serve
from vault.context import VaultContext
from vault.settings import Settings
from vault.storage.audit_tables import audit_events
from vault.storage.tables import consents, subjects


def _load(served, writer: str, stop: threading.Event, acked: list[tuple[str, str]]) -> None:
    """Create subjects (and a contract basis for each) until told to stop or the server dies."""
    while not stop.is_set():
        ref = f"K-{uuid.uuid4().hex[:12]}"
        try:
            status, body = served.call(
                "POST",
                "/v1/subjects",
                writer,
                {"name": "Lasttest Kundin", "external_ref": ref, "email": f"{ref}@example.org"},
            )
        except OSError:
            return  # the server is gone
        if status == 201:
            acked.append(("subject", body["subject_id"]))
            try:
                status, body2 = served.call(
                    "POST",
                    f"/v1/subjects/{body['subject_id']}/consents",
                    writer,
                    {"purpose": "order.delivery", "reference": ref},
                )
            except OSError:
                return
            if status == 201:
                acked.append(("consent", body2["consent_id"]))


async def _check(settings: Settings, acked: list[tuple[str, str]]) -> None:
    ctx = VaultContext.open(settings)
    try:
        async with ctx.transaction() as conn:
            subject_ids = set((await conn.execute(select(subjects.c.id))).scalars())
            consent_ids = set((await conn.execute(select(consents.c.id))).scalars())
            created = (
                await conn.execute(
                    select(func.count())
                    .select_from(audit_events)
                    .where(audit_events.c.action == "client:subject:create")
                )
            ).scalar_one()
            granted = (
                await conn.execute(
                    select(func.count())
                    .select_from(audit_events)
                    .where(audit_events.c.action == "client:basis:record")
                )
            ).scalar_one()
        for kind, ident in acked:
            assert ident in (subject_ids if kind == "subject" else consent_ids), (kind, ident)
        # Nothing half-written: every stored row has its audit event, and no event lacks a row.
        assert created == len(subject_ids)
        assert granted == len(consent_ids)
    finally:
        await ctx.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_during_writes_loses_nothing_acknowledged(tmp_path: Path, backend: str, request):
    """Kill -9 under concurrent writes, restart: all 2xx writes are there, chain verifies."""
    extra: dict[str, str] = {"TRESOR_RETENTION_INTERVAL": "0"}
    if backend == "postgresql":
        pg = request.getfixturevalue("postgres")
        asyncio.run(pg.truncate())
        extra["TRESOR_DATABASE_URL"] = pg.url
    acked: list[tuple[str, str]] = []
    with serve(tmp_path, **extra) as served:
        writer = served.client("crm", "writer")
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(8):
                pool.submit(_load, served, writer, stop, acked)
            deadline = time.monotonic() + 20
            while len(acked) < 60 and time.monotonic() < deadline:
                time.sleep(0.05)
            served.proc.send_signal(signal.SIGKILL)
            served.proc.wait(timeout=10)
            time.sleep(0.2)
            stop.set()
    assert len(acked) >= 60, "the load never got going"

    # Restart on the same data dir and database; the vault comes up and seals the rest.
    with serve(tmp_path, **extra) as served:
        assert served.call("GET", "/ready")[0] == 200
        env = {"TRESOR_DATA_DIR": str(served.data_dir), "TRESOR_POLICIES": str(POLICIES)}
        if "TRESOR_DATABASE_URL" in extra:
            env["TRESOR_DATABASE_URL"] = extra["TRESOR_DATABASE_URL"]
        settings = Settings.from_env(env)
        asyncio.run(_check(settings, acked))
        out = served.cli("audit", "seal")
        assert out.startswith("sealed")
        verify = served.cli("audit", "verify")
        assert verify.startswith("OK") and " 0 not sealed" in verify, verify
