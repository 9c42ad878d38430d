"""Agreed follow-ups through HTTP: POST/GET /v1/followups, lookups and recorded contacts
that keep one (also with a full basket and under parallel requests), the customer's own
view and cancel (JSON and privacy pages), the DPO console and the contact report (both
databases; the PostgreSQL run is the one with real parallel transactions)."""

from __future__ import annotations

import asyncio
import html
import json
import re
from datetime import timedelta

from sqlalchemy import func, select

from tests.support.factories import api, bearer, client_key
from tests.support.privacy import assert_problem
from tests.support.self_service import Page, api_sign_in, page_sign_in, seed_subject
from vault.storage.audit_tables import audit_events
from vault.storage.outreach_tables import contact_budgets, contacts, followups

_CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def _body(sid: str, clock, start_hours: float = 24, **kw) -> dict:
    start = clock.now() + timedelta(hours=start_hours)
    return {
        "subject_id": sid,
        "purpose": "order.delivery",
        "brand": "tresor",
        "touchpoint": "hotline.inbound",
        "note": "order_question",
        "due_from": start.isoformat(),
        "due_until": (start + timedelta(hours=8)).isoformat(),
        **kw,
    }


async def _count(vault, table) -> int:
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def _setup(vault, http, clock, seed: int):
    writer = await client_key(vault, "crm", "writer", ["order.delivery"])
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    sid, person_ = await seed_subject(vault, seed)
    r = await http.post("/v1/followups", json=_body(sid, clock), headers=bearer(writer))
    assert r.status_code == 201, r.text
    return writer, shop, sid, person_, r.json()


async def test_lookup_keeps_the_followup_inside_its_window_even_with_a_full_basket(vault, clock):
    """Refused before the window, allowed inside it with a full basket at 0 points and the
    counter unchanged, then refused as used; the follow-up ends kept."""
    async with api(vault) as http:
        writer, shop, sid, p, f = await _setup(vault, http, clock, 801)
        assert (f["status"], f["channel"], f["type"]) == ("open", "letter", "service")
        campaigns = await client_key(vault, "campaigns", "writer", ["offers.sms"])
        r = await http.post(  # 20 of 25 points: commercial SMS, consented (seed_subject)
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
        assert r.status_code == 201, r.text
        q = {
            "purpose": "order.delivery",
            "subject_id": sid,
            "contact": {"brand": "tresor", "followup": f["id"]},
        }
        r = await http.post("/v1/lookup", json=q, headers=bearer(shop))
        assert r.status_code == 403 and r.json()["reason"] == "followup_not_in_window"
        assert p["name"] not in r.text
        clock.set(clock.now() + timedelta(hours=25))
        r = await http.post("/v1/lookup", json=q, headers=bearer(writer))
        assert r.status_code == 403  # a writer may not look up
        plain = {"purpose": "order.delivery", "subject_id": sid, "contact": {"brand": "tresor"}}
        for _ in range(3):  # service letters draw from their own reserve: 3 + 3 + 3 of 10
            await http.post("/v1/lookup", json=plain, headers=bearer(shop))
        r = await http.post("/v1/lookup", json=plain, headers=bearer(shop))
        assert r.status_code == 403 and r.json()["reason"] == "contact_budget_exhausted"
        r = await http.post("/v1/lookup", json=q, headers=bearer(shop))
        assert r.status_code == 200, r.text
        assert r.json()["fields"]["name"] == p["name"]
        c = r.json()["contact"]
        assert (c["points"], c["used"], c["basket"]) == (0, 20, 25)
        r = await http.post("/v1/lookup", json=q, headers=bearer(shop))
        assert r.status_code == 403 and r.json()["reason"] == "followup_not_usable"
        r = await http.get(f"/v1/followups/{f['id']}", headers=bearer(shop))
        assert r.status_code == 200 and r.json()["status"] == "kept"
    async with vault.engine.connect() as conn:
        used = (await conn.execute(select(contact_budgets.c.used_tenths))).scalar_one()
        kept = (await conn.execute(select(followups.c.contact_id))).scalar_one()
        points = (
            await conn.execute(select(contacts.c.points_tenths).where(contacts.c.id == kept))
        ).scalar_one()
    assert (used, points) == (200, 0)


async def test_post_contacts_keeps_a_followup_and_needs_its_purpose(vault, clock):
    """A recorded contact naming the follow-up and its purpose keeps it at 0 points; without the
    purpose the request is malformed (a recorded contact always names its purpose)."""
    async with api(vault) as http:
        writer, _, sid, _, f = await _setup(vault, http, clock, 802)
        clock.set(clock.now() + timedelta(hours=24))
        call = {
            "subject_id": sid,
            "brand": "tresor",
            "channel": "letter",
            "type": "service",
            "followup": f["id"],
        }
        r = await http.post("/v1/contacts", json=call, headers=bearer(writer))
        assert r.status_code == 422, r.text
        r = await http.post(
            "/v1/contacts", json={**call, "purpose": "order.delivery"}, headers=bearer(writer)
        )
        assert r.status_code == 201, r.text
        assert r.json()["contact"]["points"] == 0 and r.json()["contact"]["used"] == 0


async def test_parallel_lookups_use_one_followup_exactly_once(vault, clock):
    """Twenty parallel lookups naming the same follow-up inside its window: exactly one is
    allowed, the others are followup_not_usable, and one contact is recorded."""
    async with api(vault) as http:
        _, shop, sid, _, f = await _setup(vault, http, clock, 803)
        clock.set(clock.now() + timedelta(hours=30))
        q = {
            "purpose": "order.delivery",
            "subject_id": sid,
            "contact": {"brand": "tresor", "followup": f["id"]},
        }
        responses = await asyncio.gather(
            *(http.post("/v1/lookup", json=q, headers=bearer(shop)) for _ in range(20))
        )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [403] * 19, codes
    assert {r.json()["reason"] for r in responses if r.status_code == 403} == {
        "followup_not_usable"
    }
    assert await _count(vault, contacts) == 1
    async with vault.engine.connect() as conn:
        uses = (
            await conn.execute(
                select(audit_events.c.decision, func.count())
                .where(audit_events.c.action == "client:followup:use")
                .group_by(audit_events.c.decision)
            )
        ).all()
    assert dict(uses) == {"allow": 1, "deny": 19}


async def test_bad_input_is_problem_json_and_changes_nothing(vault, clock):
    """Malformed or rule-breaking follow-ups, a foreign purpose, a wrong role, a bad follow-up
    id in a lookup and a follow-up in a batch are refused as problem+json; nothing is stored,
    and only the refused attempts on a subject or by role are on record."""
    async with api(vault) as http:
        writer, shop, sid, _, _ = await _setup(vault, http, clock, 804)
        rows, events = await _count(vault, followups), await _count(vault, audit_events)
        naive = _body(sid, clock)
        naive["due_from"] = naive["due_from"][:19]
        for body, status in (
            (naive, 422),  # no time zone
            ({**_body(sid, clock), "note": "ruft unter 030 1234567 an"}, 422),  # free text
            ({**_body(sid, clock), "extra": 1}, 422),
            ({**_body(sid, clock), "subject_id": "x" * 36}, 422),
            (_body(sid, clock, start_hours=-48), 422),  # in the past
            ({**_body(sid, clock), "due_until": _body(sid, clock, 1)["due_from"]}, 422),
            ({**_body(sid, clock), "touchpoint": "moon.base"}, 422),
            ({**_body(sid, clock), "channel": "email"}, 422),  # not a channel of the purpose
            ({**_body(sid, clock), "purpose": "offers.phone"}, 403),  # not this client's
            (_body("00000000-0000-4000-8000-000000000000", clock), 404),
        ):
            r = await http.post("/v1/followups", json=body, headers=bearer(writer))
            assert_problem(r, status)
        assert_problem(
            await http.post("/v1/followups", json=_body(sid, clock), headers=bearer(shop)), 403
        )
        q = {
            "purpose": "order.delivery",
            "subject_id": sid,
            "contact": {"brand": "tresor", "followup": "not-a-follow-up"},
        }
        assert_problem(await http.post("/v1/lookup", json=q, headers=bearer(shop)), 422)
        batch = {
            "purpose": "order.delivery",
            "subject_ids": [sid],
            "contact": {"brand": "tresor", "followup": "00000000-0000-4000-8000-000000000000"},
        }
        assert_problem(await http.post("/v1/lookup/batch", json=batch, headers=bearer(shop)))
        assert_problem(
            await http.get("/v1/followups?due_before=tomorrow", headers=bearer(shop)), 422
        )
        assert_problem(await http.get("/v1/followups?status=open", headers=bearer(shop)), 422)
        assert_problem(
            await http.get("/v1/followups?cursor=bm9wZW5vcGVub3Bl", headers=bearer(shop)), 422
        )
    assert await _count(vault, followups) == rows
    # On record: the foreign purpose (403), the unknown subject (404) and the wrong role's
    # refusal (api/auth.py); malformed input reached no subject and is not an attempt.
    assert await _count(vault, audit_events) == events + 3


async def test_listing_due_followups_is_limited_to_the_clients_purposes(vault, clock):
    """GET /v1/followups lists open follow-ups of the client's purposes due before the given
    time; another client's purpose is neither listed nor readable."""
    async with api(vault) as http:
        writer, shop, sid, _, f = await _setup(vault, http, clock, 805)
        later = await http.post("/v1/followups", json=_body(sid, clock, 96), headers=bearer(writer))
        assert later.status_code == 201
        other = await client_key(vault, "newsletter", "lookup", ["newsletter.email"])
        due = (clock.now() + timedelta(hours=48)).isoformat()
        r = await http.get("/v1/followups", params={"due_before": due}, headers=bearer(shop))
        assert r.status_code == 200, r.text
        assert [i["id"] for i in r.json()["items"]] == [f["id"]]
        r = await http.get(
            "/v1/followups", params={"due_before": due, "limit": 1}, headers=bearer(writer)
        )
        assert [i["id"] for i in r.json()["items"]] == [f["id"]]
        r = await http.get("/v1/followups", params={"due_before": due}, headers=bearer(other))
        assert r.json()["items"] == []
        assert_problem(await http.get(f"/v1/followups/{f['id']}", headers=bearer(other)), 404)


async def test_customer_sees_and_cancels_then_the_followup_is_refused(vault, clock):
    """The customer lists their follow-ups (JSON) and cancels one (audited); a lookup with it is
    then followup_not_usable."""
    async with api(vault) as http:
        _, shop, sid, p, f = await _setup(vault, http, clock, 806)
        me = await api_sign_in(http, vault, p["email"])
        r = await http.get("/self/v1/followups", headers=me)
        assert r.status_code == 200, r.text
        (item,) = r.json()["items"]
        assert (item["id"], item["status"], item["cancellable"]) == (f["id"], "open", True)
        assert item["title"]["de"] == "Lieferung Ihrer Bestellungen"
        r = await http.post(f"/self/v1/followups/{f['id']}/cancel", headers=me)
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert_problem(await http.post(f"/self/v1/followups/{f['id']}/cancel", headers=me), 409)
        assert_problem(await http.post(f"/self/v1/followups/{f['id']}/cancel"), 401)
        clock.set(clock.now() + timedelta(hours=25))
        q = {
            "purpose": "order.delivery",
            "subject_id": sid,
            "contact": {"brand": "tresor", "followup": f["id"]},
        }
        r = await http.post("/v1/lookup", json=q, headers=bearer(shop))
        assert r.status_code == 403 and r.json()["reason"] == "followup_not_usable"
    async with vault.engine.connect() as conn:
        (event,) = (
            await conn.execute(
                select(audit_events).where(audit_events.c.action == "subject:followup:cancel")
            )
        ).all()
    assert event.subject_id == sid and json.loads(event.detail)["followup"]["id"] == f["id"]


async def test_privacy_page_lists_and_cancels_with_csrf(vault, clock):
    """The privacy centre shows the follow-up in German and English; the cancel form needs the CSRF
    token and then cancels."""
    async with api(vault) as http:
        _, _, _, p, f = await _setup(vault, http, clock, 807)
        await page_sign_in(http, vault, p["email"])
        r = await http.get("/privacy/followups?lang=de")
        assert r.status_code == 200 and "Vereinbarte Rückmeldungen" in r.text
        assert "Frage zur Bestellung" in r.text and f["id"] in r.text
        assert "Agreed follow-ups" in (await http.get("/privacy/followups?lang=en")).text
        page = Page(r.text)
        form = page.form(f"/privacy/followups/{f['id']}/cancel")
        r = await http.post(form["action"], data={})
        assert r.status_code == 403
        assert (await http.get(f"/v1/followups/{f['id']}")).status_code == 401
        r = await http.post(form["action"], data={"_csrf_token": page.csrf()})
        assert r.status_code == 303, r.text
        r = await http.get(r.headers["location"])
        assert "abgesagt" in r.text and 'data-status="cancelled"' in r.text
    async with vault.engine.connect() as conn:
        status = (await conn.execute(select(followups.c.status))).scalar_one()
    assert status == "cancelled"


async def test_overdue_followups_show_in_the_dpo_console_and_the_report(vault, clock):
    """A missed follow-up shows on /dpo/followups; kept and missed per touchpoint appear in
    GET /v1/reports/contacts and on /dpo/contacts; audit events carry no contact data."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    async with api(vault) as http:
        writer, shop, sid, p, missed = await _setup(vault, http, clock, 808)
        kept = await http.post(
            "/v1/followups",
            json=_body(sid, clock, touchpoint="shop.counter"),
            headers=bearer(writer),
        )
        clock.set(clock.now() + timedelta(hours=25))
        q = {
            "purpose": "order.delivery",
            "subject_id": sid,
            "contact": {"brand": "tresor", "followup": kept.json()["id"]},
        }
        assert (await http.post("/v1/lookup", json=q, headers=bearer(shop))).status_code == 200
        clock.set(clock.now() + timedelta(days=1))
        r = await http.get("/v1/reports/contacts", headers=bearer(dpo))
        assert r.status_code == 200, r.text
        assert {
            (b["key"], b["kept"], b["missed"]) for b in r.json()["followups_by_touchpoint"]
        } == {
            ("shop.counter", 1, 0),
            ("hotline.inbound", 0, 1),
        }
        page = await http.get("/dpo/signin?lang=en")
        token = html.unescape(_CSRF.search(page.text).group(1))
        r = await http.post(
            "/dpo/signin?lang=en", data={"api_key": dpo, "_csrf_token": token, "next": ""}
        )
        assert r.status_code == 303
        r = await http.get("/dpo/followups?lang=en")
        assert r.status_code == 200 and "Overdue agreed follow-ups" in r.text
        assert missed["id"] in r.text and kept.json()["id"] not in r.text
        r = await http.get("/dpo/contacts?lang=en")
        assert r.status_code == 200 and 'id="followups-table"' in r.text
    async with vault.engine.connect() as conn:
        rows = (await conn.execute(select(audit_events))).all()
    actions = {r.action for r in rows}
    assert {"client:followup:create", "client:followup:use", "dpo:followup:list"} <= actions
    dump = " ".join(str(tuple(r)) for r in rows)
    for value in (p["email"], p["phone"], p["name"], p["postal_address"]["street"]):
        assert value not in dump


async def _denials(vault, action: str) -> list[tuple]:
    async with vault.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    audit_events.c.subject_id,
                    audit_events.c.purpose,
                    audit_events.c.reason,
                    audit_events.c.actor_id,
                )
                .where(audit_events.c.action == action, audit_events.c.decision == "deny")
                .order_by(audit_events.c.seq)
            )
        ).all()
    return [tuple(r) for r in rows]


async def test_refused_followup_attempts_are_audited(vault, clock):
    """A follow-up for a purpose the client does not hold (403), for an unknown subject (404)
    or an erased one (409), and reading a follow-up of another client's purpose or an unknown
    one (404), each leave a committed denial naming the reason; nothing is stored."""
    from tests.support.dsar import erase
    from vault.audit.events import Actor

    unknown = "00000000-0000-4000-8000-000000000000"
    async with api(vault) as http:
        writer, shop, sid, _, f = await _setup(vault, http, clock, 808)
        gone, _ = await seed_subject(vault, 809)
        await erase(vault, Actor("dpo", "dpo-office"), gone)
        rows = await _count(vault, followups)
        for body, status in (
            ({**_body(sid, clock), "purpose": "offers.phone"}, 403),
            (_body(unknown, clock), 404),
            (_body(gone, clock), 409),
        ):
            r = await http.post("/v1/followups", json=body, headers=bearer(writer))
            assert_problem(r, status)
        other = await client_key(vault, "newsletter", "lookup", ["newsletter.email"])
        assert_problem(await http.get(f"/v1/followups/{f['id']}", headers=bearer(other)), 404)
        assert_problem(await http.get(f"/v1/followups/{unknown}", headers=bearer(other)), 404)
    assert await _count(vault, followups) == rows
    assert await _denials(vault, "client:followup:create") == [
        (sid, "offers.phone", "purpose_not_allowed", "crm"),
        (unknown, "order.delivery", "subject_not_found", "crm"),
        (gone, "order.delivery", "subject_erased", "crm"),
    ]
    assert await _denials(vault, "client:followup:read") == [
        (sid, "order.delivery", "purpose_not_allowed", "newsletter"),
        (None, None, "not_found", "newsletter"),
    ]
