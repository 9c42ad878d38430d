"""Console sessions that end: server-side rows read on every request, so sign-out, a revoked
key and the idle and absolute timeouts hold on every node at once; sign-in limits; no id leaks."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from tests.support.factories import ADMIN, client_key
from tests.support.nodes import node, second_node
from vault.admin.clients import revoke_client
from vault.context import VaultContext
from vault.storage.audit_tables import audit_events
from vault.storage.rights_tables import web_sessions

_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def _csrf(page: httpx.Response) -> str:
    m = _CSRF.search(page.text)
    assert m, "no CSRF field on the page"
    return html.unescape(m.group(1))


async def _sign_in(http: httpx.AsyncClient, key: str) -> httpx.Response:
    page = await http.get("/dpo/signin?lang=en")
    return await http.post("/dpo/signin?lang=en", data={"api_key": key, "_csrf_token": _csrf(page)})


async def _session_id(http: httpx.AsyncClient, key: str) -> str:
    r = await _sign_in(http, key)
    assert r.status_code == 303, r.text
    token = http.cookies.get("tresor_dpo", path="/dpo")
    assert token
    return token


async def _open(http: httpx.AsyncClient, token: str) -> int:
    """The status of a console page fetched with only this session id."""
    r = await http.get("/dpo/audit", headers={"Cookie": f"tresor_dpo={token}"})
    return r.status_code


async def _rows(vault: VaultContext, table: Any) -> list[Any]:
    async with vault.engine.connect() as conn:
        return list((await conn.execute(select(table))).all())


async def test_sign_out_on_one_node_is_refused_on_another_at_once(vault):
    """A session signed out through node A is refused by node B on the very next request."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with node(vault) as a, second_node(vault) as b:
        token = await _session_id(a, dpo)
        assert await _open(b, token) == 200
        page = await a.get("/dpo/audit")
        r = await a.post("/dpo/signout", data={"_csrf_token": _csrf(page)})
        assert r.status_code == 303
        assert await _open(b, token) == 303
        assert await _open(a, token) == 303
    (row,) = await _rows(vault, web_sessions)
    assert row.ended_at is not None and row.ended_why == "signed_out"


async def test_revoked_key_ends_its_console_session_on_another_node_at_once(vault):
    """Revoking the DPO's key ends its console session on every node with the next request,
    whatever a node cached about the key; the row says why it ended."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    vault.settings = replace(vault.settings, client_cache_seconds=3600.0)
    async with node(vault) as a, second_node(vault) as b:
        token = await _session_id(a, dpo)
        assert await _open(b, token) == 200
        await revoke_client(vault, ADMIN, "datenschutz")
        assert await _open(b, token) == 303
        assert await _open(a, token) == 303
    (row,) = await _rows(vault, web_sessions)
    assert row.ended_why == "revoked"


async def test_idle_timeout_ends_the_session(vault, clock):
    """Requests keep a session alive; 15 minutes without one end it (injected clock)."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with node(vault) as http:
        token = await _session_id(http, dpo)
        for _ in range(4):  # an hour of work, one page every 14 minutes
            clock.advance(timedelta(minutes=14))
            assert await _open(http, token) == 200
        clock.advance(timedelta(minutes=15))
        assert await _open(http, token) == 303
        clock.advance(timedelta(seconds=-60))  # ended stays ended
        assert await _open(http, token) == 303
    (row,) = await _rows(vault, web_sessions)
    assert row.ended_why == "idle"


async def test_absolute_timeout_ends_an_active_session(vault, clock):
    """However active, a console session ends after TRESOR_CONSOLE_SESSION_HOURS."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    vault.settings = replace(vault.settings, console_session_hours=1.0)
    async with node(vault) as http:
        token = await _session_id(http, dpo)
        for _ in range(5):
            clock.advance(timedelta(minutes=11))
            assert await _open(http, token) == 200
        clock.advance(timedelta(minutes=5))
        assert await _open(http, token) == 303
    (row,) = await _rows(vault, web_sessions)
    assert row.ended_why == "expired"


async def test_console_sign_in_is_limited_per_account_across_nodes(vault):
    """Sign-ins of one account count on every node: past the limit the right key gets a
    429 page with Retry-After and no session, and the refusal is audited."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    vault.settings = replace(vault.settings, console_signin_per_account=2)
    async with node(vault) as a, second_node(vault) as b:
        assert (await _sign_in(a, dpo)).status_code == 303
        assert (await _sign_in(b, dpo)).status_code == 303
        b.cookies.clear()
        r = await _sign_in(b, dpo)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert not [v for v in r.headers.get_list("set-cookie") if v.startswith("tresor_dpo=")]
    assert len(await _rows(vault, web_sessions)) == 2
    starts = [e for e in await _rows(vault, audit_events) if e.action == "dpo:session:start"]
    assert [(e.actor_id, e.decision, e.reason) for e in starts] == [
        ("datenschutz", "allow", None),
        ("datenschutz", "allow", None),
        ("datenschutz", "deny", "rate_limited"),
    ]


async def test_console_sign_in_is_limited_per_address(vault, clock):
    """Attempts from one address count whatever the key: past the limit even a right key
    is refused with 429 until the window has passed."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    vault.settings = replace(vault.settings, console_signin_per_address=3, failed_auth_limit=1000)
    async with node(vault) as http:
        for _ in range(3):
            assert (await _sign_in(http, "tresor_wrong")).status_code == 401
        assert (await _sign_in(http, dpo)).status_code == 429
        clock.advance(timedelta(minutes=16))
        assert (await _sign_in(http, dpo)).status_code == 303


async def test_nothing_of_a_session_id_in_logs_audit_urls_or_metrics(vault, log_stream):
    """The session id reaches the browser only in its cookie: not the log, the trail, the
    table (only a keyed digest), a redirect location or the metrics."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with node(vault) as http:
        r = await _sign_in(http, dpo)
        token = http.cookies.get("tresor_dpo", path="/dpo")
        assert token
        locations = [r.headers["location"]]
        page = await http.get("/dpo/audit")
        r = await http.post("/dpo/signout", data={"_csrf_token": _csrf(page)})
        locations.append(r.headers["location"])
        r = await http.get("/dpo/audit", headers={"Cookie": f"tresor_dpo={token}"})
        locations.append(r.headers["location"])
        metrics = (await http.get("/metrics")).text
    rows = await _rows(vault, web_sessions) + await _rows(vault, audit_events)
    for where in (log_stream.getvalue(), metrics, " ".join(locations), repr(rows)):
        assert token not in where
        assert dpo not in where
