"""No contact data leaves the campaign routes: uploading the canary's customer number
(CSV) and a malformed NDJSON line carrying its e-mail, booking, previewing and forecasting
put none of the canary's values in answers, logs, audit events or campaign tables."""

from __future__ import annotations

import json

from sqlalchemy import select

from tests.support.factories import WRITER, api, bearer, client_key
from tests.support.privacy import CANARY, assert_problem, audit_rows, found_canaries
from tests.vault.campaigns.test_booking import EXPLICIT
from vault.bases.consents import record_basis
from vault.storage.campaign_tables import campaign_audience, campaign_bookings, campaigns
from vault.subjects.store import create_subject

WINDOW = {"window_start": "2026-11-23T09:00:00Z", "window_end": "2026-11-25T18:00:00Z"}


async def test_campaign_paths_carry_no_contact_data(vault, log_stream):
    """Every answer, log line, audit event and campaign row is searched for the canary."""
    sid = await create_subject(vault, WRITER, CANARY)
    await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    marketing = await client_key(vault, "planner", "marketing")
    crm = await client_key(vault, "crm", "writer")
    answers = []
    async with api(vault) as http:
        r = await http.post("/v1/campaigns", headers=bearer(marketing), json={
            "name": "Canary", "brand": "tresor", "purpose": "offers.sms", **WINDOW})  # fmt: skip
        cid = r.json()["id"]
        bad = json.dumps({"email": CANARY["email"]})
        r = await http.put(f"/v1/campaigns/{cid}/audience", headers=bearer(crm),
                           json={"format": "ndjson", "file": bad})  # fmt: skip
        assert_problem(r, 422)
        answers.append(r.text)
        csv = f"external_ref\n{CANARY['external_ref']}\n"
        r = await http.put(f"/v1/campaigns/{cid}/audience", headers=bearer(crm),
                           json={"format": "csv", "file": csv})  # fmt: skip
        assert r.json()["members"] == 1, r.text
        for method, path, body in (
            ("POST", f"/v1/campaigns/{cid}/booking-preview", None),
            ("POST", f"/v1/campaigns/{cid}/book", {}),
            ("GET", f"/v1/campaigns/{cid}/forecast", None),
            ("GET", f"/v1/campaigns/{cid}", None),
            ("POST", f"/v1/campaigns/{cid}/sent", None),
        ):
            r = await http.request(method, path, headers=bearer(marketing), json=body)
            assert r.status_code == 200, (path, r.text)
            answers.append(r.text)
    assert found_canaries("\n".join(answers)) == []
    assert found_canaries(log_stream.getvalue()) == []
    assert found_canaries(json.dumps(await audit_rows(vault), default=str)) == []
    async with vault.engine.connect() as conn:
        for table in (campaigns, campaign_audience, campaign_bookings):
            rows = (await conn.execute(select(table))).all()
            assert found_canaries(repr(rows)) == [], table.name
