"""Marketers in the console (issue 21 item 5): a `marketing` key or a single sign-on user
the provider puts in the marketing group signs in, lands on the campaigns and sees only
campaigns, the calendar and the reports; every DPO page answers 403 for them, in German and
English; a key whose role changes ends the session. Both databases."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

from tests.api.dpo.test_sso_callback import FakeProvider, _claims, _start, console
from tests.support.factories import api, client_key
from vault.storage.audit_tables import audit_events
from vault.storage.rights_tables import web_sessions
from vault.storage.tables import clients

DPO_PAGES = (
    "/dpo/audit", "/dpo/requests", "/dpo/subjects", "/dpo/stats", "/dpo/contacts",
    "/dpo/followups", "/dpo/recipients", "/dpo/chain", "/dpo/ropa",
)  # fmt: skip
PLANNING_PAGES = ("/dpo/campaigns", "/dpo/calendar", "/dpo/reports")


async def sign_in(http, key: str, lang: str = "en"):
    page = await http.get(f"/dpo/signin?lang={lang}")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
    return await http.post(f"/dpo/signin?lang={lang}", data={"api_key": key, "_csrf_token": token})


async def test_a_marketer_signs_in_and_sees_only_campaigns_calendar_and_reports(vault):
    """The marketing key opens a session (audited with the role), lands on the campaigns;
    the navigation offers only the three planning pages; each DPO page is 403 in both
    languages; the planning pages load."""
    key = await client_key(vault, "planner", "marketing")
    async with api(vault) as http:
        r = await sign_in(http, key)
        assert r.status_code == 303 and r.headers["location"] == "/dpo/campaigns?lang=en"
        for lang in ("de", "en"):
            for path in DPO_PAGES:
                refused = await http.get(f"{path}?lang={lang}")
                assert refused.status_code == 403, (path, refused.text[:200])
            for path in PLANNING_PAGES:
                ok = await http.get(f"{path}?lang={lang}")
                assert ok.status_code == 200, (path, ok.text[:500])
        nav = re.search(r'<nav class="main".*?</nav>', ok.text, re.S).group(0)
        assert re.findall(r'href="([^"?]+)', nav) == list(PLANNING_PAGES)
        home = await http.get("/dpo/")
        assert home.headers["location"] == "/dpo/campaigns?lang=de"
    async with vault.engine.connect() as conn:
        start = (
            await conn.execute(
                select(audit_events).where(audit_events.c.action == "dpo:session:start")
            )
        ).one()
    assert (start.actor_type, start.actor_id, start.decision) == ("client", "planner", "allow")
    assert '"role": "marketing"' in start.detail or '"role":"marketing"' in start.detail


async def test_the_dpo_still_sees_every_page_and_the_new_ones(vault):
    """A DPO's session is unchanged: the DPO pages and the planning pages all load."""
    key = await client_key(vault, "dpo", "dpo")
    async with api(vault) as http:
        r = await sign_in(http, key)
        assert r.headers["location"] == "/dpo/audit?lang=en"
        for path in ("/dpo/audit", "/dpo/requests", *PLANNING_PAGES):
            assert (await http.get(f"{path}?lang=en")).status_code == 200, path


@pytest.mark.parametrize("new_role", ["dpo", "writer"])
async def test_a_key_whose_role_changes_ends_the_marketers_session(vault, new_role):
    """A marketer's key made `dpo` (or anything else) does not widen the open session: it
    is ended as revoked and the next page goes to the sign-in."""
    key = await client_key(vault, "planner", "marketing")
    async with api(vault) as http:
        await sign_in(http, key)
        assert (await http.get("/dpo/campaigns")).status_code == 200
        async with vault.transaction() as conn:
            await conn.execute(
                update(clients).where(clients.c.name == "planner").values(role=new_role)
            )
        r = await http.get("/dpo/audit")
        assert r.status_code == 303 and r.headers["location"].startswith("/dpo/signin")
    async with vault.engine.connect() as conn:
        (row,) = (await conn.execute(select(web_sessions))).all()
    assert row.ended_why == "revoked"


async def test_single_sign_on_with_the_marketing_group_opens_a_marketers_session(vault):
    """An ID token whose groups hold `marketing` (not `dpo`) opens a session of the role
    marketing, kept on the row: the campaigns load, the audit trail is 403."""
    idp = FakeProvider()
    async with console(vault, idp) as http:
        params = await _start(http)
        idp.claims = _claims(vault, params["nonce"], groups=["staff", "marketing"])
        r = await http.get(f"/dpo/sso/callback?code=abc&state={params['state']}")
        assert r.status_code == 200 and 'href="/dpo/?lang=en"' in r.text, r.text
        home = await http.get("/dpo/?lang=en")
        assert home.headers["location"] == "/dpo/campaigns?lang=en"
        assert (await http.get("/dpo/campaigns")).status_code == 200
        assert (await http.get("/dpo/audit")).status_code == 403
    async with vault.engine.connect() as conn:
        (row,) = (await conn.execute(select(web_sessions))).all()
    assert (row.account, row.role, row.client_id) == ("sso:user-4711", "marketing", None)
