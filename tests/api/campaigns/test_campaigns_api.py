"""The campaign routes for a marketer: planning two campaigns, the upload by the CRM,
the displacement told and confirmed, a lookup spending its booking, and forecasts whose
counts below k are "< 10"; a marketer who narrows audiences and purposes to single out one
customer only ever sees "< 10". Both databases."""

from __future__ import annotations

import json

from tests.support.factories import WRITER, api, bearer, client_key, person
from tests.support.privacy import assert_problem, audit_rows
from tests.vault.campaigns.test_booking import EXPLICIT
from vault.bases.consents import record_basis
from vault.subjects.store import create_subject

WINDOW = {"window_start": "2026-11-23T09:00:00Z", "window_end": "2026-11-25T18:00:00Z"}


async def _people(vault, n: int, purpose: str = "offers.sms", seed: int = 500):
    out = []
    for i in range(n):
        data = person(seed + i)
        sid = await create_subject(vault, WRITER, data)
        await record_basis(vault, WRITER, sid, purpose, evidence=EXPLICIT)
        out.append((sid, data))
    return out


async def _plan(http, key, name, rank, audience="list", purpose="offers.sms") -> str:
    r = await http.post(
        "/v1/campaigns",
        headers=bearer(key),
        json={"name": name, "brand": "tresor", "purpose": purpose, "rank": rank,
              "audience": audience, **WINDOW},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "draft"
    return r.json()["id"]


async def test_a_marketer_plans_two_campaigns_sees_the_conflict_and_a_lookup_spends_the_booking(
    vault,
):
    """12 customers, two SMS offers: the CRM uploads the audience (CSV of customer numbers,
    NDJSON of ids); rank 2 books first, rank 1's preview tells 12 displaced, booking it
    unconfirmed is a 409 listing them, confirmed it holds all 12 (shown as "hidden": beside
    the masked other outcomes, 12 of 12 would tell that they are 0); a lookup naming the
    campaign spends 20 points; each forecast shows the audience, "< 10" and "hidden"."""
    people = await _people(vault, 12)
    marketing = await client_key(vault, "planner", "marketing")
    crm = await client_key(vault, "crm", "writer")
    shop = await client_key(vault, "shop", "lookup", ["offers.sms"])
    async with api(vault) as http:
        high = await _plan(http, marketing, "Winter sale", 1)
        low = await _plan(http, marketing, "Socks", 2)
        csv = "external_ref\n" + "\n".join(d["external_ref"] for _, d in people) + "\nK-nobody\n"
        r = await http.put(f"/v1/campaigns/{high}/audience", headers=bearer(crm),
                           json={"format": "csv", "file": csv})  # fmt: skip
        assert r.json() == {"lines": 13, "members": 12, "unmatched": 1}, r.text
        nd = "\n".join(json.dumps({"subject_id": s}) for s, _ in people)
        r = await http.put(f"/v1/campaigns/{low}/audience", headers=bearer(crm),
                           json={"format": "ndjson", "file": nd})  # fmt: skip
        assert r.json()["members"] == 12, r.text
        r = await http.post(f"/v1/campaigns/{low}/book", headers=bearer(marketing), json={})
        assert r.status_code == 200, r.text
        assert (r.json()["audience"], r.json()["booked"]) == (12, "hidden"), r.text
        r = await http.post(f"/v1/campaigns/{high}/booking-preview", headers=bearer(marketing))
        assert r.json()["displaced"] == [{"campaign": low, "name": "Socks", "count": 12}], r.text
        r = await http.post(f"/v1/campaigns/{high}/book", headers=bearer(marketing), json={})
        body = assert_problem(r, 409)
        assert body["reason"] == "displacement_unconfirmed" and body["displaced"][0]["count"] == 12
        r = await http.post(f"/v1/campaigns/{high}/book", headers=bearer(marketing),
                            json={"confirm_displacement": True})  # fmt: skip
        assert r.status_code == 200 and r.json()["booked"] == "hidden", r.text
        sid = people[0][0]
        r = await http.post("/v1/lookup", headers=bearer(shop), json={
            "purpose": "offers.sms", "subject_id": sid, "fields": ["phone"],
            "contact": {"brand": "tresor", "campaign": high}})  # fmt: skip
        assert r.status_code == 200, r.text
        assert (r.json()["contact"]["points"], r.json()["contact"]["used"]) == (20, 20)
        r = await http.post("/v1/lookup", headers=bearer(shop), json={
            "purpose": "offers.sms", "subject_id": people[1][0], "fields": ["phone"],
            "contact": {"brand": "tresor", "campaign": low}})  # fmt: skip
        assert assert_problem(r, 403)["reason"] == "campaign_not_booked"
        r = await http.get(f"/v1/campaigns/{high}/forecast", headers=bearer(marketing))
        f = r.json()
        assert (f["audience"], f["reachable"], f["blocked_by_basket"], f["min_count"]) == (
            12,
            "hidden",
            "< 10",
            10,
        ), f
        r = await http.get(f"/v1/campaigns/{low}/forecast", headers=bearer(marketing))
        assert (r.json()["reachable"], r.json()["blocked_by_basket"]) == ("< 10", "hidden")
        r = await http.get("/v1/campaigns?month=2026-11", headers=bearer(marketing))
        assert [c["name"] for c in r.json()["items"]] == ["Winter sale", "Socks"]
        listing = r.text
    for sid, data in people:
        assert sid not in listing and data["email"] not in listing
    campaign_events = [e for e in await audit_rows(vault) if ":campaign" in e["action"]]
    assert campaign_events
    for e in campaign_events:
        assert e["subject_id"] is None
        assert all(sid not in (e["detail"] or "") for sid, _ in people)


async def test_narrowing_filters_never_singles_out_a_customer(vault):
    """A marketer may not upload customers (403) nor look one up (403); a one-person
    audience uploaded by the CRM, a purpose only one customer consented to, and a priority
    rank of its own each answer "< 10" in every count of forecast and preview."""
    (target, _), *_ = await _people(vault, 1, purpose="offers.phone")
    await _people(vault, 11, seed=600)
    marketing = await client_key(vault, "planner", "marketing")
    crm = await client_key(vault, "crm", "writer")
    async with api(vault) as http:
        one = await _plan(http, marketing, "Just you", 7)
        upload = {"format": "ndjson", "file": json.dumps({"subject_id": target})}
        r = await http.put(f"/v1/campaigns/{one}/audience", headers=bearer(marketing), json=upload)
        assert_problem(r, 403)
        r = await http.post("/v1/lookup", headers=bearer(marketing),
                            json={"purpose": "offers.sms", "subject_id": target})  # fmt: skip
        assert_problem(r, 403)
        r = await http.put(f"/v1/campaigns/{one}/audience", headers=bearer(crm), json=upload)
        assert r.status_code == 200, r.text
        phone = await _plan(http, marketing, "Phone only", 1, audience="basis",
                            purpose="offers.phone")  # fmt: skip
        answers = []
        for cid in (one, phone):
            answers.append((await http.get(f"/v1/campaigns/{cid}/forecast",
                                           headers=bearer(marketing))).json())  # fmt: skip
            answers.append((await http.post(f"/v1/campaigns/{cid}/booking-preview",
                                            headers=bearer(marketing))).json())  # fmt: skip
    for answer in answers:
        lists = ("displaced", "holds", "held_by")
        labels = ("campaign", "state", "min_count", "hidden_reason")
        counts = {k: v for k, v in answer.items() if k not in (*labels, *lists)}
        counts |= {f"{k}.{i}": v["count"] for k in lists for i, v in enumerate(answer.get(k, ()))}
        assert counts and all(v == "< 10" for v in counts.values()), answer


async def test_a_priority_the_rules_do_not_grant_is_a_403_and_stores_nothing(vault):
    """Priorities above `normal` and the calamity type are granted by the rules, not taken
    from the request: a marketer asking for `critical` gets 403 with the reason, and no
    campaign is stored."""
    marketing = await client_key(vault, "planner", "marketing")
    async with api(vault) as http:
        r = await http.post(
            "/v1/campaigns",
            headers=bearer(marketing),
            json={"name": "Loud", "brand": "tresor", "purpose": "offers.sms",
                  "priority": "critical", **WINDOW},
        )  # fmt: skip
        assert assert_problem(r, 403)["reason"] == "contact_priority_not_granted", r.text
        listed = await http.get("/v1/campaigns?month=2026-11", headers=bearer(marketing))
    assert listed.json()["items"] == [], listed.text
