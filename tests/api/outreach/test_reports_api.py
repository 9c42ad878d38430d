"""Reading a contact-pressure report is audited like every other DPO view (security
finding 6b): `GET /v1/reports/contacts` and the console page `/dpo/contacts` each write an
event naming the reader and the month, and show nothing when it cannot be written. Both
databases."""

from __future__ import annotations

import json
import re

from tests.support.factories import api, bearer, client_key
from tests.support.faults import audit_down
from tests.support.privacy import assert_problem, audit_rows
from vault.audit.events import AuditAction

REPORT = str(AuditAction.DPO_CONTACT_REPORT)


async def _report_events(vault) -> list[dict]:
    return [e for e in await audit_rows(vault) if e["action"] == REPORT]


async def test_the_api_report_read_is_audited_and_fails_closed(vault):
    """Two reads (current month, October) are two events with the month; with the audit
    trail down the report is a 503 without figures."""
    dpo = await client_key(vault, "dpo", "dpo")
    async with api(vault) as http:
        r = await http.get("/v1/reports/contacts", headers=bearer(dpo))
        assert r.status_code == 200, r.text
        r = await http.get(
            "/v1/reports/contacts?month=2026-10",
            headers={**bearer(dpo), "X-Request-ID": "report-read-2"},
        )
        assert r.status_code == 200, r.text
        async with audit_down(vault):
            r = await http.get("/v1/reports/contacts", headers=bearer(dpo))
        assert_problem(r, 503)
        assert "total_contacts" not in r.text
    events = await _report_events(vault)
    assert [(e["actor_type"], e["actor_id"], e["decision"]) for e in events] == [
        ("dpo", "dpo", "allow"),
        ("dpo", "dpo", "allow"),
    ]
    assert [json.loads(e["detail"])["month"] for e in events] == ["2026-11", "2026-10"]
    assert events[1]["request_id"] == "report-read-2"


async def test_the_console_report_page_is_audited(vault):
    """/dpo/contacts writes the same event for the signed-in DPO."""
    dpo = await client_key(vault, "dpo", "dpo")
    async with api(vault) as http:
        signin = await http.get("/dpo/signin?lang=en")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', signin.text).group(1)
        r = await http.post("/dpo/signin?lang=en", data={"api_key": dpo, "_csrf_token": token})
        assert r.status_code in (302, 303), r.text
        page = await http.get("/dpo/contacts?lang=en&month=2026-09")
        assert page.status_code == 200, page.text
    (event,) = await _report_events(vault)
    assert (event["actor_type"], event["actor_id"]) == ("dpo", "dpo")
    assert json.loads(event["detail"]) == {"month": "2026-09"}
