"""Finding a subject on the console by e-mail, phone or customer number (both databases):
found, not found, invalid; each search audited without the value; the overview without
contact values; the export audited; lifting a restriction from the overview."""

from __future__ import annotations

import email
import email.policy

from sqlalchemy import select

from tests.support.console import csrf_of, post_form, sign_in
from tests.support.factories import NEWSLETTER_EVIDENCE, api, bearer, client_key
from tests.support.privacy import CANARY, found_canaries
from vault.audit.events import Actor
from vault.rights.restriction import restrict
from vault.storage.audit_tables import audit_events
from vault.storage.tables import subjects

SEARCH = "/dpo/subjects?lang=en"
FIND = "/dpo/subjects/search?lang=en"


async def _events(vault) -> list:
    async with vault.engine.connect() as conn:
        return list((await conn.execute(select(audit_events).order_by(audit_events.c.seq))).all())


async def _world(vault, http) -> dict[str, str]:
    writer = await client_key(vault, "crm", "writer")
    mailer = await client_key(vault, "mailer", "lookup", ["newsletter.email"])
    dpo = await client_key(vault, "datenschutz", "dpo")
    sid = (await http.post("/v1/subjects", json=CANARY, headers=bearer(writer))).json()[
        "subject_id"
    ]
    await http.post(
        f"/v1/subjects/{sid}/consents",
        json={"purpose": "newsletter.email", "evidence": NEWSLETTER_EVIDENCE},
        headers=bearer(writer),
    )
    await http.post(
        "/v1/lookup",
        json={"purpose": "newsletter.email", "subject_id": sid, "contact": {"brand": "tresor"}},
        headers=bearer(mailer),
    )
    return {"sid": sid, "dpo": dpo}


async def test_each_identifier_finds_the_subject_and_the_search_is_audited_without_it(vault):
    """E-mail (any case), phone (any spelling) and customer number lead to the subject's
    overview; the page and the `dpo:subject:search` events hold no contact value."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await sign_in(http, w["dpo"])
        for kind, value in (
            ("email", CANARY["email"].upper()),
            ("phone", "+49 (30) 9876-5432"),
            ("external_ref", CANARY["external_ref"]),
        ):
            r = await post_form(http, SEARCH, FIND, {"kind": kind, "value": value})
            assert r.status_code == 303, (kind, r.text)
            assert r.headers["location"] == f"/dpo/subjects/{w['sid']}?lang=en"
            assert value not in r.headers["location"]
        page = await http.get(f"/dpo/subjects/{w['sid']}?lang=en")
        assert page.status_code == 200
        assert found_canaries(page.text) == []
        assert "newsletter.email" in page.text and "mailer" in page.text  # basis, access
        assert 'id="open-export"' in page.text
    searches = [e for e in await _events(vault) if e.action == "dpo:subject:search"]
    assert [e.subject_id for e in searches] == [w["sid"]] * 3
    assert all('"found": true' in (e.detail or "") for e in searches)
    reads = [e for e in await _events(vault) if e.action == "dpo:subject:read"]
    assert len(reads) == 1 and reads[0].subject_id == w["sid"]
    for e in await _events(vault):
        assert found_canaries(repr(tuple(e))) == [], e.action


async def test_not_found_and_invalid_say_so_without_repeating_the_value(vault):
    """An unknown address is 404 and a malformed phone 422, on the search page, neither
    repeating what was typed; both searches are recorded, the invalid one is not."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await sign_in(http, w["dpo"])
        unknown = "nobody.qx7@example.org"
        r = await post_form(http, SEARCH, FIND, {"kind": "email", "value": unknown})
        assert r.status_code == 404 and "No subject has this identifier" in r.text
        assert "nobody.qx7" not in r.text
        r = await post_form(http, SEARCH, FIND, {"kind": "phone", "value": "call me qx7"})
        assert r.status_code == 422 and "qx7" not in r.text
        r = await post_form(http, SEARCH, FIND, {"kind": "name", "value": "Kanarienvogel"})
        assert r.status_code == 422
    searches = [e for e in await _events(vault) if e.action == "dpo:subject:search"]
    assert len(searches) == 1 and searches[0].subject_id is None
    assert '"found": false' in searches[0].detail and "qx7" not in searches[0].detail


async def test_the_export_shows_contact_data_and_is_audited(vault):
    """Opening the export from the overview shows the contact data and records
    `dpo:export:read` for the subject."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await sign_in(http, w["dpo"])
        r = await http.get(f"/dpo/subjects/{w['sid']}/export?lang=en")
        assert r.status_code == 200 and CANARY["email"] in r.text
    reads = [e for e in await _events(vault) if e.action == "dpo:export:read"]
    assert len(reads) == 1 and reads[0].subject_id == w["sid"]


async def test_lifting_a_restriction_from_the_overview_tells_the_customer(vault):
    """A restricted subject's overview offers the lift form; lifting makes it active, mails
    the customer the reason and is audited; a second lift is refused with 409."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await restrict(vault, Actor("dpo", "datenschutz"), w["sid"])
        await sign_in(http, w["dpo"])
        url = f"/dpo/subjects/{w['sid']}?lang=en"
        page = await http.get(url)
        assert 'data-status="restricted"' in page.text and 'id="lift-restriction"' in page.text
        action = f"/dpo/subjects/{w['sid']}/lift-restriction?lang=en"
        r = await post_form(http, url, action, {"reason": "Accuracy confirmed"})
        assert r.status_code == 303 and r.headers["location"].endswith("done=lifted")
        page = await http.get(r.headers["location"])
        assert 'data-status="active"' in page.text and "told by e-mail" in page.text
        assert 'id="lift-restriction"' not in page.text
        r = await http.post(action, data={"reason": "again", "_csrf_token": csrf_of(page)})
        assert r.status_code == 409
    async with vault.engine.connect() as conn:
        status = (
            await conn.execute(select(subjects.c.status).where(subjects.c.id == w["sid"]))
        ).scalar_one()
    assert status == "active"
    mails = [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in vault.settings.outbox_dir.glob("*.eml")
        if "restriction" in p.read_text(errors="ignore").lower()
    ]
    assert len(mails) == 1 and mails[0]["To"] == CANARY["email"]
    assert "Accuracy confirmed" in mails[0].get_body(("plain",)).get_content()
    actions = [e.action for e in await _events(vault)]
    assert "dpo:subject:lift_restriction" in actions
    assert "system:subject:restriction_lifted_mail" in actions
