"""`Idempotency-Key` on creating and changing POSTs (issue 17): a retry answers with the
first answer and does nothing twice, also under 20-way concurrency; another body under the
same key is a 422; lookups keep no answer, so a retry is decided anew and reserves its
contact once; both databases."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from sqlalchemy import func, select

from tests.support.dsar import DPO, contract, erase, new_subject, sms_offers
from tests.support.factories import api, bearer, client_key
from tests.support.privacy import assert_problem
from vault.admin import idempotency
from vault.admin.housekeeping import purge_transient
from vault.audit.events import Actor
from vault.bases.consents.withdrawal import withdraw
from vault.rights.restriction import restrict
from vault.storage.audit_tables import audit_events
from vault.storage.outreach_tables import contacts
from vault.storage.tables import consents, idempotency_records

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


LOOKUP_BODY = {"purpose": "offers.sms", "contact": {"brand": "tresor"}}


async def _sms_customer(vault, seed: int, phone: str) -> tuple[str, str]:
    """A subject with an SMS-offers consent (which reveals the phone number); its id and
    that consent's id."""
    sid, _ = await new_subject(vault, seed, phone=phone)
    await contract(vault, sid)
    record = await sms_offers(vault, sid)
    return sid, record.id


async def _lookup_client(vault) -> dict[str, str]:
    return bearer(await client_key(vault, "campaigns", "lookup", ["offers.sms"]))


async def test_a_lookup_keeps_no_answer_for_its_key(vault):
    """A lookup sent with a key stores nothing of its answer (no status, no ciphertext, no
    key to open one), and a retry is no replay: it runs the lookup again."""
    sid, _ = await _sms_customer(vault, 1704, "+4915112345704")
    key = await _lookup_client(vault)
    body = {**LOOKUP_BODY, "subject_id": sid}
    async with api(vault) as http:
        first = await http.post("/v1/lookup", json=body, headers=_keyed("lookup-key-1", key))
        again = await http.post("/v1/lookup", json=body, headers=_keyed("lookup-key-1", key))
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["fields"]["phone"] == "+4915112345704"
    assert "idempotent-replayed" not in again.headers
    assert again.json()["fields"] == first.json()["fields"]
    async with vault.engine.connect() as conn:
        row = (await conn.execute(select(idempotency_records))).one()
    assert row.status == "done"
    assert (row.response_ct, row.wrapped_key, row.response_status) == (None, None, None)
    lookups = audit_events.c.action == "client:contact:lookup"
    assert await _count(vault, audit_events, lookups, audit_events.c.subject_id == sid) == 2


async def test_a_retried_lookup_after_a_withdrawal_reveals_nothing(vault):
    """The attack of the stop-23 review: look up with a key, the customer withdraws the
    consent, the same client retries with the same key and body. The retry is decided anew:
    403 `consent_withdrawn`, no contact value in the answer, and the denial is audited with
    the subject and the purpose."""
    sid, consent_id = await _sms_customer(vault, 1705, "+4915112345705")
    key = await _lookup_client(vault)
    body = {**LOOKUP_BODY, "subject_id": sid}
    async with api(vault) as http:
        first = await http.post("/v1/lookup", json=body, headers=_keyed("lookup-key-2", key))
        assert first.json()["fields"]["phone"] == "+4915112345705", first.text
        await withdraw(vault, Actor("subject", sid), sid, consent_id)
        retry = await http.post("/v1/lookup", json=body, headers=_keyed("lookup-key-2", key))
    assert assert_problem(retry, 403)["reason"] == "consent_withdrawn"
    assert "+4915112345705" not in retry.text
    denied = await _count(
        vault,
        audit_events,
        audit_events.c.action == "client:contact:lookup",
        audit_events.c.decision == "deny",
        audit_events.c.subject_id == sid,
        audit_events.c.purpose == "offers.sms",
    )
    assert denied == 1


async def test_a_retried_lookup_after_an_erasure_reveals_nothing(vault):
    """After an erasure the same retry answers `subject_erased`; no copy of the first answer
    survives anywhere in the idempotency records."""
    sid, _ = await _sms_customer(vault, 1706, "+4915112345706")
    key = await _lookup_client(vault)
    body = {**LOOKUP_BODY, "subject_id": sid}
    async with api(vault) as http:
        first = await http.post("/v1/lookup", json=body, headers=_keyed("lookup-key-3", key))
        assert first.json()["fields"]["phone"] == "+4915112345706", first.text
        await erase(vault, DPO, sid)
        retry = await http.post("/v1/lookup", json=body, headers=_keyed("lookup-key-3", key))
    assert retry.status_code in (403, 409), retry.text
    assert retry.json()["reason"] == "subject_erased"
    assert "+4915112345706" not in retry.text
    async with vault.engine.connect() as conn:
        stored = (await conn.execute(select(idempotency_records.c.response_ct))).scalars().all()
    assert stored == [None]


async def test_a_retried_batch_after_a_restriction_reveals_nothing(vault):
    """A batch lookup retried with its key after the customer's processing was restricted
    streams `subject_restricted` for that line, not the first answer's data."""
    sid, _ = await _sms_customer(vault, 1707, "+4915112345707")
    key = await _lookup_client(vault)
    body = {**LOOKUP_BODY, "subject_ids": [sid]}
    async with api(vault) as http:
        first = await http.post("/v1/lookup/batch", json=body, headers=_keyed("batch-1", key))
        assert first.status_code == 200, first.text
        assert "+4915112345707" in first.text  # the first answer did reveal the number
        await restrict(vault, DPO, sid)
        retry = await http.post("/v1/lookup/batch", json=body, headers=_keyed("batch-1", key))
    assert retry.status_code == 200, retry.text
    (line,) = [json.loads(x) for x in retry.text.splitlines() if x]
    assert line["reason"] == "subject_restricted"
    assert "+4915112345707" not in retry.text


async def test_twenty_concurrent_lookup_retries_reserve_the_contact_once(vault):
    """Twenty lookups with one key and a contact at once: every one is decided and audited,
    all answer the same contact id, and the customer's basket is charged once."""
    sid, _ = await _sms_customer(vault, 1708, "+4915112345708")
    key = await _lookup_client(vault)
    body = {**LOOKUP_BODY, "subject_id": sid}
    async with api(vault) as http:
        answers = await asyncio.gather(
            *(http.post("/v1/lookup", json=body, headers=_keyed("k-1708", key)) for _ in range(20))
        )
    assert {r.status_code for r in answers} <= {200, 409}, [r.text for r in answers]
    served = [r.json() for r in answers if r.status_code == 200]
    assert served, [r.text for r in answers]
    assert len({a["contact"]["id"] for a in served}) == 1
    assert {a["contact"]["used"] for a in served} == {served[0]["contact"]["points"]}
    assert await _count(vault, contacts, contacts.c.subject_id == sid) == 1


async def test_a_retried_batch_reserves_each_contact_once(vault):
    """A batch retried with its key (its first answer lost) answers the same contact ids and
    reserves nothing twice, though each basket holds one SMS only; another key is another
    contact, refused by the full baskets."""
    one, _ = await _sms_customer(vault, 1709, "+4915112345709")
    two, _ = await _sms_customer(vault, 1710, "+4915112345710")
    key = await _lookup_client(vault)
    body = {**LOOKUP_BODY, "subject_ids": [one, two]}

    def ids(r) -> list[str]:
        return [json.loads(x)["contact"]["id"] for x in r.text.splitlines() if x]

    async with api(vault) as http:
        first = await http.post("/v1/lookup/batch", json=body, headers=_keyed("batch-2", key))
        again = await http.post("/v1/lookup/batch", json=body, headers=_keyed("batch-2", key))
        other = await http.post("/v1/lookup/batch", json=body, headers=_keyed("batch-3", key))
    assert len(set(ids(first))) == 2
    assert ids(first) == ids(again)
    reasons = [json.loads(x)["reason"] for x in other.text.splitlines() if x]
    assert reasons == ["contact_budget_exhausted"] * 2
    assert await _count(vault, contacts, contacts.c.subject_id.in_([one, two])) == 2


async def test_a_dry_run_under_a_lookups_key_does_not_count_its_reservation_as_paid(vault):
    """A batch with a key fills ten customers' SMS baskets; a dry run of the same contact
    sent under the same key rehearses anew: all ten are blocked by their full baskets, none
    counted reachable as if the batch's reservation were the dry run's own."""
    ids = [(await _sms_customer(vault, 1720 + k, f"+49151123457{20 + k}"))[0] for k in range(10)]
    key = await _lookup_client(vault)
    async with api(vault) as http:
        batch = await http.post(
            "/v1/lookup/batch",
            json={**LOOKUP_BODY, "subject_ids": ids},
            headers=_keyed("audience-1", key),
        )
        assert batch.status_code == 200, batch.text
        assert all("contact" in json.loads(x) for x in batch.text.splitlines() if x), batch.text
        rehearsal = await http.post(
            "/v1/lookup/dry-run",
            json={**LOOKUP_BODY, "subject_ids": ids},
            headers=_keyed("audience-1", key),
        )
    assert rehearsal.status_code == 200, rehearsal.text
    answer = rehearsal.json()
    assert answer["reachable"] in (0, None), answer
    assert answer["unreachable"] == {"contact_budget_exhausted": 10}, answer
    assert await _count(vault, contacts, contacts.c.subject_id.in_(ids)) == 10


async def test_a_replayed_answer_carries_its_etag(vault):
    """A stored answer that had an `ETag` (a new subject's contact state) gets it again on
    the replay, so a client can go on with `If-Match`."""
    writer = bearer(await client_key(vault, "crm", "writer"))
    async with api(vault) as http:
        first = await http.post("/v1/subjects", json={"name": "E"}, headers=_keyed("e-1", writer))
        again = await http.post("/v1/subjects", json={"name": "E"}, headers=_keyed("e-1", writer))
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["etag"] == first.headers["etag"]


def test_no_kept_answer_can_hold_contact_data():
    """Only operations whose 2xx answers name no contact field keep their answers: every
    operation that keeps one is checked through its response schema, so a new operation
    returning contact data cannot store copies of it by accident."""
    from api.app import openapi_document

    doc = openapi_document()

    def resolve(ref: str):
        node = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    # `name` is left out: a client or a campaign has one too.
    contact_words = {"email", "phone", "postal_address", "fields"}

    def names(node, seen: set[str]) -> set[str]:
        found: set[str] = set()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                if ref not in seen:
                    found |= names(resolve(ref), seen | {ref})
            found |= set(node.get("properties", {}))
            for value in node.values():
                found |= names(value, seen)
        elif isinstance(node, list):
            for value in node:
                found |= names(value, seen)
        return found

    keeping = []
    for path, item in doc["paths"].items():
        op = item.get("post")
        if not op or not any(p.get("name") == "Idempotency-Key" for p in op.get("parameters", [])):
            continue
        ok = {k: v for k, v in op["responses"].items() if k.startswith("2")}
        if any("Idempotent-Replayed" in (v.get("headers") or {}) for v in ok.values()):
            keeping.append(path)
            assert not names(ok, set()) & contact_words, path
    assert "/v1/lookup" not in keeping and "/v1/lookup/batch" not in keeping
    assert "/v1/subjects" in keeping  # the check does look at kept answers


async def test_the_retention_run_deletes_expired_keys(vault, clock):
    """Records past their 24 hours go with the retention run's housekeeping."""
    writer = bearer(await client_key(vault, "crm", "writer"))
    async with api(vault) as http:
        await http.post("/v1/subjects", json={"name": "A"}, headers=_keyed("gone", writer))
    clock.advance(timedelta(hours=24, seconds=1))
    purged = await purge_transient(vault)
    assert purged.idempotency_records == 1
    assert await _count(vault, idempotency_records) == 0
