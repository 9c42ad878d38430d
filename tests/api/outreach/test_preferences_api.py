"""Contact preferences over HTTP: writer clients with evidence (/v1/subjects/{id}/preferences),
the customer's own JSON (/self/v1/preferences) and web form (/privacy/preferences), lookups
honouring them with `preferred_channel` and preference denials, the report, problem+json
for bad input with nothing changed, and no plaintext contact data in the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from tests.support.factories import WRITER, api, bearer, client_key
from tests.support.privacy import CANARY, assert_problem, audit_rows, found_canaries
from tests.support.self_service import Page, api_sign_in, page_sign_in, seed_subject
from vault.bases import consents
from vault.storage.outreach_tables import contact_preference_history, contact_preferences

EVIDENCE = {
    "touchpoint": "hotline.inbound",
    "method": "recorded_call",
    "notice_version": "prefs-2026-11",
    "language": "de",
}
PURPOSES = ["order.delivery", "incident.notice", "offers.sms"]


async def _counts(vault) -> tuple[int, int]:
    async with vault.engine.connect() as conn:
        a = (await conn.execute(select(func.count()).select_from(contact_preferences))).scalar_one()
        b = (
            await conn.execute(select(func.count()).select_from(contact_preference_history))
        ).scalar_one()
    return a, b


async def _setup(vault, seed=41, **overrides):
    sid, data = await seed_subject(vault, seed, **overrides)
    await consents.record_basis(vault, WRITER, sid, "incident.notice", reference="recall R-1")
    writer = await client_key(vault, "crm", "writer")
    shop = await client_key(vault, "shop", "lookup", PURPOSES)
    return sid, data, writer, shop


def unset(key: str) -> dict[str, str]:
    """Headers of a PUT while no preferences are stored: their `ETag` is "preferences-r0"."""
    return {**bearer(key), "If-Match": '"preferences-r0"'}


async def test_writer_sets_preferences_with_evidence_and_reads_them_back(vault):
    """A PUT with evidence answers 200 with version 1 and history; GET returns the same and
    both the change and the read are audited."""
    sid, _, writer, _ = await _setup(vault)
    body = {
        "timezone": "America/New_York",
        "preferred_channels": {"service": "sms"},
        "quiet": {"phone": {"start": "21:00", "end": "08:00", "days": ["sun"]}},
        "monthly_cap_points": 10,
        "evidence": EVIDENCE,
    }
    async with api(vault) as http:
        r = await http.put(f"/v1/subjects/{sid}/preferences", json=body, headers=unset(writer))
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["version"] == 1 and out["basket_points"] == 25
        assert out["quiet"]["phone"] == {"start": "21:00", "end": "08:00", "days": ["sun"]}
        assert out["history"][0]["source"] == "client"
        assert out["history"][0]["touchpoint"] == "hotline.inbound"
        g = await http.get(f"/v1/subjects/{sid}/preferences", headers=bearer(writer))
        assert g.status_code == 200 and g.json()["monthly_cap_points"] == 10
    actions = [e["action"] for e in await audit_rows(vault)]
    assert "client:preferences:set" in actions and "client:preferences:read" in actions


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"monthly_cap_points": 30}, 422, "/monthly_cap_points"),
        ({"timezone": "Mars/Olympus"}, 422, "/timezone"),
        ({"evidence": None}, 422, "/evidence"),
        ({"evidence": {**EVIDENCE, "touchpoint": "nowhere"}}, 422, "/evidence/touchpoint"),
        ({"quiet": {"sms": {"start": "22:00"}}}, 422, "/quiet/sms"),
        ({"quiet": {"sms": {"start": "7 pm", "end": "08:00"}}}, 422, "/quiet"),
        ({"quiet": {"pager": {"days": ["sun"]}}}, 422, "/quiet"),
        ({"colour": "blue"}, 422, ""),
    ],
)
async def test_bad_input_is_problem_json_and_changes_nothing(vault, change, status, field):
    """Every malformed preference is refused with problem+json; no row and no event appears."""
    sid, _, writer, _ = await _setup(vault)
    body = {"timezone": "Europe/Berlin", "evidence": EVIDENCE, **change}
    before = len(await audit_rows(vault))
    async with api(vault) as http:
        r = await http.put(f"/v1/subjects/{sid}/preferences", json=body, headers=unset(writer))
    problem = assert_problem(r, status)
    if field is not None:
        assert field in {e["field"] for e in problem["errors"]}
    assert await _counts(vault) == (0, 0)
    assert len(await audit_rows(vault)) == before


async def test_lookup_clients_cannot_set_preferences(vault):
    """A lookup client's PUT is 403 and stores nothing."""
    sid, _, _, shop = await _setup(vault)
    async with api(vault) as http:
        r = await http.put(
            f"/v1/subjects/{sid}/preferences",
            json={"timezone": "Europe/Berlin", "evidence": EVIDENCE},
            headers=unset(shop),
        )
    assert_problem(r, 403)
    assert await _counts(vault) == (0, 0)


async def test_lookup_answers_preferred_channel_and_honours_quiet_hours_and_cap(vault, clock):
    """The lookup answer names the preferred channel, and a call announced to a customer
    preferring SMS is made and charged as an SMS: inside the SMS quiet hours 403
    contact_quiet_hours, a second one over the own cap 403 contact_cap_reached."""
    sid, data, writer, shop = await _setup(vault)
    body = {
        "timezone": "Asia/Tokyo",
        "preferred_channels": {"service": "sms"},
        "quiet": {"sms": {"start": "22:00", "end": "07:00"}},
        "monthly_cap_points": 5,
        "evidence": EVIDENCE,
    }
    q = {
        "purpose": "order.delivery",
        "subject_id": sid,
        "contact": {"brand": "tresor", "channel": "phone"},
    }
    async with api(vault) as http:
        r = await http.put(f"/v1/subjects/{sid}/preferences", json=body, headers=unset(writer))
        assert r.status_code == 200, r.text
        clock.set(datetime(2026, 11, 23, 14, 0, tzinfo=UTC))  # 23:00 in Tokyo
        r = await http.post("/v1/lookup", json=q, headers=bearer(shop))
        assert r.status_code == 403 and r.json()["reason"] == "contact_quiet_hours"
        assert data["phone"] not in r.text
        clock.set(datetime(2026, 11, 24, 1, 0, tzinfo=UTC))  # 10:00 in Tokyo
        r = await http.post("/v1/lookup", json=q, headers=bearer(shop))
        assert r.status_code == 200, r.text
        assert r.json()["preferred_channel"] == "sms"
        assert (r.json()["contact"]["points"], r.json()["contact"]["channel"]) == (4, "sms")
        r = await http.post("/v1/lookup", json=q, headers=bearer(shop))
        assert r.status_code == 403 and r.json()["reason"] == "contact_cap_reached"
        single = {"purpose": "offers.sms", "subject_id": sid, "contact": {"brand": "tresor"}}
        r = await http.put(
            f"/v1/subjects/{sid}/preferences",
            json={**body, "monthly_cap_points": None},
            headers={**bearer(writer), "If-Match": '"preferences-r1"'},
        )
        assert r.status_code == 200, r.text
        r = await http.post("/v1/lookup", json=single, headers=bearer(shop))
        assert r.status_code == 200 and "preferred_channel" not in r.json()
        report = await http.get(
            "/v1/reports/contacts", headers=bearer(await client_key(vault, "dpo", "dpo"))
        )
    assert report.status_code == 200, report.text
    stats = report.json()["preferences"]
    assert stats["customers_with_preferences"] == 1 and stats["customers"] == 1
    assert stats["denials_by_reason"] == {"contact_quiet_hours": 1, "contact_cap_reached": 1}


async def test_customer_sets_own_preferences_over_self_service_json(vault):
    """/self/v1/preferences shows nothing set, then stores the customer's change as theirs;
    a cap above the basket is 422 with nothing changed."""
    sid, data, _, _ = await _setup(vault)
    async with api(vault) as http:
        auth = await api_sign_in(http, vault, data["email"])
        r = await http.get("/self/v1/preferences", headers=auth)
        assert r.status_code == 200 and r.json()["version"] == 0
        r = await http.put(
            "/self/v1/preferences",
            json={"timezone": "Europe/Berlin", "monthly_cap_points": 99},
            headers=auth,
        )
        assert_problem(r, 422)
        assert await _counts(vault) == (0, 0)
        r = await http.put(
            "/self/v1/preferences",
            json={"timezone": "Europe/Berlin", "quiet": {"email": {"days": ["sat", "sun"]}}},
            headers={**auth, "user-agent": "TestApp/1"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["history"][0]["source"] == "self_service"
        assert r.json()["history"][0]["method"] == "app"
    actions = [e["action"] for e in await audit_rows(vault)]
    assert "subject:preferences:set" in actions and "subject:preferences:read" in actions


async def test_privacy_centre_form_saves_preferences_and_rejects_a_higher_cap(vault):
    """The web form (with its CSRF token) stores quiet hours and a cap; a cap above the
    basket re-renders the form with 422 and changes nothing."""
    sid, data, _, _ = await _setup(vault)
    async with api(vault) as http:
        await page_sign_in(http, vault, data["email"])
        overview = await http.get("/privacy")
        assert 'href="/privacy/preferences?lang=de"' in overview.text
        page = Page((await http.get("/privacy/preferences?lang=en")).text)
        form = page.form("/privacy/preferences")
        fields = {
            **form["fields"],
            "timezone": "Europe/Berlin",
            "quiet_phone_start": "20:00",
            "quiet_phone_end": "09:00",
            "monthly_cap_points": "30",
        }
        r = await http.post(form["action"], data=fields)
        assert r.status_code == 422 and "nothing was changed" in r.text
        assert await _counts(vault) == (0, 0)
        fields["monthly_cap_points"] = "12,5"
        fields["quiet_email_days"] = ["sat", "sun"]
        r = await http.post(form["action"], data=fields)
        assert r.status_code == 303, r.text
        shown = await http.get(r.headers["location"])
        assert "Your settings are saved." in shown.text
        assert 'value="20:00"' in shown.text and 'value="12.5"' in shown.text
    async with vault.engine.connect() as conn:
        row = (await conn.execute(select(contact_preferences))).one()
    assert row.monthly_cap_tenths == 125 and row.version == 1
    assert '"days": ["sat", "sun"]' in row.quiet


async def test_no_plaintext_contact_data_in_preference_audit_events(vault):
    """Preference changes and denials of a canary customer leave no trace of its data."""
    sid, _, writer, shop = await _setup(vault, seed=5, **CANARY)
    async with api(vault) as http:
        r = await http.put(
            f"/v1/subjects/{sid}/preferences",
            json={"timezone": "UTC", "monthly_cap_points": 0, "evidence": EVIDENCE},
            headers=unset(writer),
        )
        assert r.status_code == 200, r.text
        q = {"purpose": "order.delivery", "subject_id": sid, "contact": {"brand": "tresor"}}
        r = await http.post("/v1/lookup", json=q, headers=bearer(shop))
        assert r.status_code == 403 and r.json()["reason"] == "contact_cap_reached"
    events = await audit_rows(vault)
    assert found_canaries(repr(events)) == []


async def test_dpo_console_shows_preference_share_and_denials(vault):
    """/dpo/contacts shows how many customers set preferences and the month's denials by
    preference reason, with a chart once there is a denial."""
    import re

    sid, _, writer, _ = await _setup(vault)
    dpo = await client_key(vault, "dpo", "dpo")
    async with api(vault) as http:
        r = await http.put(
            f"/v1/subjects/{sid}/preferences",
            json={"timezone": "UTC", "monthly_cap_points": 0, "evidence": EVIDENCE},
            headers=unset(writer),
        )
        assert r.status_code == 200, r.text
        campaigns = await client_key(vault, "campaigns", "writer", ["offers.sms"])
        r = await http.post(
            "/v1/contacts",
            json={
                "subject_id": sid,
                "brand": "tresor",
                "channel": "sms",
                "type": "commercial",
                "purpose": "offers.sms",
            },
            headers=bearer(campaigns),
        )
        assert r.status_code == 403 and r.json()["reason"] == "contact_cap_reached"
        signin = await http.get("/dpo/signin?lang=en")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', signin.text).group(1)
        r = await http.post("/dpo/signin?lang=en", data={"api_key": dpo, "_csrf_token": token})
        assert r.status_code in (302, 303), r.text
        page = await http.get("/dpo/contacts?lang=en")
    assert page.status_code == 200, page.text
    assert "1 of 1 customers (100.0 %)" in page.text
    row = re.search(
        r"customer&#39;s own monthly limit reached</td><td class=\"num\">(\d+)", page.text
    )
    assert row and row.group(1) == "1"
    assert 'id="preferences-chart"' in page.text
