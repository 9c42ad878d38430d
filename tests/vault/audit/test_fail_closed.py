"""Fail closed: when the audit trail cannot be written, nothing is revealed or changed."""

from __future__ import annotations

import json

from tests.support.factories import (
    NEWSLETTER_EVIDENCE,
    api,
    bearer,
    client_key,
    contact_if_match,
    person,
)
from tests.support.faults import audit_down
from tests.support.privacy import (
    assert_problem,
    audit_rows,
    consent_statuses,
    row_counts,
)


def _values(p: dict) -> list[str]:
    addr = p["postal_address"]
    return [p["email"], p["phone"], p["name"], p["external_ref"], addr["street"], addr["city"]]


def _assert_unavailable(r, p: dict) -> None:
    body = assert_problem(r, 503)
    assert body["type"] == "urn:tresor:problem:unavailable"
    assert r.headers.get("retry-after")
    text = r.text.lower()
    leaked = [v for v in _values(p) if v.lower() in text]
    assert not leaked, (leaked, r.text)
    assert "audit down" not in text  # no database message either


async def _send(http, method: str, path: str, key: str, call: dict):
    headers = {**bearer(key), **call.get("headers", {})}
    return await http.request(method, path, headers=headers, json=call.get("json"))


async def test_lookup_fails_closed_and_recovers(vault):
    """With the audit trail down, an otherwise allowed lookup (and a denied or not-found one)
    answers 503 problem+json carrying no contact data; once the audit trail is back the same
    lookup answers 200 with the data."""
    writer = await client_key(vault, "crm", "writer")
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    p = person(31)
    query = {"purpose": "order.delivery", "external_ref": p["external_ref"]}
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=p, headers=bearer(writer))).json()["subject_id"]
        r = await http.post(
            f"/v1/subjects/{sid}/consents",
            json={"purpose": "order.delivery", "reference": "order 4711"},
            headers=bearer(writer),
        )
        assert r.status_code == 201, r.text
        assert (await http.post("/v1/lookup", json=query, headers=bearer(shop))).status_code == 200
        events_before = len(await audit_rows(vault))

        async with audit_down(vault):
            r = await http.post("/v1/lookup", json=query, headers=bearer(shop))
            _assert_unavailable(r, p)
            r = await http.post(
                "/v1/lookup",
                json={"purpose": "offers.phone", "subject_id": sid},
                headers=bearer(shop),
            )
            _assert_unavailable(r, p)  # a denial is not answered unaudited either
            r = await http.post(
                "/v1/lookup",
                json={"purpose": "order.delivery", "email": "niemand@example.org"},
                headers=bearer(shop),
            )
            _assert_unavailable(r, p)
        assert len(await audit_rows(vault)) == events_before

        r = await http.post("/v1/lookup", json=query, headers=bearer(shop))
        assert r.status_code == 200, r.text
        assert r.json()["fields"]["name"] == p["name"]
        assert len(await audit_rows(vault)) == events_before + 1


async def test_writes_fail_closed_and_change_nothing(vault):
    """With the audit trail down, creating a subject, rectifying it, recording a consent
    (double opt-in included: no mail goes out) and withdrawing one all answer 503 and leave
    every row and every consent status as it was; afterwards the same calls succeed."""
    writer = await client_key(vault, "crm", "writer")
    p = person(32)
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=p, headers=bearer(writer))).json()["subject_id"]
        r = await http.post(
            f"/v1/subjects/{sid}/consents",
            json={
                "purpose": "offers.phone",
                "evidence": {**NEWSLETTER_EVIDENCE, "method": "recorded_call", "explicit": True},
            },
            headers=bearer(writer),
        )
        assert r.status_code == 201, r.text
        consent_id = r.json()["consent_id"]
        counts = await row_counts(vault)
        statuses = await consent_statuses(vault)
        events = len(await audit_rows(vault))
        outbox_dir = vault.settings.outbox_dir
        outbox = sorted(outbox_dir.glob("*")) if outbox_dir.exists() else []

        other = person(33)
        calls = [
            ("POST", "/v1/subjects", {"json": other}),
            (
                "PATCH",
                f"/v1/subjects/{sid}/contact",
                {"json": {"name": other["name"]}, "headers": await contact_if_match(vault, sid)},
            ),
            (
                "POST",
                f"/v1/subjects/{sid}/consents",
                {"json": {"purpose": "order.delivery", "reference": "order 1"}},
            ),
            (
                "POST",
                f"/v1/subjects/{sid}/consents",
                {"json": {"purpose": "newsletter.email", "evidence": NEWSLETTER_EVIDENCE}},
            ),
            ("POST", f"/v1/subjects/{sid}/consents/{consent_id}/withdraw", {}),
        ]
        async with audit_down(vault):
            for method, path, kwargs in calls:
                r = await _send(http, method, path, writer, kwargs)
                _assert_unavailable(r, p)
                _assert_unavailable(r, other)
                assert await row_counts(vault) == counts, path
                assert await consent_statuses(vault) == statuses, path

        assert len(await audit_rows(vault)) == events
        now = sorted(outbox_dir.glob("*")) if outbox_dir.exists() else []
        assert now == outbox, "no confirmation mail may leave for an unrecorded consent"

        # Recovery: the same calls now commit.
        for method, path, kwargs in calls:
            r = await _send(http, method, path, writer, kwargs)
            assert r.status_code in (200, 201), (path, r.text)
        statuses_after = await consent_statuses(vault)
        assert statuses_after[consent_id] == "withdrawn"
        assert len(statuses_after) == len(statuses) + 2


async def test_audit_events_written_while_up_hold_no_values(vault):
    """The events the recovered calls write are pseudonymous: ids, purposes, field names."""
    writer = await client_key(vault, "crm", "writer")
    p = person(34)
    async with api(vault) as http:
        async with audit_down(vault):
            r = await http.post("/v1/subjects", json=p, headers=bearer(writer))
            _assert_unavailable(r, p)
        r = await http.post("/v1/subjects", json=p, headers=bearer(writer))
        assert r.status_code == 201
    (event,) = [e for e in await audit_rows(vault) if e["action"] == "client:subject:create"]
    dumped = json.dumps(event, default=str).lower()
    assert not [v for v in _values(p) if v.lower() in dumped]
    assert event["fields"] == "email,external_ref,name,phone,postal_address"
