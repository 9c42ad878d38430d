"""The calamity hold over HTTP, on both databases: booking a recall answers the offer it
holds with counts, the offer's record names the recall holding it, and a lookup naming
the offer is refused with the calamity cool-down for the members the recall reaches."""

from __future__ import annotations

import json

from tests.support.factories import WRITER, api, bearer, client_key, person
from tests.support.privacy import assert_problem
from tests.vault.campaigns.test_booking import EXPLICIT
from vault.bases.consents import record_basis
from vault.subjects.store import create_subject


async def _people(vault, n: int) -> list[str]:
    out = []
    for i in range(n):
        sid = await create_subject(vault, WRITER, person(700 + i))
        await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
        await record_basis(vault, WRITER, sid, "incident.notice", reference="recall duty")
        out.append(sid)
    return out


async def _plan(http, key, crm, sids, **fields) -> str:
    r = await http.post("/v1/campaigns", headers=bearer(key), json={"brand": "tresor", **fields})
    assert r.status_code == 201, r.text
    nd = "\n".join(json.dumps({"subject_id": s}) for s in sids)
    r = await http.put(f"/v1/campaigns/{r.json()['id']}/audience", headers=bearer(crm),
                       json={"format": "ndjson", "file": nd})  # fmt: skip
    assert r.status_code == 200, r.text
    return r.url.path.split("/")[3]


async def test_booking_a_recall_tells_and_enforces_the_hold_on_the_offer(vault):
    """12 customers: the recall (window from 08:00) holds the booked SMS offer (from
    09:00) for all 12; its booking answer says so, the offer's record shows "held by", and
    a lookup for the offer is 403 `contact_blocked_by_calamity`."""
    sids = await _people(vault, 12)
    marketing = await client_key(vault, "planner", "marketing", ["incident.notice"])
    crm = await client_key(vault, "crm", "writer")
    shop = await client_key(vault, "shop", "lookup", ["offers.sms"])
    async with api(vault) as http:
        offer = await _plan(http, marketing, crm, sids, name="Offer", purpose="offers.sms",
                            window_start="2026-11-23T09:00:00Z",
                            window_end="2026-11-25T18:00:00Z")  # fmt: skip
        recall = await _plan(http, marketing, crm, sids, name="Recall",
                             purpose="incident.notice", type="calamity",
                             window_start="2026-11-23T08:00:00Z",
                             window_end="2026-11-23T20:00:00Z")  # fmt: skip
        r = await http.post(f"/v1/campaigns/{offer}/book", headers=bearer(marketing), json={})
        assert r.status_code == 200 and r.json()["held_by"] == [], r.text
        r = await http.post(f"/v1/campaigns/{recall}/booking-preview", headers=bearer(marketing))
        assert r.json()["holds"] == [{"campaign": offer, "name": "Offer", "count": 12}], r.text
        r = await http.post(f"/v1/campaigns/{recall}/book", headers=bearer(marketing), json={})
        assert r.status_code == 200, r.text
        assert r.json()["holds"] == [{"campaign": offer, "name": "Offer", "count": 12}]
        r = await http.get(f"/v1/campaigns/{offer}", headers=bearer(marketing))
        assert r.json()["held_by"] == [{"campaign": recall, "name": "Recall", "count": 12}]
        r = await http.post("/v1/lookup", headers=bearer(shop), json={
            "purpose": "offers.sms", "subject_id": sids[0], "fields": ["phone"],
            "contact": {"brand": "tresor", "campaign": offer}})  # fmt: skip
        assert assert_problem(r, 403)["reason"] == "contact_blocked_by_calamity"
        r = await http.post(f"/v1/campaigns/{recall}/cancel", headers=bearer(marketing))
        assert r.status_code == 200, r.text
        r = await http.get("/v1/campaigns?month=2026-11", headers=bearer(marketing))
        assert [c["held_by"] for c in r.json()["items"]] == [[], []]
