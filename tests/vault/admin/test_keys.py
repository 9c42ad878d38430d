"""KEK rotation on both databases: re-wrap every DEK online, retire old versions, stay readable."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.support.factories import ADMIN, WRITER, api, bearer, client_key, person
from vault.admin.keys import retire_unused, rewrap_all, rotate, versions_in_use
from vault.audit.events import AuditAction
from vault.bases.consents import record_basis
from vault.context import VaultContext
from vault.storage.audit_tables import audit_events
from vault.storage.tables import subjects
from vault.subjects.store import create_subject, decrypt_fields, load_subject

FIELDS = ("email", "phone", "name", "postal_address", "external_ref")
SEALED = tuple(f"{f}_ct" for f in FIELDS) + ("email_bidx", "phone_bidx", "external_ref_bidx")


async def _create(vault: VaultContext, seeds: range) -> dict[str, dict[str, Any]]:
    """Subject id -> the person data it was created from."""
    out = {}
    for i in seeds:
        p = person(i)
        out[await create_subject(vault, WRITER, p)] = p
    return out


async def _rows(vault: VaultContext) -> dict[str, Any]:
    async with vault.transaction() as conn:
        return {r.id: r for r in (await conn.execute(select(subjects))).all()}


async def _decrypt(vault: VaultContext, sid: str) -> dict[str, Any]:
    async with vault.transaction() as conn:
        row = await load_subject(conn, sid)
    return decrypt_fields(vault, row, FIELDS)


async def _audit(vault: VaultContext) -> list[Any]:
    async with vault.transaction() as conn:
        return (await conn.execute(select(audit_events).order_by(audit_events.c.seq))).all()


def _plaintexts(p: dict[str, Any]) -> list[str]:
    addr = p["postal_address"]
    values = [p["email"], p["phone"], p["phone"].lstrip("+"), p["name"], p["external_ref"]]
    values += [addr["street"], addr["city"]]
    return [v for v in values if len(v) >= 4]


async def test_rotate_rewraps_every_dek_and_keeps_fields_readable(vault: VaultContext) -> None:
    """Rotation moves all 50 DEKs to the new KEK; field ciphertexts and plaintexts are unchanged."""
    people = await _create(vault, range(50))
    before = await _rows(vault)
    plain = {sid: await _decrypt(vault, sid) for sid in people}
    for sid, p in people.items():
        assert plain[sid]["name"] == p["name"]
        assert plain[sid]["external_ref"] == p["external_ref"]
        assert plain[sid]["postal_address"] == p["postal_address"]

    report = await rotate(vault, ADMIN)

    assert (report.new_version, report.rewrapped, report.remaining) == (2, 50, 0)
    after = await _rows(vault)
    for sid in people:
        assert after[sid].kek_version == 2
        assert after[sid].wrapped_dek != before[sid].wrapped_dek
        assert after[sid].dek_version == before[sid].dek_version
        for col in SEALED:
            assert getattr(after[sid], col) == getattr(before[sid], col), col
        assert await _decrypt(vault, sid) == plain[sid]
    assert await versions_in_use(vault) == {2: 50}


async def test_retire_after_rotation_removes_v1_and_data_stays_readable(
    vault: VaultContext,
) -> None:
    """After rotation v1 is retired and a fresh process (no DEK cache) still decrypts it all."""
    people = await _create(vault, range(100, 110))
    plain = {sid: await _decrypt(vault, sid) for sid in people}
    await rotate(vault, ADMIN)

    assert await retire_unused(vault, ADMIN) == [1]
    assert vault.kek.versions() == [2]
    assert await retire_unused(vault, ADMIN) == []
    fresh = VaultContext.open(vault.settings, clock=vault.clock)
    try:
        for sid in people:
            assert await _decrypt(fresh, sid) == plain[sid]
    finally:
        await fresh.close()


async def test_rotation_audit_events_hold_no_plaintext(vault: VaultContext) -> None:
    """Rotate, rewrap and retire are audited, and no audit column holds any contact value."""
    people = await _create(vault, range(200, 220))
    await rotate(vault, ADMIN)
    await retire_unused(vault, ADMIN)

    events = await _audit(vault)
    by_action = {e.action: e for e in events}
    assert json.loads(by_action[AuditAction.KEYS_ROTATE].detail) == {"new_version": 2}
    rewraps = [json.loads(e.detail) for e in events if e.action == AuditAction.KEYS_REWRAP]
    assert {tuple(sorted(d)) for d in rewraps} == {("count", "to_version")}
    assert sum(d["count"] for d in rewraps) == 20 and {d["to_version"] for d in rewraps} == {2}
    assert json.loads(by_action[AuditAction.KEYS_RETIRE].detail) == {"retired": [1]}
    for action in (AuditAction.KEYS_ROTATE, AuditAction.KEYS_REWRAP, AuditAction.KEYS_RETIRE):
        assert by_action[action].actor_type == ADMIN.type
        assert by_action[action].actor_id == ADMIN.id
    secrets = [v for p in people.values() for v in _plaintexts(p)]
    for event in events:
        text = " ".join(str(v) for v in event)
        for value in secrets:
            assert value not in text


async def test_small_batches_audit_each_batch(vault: VaultContext) -> None:
    """rewrap_all in batches of at most 7 re-wraps all 20 DEKs and audits each batch with its
    count (7, 7, 6 by key on SQLite; passes over windows of 7 pages on PostgreSQL)."""
    await _create(vault, range(300, 320))
    assert vault.kek.add_version() == 2
    assert await rewrap_all(vault, ADMIN, batch=7) == 20
    counts = [
        json.loads(e.detail)["count"]
        for e in await _audit(vault)
        if e.action == AuditAction.KEYS_REWRAP
    ]
    assert sum(counts) == 20 and all(0 < n <= 7 for n in counts)
    if vault.engine.dialect.name == "sqlite":
        assert counts == [7, 7, 6]
    assert await rewrap_all(vault, ADMIN, batch=7) == 0
    assert await versions_in_use(vault) == {2: 20}


async def test_versions_in_use_block_retiring(vault: VaultContext) -> None:
    """A version still wrapping a DEK is kept; rotation then moves DEKs of every old version."""
    old = await _create(vault, range(400, 403))
    vault.kek.add_version()
    new = await _create(vault, range(403, 405))
    assert await versions_in_use(vault) == {1: 3, 2: 2}
    assert await retire_unused(vault, ADMIN) == []

    report = await rotate(vault, ADMIN)

    assert (report.new_version, report.rewrapped, report.remaining) == (3, 5, 0)
    assert await retire_unused(vault, ADMIN) == [1, 2]
    for sid, p in {**old, **new}.items():
        assert (await _decrypt(vault, sid))["external_ref"] == p["external_ref"]


async def test_erased_subject_neither_blocks_rotation_nor_keeps_a_version(
    vault: VaultContext,
) -> None:
    """A subject whose DEK was destroyed is skipped by rotation and does not pin its KEK version."""
    people = await _create(vault, range(500, 503))
    erased = next(iter(people))
    async with vault.transaction() as conn:
        await conn.execute(
            update(subjects)
            .where(subjects.c.id == erased)
            .values(status="erased", wrapped_dek=None, **{f"{f}_ct": None for f in FIELDS})
        )
    report = await rotate(vault, ADMIN)
    assert (report.rewrapped, report.remaining) == (2, 0)
    assert await retire_unused(vault, ADMIN) == [1]


@pytest.mark.slow
async def test_rotation_under_load_keeps_everything_readable(vault: VaultContext) -> None:
    """Lookups running through HTTP while DEKs are re-wrapped in small batches all succeed."""
    people = await _create(vault, range(1000, 1100))
    sids = list(people)
    for sid in sids:
        await record_basis(vault, WRITER, sid, "order.delivery", reference="order 1")
    delivery = ("name", "phone", "postal_address")
    expected = {}
    for sid in sids:
        plain = await _decrypt(vault, sid)
        expected[sid] = {k: plain[k] for k in delivery}
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    started, rotated = asyncio.Event(), asyncio.Event()
    results: list[tuple[str, int, Any, bool]] = []
    counter = iter(range(10**6))

    async def lookups(http: Any) -> None:
        while (i := next(counter)) < 200 or not rotated.is_set():
            sid = sids[i % len(sids)]
            r = await http.post(
                "/v1/lookup",
                json={"purpose": "order.delivery", "subject_id": sid},
                headers=bearer(shop),
            )
            results.append((sid, r.status_code, r.json(), rotated.is_set()))
            if len(results) == 20:
                started.set()

    async def rotation() -> int:
        await started.wait()
        assert vault.kek.add_version() == 2
        done = await rewrap_all(vault, ADMIN, batch=10)
        rotated.set()
        return done

    async with api(vault) as http:
        outcome = await asyncio.gather(rotation(), *(lookups(http) for _ in range(4)))

    assert outcome[0] == 100
    assert len(results) >= 200
    during = [r for r in results[20:] if not r[3]]
    assert during, "no lookup overlapped the rotation"
    for sid, status, body, _ in results:
        assert status == 200, body
        assert body["subject_id"] == sid
        assert body["fields"] == expected[sid]
    rows = await _rows(vault)
    assert {r.kek_version for r in rows.values()} == {2}
    assert await versions_in_use(vault) == {2: 100}
