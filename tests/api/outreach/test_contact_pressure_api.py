"""Contact pressure through HTTP: lookups carrying a contact, POST /v1/contacts, and no
overspend when many requests for one customer race (both databases; the PostgreSQL run
is the one with real parallel transactions)."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import func, select

from tests.support.factories import (
    NEWSLETTER_EVIDENCE,
    WRITER,
    api,
    bearer,
    client_key,
    outbox_links,
    person,
)
from vault.storage.audit_tables import audit_events
from vault.storage.outreach_tables import contact_budgets, contacts


def _error_fields(body: dict) -> set[str]:
    return {e["field"] for e in body["errors"]}


async def _offers_subject(vault, http, writer, seed: int) -> tuple[str, dict]:
    """A subject with a confirmed (double opt-in) consent to commercial e-mail offers."""
    p = person(seed)
    sid = (await http.post("/v1/subjects", json=p, headers=bearer(writer))).json()["subject_id"]
    r = await http.post(
        f"/v1/subjects/{sid}/consents",
        json={"purpose": "offers.email", "evidence": NEWSLETTER_EVIDENCE},
        headers=bearer(writer),
    )
    assert r.status_code == 201, r.text
    (token,) = outbox_links(vault.settings.outbox_dir)[-1:]
    assert (await http.post(f"/confirm/{token}?lang=en")).status_code == 200
    return sid, p


async def test_lookup_with_contact_reserves_points_then_denies_when_the_basket_is_full(vault):
    writer = await client_key(vault, "crm", "writer")
    shop = await client_key(vault, "campaigns", "lookup", ["offers.email"])
    async with api(vault) as http:
        sid, p = await _offers_subject(vault, http, writer, 31)
        q = {"purpose": "offers.email", "subject_id": sid, "contact": {"brand": "tresor"}}
        r = await http.post("/v1/lookup", json=q, headers=bearer(shop))
        assert r.status_code == 200, r.text
        c = r.json()["contact"]
        assert (c["points"], c["used"], c["basket"], c["month"]) == (10, 10, 25, "2026-11")
        assert r.json()["fields"]["email"] == p["email"]
        q["contact"] = {"brand": "tresor_outlet", "channel": "email", "type": "commercial"}
        r = await http.post("/v1/lookup", json=q, headers=bearer(shop))
        assert r.status_code == 200 and r.json()["contact"]["used"] == 20
        r = await http.post("/v1/lookup", json=q, headers=bearer(shop))
        assert r.status_code == 403 and r.json()["reason"] == "contact_budget_exhausted"
        assert "fields" not in r.json() and p["email"] not in r.text
        # a plain lookup (no contact) cannot skip the basket: a marketing purpose needs one
        plain = {"purpose": "offers.email", "subject_id": sid}
        r = await http.post("/v1/lookup", json=plain, headers=bearer(shop))
        assert r.status_code == 403 and r.json()["reason"] == "contact_required"
        assert "fields" not in r.json() and p["email"] not in r.text
    async with vault.engine.connect() as conn:
        events = (
            await conn.execute(
                select(audit_events.c.decision, audit_events.c.reason, audit_events.c.detail)
                .where(audit_events.c.action == "client:contact:lookup")
                .order_by(audit_events.c.seq)
            )
        ).all()
    assert [(e.decision, e.reason) for e in events] == [
        ("allow", None),
        ("allow", None),
        ("deny", "contact_budget_exhausted"),
        ("deny", "contact_required"),
    ]
    assert json.loads(events[2].detail)["contact"]["brand"] == "tresor_outlet"


async def test_contact_must_fit_the_purpose_and_the_rules(vault):
    writer = await client_key(vault, "crm", "writer")
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=person(32), headers=bearer(writer))).json()[
            "subject_id"
        ]
        await http.post(
            f"/v1/subjects/{sid}/consents",
            json={"purpose": "order.delivery", "reference": "order 4711"},
            headers=bearer(writer),
        )
        q = {"purpose": "order.delivery", "subject_id": sid}
        # order.delivery allows letter, SMS and phone (purposes.toml `channels`), not e-mail.
        r = await http.post(
            "/v1/lookup",
            json={**q, "contact": {"brand": "tresor", "channel": "email"}},
            headers=bearer(shop),
        )
        assert r.status_code == 422 and "/contact/channel" in _error_fields(r.json())
        r = await http.post(
            "/v1/lookup",
            json={**q, "contact": {"brand": "acme", "priority": "urgent"}},
            headers=bearer(shop),
        )
        assert r.status_code == 422
        assert _error_fields(r.json()) == {"/contact/brand", "/contact/priority"}
        stranger = (
            await http.post("/v1/subjects", json=person(35), headers=bearer(writer))
        ).json()["subject_id"]
        r = await http.post(  # denied by the purpose check: no points are reserved
            "/v1/lookup",
            json={
                "purpose": "order.delivery",
                "subject_id": stranger,
                "contact": {"brand": "tresor"},
            },
            headers=bearer(shop),
        )
        assert r.status_code == 403 and r.json()["reason"] == "no_consent"
        r = await http.post(
            "/v1/lookup",
            json={**q, "contact": {"brand": "tresor", "touchpoint": "letter.mailing"}},
            headers=bearer(shop),
        )
        assert r.status_code == 200, r.text
        assert r.json()["contact"]["points"] == 3  # service 2 x letter 1.5
    async with vault.engine.connect() as conn:
        row = (await conn.execute(select(contacts))).one()
    assert (row.channel, row.type, row.touchpoint, row.purpose) == (
        "letter",
        "service",
        "letter.mailing",
        "order.delivery",
    )


async def test_post_contacts_records_and_refuses_with_the_reason(vault):
    """Service calls for the delivery contract fill the service reserve (5 points each)
    until one is refused; `critical` is refused to a client without the grant and passes
    for the call centre, which holds incident.notice; wrong role, unknown subject and
    touchpoint are refused; every recorded outcome is audited."""
    writer = await client_key(vault, "crm", "writer", ["order.delivery"])
    callcentre = await client_key(
        vault, "callcentre", "lookup", ["order.delivery", "incident.notice"]
    )
    dpo = await client_key(vault, "dpo", "dpo")
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=person(33), headers=bearer(writer))).json()[
            "subject_id"
        ]
        r = await http.post(
            f"/v1/subjects/{sid}/consents",
            json={"purpose": "order.delivery", "reference": "order 4711"},
            headers=bearer(writer),
        )
        assert r.status_code == 201, r.text
        call = {
            "subject_id": sid,
            "brand": "tresor_finance",
            "channel": "phone",
            "type": "service",
            "touchpoint": "callcentre.outbound",
            "purpose": "order.delivery",
        }
        r = await http.post("/v1/contacts", json=call, headers=bearer(callcentre))
        assert r.status_code == 201, r.text
        assert r.json()["contact"]["points"] == 5
        for used in (10,):
            r = await http.post("/v1/contacts", json=call, headers=bearer(writer))
            assert r.status_code == 201 and r.json()["contact"]["used"] == used, r.text
        r = await http.post("/v1/contacts", json=call, headers=bearer(writer))  # 15 > 10
        assert r.status_code == 403 and r.json()["reason"] == "contact_budget_exhausted"
        critical = {**call, "priority": "critical"}
        r = await http.post("/v1/contacts", json=critical, headers=bearer(writer))
        assert r.status_code == 403 and r.json()["reason"] == "contact_priority_not_granted"
        r = await http.post("/v1/contacts", json=critical, headers=bearer(callcentre))
        assert r.status_code == 201 and r.json()["contact"]["used"] == 15
        r = await http.post("/v1/contacts", json=call, headers=bearer(dpo))
        assert r.status_code == 403
        r = await http.post(
            "/v1/contacts",
            json={**call, "subject_id": "00000000-0000-4000-8000-000000000000"},
            headers=bearer(writer),
        )
        assert r.status_code == 404
        r = await http.post(
            "/v1/contacts", json={**call, "touchpoint": "moon.base"}, headers=bearer(writer)
        )
        assert r.status_code == 422 and "/touchpoint" in _error_fields(r.json())
    async with vault.engine.connect() as conn:
        events = (
            await conn.execute(
                select(audit_events.c.decision, audit_events.c.reason)
                .where(audit_events.c.action == "client:contact:record")
                .order_by(audit_events.c.seq)
            )
        ).all()
    assert [tuple(e) for e in events] == [
        *[("allow", None)] * 2,
        ("deny", "contact_budget_exhausted"),
        ("deny", "contact_priority_not_granted"),
        ("allow", None),
        ("deny", "subject_not_found"),
    ]


async def test_no_overspend_under_concurrency(vault):
    """40 parallel lookups with a commercial e-mail contact for one customer: exactly
    floor(25 / 10) = 2 succeed, the rest are refused, and the counter equals the sum of
    the recorded contacts."""
    writer = await client_key(vault, "crm", "writer")
    shop = await client_key(vault, "campaigns", "lookup", ["offers.email"])
    async with api(vault) as http:
        sid, _ = await _offers_subject(vault, http, writer, 34)
        q = {"purpose": "offers.email", "subject_id": sid, "contact": {"brand": "tresor"}}
        responses = await asyncio.gather(
            *(http.post("/v1/lookup", json=q, headers=bearer(shop)) for _ in range(40))
        )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 2 + [403] * 38, codes
    assert {r.json()["reason"] for r in responses if r.status_code == 403} == {
        "contact_budget_exhausted"
    }
    async with vault.engine.connect() as conn:
        used = (await conn.execute(select(contact_budgets.c.used_tenths))).scalar_one()
        total = (await conn.execute(select(func.sum(contacts.c.points_tenths)))).scalar_one()
        n = (await conn.execute(select(func.count()).select_from(contacts))).scalar_one()
    assert used == total == 200 and n == 2


async def _confirmed(vault, sid: str, purpose: str) -> None:
    """A double opt-in consent, confirmed through the mailed link."""
    from tests.support.dsar import NEWS
    from vault.audit.events import Actor
    from vault.bases.consents import confirm, record_basis

    await record_basis(vault, WRITER, sid, purpose, evidence=NEWS)
    token = outbox_links(vault.settings.outbox_dir)[-1]
    await confirm(vault, token, Actor("subject", "confirmation-link"))


async def test_report_counts_contacts_by_touchpoint_phase_brand_channel_and_limits(vault, clock):
    from tests.support.dsar import contract, sms_offers

    writer = await client_key(
        vault, "crm", "writer", ["offers.email", "offers.sms", "newsletter.email", "order.delivery"]
    )
    dpo = await client_key(vault, "dpo", "dpo")
    async with api(vault) as http:
        sids = [
            (await http.post("/v1/subjects", json=person(40 + i), headers=bearer(writer))).json()[
                "subject_id"
            ]
            for i in range(3)
        ]
        await _confirmed(vault, sids[0], "offers.email")
        await sms_offers(vault, sids[1])
        await _confirmed(vault, sids[1], "newsletter.email")
        await contract(vault, sids[2])

        async def contact(sid, purpose="offers.email", **kw):
            body = {
                "subject_id": sid,
                "brand": "tresor",
                "channel": "email",
                "type": "commercial",
                "purpose": purpose,
                **kw,
            }
            r = await http.post("/v1/contacts", json=body, headers=bearer(writer))
            assert r.status_code == 201, r.text

        await contact(sids[0], touchpoint="email.newsletter")
        await contact(sids[0], brand="tresor_outlet", touchpoint="email.newsletter")  # 20: near
        await contact(sids[1], "offers.sms", channel="sms", touchpoint="sms.notification")
        await contact(
            sids[1], "newsletter.email", type="editorial", touchpoint="email.newsletter"
        )  # 25: at limit
        await contact(
            sids[2], "order.delivery", type="service", channel="letter", touchpoint="letter.mailing"
        )
        r = await http.get("/v1/reports/contacts", headers=bearer(dpo))
        assert r.status_code == 200, r.text
        rep = r.json()
        assert (rep["month"], rep["basket"], rep["total_contacts"], rep["total_points"]) == (
            "2026-11",
            25,
            5,
            48,
        )
        by = {
            k: {b["key"]: (b["contacts"], b["points"]) for b in rep[k]}
            for k in ("by_touchpoint", "by_phase", "by_brand", "by_channel")
        }
        assert by["by_touchpoint"] == {
            "email.newsletter": (3, 25),
            "sms.notification": (1, 20),
            "letter.mailing": (1, 3),
        }
        assert by["by_phase"] == {"pre_sales": (4, 28), "after_sales": (1, 20)}
        assert by["by_brand"] == {"tresor": (4, 38), "tresor_outlet": (1, 10)}
        assert by["by_channel"] == {"email": (3, 25), "sms": (1, 20), "letter": (1, 3)}
        assert (
            rep["customers_contacted"],
            rep["customers_near_limit"],
            rep["customers_at_limit"],
        ) == (3, 1, 1)
        r = await http.get("/v1/reports/contacts?month=2026-10", headers=bearer(dpo))
        assert r.status_code == 200 and r.json()["total_contacts"] == 0
        r = await http.get("/v1/reports/contacts?month=2026-13", headers=bearer(dpo))
        assert r.status_code == 422
        r = await http.get("/v1/reports/contacts", headers=bearer(writer))
        assert r.status_code == 403


async def test_dpo_console_shows_contact_pressure_as_inline_svg_charts(vault):
    import re

    writer = await client_key(vault, "crm", "writer", ["offers.email"])
    dpo = await client_key(vault, "dpo", "dpo")
    async with api(vault) as http:
        sid = (await http.post("/v1/subjects", json=person(50), headers=bearer(writer))).json()[
            "subject_id"
        ]
        await _confirmed(vault, sid, "offers.email")
        for brand in ("tresor", "tresor_outlet"):
            r = await http.post(
                "/v1/contacts",
                json={
                    "subject_id": sid,
                    "brand": brand,
                    "channel": "email",
                    "type": "commercial",
                    "touchpoint": "email.newsletter",
                    "purpose": "offers.email",
                },
                headers=bearer(writer),
            )
            assert r.status_code == 201
        signin = await http.get("/dpo/signin?lang=en")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', signin.text).group(1)
        r = await http.post("/dpo/signin?lang=en", data={"api_key": dpo, "_csrf_token": token})
        assert r.status_code in (302, 303), r.text
        page = await http.get("/dpo/contacts?lang=en")
        assert page.status_code == 200, page.text
        html = page.text
        assert "Contacts per touchpoint" in html and "Newsletter" in html
        assert "Tresor Outlet" in html and html.count("<svg") == 5
        assert "2 contacts, 20 points" in html
        assert "https://" not in html.split("<main", 1)[-1]  # no CDN, server-side SVG only
        assert sid not in html
        de = await http.get("/dpo/contacts?lang=de&month=2026-10")
        assert de.status_code == 200 and "Kontakte je Marke" in de.text
        bad = await http.get("/dpo/contacts?lang=en&month=2026-13")
        assert bad.status_code == 422  # bad input: a 422 page, as the API answers (api/errors.py)
