"""Privacy-centre sessions as rows: a sign-out through one node holds on another at once,
an idle session ends, and the session id shows up only in its cookie."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.support.nodes import node, second_node
from tests.support.self_service import Page, page_sign_in, seed_subject
from vault.storage.audit_tables import audit_events
from vault.storage.rights_tables import web_sessions


async def _status(http, token: str) -> int:
    r = await http.get("/privacy/preferences", headers={"Cookie": f"tresor_self={token}"})
    return r.status_code


async def test_sign_out_through_one_node_is_refused_by_another_at_once(vault):
    """The customer signs out on node A; node B refuses the same cookie on the next request."""
    _, p = await seed_subject(vault, 401)
    async with node(vault) as a, second_node(vault) as b:
        await page_sign_in(a, vault, p["email"])
        token = a.cookies.get("tresor_self", path="/privacy")
        assert token and await _status(b, token) == 200
        page = Page((await a.get("/privacy")).text)
        r = await a.post(
            page.form("/privacy/sign-out")["action"], data={"_csrf_token": page.csrf()}
        )
        assert r.status_code == 303
        assert await _status(b, token) == 303


async def test_an_idle_page_session_ends_and_no_id_leaks(vault, clock, log_stream):
    """Fifteen minutes without a request end the session (row marked idle); the id is in no
    log line, audit event, stored row or redirect location."""
    _, p = await seed_subject(vault, 402)
    async with node(vault) as http:
        r = await page_sign_in(http, vault, p["email"])
        token = http.cookies.get("tresor_self", path="/privacy")
        assert token
        locations = [r.headers["location"]]
        clock.advance(timedelta(minutes=14))
        assert await _status(http, token) == 200
        clock.advance(timedelta(minutes=15))
        r = await http.get("/privacy/preferences", headers={"Cookie": f"tresor_self={token}"})
        assert r.status_code == 303
        locations.append(r.headers["location"])
    async with vault.engine.connect() as conn:
        rows = (await conn.execute(select(web_sessions))).all()
        events = (await conn.execute(select(audit_events))).all()
    assert [(row.kind, row.ended_why) for row in rows] == [("privacy", "idle")]
    for where in (log_stream.getvalue(), repr(rows), repr(events), " ".join(locations)):
        assert token not in where
