"""`Idempotency-Key` on creating and changing POSTs (issue 17): a retry answers with the
first answer and does nothing twice, also under 20-way concurrency; another body under the
same key is a 422; the stored answer holds no plaintext; both databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from tests.support.dsar import contract, new_subject, sms_offers
from tests.support.factories import api, bearer, client_key
from tests.support.privacy import assert_problem
from vault.admin import idempotency
from vault.storage.tables import audit_events, consents, contacts, idempotency_records

NEWS = {
    "purpose": "newsletter.email",
    "evidence": {
        "touchpoint": "web.newsletter_form",
        "method": "web_form",
        "notice_version": "2026-10",
        "language": "de",
    },
}


async def _count(vault, table, *where) -> int:
    stmt = select(func.count()).select_from(table)
    for w in where:
        stmt = stmt.where(w)
    async with vault.engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


def _keyed(key: str, headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def test_twenty_concurrent_retries_record_one_consent(vault):
    """Twenty requests with one key and one body at once: exactly one consent is recorded
    and all twenty get its answer (the same consent id), the others marked as replays."""
    sid, _ = await new_subject(vault, 1701)
    writer = bearer(await client_key(vault, "crm", "writer"))
    async with api(vault) as http:
        answers = await asyncio.gather(
            *(
                http.post(
                    f"/v1/subjects/{sid}/consents", json=NEWS, headers=_keyed("k-1701", writer)
                )
                for _ in range(20)
            )
        )
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
    assert len({r.json()["consent_id"] for r in answers}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 19
    assert await _count(vault, consents, consents.c.subject_id == sid) == 1


async def test_twenty_concurrent_retries_reserve_contact_points_once(vault):
    """Twenty concurrent `POST /v1/contacts` with one key reserve the contact's points once:
    one contact record, every answer the same reservation."""
    sid, _ = await new_subject(vault, 1702)
    await contract(vault, sid)
    await sms_offers(vault, sid)
    key = bearer(await client_key(vault, "campaigns", "lookup", ["offers.sms"]))
    body = {
        "subject_id": sid,
        "brand": "tresor",
        "channel": "sms",
        "type": "commercial",
        "purpose": "offers.sms",
    }
    async with api(vault) as http:
        answers = await asyncio.gather(
            *(
                http.post("/v1/contacts", json=body, headers=_keyed("k-1702", key))
                for _ in range(20)
            )
        )
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
    assert len({r.json()["contact"]["id"] for r in answers}) == 1
    assert {r.json()["contact"]["used"] for r in answers} == {answers[0].json()["contact"]["used"]}
    assert await _count(vault, contacts, contacts.c.subject_id == sid) == 1


async def test_a_sequential_retry_replays_without_acting_and_is_audited(vault):
    """A retry after the first answer gets the same status and body (with the security
    headers every answer has), creates no second subject, and its replay is an audit
    event."""
    writer = bearer(await client_key(vault, "crm", "writer"))
    body = {"email": "retry@example.org", "name": "Re Try"}
    async with api(vault) as http:
        first = await http.post("/v1/subjects", json=body, headers=_keyed("s-1", writer))
        second = await http.post("/v1/subjects", json=body, headers=_keyed("s-1", writer))
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["cache-control"] == "no-store"  # a replay is an answer like any
    assert "idempotent-replayed" not in first.headers
    assert await _count(vault, audit_events, audit_events.c.action == "client:subject:create") == 1
    assert (
        await _count(
            vault,
            audit_events,
            audit_events.c.action == "client:request:replay",
            audit_events.c.decision == "allow",
        )
        == 1
    )


async def test_the_same_key_with_another_body_is_refused(vault):
    """The key of one request sent with another body: 422 naming the header, nothing done."""
    writer = bearer(await client_key(vault, "crm", "writer"))
    async with api(vault) as http:
        r = await http.post("/v1/subjects", json={"name": "A"}, headers=_keyed("s-2", writer))
        assert r.status_code == 201
        r = await http.post("/v1/subjects", json={"name": "B"}, headers=_keyed("s-2", writer))
    problem = assert_problem(r, 422)
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert await _count(vault, audit_events, audit_events.c.action == "client:subject:create") == 1


async def test_keys_are_per_client(vault):
    """Two clients using the same key string each get their own request done."""
    one = bearer(await client_key(vault, "crm", "writer"))
    two = bearer(await client_key(vault, "shop", "writer"))
    async with api(vault) as http:
        a = await http.post("/v1/subjects", json={"name": "A"}, headers=_keyed("same", one))
        b = await http.post("/v1/subjects", json={"name": "A"}, headers=_keyed("same", two))
    assert a.status_code == b.status_code == 201
    assert a.json()["subject_id"] != b.json()["subject_id"]


async def test_a_refused_request_does_not_keep_its_key(vault):
    """A 4xx changed nothing, so its key is released: the corrected retry with the same key
    (same body, now valid because the subject exists) runs."""
    writer = bearer(await client_key(vault, "crm", "writer"))
    sid, _ = await new_subject(vault, 1703)
    async with api(vault) as http:
        bad = await http.post(
            "/v1/subjects/00000000-0000-4000-8000-000000000000/consents",
            json=NEWS,
            headers=_keyed("c-1", writer),
        )
        assert bad.status_code == 404
        assert await _count(vault, idempotency_records) == 0
        ok = await http.post(
            f"/v1/subjects/{sid}/consents", json=NEWS, headers=_keyed("c-1", writer)
        )
    assert ok.status_code == 201


async def test_a_key_expires_after_24_hours(vault, clock):
    """After 24 hours the key is forgotten: the same request runs again."""
    writer = bearer(await client_key(vault, "crm", "writer"))
    async with api(vault) as http:
        a = await http.post("/v1/subjects", json={"name": "A"}, headers=_keyed("old", writer))
        clock.advance(timedelta(hours=24, seconds=1))
        b = await http.post("/v1/subjects", json={"name": "A"}, headers=_keyed("old", writer))
    assert a.json()["subject_id"] != b.json()["subject_id"]
    assert "idempotent-replayed" not in b.headers
    assert await idempotency.purge_expired(vault) == 0  # the expired one was replaced


async def test_an_invalid_key_is_refused(vault):
    """A key with a space or longer than 255 characters is a 422; nothing is created."""
    writer = bearer(await client_key(vault, "crm", "writer"))
    async with api(vault) as http:
        for bad in ("has space", "x" * 256):
            r = await http.post("/v1/subjects", json={"name": "A"}, headers=_keyed(bad, writer))
            assert assert_problem(r, 422)["errors"][0]["field"] == "Idempotency-Key"
    assert await _count(vault, audit_events, audit_events.c.action == "client:subject:create") == 0


async def test_the_stored_answer_holds_no_plaintext(vault):
    """A lookup's answer (contact data) is stored sealed: neither the e-mail address nor
    the key appears in any column of the record."""
    sid, _ = await new_subject(vault, 1704, email="sealed.answer@example.org")
    await contract(vault, sid)
    await sms_offers(vault, sid)
    key = bearer(await client_key(vault, "campaigns", "lookup", ["offers.sms"]))
    body = {"purpose": "offers.sms", "subject_id": sid, "contact": {"brand": "tresor"}}
    async with api(vault) as http:
        first = await http.post("/v1/lookup", json=body, headers=_keyed("lookup-key-1", key))
        again = await http.post("/v1/lookup", json=body, headers=_keyed("lookup-key-1", key))
    assert first.status_code == 200, first.text
    assert again.json() == first.json()
    async with vault.engine.connect() as conn:
        row = (await conn.execute(select(idempotency_records))).one()
    stored = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row._mapping.values())
    assert b"sealed.answer" not in stored
    assert b"lookup-key-1" not in stored
    assert row.status == "done"
    assert await _count(vault, contacts, contacts.c.subject_id == sid) == 1
