"""A change of the identifying e-mail address does not hand over the customer's account
(security finding 1), through HTTP on both databases."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.support.factories import api, bearer, client_key, contact_if_match
from tests.support.privacy import assert_problem, audit_rows, consent_statuses
from tests.support.self_service import api_sign_in, mails, seed_subject
from vault.rights import selfservice
from vault.storage.rights_tables import dsar_requests
from vault.storage.tables import subjects

MALLORY = "mallory.writer@example.net"
DENIED = "urn:tresor:problem:denied:identity_change_unconfirmed"


async def _redirect_email(http, vault, sid: str, address: str = MALLORY) -> None:
    """What a writer client can do: point the customer's e-mail at another mailbox."""
    writer = await client_key(vault, f"crm-{address[:6]}", "writer")
    r = await http.patch(
        f"/v1/subjects/{sid}/contact",
        json={"email": address},
        headers={**bearer(writer), **await contact_if_match(vault, sid)},
    )
    assert r.status_code == 200, r.text


def _notice_token(vault, to: str) -> str:
    """The token of the link in the newest identity-change notice mailed to `to`."""
    import re

    found = [
        m
        for m in mails(vault.settings.outbox_dir)
        if m["To"] == to and "/privacy/identity/" in m.get_body(("plain",)).get_content()
    ]
    assert found, f"no identity-change notice went to {to}"
    (token,) = set(
        re.findall(
            r"/privacy/identity/([A-Za-z0-9_-]+)", found[-1].get_body(("plain",)).get_content()
        )
    )
    return token


async def test_a_writer_who_redirects_the_email_gets_no_account(vault):
    """A writer that points a customer's e-mail at its own mailbox and signs in with it
    sees no contact data and can neither export, erase, restrict, object, rectify,
    withdraw nor read preferences or follow-ups; the customer's data stays untouched."""
    sid, p = await seed_subject(vault, 301)
    before = await consent_statuses(vault)
    async with api(vault) as http:
        await _redirect_email(http, vault, sid)
        auth = await api_sign_in(http, vault, MALLORY)
        r = await http.get("/self/v1/me", headers=auth)
        assert r.status_code == 200, r.text
        me = r.json()
        shown = {k: v for k, v in me["contact"].items() if v is not None}
        assert shown == {}, f"the attacker's session sees contact data: {sorted(shown)}"
        assert me["restriction"]["reason"] == "identity_change_unconfirmed"
        assert me["access_log"] == [] and me["requests"] == []
        sms = next(c for c in me["consents"] if c["purpose"] == "offers.sms")
        attempts = [
            ("GET", "/self/v1/export", None),
            ("GET", "/self/v1/preferences", None),
            ("GET", "/self/v1/followups", None),
            ("POST", f"/self/v1/consents/{sms['consent_id']}/withdraw", None),
            *[
                ("POST", "/self/v1/requests", {"type": t})
                for t in (
                    "erasure",
                    "restriction",
                    "objection",
                    "access",
                    "portability",
                    "consent_withdrawal",
                )
            ],
            (
                "POST",
                "/self/v1/requests",
                {"type": "rectification", "payload": {"changes": {"name": "Mallory"}}},
            ),
        ]
        for method, path, body in attempts:
            r = await http.request(method, path, headers=auth, json=body)
            problem = assert_problem(r, 403)
            assert problem["type"] == DENIED, (path, problem)
            assert problem["reason"] == "identity_change_unconfirmed"
    async with vault.engine.connect() as conn:
        status = (await conn.execute(select(subjects.c.status))).scalar_one()
        requests = (await conn.execute(select(dsar_requests))).all()
    assert status == "active" and requests == []
    assert await consent_statuses(vault) == before
    refused = [e for e in await audit_rows(vault) if e["reason"] == "identity_change_unconfirmed"]
    assert len(refused) == len(attempts) and all(e["subject_id"] == sid for e in refused)


async def test_the_customers_session_ends_and_the_old_address_is_told(vault):
    """The change ends the customer's open session and mails the old address (German and
    English) a link to object or confirm that names neither address."""
    sid, p = await seed_subject(vault, 302)
    async with api(vault) as http:
        customer = await api_sign_in(http, vault, p["email"])
        await _redirect_email(http, vault, sid)
        assert_problem(await http.get("/self/v1/me", headers=customer), 401)
    await selfservice.wait_for_mail()
    (notice,) = [m for m in mails(vault.settings.outbox_dir) if "/privacy/identity/" in str(m)]
    assert notice["To"] == p["email"].lower()
    body = notice.get_body(("plain",)).get_content()
    assert "E-Mail-Adresse" in body and "e-mail address" in body
    assert "Das war ich nicht" in body and "this was not me" in body.lower()
    assert MALLORY not in body and MALLORY not in str(notice["Subject"])


async def test_objecting_from_the_old_address_ends_sessions_and_reaches_the_dpo(vault):
    """The customer's objection ends the attacker's session, keeps any new session through
    the disputed address restricted, and puts a restriction request into the DPO queue."""
    sid, p = await seed_subject(vault, 303)
    dpo = await client_key(vault, "dpo", "dpo")
    async with api(vault) as http:
        await _redirect_email(http, vault, sid)
        attacker = await api_sign_in(http, vault, MALLORY)
        token = _notice_token(vault, p["email"].lower())
        r = await http.post("/self/v1/identity-changes/object", json={"token": token})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "objected"
        assert_problem(await http.get("/self/v1/me", headers=attacker), 401)
        r = await http.post("/self/v1/identity-changes/object", json={"token": token})
        assert_problem(r, 404)  # one use
        vault.clock.advance(timedelta(days=30))  # objected: no cooling-off ends it
        attacker = await api_sign_in(http, vault, MALLORY)
        r = await http.get("/self/v1/me", headers=attacker)
        assert r.json()["restriction"]["reason"] == "identity_change_unconfirmed"
        r = await http.get("/v1/requests?subject_id=" + sid, headers=bearer(dpo))
        (queued,) = r.json()["items"]
        assert (queued["type"], queued["channel"]) == ("restriction", "email")
        r = await http.get("/v1/identity-changes?status=objected", headers=bearer(dpo))
        (change,) = r.json()["items"]
        assert change["subject_id"] == sid and change["kind"] == "email"
        assert change["request_id"] == queued["request_id"]


async def test_confirming_from_the_old_address_or_a_dpo_lifts_the_restriction(vault):
    """A session through the new address gets the data once the old address confirmed the
    change; for a second change a DPO's approval does the same."""
    sid, p = await seed_subject(vault, 304)
    dpo = await client_key(vault, "dpo", "dpo")
    async with api(vault) as http:
        await _redirect_email(http, vault, sid, "neu.304@example.org")
        token = _notice_token(vault, p["email"].lower())
        r = await http.post("/self/v1/identity-changes/confirm", json={"token": token})
        assert r.status_code == 200 and r.json()["status"] == "confirmed", r.text
        auth = await api_sign_in(http, vault, "neu.304@example.org")
        me = (await http.get("/self/v1/me", headers=auth)).json()
        assert me["contact"]["phone"] == p["phone"] and me["restriction"] is None
        assert (await http.get("/self/v1/export", headers=auth)).status_code == 200

        await _redirect_email(http, vault, sid, "zweit.304@example.org")
        auth = await api_sign_in(http, vault, "zweit.304@example.org")
        assert_problem(await http.get("/self/v1/export", headers=auth), 403)
        r = await http.get(f"/v1/identity-changes?subject_id={sid}", headers=bearer(dpo))
        pending = [c for c in r.json()["items"] if c["status"] == "pending"]
        assert len(pending) == 1
        r = await http.post(
            f"/v1/identity-changes/{pending[0]['change_id']}/approve", headers=bearer(dpo)
        )
        assert r.status_code == 200 and r.json()["status"] == "confirmed", r.text
        assert (await http.get("/self/v1/export", headers=auth)).status_code == 200
        r = await http.post(
            f"/v1/identity-changes/{pending[0]['change_id']}/approve", headers=bearer(dpo)
        )
        assert_problem(r, 409)


async def test_the_cooling_off_period_ends_the_restriction(vault, clock):
    """Seven days after an unanswered change the new address is trusted; a minute before,
    not (the same session is refused, then served)."""
    sid, p = await seed_subject(vault, 305)
    async with api(vault) as http:
        await _redirect_email(http, vault, sid, "neu.305@example.org")
        clock.advance(timedelta(days=7) - timedelta(minutes=1))
        auth = await api_sign_in(http, vault, "neu.305@example.org")
        assert_problem(await http.get("/self/v1/export", headers=auth), 403)
        clock.advance(timedelta(minutes=1))
        assert (await http.get("/self/v1/export", headers=auth)).status_code == 200


async def test_identity_change_endpoints_need_a_token_or_the_dpo_role(vault):
    """Unknown tokens are a 404 that changes nothing; the DPO list and approval refuse a
    writer (403) and an unknown change is a 404."""
    await seed_subject(vault, 306)
    writer = await client_key(vault, "crm", "writer")
    dpo = await client_key(vault, "dpo", "dpo")
    async with api(vault) as http:
        for action in ("confirm", "object"):
            r = await http.post(f"/self/v1/identity-changes/{action}", json={"token": "x" * 43})
            assert_problem(r, 404)
        assert_problem(await http.get("/v1/identity-changes", headers=bearer(writer)), 403)
        r = await http.post(
            "/v1/identity-changes/00000000-0000-4000-8000-000000000000/approve",
            headers=bearer(dpo),
        )
        assert_problem(r, 404)
