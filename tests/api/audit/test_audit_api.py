"""The DPO API over HTTP on both databases: audit search, statistics, chain, proof, RoPA."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.support.factories import (
    NEWSLETTER_EVIDENCE,
    api,
    bearer,
    client_key,
    outbox_links,
    person,
)
from vault.audit import chain as audit_chain
from vault.audit.query import CURSOR_PATTERN, decode_cursor, encode_cursor
from vault.storage.audit_tables import audit_events

IP = "192.0.2.44"
UA = "Mozilla/5.0 (Macintosh) Safari/605.1.15"
DPO_PATHS = (
    "/v1/audit",
    "/v1/audit/stats",
    "/v1/audit/chain",
    "/v1/audit/public-key",
    "/v1/consents/stats",
    "/v1/ropa",
)


async def _events(vault) -> list[Any]:
    async with vault.engine.connect() as conn:
        return list((await conn.execute(select(audit_events).order_by(audit_events.c.seq))).all())


async def _world(vault, http) -> dict[str, Any]:
    """A subject with a confirmed newsletter consent (with IP / UA), read by a mailer."""
    writer = await client_key(vault, "crm", "writer")
    mailer = await client_key(vault, "mailer", "lookup", ["newsletter.email"])
    dpo = await client_key(vault, "datenschutz", "dpo")
    p = person(7)
    sid = (await http.post("/v1/subjects", json=p, headers=bearer(writer))).json()["subject_id"]
    r = await http.post(
        f"/v1/subjects/{sid}/consents",
        json={
            "purpose": "newsletter.email",
            "evidence": {**NEWSLETTER_EVIDENCE, "ip": IP, "user_agent": UA},
        },
        headers=bearer(writer),
    )
    assert r.status_code == 201, r.text
    cid = r.json()["consent_id"]
    token = outbox_links(vault.settings.outbox_dir)[-1]
    assert (await http.post("/v1/consents/confirm", json={"token": token})).status_code == 200
    for purpose in ("newsletter.email", "newsletter.email", "offers.email"):
        await http.post(
            "/v1/lookup",
            json={"purpose": purpose, "subject_id": sid, "contact": {"brand": "tresor"}},
            headers=bearer(mailer),
        )
    return {"person": p, "sid": sid, "cid": cid, "writer": writer, "mailer": mailer, "dpo": dpo}


async def test_search_by_subject_shows_the_reads_with_client_purpose_and_fields(vault):
    """A DPO finds the subject's lookups: who, for which purpose, which fields, allowed or not."""
    async with api(vault) as http:
        w = await _world(vault, http)
        r = await http.get(
            "/v1/audit",
            params={"subject_id": w["sid"], "action": "lookup"},
            headers=bearer(w["dpo"]),
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["next_cursor"] is None
    items = body["items"]
    assert [(i["actor_id"], i["purpose"], i["decision"]) for i in items] == [
        ("mailer", "offers.email", "deny"),
        ("mailer", "newsletter.email", "allow"),
        ("mailer", "newsletter.email", "allow"),
    ]
    assert items[0]["reason"] == "purpose_not_allowed"
    allowed = items[1]
    assert allowed["action"] == "client:contact:lookup" and allowed["actor_type"] == "client"
    assert sorted(allowed["fields"]) == ["email", "name"] and allowed["consent_id"] == w["cid"]
    assert set(allowed) == {
        "seq",
        "at",
        "actor_type",
        "actor_id",
        "action",
        "subject_id",
        "purpose",
        "fields",
        "decision",
        "reason",
        "consent_id",
        "request_id",
        "sealed",
    }
    assert allowed["sealed"] is False and allowed["request_id"]


async def test_cursor_paging_over_http(vault):
    """Following next_cursor visits every event once, in descending sequence order."""
    async with api(vault) as http:
        w = await _world(vault, http)
        total = len(await _events(vault))
        seqs: list[int] = []
        params: dict[str, Any] = {"limit": 2}
        while True:
            r = await http.get("/v1/audit", params=params, headers=bearer(w["dpo"]))
            assert r.status_code == 200, r.text
            seqs += [i["seq"] for i in r.json()["items"]]
            if not r.json()["next_cursor"]:
                break
            params["cursor"] = r.json()["next_cursor"]
    assert seqs == sorted(set(seqs), reverse=True) and len(seqs) == total


@pytest.mark.parametrize(
    "query",
    [
        {"subject_id": "erika@example.org"},
        {"limit": "501"},
        {"limit": "0"},
        {"decision": "perhaps"},
        {"cursor": "not-a-cursor"},
        {"since": "yesterday"},
        {"since": "2026-11-01T00:00:00"},
        {"until": "0.5"},
    ],
)
async def test_malformed_queries_are_problems(vault, query):
    """Malformed filters answer 422 problem+json and reveal nothing."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        r = await http.get("/v1/audit", params=query, headers=bearer(dpo))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "items" not in r.json()


@pytest.mark.parametrize(
    "query",
    [
        {"cursor": "c1.YWJj"},
        {"since": "2026-02-30T00:00:00Z"},
    ],
)
async def test_domain_refusals_are_422(vault, query):
    """Forged cursors and impossible dates answer 422 naming the field."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        r = await http.get("/v1/audit", params=query, headers=bearer(dpo))
    assert r.status_code == 422, r.text
    assert r.json()["errors"]


async def test_every_cursor_the_document_allows_decodes(vault):
    """A cursor matching the document's pattern is never refused: the pattern states
    exactly the cursors the server writes (any such cursor pages below its number)."""

    @settings(max_examples=500, database=None)
    @given(st.from_regex(CURSOR_PATTERN, fullmatch=True))
    def decodes(cursor: str) -> None:
        assert decode_cursor(cursor) >= 0

    decodes()
    for seq in (0, 7, 10, 999, 123456789012345678):
        assert re.fullmatch(CURSOR_PATTERN, encode_cursor(seq))
    assert not re.fullmatch(CURSOR_PATTERN, "c1.YWJj")  # "abc": not digits


@pytest.mark.parametrize("path", ["/v1/audit", "/v1/audit/stats", "/v1/consents/stats"])
async def test_an_empty_or_reversed_range_selects_nothing(vault, path):
    """An empty or reversed time range is answered, not refused: nothing lies in it, so the
    page has no events and the statistics no buckets."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        for since, until in (
            ("2026-12-01T00:00:00Z", "2026-11-01T00:00:00Z"),
            ("2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z"),
        ):
            r = await http.get(path, params={"since": since, "until": until}, headers=bearer(dpo))
            assert r.status_code == 200, r.text
            body = r.json()
            series = [body.get("series", [])] + [p["series"] for p in body.get("purposes", [])]
            assert body.get("items", []) == [] and all(s == [] for s in series), r.text


async def test_stats_over_http(vault, clock):
    """Access statistics count the lookups by client, purpose, reason and hour."""
    async with api(vault) as http:
        w = await _world(vault, http)
        r = await http.get(
            "/v1/audit/stats",
            params={
                "bucket": "hour",
                "since": "2026-11-23T08:00:00Z",
                "until": "2026-11-23T12:00:00+00:00",
            },
            headers=bearer(w["dpo"]),
        )
        assert r.status_code == 200, r.text
        s = r.json()
        assert (s["total"], s["allowed"], s["denied"], s["bucket"]) == (3, 2, 1, "hour")
        assert s["by_client_purpose"] == [
            {
                "client": "mailer",
                "purpose": "newsletter.email",
                "allowed": 2,
                "denied": 0,
                "total": 2,
            },
            {"client": "mailer", "purpose": "offers.email", "allowed": 0, "denied": 1, "total": 1},
        ]
        assert s["denials_by_reason"] == [{"reason": "purpose_not_allowed", "count": 1}]
        assert [b["total"] for b in s["series"]] == [0, 0, 3, 0]
        assert s["series"][2]["start"].startswith("2026-11-23T10:00:00")
        r = await http.get("/v1/consents/stats", headers=bearer(w["dpo"]))
        assert r.status_code == 200, r.text
        news = next(p for p in r.json()["purposes"] if p["purpose"] == "newsletter.email")
        assert (news["granted"], news["withdrawn"], news["expired"]) == (1, 0, 0)
        r = await http.get("/v1/audit/stats", params={"bucket": "week"}, headers=bearer(w["dpo"]))
        assert r.status_code == 422


async def test_chain_status_and_public_key(vault):
    """The chain endpoint verifies the sealed trail; the public key is PEM text."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await audit_chain.seal_all(vault, grace=timedelta(0))
        r = await http.get("/v1/audit/chain", headers=bearer(w["dpo"]))
        assert r.status_code == 200, r.text
        c = r.json()
        assert c["ok"] is True and c["broken_seq"] is None and c["unsealed"] == 0
        assert c["verified"] >= 8 and c["last_checkpoint"]["position"] == c["verified"]
        assert c["last_verified_checkpoint"] == c["verified"]
        r = await http.get("/v1/audit/public-key", headers=bearer(w["dpo"]))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert r.text.startswith("-----BEGIN PUBLIC KEY-----")


async def test_consent_proof_as_json(vault):
    """The proof holds the evidence (IP, user agent opened), the history and every event."""
    async with api(vault) as http:
        w = await _world(vault, http)
        r = await http.get(f"/v1/consents/{w['cid']}/proof", headers=bearer(w["dpo"]))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    p = r.json()
    assert p["consent_id"] == w["cid"] and p["subject_id"] == w["sid"] and p["status"] == "granted"
    assert p["evidence"]["ip"] == IP and p["evidence"]["user_agent"] == UA
    assert p["evidence"]["sealed_evidence"] == "opened"
    assert p["evidence"]["touchpoint"] == "web.newsletter_form"
    assert [h["event"] for h in p["history"]] == ["confirmation_requested", "confirmed"]
    assert [e["action"] for e in p["events"]] == [
        "client:consent:grant",
        "system:consent:confirmation_mail",
        "subject:consent:confirm",
        "client:contact:lookup",
        "client:contact:lookup",
    ]
    assert p["purpose"]["title"]["de"] == "Newsletter per E-Mail"


async def test_consent_proof_as_printable_html(vault):
    """format=html (or Accept: text/html) answers an escaped printable page with print CSS."""
    async with api(vault) as http:
        w = await _world(vault, http)
        r = await http.get(
            f"/v1/consents/{w['cid']}/proof",
            params={"format": "html", "lang": "en"},
            headers=bearer(w["dpo"]),
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["cache-control"] == "no-store"
        html = r.text
        assert "Proof of consent" in html and "@media print" in html
        assert IP in html and "Mozilla/5.0 (Macintosh) Safari/605.1.15" in html
        assert "web.newsletter_form" in html and "client:contact:lookup" in html
        r = await http.get(
            f"/v1/consents/{w['cid']}/proof",
            headers={**bearer(w["dpo"]), "Accept": "text/html", "Accept-Language": "de"},
        )
        assert (
            r.headers["content-type"].startswith("text/html") and "Einwilligungsnachweis" in r.text
        )


async def test_consent_proof_unknown_is_404(vault):
    """An unknown consent id answers 404 problem+json."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        r = await http.get(
            "/v1/consents/00000000-0000-4000-8000-000000000000/proof", headers=bearer(dpo)
        )
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


async def test_ropa_over_http(vault):
    """The Art. 30 record lists every purpose with recipients and the security measures."""
    async with api(vault) as http:
        w = await _world(vault, http)
        r = await http.get("/v1/ropa", headers=bearer(w["dpo"]))
    assert r.status_code == 200, r.text
    body = r.json()
    by = {a["purpose"]: a for a in body["activities"]}
    assert set(by) == set(vault.catalogue.purposes)
    news = by["newsletter.email"]
    assert news["recipients"] == [{"client": "mailer", "role": "lookup"}]
    assert [o["client"] for o in news["observed_recipients"]] == ["mailer"]
    assert news["observed_recipients"][0]["reads"] == 2
    assert news["legal_reference"] == "Art. 6(1)(a) GDPR"
    assert {m["id"] for m in body["security_measures"]} >= {
        "field_encryption",
        "blind_index",
        "api_keys_and_roles",
        "audit_trail",
        "tamper_evidence",
    }


@pytest.mark.parametrize("role", ["writer", "lookup", "admin"])
async def test_other_roles_are_forbidden(vault, role):
    """Only the dpo role reads the audit API; other roles get 403 and nothing is revealed."""
    key = await client_key(
        vault, f"not-dpo-{role}", role, ["order.delivery"] if role == "lookup" else []
    )
    async with api(vault) as http:
        for path in (*DPO_PATHS, "/v1/consents/00000000-0000-4000-8000-000000000000/proof"):
            r = await http.get(path, headers=bearer(key))
            assert r.status_code == 403, (path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        r = await http.get("/v1/audit")
        assert r.status_code == 401


async def test_every_dpo_read_is_audited_without_contact_data(vault):
    """Each DPO endpoint read leaves its own event by the DPO; none holds a contact value."""
    async with api(vault) as http:
        w = await _world(vault, http)
        before = len(await _events(vault))
        for path in (
            "/v1/audit",
            "/v1/audit/stats",
            "/v1/audit/chain",
            "/v1/consents/stats",
            "/v1/ropa",
            f"/v1/consents/{w['cid']}/proof",
        ):
            r = await http.get(path, headers=bearer(w["dpo"]))
            assert r.status_code == 200, (path, r.text)
    events = await _events(vault)
    mine = events[before:]
    assert [e.action for e in mine] == [
        "dpo:audit:search",
        "dpo:audit:stats",
        "dpo:audit:chain",
        "dpo:consent:stats",
        "dpo:ropa:read",
        "dpo:consent:proof",
    ]
    assert {(e.actor_type, e.actor_id) for e in mine} == {("dpo", "datenschutz")}
    assert all(e.request_id for e in mine)
    p = w["person"]
    text = json.dumps([[str(v) for v in e] for e in events])
    for value in (p["email"], p["phone"], p["name"], p["external_ref"], IP, UA):
        assert value not in text


async def test_hostile_evidence_is_escaped_in_the_printable_proof(vault):
    """A user agent carrying markup (it comes from a web form) is shown as text, never run."""
    writer = await client_key(vault, "crm", "writer")
    dpo = await client_key(vault, "datenschutz", "dpo")
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=person(8), headers=bearer(writer))).json()[
            "subject_id"
        ]
        r = await http.post(
            f"/v1/subjects/{sid}/consents",
            json={
                "purpose": "offers.sms",
                "evidence": {
                    "touchpoint": "web.checkout",
                    "method": "web_form",
                    "notice_version": "2026-10 <b>form</b>",
                    "language": "de",
                    "explicit": True,
                    "user_agent": hostile,
                },
            },
            headers=bearer(writer),
        )
        assert r.status_code == 201, r.text
        r = await http.get(
            f"/v1/consents/{r.json()['consent_id']}/proof?format=html", headers=bearer(dpo)
        )
    assert r.status_code == 200
    assert "<script>" not in r.text and "<img" not in r.text and "<b>form" not in r.text
    assert "&lt;script&gt;" in r.text and "2026-10 &lt;b&gt;form&lt;/b&gt;" in r.text
    assert "script-src" not in r.headers["content-security-policy"]  # default-src 'none'
