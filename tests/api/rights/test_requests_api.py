"""The DPO request workflow and the export over HTTP, on both databases: roles, problem+json
errors, overdue-first listing, JSON and HTML export, and the periodic retention job."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import timedelta

from tests.support.dsar import consent_rows, contract, invoice, new_subject, sms_offers
from tests.support.factories import api, bearer, client_key
from tests.support.privacy import assert_problem
from vault.storage.audit_tables import audit_events

MISSING = "00000000-0000-4000-8000-000000000000"


async def _keys(vault) -> tuple[str, str]:
    return await client_key(vault, "dpo-desk", "dpo"), await client_key(vault, "crm-w", "writer")


async def test_dpo_creates_verifies_and_approves_an_erasure_over_http(vault):
    """POST /v1/requests, then verify and approve: an invoice hold ends partially completed."""
    dpo, _ = await _keys(vault)
    sid, _ = await new_subject(vault, 1)
    await invoice(vault, sid)
    async with api(vault) as http:
        r = await http.post(
            "/v1/requests",
            json={"subject_id": sid, "type": "erasure", "channel": "letter"},
            headers=bearer(dpo),
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] == "identity_verification"
        assert body["due_at"] == "2026-12-23T10:00:00Z" and body["overdue"] is False
        rid = body["request_id"]
        r = await http.post(f"/v1/requests/{rid}/approve", headers=bearer(dpo))
        assert_problem(r, 409)
        r = await http.post(f"/v1/requests/{rid}/verify", headers=bearer(dpo))
        assert r.status_code == 200 and r.json()["status"] == "in_review"
        r = await http.post(f"/v1/requests/{rid}/approve", headers=bearer(dpo))
        assert r.status_code == 200, r.text
        done = r.json()
        assert done["status"] == "partially_completed"
        assert (
            "Art. 17(3)(b)" in done["outcome_reason"] and "invoice.postal" in done["outcome_reason"]
        )
        assert [h["event"] for h in done["history"]] == [
            "received",
            "verified",
            "approved",
            "partially_completed",
        ]
        r = await http.get(f"/v1/requests/{rid}", headers=bearer(dpo))
        assert r.status_code == 200 and r.json()["status"] == "partially_completed"


async def test_only_dpos_may_use_the_request_endpoints(vault):
    """A writer key gets 403 problem+json on every request and export endpoint; no key 401."""
    dpo, writer = await _keys(vault)
    sid, _ = await new_subject(vault, 2)
    async with api(vault) as http:
        calls = [
            ("POST", "/v1/requests", {"subject_id": sid, "type": "access", "channel": "phone"}),
            ("GET", "/v1/requests", None),
            ("GET", f"/v1/requests/{MISSING}", None),
            ("POST", f"/v1/requests/{MISSING}/verify", None),
            ("POST", f"/v1/requests/{MISSING}/reject", {"reason": "x"}),
            ("GET", f"/v1/subjects/{sid}/export", None),
        ]
        for method, path, body in calls:
            r = await http.request(method, path, json=body, headers=bearer(writer))
            assert_problem(r, 403)
            r = await http.request(method, path, json=body)
            assert_problem(r, 401)


async def test_errors_are_problem_json_and_change_nothing(vault):
    """Unknown ids 404, bad bodies and domain rule breaches 422 (every failing field by its
    JSON Pointer), bad transitions 409."""
    dpo, _ = await _keys(vault)
    sid, _ = await new_subject(vault, 3)
    async with api(vault) as http:
        h = bearer(dpo)
        assert_problem(await http.get(f"/v1/requests/{MISSING}", headers=h), 404)
        assert_problem(await http.get("/v1/requests/not-a-uuid", headers=h), 422)
        assert_problem(
            await http.post(
                "/v1/requests",
                json={"subject_id": MISSING, "type": "access", "channel": "letter"},
                headers=h,
            ),
            404,
        )
        assert_problem(
            await http.post(
                "/v1/requests",
                json={"subject_id": sid, "type": "deletion", "channel": "letter"},
                headers=h,
            ),
            422,
        )
        r = await http.post(
            "/v1/requests",
            json={"subject_id": sid, "type": "rectification", "channel": "letter"},
            headers=h,
        )
        assert assert_problem(r, 422)["errors"][0]["field"] == "/payload/changes"
        r = await http.post(
            "/v1/requests",
            json={
                "subject_id": sid,
                "type": "rectification",
                "channel": "letter",
                "payload": {"changes": {"email": "not-an-address"}},
            },
            headers=h,
        )
        assert assert_problem(r, 422)["errors"][0]["field"] == "/payload/changes/email"
        assert_problem(await http.get("/v1/requests?limit=0", headers=h), 422)
        assert_problem(await http.get("/v1/requests?status=done", headers=h), 422)
        assert_problem(await http.get("/v1/requests?stauts=completed", headers=h), 422)
        assert_problem(await http.get("/v1/requests?due_before=12345", headers=h), 422)
        assert_problem(
            await http.get("/v1/requests?due_before=2027-01-01T00:00:00", headers=h), 422
        )
        assert_problem(await http.get(f"/v1/subjects/{sid}/export?fromat=html", headers=h), 422)
        assert (await http.get("/v1/requests", headers=h)).json() == {"items": []}
        r = await http.post(
            "/v1/requests",
            json={"subject_id": sid, "type": "access", "channel": "letter"},
            headers=h,
        )
        rid = r.json()["request_id"]
        assert_problem(await http.post(f"/v1/requests/{rid}/reject", json={}, headers=h), 422)
        assert_problem(
            await http.post(f"/v1/requests/{rid}/reject", json={"reason": "  "}, headers=h), 422
        )
        assert_problem(
            await http.post(
                f"/v1/requests/{rid}/extend", json={"reason": "x", "months": 3}, headers=h
            ),
            422,
        )


async def test_extend_reject_and_complete_over_http(vault, clock):
    """Extend moves the due date and tells the subject; a second extension is 409; reject and
    complete close requests with their reason or note."""
    dpo, _ = await _keys(vault)
    sid, _ = await new_subject(vault, 4)
    async with api(vault) as http:
        h = bearer(dpo)
        new = lambda t: http.post(  # noqa: E731 - a one-line helper
            "/v1/requests", json={"subject_id": sid, "type": t, "channel": "email"}, headers=h
        )
        a = (await new("access")).json()["request_id"]
        b = (await new("objection")).json()["request_id"]
        clock.advance(timedelta(days=3))
        r = await http.post(
            f"/v1/requests/{a}/extend", json={"reason": "many systems involved"}, headers=h
        )
        assert r.status_code == 200, r.text
        assert r.json()["due_at"] == "2027-02-23T10:00:00Z"
        assert r.json()["extension_reason"] == "many systems involved"
        assert len(list(vault.settings.outbox_dir.glob("*.eml"))) == 1
        assert_problem(
            await http.post(f"/v1/requests/{a}/extend", json={"reason": "again"}, headers=h), 409
        )
        r = await http.post(
            f"/v1/requests/{b}/reject", json={"reason": "identity not proven"}, headers=h
        )
        assert (
            r.json()["status"] == "rejected" and r.json()["outcome_reason"] == "identity not proven"
        )
        await http.post(f"/v1/requests/{a}/verify", headers=h)
        r = await http.post(f"/v1/requests/{a}/complete", headers=h)
        assert r.status_code == 200 and r.json()["status"] == "completed"


async def test_list_is_overdue_first_with_due_dates_and_filters(vault, clock):
    """GET /v1/requests lists overdue items first, each with due_at and overdue, and filters."""
    dpo, _ = await _keys(vault)
    sid, _ = await new_subject(vault, 5)
    async with api(vault) as http:
        h = bearer(dpo)
        old = (
            await http.post(
                "/v1/requests",
                json={"subject_id": sid, "type": "access", "channel": "letter"},
                headers=h,
            )
        ).json()
        clock.advance(timedelta(days=20))
        young = (
            await http.post(
                "/v1/requests",
                json={"subject_id": sid, "type": "erasure", "channel": "phone"},
                headers=h,
            )
        ).json()
        clock.advance(timedelta(days=15))
        items = (await http.get("/v1/requests", headers=h)).json()["items"]
        assert [(i["request_id"], i["overdue"]) for i in items] == [
            (old["request_id"], True),
            (young["request_id"], False),
        ]
        assert all("due_at" in i for i in items)
        only = (await http.get("/v1/requests?type=erasure", headers=h)).json()["items"]
        assert [i["request_id"] for i in only] == [young["request_id"]]
        due = (
            await http.get("/v1/requests", params={"due_before": "2026-12-24T00:00:00Z"}, headers=h)
        ).json()
        assert [i["request_id"] for i in due["items"]] == [old["request_id"]]
        mine = (
            await http.get(
                f"/v1/requests?subject_id={sid}&status=identity_verification&limit=1", headers=h
            )
        ).json()
        assert len(mine["items"]) == 1


async def test_rectification_payload_over_http(vault):
    """A rectification created over HTTP carries the corrected data to the approval."""
    dpo, _ = await _keys(vault)
    sid, _ = await new_subject(vault, 6)
    async with api(vault) as http:
        h = bearer(dpo)
        r = await http.post(
            "/v1/requests",
            json={
                "subject_id": sid,
                "type": "rectification",
                "channel": "letter",
                "payload": {"changes": {"name": "Erika Neu", "phone": None}},
            },
            headers=h,
        )
        assert r.status_code == 201, r.text
        rid = r.json()["request_id"]
        await http.post(f"/v1/requests/{rid}/verify", headers=h)
        r = await http.post(f"/v1/requests/{rid}/approve", headers=h)
        assert r.json()["outcome_reason"] == "rectified (Art. 16 GDPR): name, phone"


async def test_consent_withdrawal_request_names_consents_over_http(vault):
    """A consent_withdrawal request with consent_ids withdraws exactly those on approval."""
    dpo, _ = await _keys(vault)
    sid, _ = await new_subject(vault, 7)
    sms = await sms_offers(vault, sid)
    deal = await contract(vault, sid)
    async with api(vault) as http:
        h = bearer(dpo)
        r = await http.post(
            "/v1/requests",
            json={
                "subject_id": sid,
                "type": "consent_withdrawal",
                "channel": "phone",
                "payload": {"consent_ids": [sms.id]},
            },
            headers=h,
        )
        rid = r.json()["request_id"]
        await http.post(f"/v1/requests/{rid}/verify", headers=h)
        r = await http.post(f"/v1/requests/{rid}/approve", headers=h)
        assert r.json()["status"] == "completed"
    statuses = {c.id: c.status for c in await consent_rows(vault, sid)}
    assert statuses == {sms.id: "withdrawn", deal.id: "active"}


async def test_export_as_json_and_as_escaped_html(vault):
    """GET /v1/subjects/{id}/export answers JSON by default and HTML (de/en) on request, with
    every value escaped; each read is audited."""
    dpo, _ = await _keys(vault)
    sid, data = await new_subject(vault, 8, name="<script>alert(1)</script> Erika")
    await contract(vault, sid)
    async with api(vault) as http:
        h = bearer(dpo)
        r = await http.get(f"/v1/subjects/{sid}/export", headers=h)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        doc = r.json()
        assert doc["contact_data"]["name"] == data["name"]
        assert set(doc["art15_index"]) == {
            "a_purposes",
            "b_categories",
            "c_recipients",
            "d_retention",
            "e_rights",
            "f_complaint",
            "g_sources",
            "h_automated_decisions",
        }
        r = await http.get(f"/v1/subjects/{sid}/export?format=html&lang=en", headers=h)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "<script>alert(1)</script>" not in r.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt; Erika" in r.text
        assert "Your rights" in r.text and 'lang="en"' in r.text
        assert "Delivery of your orders" in r.text
        r = await http.get(
            f"/v1/subjects/{sid}/export",
            headers={**h, "Accept": "text/html", "Accept-Language": "de-DE,de;q=0.9"},
        )
        assert r.headers["content-type"].startswith("text/html")
        assert "Ihre Rechte" in r.text and "Lieferung Ihrer Bestellungen" in r.text
        assert_problem(await http.get(f"/v1/subjects/{MISSING}/export", headers=h), 404)
    async with vault.engine.connect() as conn:
        from sqlalchemy import func, select

        count = (
            await conn.execute(
                select(func.count())
                .select_from(audit_events)
                .where(audit_events.c.action == "dpo:export:read")
            )
        ).scalar_one()
    assert count == 3


async def test_periodic_retention_job_runs_and_survives_failures(
    vault, clock, log_stream, monkeypatch
):
    """The serve-time retention job sweeps every interval; a failing run is logged by error
    type only and retried at the next interval."""
    from api.periodic_jobs import background_jobs_for
    from vault.rights import retention

    vault.settings = replace(vault.settings, retention_interval=0.05)
    sid, _ = await new_subject(vault, 9)
    sms = await sms_offers(vault, sid)
    clock.advance(timedelta(days=366))
    real = retention.run_retention
    calls = {"n": 0}

    async def flaky(ctx, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom with secret@example.org")
        return await real(ctx, *args, **kwargs)

    monkeypatch.setattr(retention, "run_retention", flaky)
    (job,) = [j for j in background_jobs_for(vault) if j.name == "retention"]
    job.start()
    try:
        for _ in range(200):
            if '"retention_run"' in log_stream.getvalue():
                break
            await asyncio.sleep(0.02)
    finally:
        await job.stop()
    statuses = {c.id: c.status for c in await consent_rows(vault, sid)}
    assert statuses[sms.id] == "expired" and calls["n"] >= 2
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.strip()]
    failed = [x for x in lines if x.get("job") == "retention" and x.get("error")]
    assert failed and failed[0]["error"] == "RuntimeError"
    assert "secret@example.org" not in log_stream.getvalue()
    assert any(x.get("event") == "retention_run" and x.get("expired") == 1 for x in lines)


def test_retention_job_is_off_with_interval_zero(settings):
    """TRESOR_RETENTION_INTERVAL=0 starts no retention job."""
    from types import SimpleNamespace

    from api.periodic_jobs import background_jobs_for

    engine = SimpleNamespace(dialect=SimpleNamespace(name="sqlite"))
    ctx = SimpleNamespace(settings=replace(settings, retention_interval=0.0), engine=engine)
    assert "retention" not in [j.name for j in background_jobs_for(ctx)]
    ctx = SimpleNamespace(settings=settings, engine=engine)
    assert "retention" in [j.name for j in background_jobs_for(ctx)]
