"""The contact history and the CRM's follow-up work through HTTP: GET
/v1/subjects/{id}/contacts (writer role, paged, audited, problems for bad input), the
export's contact-history section and category, the privacy centre's "who contacted me"
block, and follow-ups with an assignee, the filtered reminder list, reschedule and close;
no canary contact value reaches an answer, the logs or the audit trail on these paths
(both databases)."""

from __future__ import annotations

from datetime import timedelta

from tests.support.factories import api, bearer, client_key
from tests.support.privacy import CANARY, assert_problem, audit_rows, found_canaries
from tests.support.self_service import page_sign_in, seed_subject

UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def _contacts(http, clock, sid, key) -> list[dict]:
    """An SMS offer (outbound) and an inbound call on the hotline, a minute apart."""
    made = []
    for body in (
        {"channel": "sms", "type": "commercial", "purpose": "offers.sms"},
        {
            "channel": "phone",
            "type": "service",
            "purpose": "order.delivery",
            "direction": "inbound",
            "touchpoint": "hotline.inbound",
        },
    ):
        r = await http.post(
            "/v1/contacts", json={"subject_id": sid, "brand": "tresor", **body}, headers=key
        )
        assert r.status_code == 201, r.text
        made.append(r.json()["contact"])
        clock.set(clock.now() + timedelta(minutes=1))
    return made


async def test_crm_reads_the_contact_history_page_by_page(vault, clock, log_stream):
    """The writer sees both contacts newest first, one per page with a cursor; a lookup-role
    client is refused; unknown subject 404 subject_not_found; bad cursor and unknown query
    parameters are problems; no canary value in answers, logs or audit trail."""
    crm = bearer(await client_key(vault, "crm", "writer", ["order.delivery", "offers.sms"]))
    shop = bearer(await client_key(vault, "shop", "lookup", ["order.delivery"]))
    sid, _ = await seed_subject(vault, 1301, **CANARY)
    answers = []
    async with api(vault) as http:
        sms, call = await _contacts(http, clock, sid, crm)
        r = await http.get(f"/v1/subjects/{sid}/contacts?limit=1", headers=crm)
        answers.append(r)
        assert r.status_code == 200, r.text
        (first,) = r.json()["items"]
        assert (first["id"], first["direction"], first["points"]) == (call["id"], "inbound", 0)
        r = await http.get(
            f"/v1/subjects/{sid}/contacts",
            params={"limit": 1, "cursor": r.json()["next_cursor"]},
            headers=crm,
        )
        answers.append(r)
        (second,) = r.json()["items"]
        assert (second["id"], second["channel"], second["purpose"]) == (
            sms["id"],
            "sms",
            "offers.sms",
        )
        assert second["points"] == 20 and r.json()["next_cursor"] is None
        answers.append(r := await http.get(f"/v1/subjects/{sid}/contacts", headers=shop))
        assert r.status_code == 403
        answers.append(r := await http.get(f"/v1/subjects/{UNKNOWN}/contacts", headers=crm))
        assert assert_problem(r, 404)["reason"] == "subject_not_found"
        answers.append(
            r := await http.get(f"/v1/subjects/{sid}/contacts?cursor=xxxxxxxxxxxx", headers=crm)
        )
        assert_problem(r, 422)
        answers.append(r := await http.get(f"/v1/subjects/{sid}/contacts?email=x", headers=crm))
        assert_problem(r, 422)
        answers.append(r := await http.get(f"/v1/subjects/{sid}/contacts?limit=0", headers=crm))
        assert_problem(r, 422)
    for r in answers:
        assert not found_canaries(r.text), (r.request.url, r.text)
    assert not found_canaries(log_stream.getvalue())
    events = await audit_rows(vault)
    reads = [e for e in events if e["action"] == "client:contact_history:read"]
    assert [(e["decision"], e["reason"]) for e in reads] == [
        ("allow", None),
        ("allow", None),
        ("deny", "subject_not_found"),
    ]
    for e in events:
        assert not found_canaries(" | ".join(str(v) for v in e.values())), e


async def test_export_and_privacy_centre_show_who_contacted_me(vault, clock):
    """The export lists both contacts (JSON section, Art. 15(1)(b) category, HTML table);
    the privacy centre's follow-ups page shows them with brand, direction, channel and
    purpose in German and English; the CRM's read shows in the customer's access log."""
    crm = bearer(await client_key(vault, "crm", "writer", ["order.delivery", "offers.sms"]))
    dpo = bearer(await client_key(vault, "datenschutz", "dpo"))
    sid, p = await seed_subject(vault, 1302)
    async with api(vault) as http:
        sms, call = await _contacts(http, clock, sid, crm)
        assert (await http.get(f"/v1/subjects/{sid}/contacts", headers=crm)).status_code == 200
        doc = (await http.get(f"/v1/subjects/{sid}/export", headers=dpo)).json()
        assert [c["id"] for c in doc["contact_history"]] == [call["id"], sms["id"]]
        assert doc["contact_history"][0]["direction"] == "inbound"
        assert doc["contact_history"][1]["purpose_title"]["en"]
        assert "contact_history" in [c["category"] for c in doc["categories"]]
        r = await http.get(f"/v1/subjects/{sid}/export?format=html&lang=en", headers=dpo)
        assert "Contact history: who contacted you" in r.text and "from you to us" in r.text
        await page_sign_in(http, vault, p["email"])
        r = await http.get("/privacy/followups?lang=de")
        assert r.status_code == 200 and "Wer hat Sie kontaktiert" in r.text
        assert f'data-contact="{call["id"]}" data-direction="inbound"' in r.text
        assert "Tresor Versand" in r.text and "von Ihnen" in r.text
        r = await http.get("/privacy/followups?lang=en")
        assert "Who contacted you, how and why" in r.text and "SMS" in r.text
        r = await http.get("/privacy?lang=en")
        assert "contact history viewed by crm" in r.text


def _followup(sid: str, clock, **kw) -> dict:
    start = clock.now() + timedelta(hours=24)
    return {
        "subject_id": sid,
        "purpose": "order.delivery",
        "brand": "tresor",
        "touchpoint": "hotline.inbound",
        "note": "order_question",
        "due_from": start.isoformat(),
        "due_until": (start + timedelta(hours=8)).isoformat(),
        **kw,
    }


async def test_followups_are_assigned_listed_rescheduled_and_closed(vault, clock):
    """A follow-up created for a team is in that team's reminder list only; rescheduling
    moves it and hands it over; closing with an outcome ends it (a second close 409); a
    lookup-role client may not change it; bad bodies are 422 and change nothing."""
    crm = bearer(await client_key(vault, "crm", "writer", ["order.delivery"]))
    shop = bearer(await client_key(vault, "shop", "lookup", ["order.delivery"]))
    sid, _ = await seed_subject(vault, 1303)
    async with api(vault) as http:
        r = await http.post(
            "/v1/followups", json=_followup(sid, clock, assignee="service-team"), headers=crm
        )
        assert r.status_code == 201, r.text
        f = r.json()
        assert f["assignee"] == "service-team"
        due = (clock.now() + timedelta(days=2)).isoformat()
        listing = await http.get(
            "/v1/followups", params={"due_before": due, "assignee": "service-team"}, headers=crm
        )
        assert [i["id"] for i in listing.json()["items"]] == [f["id"]]
        listing = await http.get(
            "/v1/followups", params={"due_before": due, "assignee": "sales"}, headers=crm
        )
        assert listing.json()["items"] == []
        r = await http.get("/v1/followups", params={"assignee": "Frau M."}, headers=crm)
        assert_problem(r, 422)
        start = clock.now() + timedelta(days=3)
        new = {
            "due_from": start.isoformat(),
            "due_until": (start + timedelta(hours=2)).isoformat(),
            "assignee": "backoffice",
        }
        r = await http.post(f"/v1/followups/{f['id']}/reschedule", json=new, headers=shop)
        assert r.status_code == 403
        r = await http.post(
            f"/v1/followups/{f['id']}/reschedule", json={**new, "note": "x"}, headers=crm
        )
        assert_problem(r, 422)
        r = await http.post(f"/v1/followups/{f['id']}/reschedule", json=new, headers=crm)
        assert r.status_code == 200, r.text
        assert (r.json()["assignee"], r.json()["status"]) == ("backoffice", "open")
        r = await http.post(
            f"/v1/followups/{f['id']}/close", json={"outcome": "called +49"}, headers=crm
        )
        assert_problem(r, 422)
        r = await http.post(
            f"/v1/followups/{f['id']}/close", json={"outcome": "resolved_in_writing"}, headers=crm
        )
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["outcome"]) == ("closed", "resolved_in_writing")
        r = await http.post(
            f"/v1/followups/{f['id']}/close", json={"outcome": "no_longer_needed"}, headers=crm
        )
        assert_problem(r, 409)
        r = await http.post(
            f"/v1/followups/{UNKNOWN}/close", json={"outcome": "no_longer_needed"}, headers=crm
        )
        assert_problem(r, 404)
        got = await http.get(f"/v1/followups/{f['id']}", headers=crm)
        assert (got.json()["status"], got.json()["outcome"]) == ("closed", "resolved_in_writing")
    actions = [e["action"] for e in await audit_rows(vault)]
    assert actions.count("client:followup:reschedule") == 1
    assert actions.count("client:followup:close") == 3  # closed, then 409 and 404 on record
