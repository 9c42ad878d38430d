"""Stored data that fails its integrity check, over HTTP on both databases: a 500 problem
that names no value and no check, a batch line with status 500, and the lookup metric."""

from __future__ import annotations

import json

from sqlalchemy import select, update

from tests.support.factories import WRITER, api, bearer, client_key, person
from tests.support.privacy import assert_problem, audit_rows
from vault.bases.consents import record_basis
from vault.storage.tables import subjects
from vault.subjects.store import create_subject

INTEGRITY = "urn:tresor:problem:integrity-error"


async def _tampered_pair(vault) -> tuple[dict, dict, str, str]:
    """Two customers with a delivery contract; A's customer-number index moved to B."""
    a, b = person(951), person(952)
    sid_a = await create_subject(vault, WRITER, a)
    sid_b = await create_subject(vault, WRITER, b)
    for sid in (sid_a, sid_b):
        await record_basis(vault, WRITER, sid, "order.delivery", reference="order")
    async with vault.engine.begin() as conn:
        digest = (
            await conn.execute(select(subjects.c.external_ref_bidx).where(subjects.c.id == sid_a))
        ).scalar_one()
        await conn.execute(
            update(subjects).where(subjects.c.id == sid_a).values(external_ref_bidx=None)
        )
        await conn.execute(
            update(subjects).where(subjects.c.id == sid_b).values(external_ref_bidx=digest)
        )
    return a, b, sid_a, sid_b


def _leaks(text: str, *people: dict) -> list[str]:
    return [
        v
        for p in people
        for v in (p["name"], p["phone"], p["external_ref"], p["email"])
        if v in text
    ]


async def test_lookup_answers_a_500_problem_naming_nothing(vault):
    """A lookup that meets a moved index gets a 500 problem of type integrity-error with the
    reason, without any value of either customer; the denial is audited and counted."""
    a, b, _, sid_b = await _tampered_pair(vault)
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    async with api(vault) as http:
        r = await http.post(
            "/v1/lookup",
            json={"purpose": "order.delivery", "external_ref": a["external_ref"]},
            headers=bearer(shop),
        )
        metrics = (await http.get("/metrics")).text
    body = assert_problem(r, 500)
    assert body["type"] == INTEGRITY and body["reason"] == "integrity_error"
    assert _leaks(r.text, a, b) == []
    (event,) = [e for e in await audit_rows(vault) if e["reason"] == "integrity_error"]
    assert event["subject_id"] == sid_b and event["decision"] == "deny"
    assert 'reason="integrity_error"' in metrics


async def test_batch_line_is_500_and_the_others_are_served(vault):
    """In a batch the line that meets the moved index is `integrity_error` with status 500;
    the honest line next to it is served."""
    a, b, sid_a, _ = await _tampered_pair(vault)
    c = person(953)
    sid_c = await create_subject(vault, WRITER, c)
    await record_basis(vault, WRITER, sid_c, "order.delivery", reference="order")
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    body = {"purpose": "order.delivery", "external_refs": [a["external_ref"], c["external_ref"]]}
    async with api(vault) as http:
        async with http.stream("POST", "/v1/lookup/batch", json=body, headers=bearer(shop)) as r:
            assert r.status_code == 200
            lines = [json.loads(x) async for x in r.aiter_lines() if x]
    assert (lines[0]["reason"], lines[0]["status"]) == ("integrity_error", 500)
    assert lines[1]["subject_id"] == sid_c
    assert _leaks(json.dumps(lines[0]), a, b) == []


async def test_export_of_tampered_data_is_a_500_problem(vault):
    """The DPO's export of a subject whose ciphertext was tampered with is a 500 problem of
    type integrity-error; no part of the export leaves."""
    p = person(954)
    sid = await create_subject(vault, WRITER, p)
    async with vault.engine.begin() as conn:
        blob = bytearray(
            (
                await conn.execute(select(subjects.c.name_ct).where(subjects.c.id == sid))
            ).scalar_one()
        )
        blob[-1] ^= 1
        await conn.execute(update(subjects).where(subjects.c.id == sid).values(name_ct=bytes(blob)))
    dpo = await client_key(vault, "dpo-office", "dpo")
    async with api(vault) as http:
        r = await http.get(f"/v1/subjects/{sid}/export", headers=bearer(dpo))
    body = assert_problem(r, 500)
    assert body["type"] == INTEGRITY and _leaks(r.text, p) == []
