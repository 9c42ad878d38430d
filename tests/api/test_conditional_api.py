"""`ETag` and `If-Match` (issue 17): a rectification or a preference change names the state
it replaces, so two systems cannot silently overwrite each other; 428 without, 412 on a
stale state, nothing changed and the refusal audited; both databases."""

from __future__ import annotations

from sqlalchemy import select

from tests.support.dsar import contract, new_subject
from tests.support.factories import NEWSLETTER_EVIDENCE, api, bearer, client_key
from tests.support.privacy import assert_problem
from vault.storage.audit_tables import audit_events
from vault.storage.tables import subjects

PREFS = {"timezone": "Europe/Berlin", "evidence": NEWSLETTER_EVIDENCE}


async def _denials(vault, action: str) -> list[str | None]:
    async with vault.engine.connect() as conn:
        rows = await conn.execute(
            select(audit_events.c.reason)
            .where(audit_events.c.action == action, audit_events.c.decision == "deny")
            .order_by(audit_events.c.seq)
        )
        return list(rows.scalars())


async def _revision(vault, sid: str) -> int:
    async with vault.engine.connect() as conn:
        return (
            await conn.execute(select(subjects.c.contact_revision).where(subjects.c.id == sid))
        ).scalar_one()


async def test_two_writers_with_one_etag_cannot_both_rectify(vault):
    """Both read the contact at one state (the lookup's ETag); the first rectification
    wins and gets the new ETag, the second is 412 `precondition_failed`, changes nothing
    and is audited as a denial."""
    sid, _ = await new_subject(vault, 1751)
    await contract(vault, sid)
    one = bearer(await client_key(vault, "crm", "writer"))
    two = bearer(await client_key(vault, "erp", "writer"))
    shop = bearer(await client_key(vault, "shop", "lookup", ["order.delivery"]))
    async with api(vault) as http:
        read = await http.post(
            "/v1/lookup", json={"purpose": "order.delivery", "subject_id": sid}, headers=shop
        )
        tag = read.headers["etag"]
        assert tag == '"contact-r1"'
        first = await http.patch(
            f"/v1/subjects/{sid}/contact", json={"name": "Erste"}, headers={**one, "If-Match": tag}
        )
        second = await http.patch(
            f"/v1/subjects/{sid}/contact", json={"name": "Zweite"}, headers={**two, "If-Match": tag}
        )
        after = await http.post(
            "/v1/lookup", json={"purpose": "order.delivery", "subject_id": sid}, headers=shop
        )
    assert first.status_code == 200, first.text
    assert first.headers["etag"] == '"contact-r2"'
    assert assert_problem(second, 412)["reason"] == "precondition_failed"
    assert after.json()["fields"]["name"] == "Erste"
    assert after.headers["etag"] == first.headers["etag"]
    assert await _denials(vault, "client:contact:rectify") == ["precondition_failed"]


async def test_a_rectification_without_if_match_is_428_and_changes_nothing(vault):
    """No If-Match, `*`, a weak tag or another resource's tag: nothing changes; a missing
    (or `*`) one is 428 `precondition_required`, a tag naming no contact state 412."""
    sid, _ = await new_subject(vault, 1752)
    writer = bearer(await client_key(vault, "crm", "writer"))
    async with api(vault) as http:
        for extra, status in (
            ({}, 428),
            ({"If-Match": "*"}, 428),
            ({"If-Match": 'W/"contact-r1"'}, 412),
            ({"If-Match": '"preferences-r1"'}, 412),
        ):
            r = await http.patch(
                f"/v1/subjects/{sid}/contact", json={"name": "Neu"}, headers={**writer, **extra}
            )
            assert_problem(r, status)
    assert await _revision(vault, sid) == 1
    assert await _denials(vault, "client:contact:rectify") == [
        "precondition_required",
        "precondition_required",
        "precondition_failed",
        "precondition_failed",
    ]


async def test_a_new_subjects_etag_allows_the_first_rectification(vault):
    """The ETag of `POST /v1/subjects` is the one the first PATCH needs; a list of tags
    matches when one of them is current."""
    writer = bearer(await client_key(vault, "crm", "writer"))
    async with api(vault) as http:
        created = await http.post("/v1/subjects", json={"name": "Anna"}, headers=writer)
        sid = created.json()["subject_id"]
        r = await http.patch(
            f"/v1/subjects/{sid}/contact",
            json={"name": "Anna B."},
            headers={**writer, "If-Match": '"contact-r7", ' + created.headers["etag"]},
        )
    assert r.status_code == 200, r.text
    assert await _revision(vault, sid) == 2


async def test_preferences_need_the_etag_of_the_state_they_replace(vault):
    """GET names the state ("preferences-r0" while none are set); a PUT with it succeeds
    and names the next; the same stale tag again is 412, none 428; both denials audited."""
    sid, _ = await new_subject(vault, 1753)
    writer = bearer(await client_key(vault, "crm", "writer"))
    path = f"/v1/subjects/{sid}/preferences"
    async with api(vault) as http:
        tag = (await http.get(path, headers=writer)).headers["etag"]
        assert tag == '"preferences-r0"'
        ok = await http.put(path, json=PREFS, headers={**writer, "If-Match": tag})
        stale = await http.put(path, json=PREFS, headers={**writer, "If-Match": tag})
        missing = await http.put(path, json=PREFS, headers=writer)
        now = await http.get(path, headers=writer)
    assert ok.status_code == 200, ok.text
    assert ok.headers["etag"] == now.headers["etag"] == '"preferences-r1"'
    assert assert_problem(stale, 412)["reason"] == "precondition_failed"
    assert assert_problem(missing, 428)["reason"] == "precondition_required"
    assert now.json()["version"] == 1
    assert await _denials(vault, "client:preferences:set") == [
        "precondition_failed",
        "precondition_required",
    ]


async def test_consent_lists_and_requests_carry_an_etag_of_their_content(vault):
    """The consent list's ETag stays while nothing changes and changes with a new basis;
    a request's answer carries one too."""
    sid, _ = await new_subject(vault, 1754)
    writer = bearer(await client_key(vault, "crm", "writer"))
    dpo = bearer(await client_key(vault, "dpo", "dpo"))
    path = f"/v1/subjects/{sid}/consents"
    async with api(vault) as http:
        a = await http.get(path, headers=writer)
        b = await http.get(path, headers=writer)
        await contract(vault, sid)
        c = await http.get(path, headers=writer)
        created = await http.post(
            "/v1/requests",
            json={"type": "access", "channel": "letter", "subject_id": sid},
            headers=dpo,
        )
        one = await http.get(f"/v1/requests/{created.json()['request_id']}", headers=dpo)
    assert a.headers["etag"] == b.headers["etag"] != c.headers["etag"]
    assert created.status_code == 201, created.text
    assert one.status_code == 200 and one.headers["etag"].startswith('"')
