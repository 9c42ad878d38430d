"""POST /v1/lookup/batch (NDJSON stream) and /v1/lookup/dry-run over HTTP, both databases."""

from __future__ import annotations

import json

from tests.support.factories import WRITER, api, bearer, client_key, person
from tests.support.privacy import assert_problem, audit_rows
from vault.audit.events import AuditAction
from vault.bases.consents import record_basis
from vault.subjects.store import create_subject

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


async def _subjects(vault, n: int) -> tuple[list[dict], list[str]]:
    people = [person(900 + k) for k in range(n)]
    ids = [await create_subject(vault, WRITER, p) for p in people]
    for sid in ids[:-1]:  # the last one has no basis
        await record_basis(vault, WRITER, sid, "order.delivery", reference="order")
    return people, ids


async def test_batch_streams_ndjson_lines_in_order(vault):
    people, ids = await _subjects(vault, 3)
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    body = {
        "purpose": "order.delivery",
        "phones": [people[1]["phone"], "kein-telefon", people[2]["phone"], people[0]["phone"]],
    }
    async with api(vault) as http:
        async with http.stream("POST", "/v1/lookup/batch", json=body, headers=bearer(shop)) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("application/x-ndjson")
            lines = [json.loads(x) async for x in r.aiter_lines() if x]
    assert [x["i"] for x in lines] == [0, 1, 2, 3]
    assert lines[0]["subject_id"] == ids[1] and lines[0]["fields"]["phone"] == people[1]["phone"]
    assert (lines[1]["reason"], lines[1]["status"]) == ("invalid_identifier", 422)
    assert (lines[2]["reason"], lines[2]["status"]) == ("no_consent", 403)
    assert lines[3]["subject_id"] == ids[0]
    assert "kein-telefon" not in json.dumps(lines) and people[2]["phone"] not in json.dumps(lines)
    events = [e for e in await audit_rows(vault) if e["action"] == AuditAction.LOOKUP]
    assert len(events) == 4
    assert {json.loads(e["detail"])["batch"] for e in events} == {events[0]["request_id"]}
    assert events[0]["request_id"]


async def test_batch_rejections_before_streaming(vault):
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    writer = await client_key(vault, "crm", "writer")
    ok = {"purpose": "order.delivery", "subject_ids": [UNKNOWN_ID, UNKNOWN_ID]}
    async with api(vault) as http:
        post = http.post
        assert_problem(await post("/v1/lookup/batch", json=ok, headers=bearer(writer)), 403)
        assert_problem(await post("/v1/lookup/batch", json=ok), 401)
        too_many = {"purpose": "order.delivery", "subject_ids": [UNKNOWN_ID] * 10_001}
        assert_problem(await post("/v1/lookup/batch", json=too_many, headers=bearer(shop)), 422)
        two = {**ok, "emails": ["a@b.de"]}
        assert_problem(await post("/v1/lookup/batch", json=two, headers=bearer(shop)))
        none = {"purpose": "order.delivery"}
        assert_problem(await post("/v1/lookup/batch", json=none, headers=bearer(shop)))
        field = {**ok, "fields": ["iban"]}
        assert_problem(await post("/v1/lookup/batch", json=field, headers=bearer(shop)), 422)
        assert not [e for e in await audit_rows(vault) if e["action"] == AuditAction.LOOKUP]
        denied = {"purpose": "newsletter.email", "subject_ids": [UNKNOWN_ID, "x"]}
        r = await post("/v1/lookup/batch", json=denied, headers=bearer(shop))
        assert assert_problem(r, 403)["reason"] == "purpose_not_allowed"
    events = [e for e in await audit_rows(vault) if e["action"] == AuditAction.LOOKUP]
    assert [(e["reason"], e["subject_id"]) for e in events] == [
        ("purpose_not_allowed", UNKNOWN_ID),
        ("purpose_not_allowed", None),
    ]


async def test_batch_of_ten_thousand_fits_the_body_limit(vault):
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    emails = [f"kundin.mit.langem.namen.{k:05d}@beispiel-versandhandel.de" for k in range(10_000)]
    async with api(vault) as http:
        async with http.stream(
            "POST",
            "/v1/lookup/batch",
            json={"purpose": "order.delivery", "emails": emails},
            headers=bearer(shop),
        ) as r:
            assert r.status_code == 200
            count = 0
            async for line in r.aiter_lines():
                if line:
                    assert json.loads(line) == {
                        "i": count,
                        "reason": "subject_not_found",
                        "status": 404,
                    }
                    count += 1
    assert count == 10_000
    assert "beispiel-versandhandel" not in json.dumps(await audit_rows(vault), default=str)


async def test_dry_run_counts_without_contact_data(vault):
    """Counts by reason without contact data (the group threshold lowered to 1 here; it is
    tested in test_dry_run_api.py); a wrong channel is 422, a foreign purpose 403."""
    import dataclasses

    vault.pressure_rules = dataclasses.replace(vault.pressure_rules, dry_run_min_audience=1)
    people, ids = await _subjects(vault, 3)
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    body = {
        "purpose": "order.delivery",
        "channel": "letter",
        "subject_ids": [*ids, UNKNOWN_ID, "nope"],
    }
    async with api(vault) as http:
        r = await http.post("/v1/lookup/dry-run", json=body, headers=bearer(shop))
        assert r.status_code == 200, r.text
        assert r.json() == {
            "total": 5,
            "reachable": 2,
            "unreachable": {"invalid_identifier": 1, "no_consent": 1, "subject_not_found": 1},
            "suppressed": 0,
            "min_audience": 1,
        }
        for p in people:
            assert p["name"] not in r.text and p["postal_address"]["street"] not in r.text
        wrong = {**body, "channel": "email"}  # order.delivery never goes by e-mail
        assert_problem(await http.post("/v1/lookup/dry-run", json=wrong, headers=bearer(shop)), 422)
        other = {**body, "purpose": "newsletter.email", "channel": None}
        r = await http.post("/v1/lookup/dry-run", json=other, headers=bearer(shop))
        assert assert_problem(r, 403)["reason"] == "purpose_not_allowed"
    events = [
        e
        for e in await audit_rows(vault)
        if e["action"] == AuditAction.AUDIENCE_DRY_RUN and e["subject_id"] is None
    ]
    assert [e["decision"] for e in events] == ["allow", "deny"]
    assert not [e for e in await audit_rows(vault) if e["action"] == AuditAction.LOOKUP]


async def test_batch_with_contact_reserves_points(vault):
    """Each revealed line reserves its own contact; a subject named twice pays only once."""
    people, ids = await _subjects(vault, 2)
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    body = {
        "purpose": "order.delivery",
        "subject_ids": [ids[0], ids[1], ids[0]],
        "contact": {"brand": "tresor"},
    }
    async with api(vault) as http:
        r = await http.post("/v1/lookup/batch", json=body, headers=bearer(shop))
        assert r.status_code == 200, r.text
        lines = [json.loads(x) for x in r.text.splitlines()]
        assert [x["i"] for x in lines] == [0, 1, 2]
        assert lines[1]["reason"] == "no_consent"  # _subjects: the second has no basis
        assert lines[0]["contact"]["used"] == lines[0]["contact"]["points"]
        assert (lines[2]["reason"], lines[2]["status"]) == ("duplicate_identifier", 409)
        assert "fields" not in lines[2]
        bad = {**body, "contact": {"brand": "no_such_brand"}}
        assert_problem(await http.post("/v1/lookup/batch", json=bad, headers=bearer(shop)), 422)
