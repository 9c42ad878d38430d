"""Art. 21(1) objections to processing on legitimate interests, on both databases: recorded
as a request naming the purposes and the subject's grounds (sealed), verified, then decided
by a DPO on the console: approved, the purposes' legitimate-interest bases end and lookups
are denied; rejected, the compelling grounds are the recorded reason and nothing ends."""

from __future__ import annotations

from sqlalchemy import select

from tests.support.console import post_form, sign_in
from tests.support.factories import WRITER, api, bearer, client_key, person
from tests.support.privacy import assert_problem
from vault.audit.events import Actor
from vault.bases import consents
from vault.rights.requests import create_request, get_request
from vault.storage.audit_tables import audit_events
from vault.storage.rights_tables import dsar_request_history
from vault.storage.tables import consents as consent_rows

GROUNDS = "I am a witness in a protection programme qx9"


async def _world(vault, http) -> dict[str, str]:
    writer = await client_key(vault, "crm", "writer")
    dpo = await client_key(vault, "datenschutz", "dpo")
    notifier = await client_key(vault, "notifier", "lookup", ["incident.notice"])
    sid = (await http.post("/v1/subjects", json=person(8), headers=bearer(writer))).json()[
        "subject_id"
    ]
    await consents.record_basis(vault, WRITER, sid, "incident.notice", reference="recall R-1")
    r = await http.post(
        "/v1/requests",
        json={
            "subject_id": sid,
            "type": "legitimate_interest_objection",
            "channel": "letter",
            "payload": {"purposes": ["incident.notice"], "grounds": GROUNDS},
        },
        headers=bearer(dpo),
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "identity_verification"
    return {"sid": sid, "rid": r.json()["request_id"], "dpo": dpo, "notifier": notifier}


async def _lookup(http, w) -> int:
    r = await http.post(
        "/v1/lookup",
        json={
            "purpose": "incident.notice",
            "subject_id": w["sid"],
            "contact": {"brand": "tresor", "priority": "critical"},
        },
        headers=bearer(w["notifier"]),
    )
    return r.status_code


async def _basis_status(vault, sid: str) -> str:
    async with vault.engine.connect() as conn:
        return (
            await conn.execute(
                select(consent_rows.c.status).where(consent_rows.c.subject_id == sid)
            )
        ).scalar_one()


async def test_the_dpo_upholds_the_objection_and_the_purpose_ends(vault):
    """The console shows the purposes and the grounds to decide on; approving ends the
    legitimate-interest basis (history `objection`) and the lookup is denied afterwards;
    the grounds never reach history or audit."""
    async with api(vault) as http:
        w = await _world(vault, http)
        assert await _lookup(http, w) == 403  # restricted while undecided, Art. 18(1)(d)
        await sign_in(http, w["dpo"])
        url = f"/dpo/requests/{w['rid']}?lang=en"
        r = await post_form(http, url, f"/dpo/requests/{w['rid']}/verify?lang=en", {})
        assert r.status_code == 303
        page = await http.get(url)
        assert 'id="objection"' in page.text and GROUNDS in page.text
        assert "incident.notice" in page.text and "compelling legitimate grounds" in page.text
        r = await post_form(http, url, f"/dpo/requests/{w['rid']}/approve?lang=en", {})
        assert r.status_code == 303
        assert await _lookup(http, w) == 403
    record = await get_request(vault, w["rid"])
    assert record.status == "completed" and "Art. 21(1)" in (record.outcome_reason or "")
    assert await _basis_status(vault, w["sid"]) == "ended"
    async with vault.engine.connect() as conn:
        audit = (await conn.execute(select(audit_events))).all()
        history = (await conn.execute(select(dsar_request_history))).all()
    assert any(e.action == "dpo:subject:object" and "21(1)" in (e.detail or "") for e in audit)
    assert all("qx9" not in repr(tuple(row)) for row in [*audit, *history])


async def test_compelling_grounds_reject_the_objection_and_nothing_ends(vault):
    """While undecided the objection restricts the purpose (lookups denied); rejecting with
    the compelling grounds as the reason closes the request, lifts the restriction, the
    basis stays and lookups go on."""
    async with api(vault) as http:
        w = await _world(vault, http)
        assert await _lookup(http, w) == 403
        await sign_in(http, w["dpo"])
        url = f"/dpo/requests/{w['rid']}?lang=en"
        await post_form(http, url, f"/dpo/requests/{w['rid']}/verify?lang=en", {})
        reason = "Recall notices protect life and health (compelling grounds)"
        r = await post_form(
            http, url, f"/dpo/requests/{w['rid']}/reject?lang=en", {"reason": reason}
        )
        assert r.status_code == 303
        assert await _lookup(http, w) == 200
    record = await get_request(vault, w["rid"])
    assert (record.status, record.outcome_reason) == ("rejected", reason)
    assert await _basis_status(vault, w["sid"]) == "active"


async def test_only_legitimate_interest_purposes_can_be_objected_to_this_way(vault):
    """A consent purpose, no purposes or an unknown member is a validation problem; a
    verified objection still waits for a DPO (it is never carried out at once)."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    writer = await client_key(vault, "crm", "writer")
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=person(9), headers=bearer(writer))).json()[
            "subject_id"
        ]
        for payload in (
            {"purposes": ["newsletter.email"]},
            {"grounds": "no purposes"},
            {"purposes": ["incident.notice"], "consent_ids": []},
        ):
            r = await http.post(
                "/v1/requests",
                json={
                    "subject_id": sid,
                    "type": "legitimate_interest_objection",
                    "channel": "letter",
                    "payload": payload,
                },
                headers=bearer(dpo),
            )
            assert assert_problem(r)["type"].startswith("urn:tresor:problem:"), payload
            assert r.status_code in (400, 422), payload
    record = await create_request(
        vault,
        Actor("subject", sid),
        subject_id=sid,
        type="legitimate_interest_objection",
        channel="self_service",
        payload={"purposes": ["incident.notice"]},
        verified=True,
    )
    assert record.status == "in_review"
