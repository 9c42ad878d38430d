"""The console's request pages over HTTP on both databases: a request's page with its
history, every move as a CSRF-checked form through the vault's workflow, refusals shown
with nothing changed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.support.console import post_form, sign_in
from tests.support.factories import api, bearer, client_key, person
from vault.rights.requests import get_request
from vault.storage.audit_tables import audit_events


async def _actions(vault) -> list[str]:
    async with vault.engine.connect() as conn:
        rows = (
            await conn.execute(select(audit_events.c.action).order_by(audit_events.c.seq))
        ).all()
    return [r.action for r in rows]


async def _world(vault, http) -> dict[str, str]:
    writer = await client_key(vault, "crm", "writer")
    dpo = await client_key(vault, "datenschutz", "dpo")
    sid = (await http.post("/v1/subjects", json=person(3), headers=bearer(writer))).json()[
        "subject_id"
    ]
    r = await http.post(
        "/v1/requests",
        json={"subject_id": sid, "type": "access", "channel": "letter"},
        headers=bearer(dpo),
    )
    assert r.status_code == 201, r.text
    return {"sid": sid, "rid": r.json()["request_id"], "dpo": dpo}


async def test_queue_links_each_request_to_its_page(vault):
    """The queue shows each request id as a link to its page (short id, whole id to copy)."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await sign_in(http, w["dpo"])
        queue = await http.get("/dpo/requests?lang=en")
        assert f'href="/dpo/requests/{w["rid"]}?lang=en"' in queue.text
        assert f'data-copy="{w["rid"]}"' in queue.text
        assert f'<code title="{w["rid"]}">{w["rid"][:8]}…</code>' in queue.text


async def test_a_request_walks_from_verification_to_completed_through_the_forms(vault):
    """verify then approve through the console's forms: the same workflow and audit as the API,
    the history on the page, and only the moves TRANSITIONS allows offered at each step."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await sign_in(http, w["dpo"])
        url = f"/dpo/requests/{w['rid']}?lang=en"
        page = await http.get(url)
        assert page.status_code == 200
        assert 'data-status="identity_verification"' in page.text
        for offered in ("verify", "extend", "reject"):
            assert f'id="act-{offered}"' in page.text
        assert 'id="act-approve"' not in page.text and 'id="act-complete"' not in page.text
        assert "only within the first month after receipt" in page.text

        r = await post_form(http, url, f"/dpo/requests/{w['rid']}/verify?lang=en", {})
        assert r.status_code == 303 and r.headers["location"].endswith("done=verify")
        page = await http.get(r.headers["location"])
        assert 'data-status="in_review"' in page.text and "the request is in review" in page.text
        assert 'id="act-approve"' in page.text and 'id="act-verify"' not in page.text

        r = await post_form(http, url, f"/dpo/requests/{w['rid']}/approve?lang=en", {})
        assert r.status_code == 303
        page = await http.get(url)
        assert 'data-status="completed"' in page.text
        assert "nothing more to do" in page.text and 'class="act"' not in page.text
        history = page.text.split('id="request-history"')[1]
        assert all(e in history for e in ("received", "verified", "approved", "completed"))
    record = await get_request(vault, w["rid"])
    assert record.status == "completed"
    actions = await _actions(vault)
    assert "dpo:request:verify" in actions and "dpo:request:approve" in actions
    assert "dpo:request:read" in actions


async def test_reject_needs_a_reason_and_a_refused_move_changes_nothing(vault):
    """An empty reason is 422 and a move the workflow refuses is 409, each on the request's
    page with the reason, and the request is unchanged; then a reasoned reject closes it."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await sign_in(http, w["dpo"])
        url = f"/dpo/requests/{w['rid']}?lang=en"
        r = await post_form(http, url, f"/dpo/requests/{w['rid']}/reject?lang=en", {"reason": ""})
        assert r.status_code == 422 and "Nothing was changed" in r.text
        assert 'data-status="identity_verification"' in r.text
        r = await post_form(http, url, f"/dpo/requests/{w['rid']}/approve?lang=en", {})
        assert r.status_code == 409 and "only a verified request in review" in r.text
        assert (await get_request(vault, w["rid"])).status == "identity_verification"
        r = await post_form(
            http, url, f"/dpo/requests/{w['rid']}/reject?lang=en", {"reason": "Not the holder"}
        )
        assert r.status_code == 303
    record = await get_request(vault, w["rid"])
    assert (record.status, record.outcome_reason) == ("rejected", "Not the holder")


async def test_extend_shows_the_rules_then_refuses_after_the_first_month(vault, clock):
    """Before extending the page names the last day and each choice's due date; an extension
    moves the deadline and mails the customer; past the first month the form is disabled and
    a forced post is 409."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await sign_in(http, w["dpo"])
        url = f"/dpo/requests/{w['rid']}?lang=en"
        page = await http.get(url)
        assert "by 1 month(s): due" in page.text and "by 2 month(s): due" in page.text
        r = await post_form(
            http,
            url,
            f"/dpo/requests/{w['rid']}/extend?lang=en",
            {"months": "1", "reason": "Letters from three archives"},
        )
        assert r.status_code == 303
        record = await get_request(vault, w["rid"])
        assert record.extended_at is not None
        assert record.due_at.month != record.received_at.month
        assert len(list(vault.settings.outbox_dir.glob("*.eml"))) == 1

        other = await http.post(
            "/v1/requests",
            json={"subject_id": w["sid"], "type": "erasure", "channel": "letter"},
            headers=bearer(w["dpo"]),
        )
        rid = other.json()["request_id"]
        clock.advance(timedelta(days=40))
        await sign_in(http, w["dpo"])  # the session ended meanwhile
        page = await http.get(f"/dpo/requests/{rid}?lang=en")
        assert "Extending is not possible" in page.text
        r = await post_form(
            http,
            f"/dpo/requests/{rid}?lang=en",
            f"/dpo/requests/{rid}/extend?lang=en",
            {"months": "2", "reason": "late"},
        )
        assert r.status_code == 409
    assert (await get_request(vault, rid)).extended_at is None


async def test_a_move_without_the_csrf_token_is_refused(vault):
    """A form post without the CSRF token is refused and the request is unchanged."""
    async with api(vault) as http:
        w = await _world(vault, http)
        await sign_in(http, w["dpo"])
        r = await http.post(f"/dpo/requests/{w['rid']}/verify?lang=en", data={})
        assert r.status_code == 403
    assert (await get_request(vault, w["rid"])).status == "identity_verification"
