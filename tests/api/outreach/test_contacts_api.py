"""POST /v1/contacts makes the checks a lookup makes (security finding 2): the purpose must
be the client's, the subject's basis and restriction decide, calamity contacts and
priorities above `normal` are granted (policies/contact-pressure.toml), not claimed, and
every outcome, unknown subjects included, is an audit event. Both databases."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from tests.support.dsar import DPO, contract, new_subject, sms_offers
from tests.support.factories import api, bearer, client_key
from tests.support.privacy import assert_problem
from vault.rights.restriction import restrict
from vault.storage.audit_tables import audit_events
from vault.storage.outreach_tables import contact_budgets, contacts

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


async def _record_events(vault) -> list:
    async with vault.engine.connect() as conn:
        return (
            await conn.execute(
                select(audit_events)
                .where(audit_events.c.action == "client:contact:record")
                .order_by(audit_events.c.seq)
            )
        ).all()


async def _contact_count(vault) -> int:
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(contacts))).scalar_one()


async def test_a_client_cannot_record_a_contact_for_a_purpose_it_is_not_granted(vault):
    """The reported attack: SHOP (granted only order.delivery) records a critical calamity
    phone contact for offers.sms; it is refused purpose_not_allowed, audited against the
    subject, reserves nothing, and another client's contact is not blocked."""
    sid, _ = await new_subject(vault, 901)
    await contract(vault, sid)
    await sms_offers(vault, sid)
    shop = await client_key(vault, "shop", "lookup", ["order.delivery"])
    campaigns = await client_key(vault, "campaigns", "lookup", ["offers.sms"])
    attack = {
        "subject_id": sid,
        "brand": "tresor",
        "channel": "phone",
        "type": "calamity",
        "priority": "critical",
        "purpose": "offers.sms",
    }
    async with api(vault) as http:
        r = await http.post("/v1/contacts", json=attack, headers=bearer(shop))
        assert assert_problem(r, 403)["reason"] == "purpose_not_allowed", r.text
        assert await _contact_count(vault) == 0
        q = {"purpose": "offers.sms", "subject_id": sid, "contact": {"brand": "tresor"}}
        r = await http.post("/v1/lookup", json=q, headers=bearer(campaigns))
        assert r.status_code == 200, r.text  # no cool-down, basket untouched
        assert r.json()["contact"]["used"] == 20
    (event,) = await _record_events(vault)
    assert (event.decision, event.reason, event.subject_id, event.purpose, event.actor_id) == (
        "deny",
        "purpose_not_allowed",
        sid,
        "offers.sms",
        "shop",
    )


async def test_the_subjects_basis_and_restriction_decide_like_a_lookup(vault):
    """A granted purpose without a basis is no_consent, a restricted subject is
    subject_restricted, an unknown purpose is unknown_purpose: all 403, audited, nothing
    reserved; with a basis the contact is recorded."""
    sid, _ = await new_subject(vault, 902)
    restricted, _ = await new_subject(vault, 903)
    await contract(vault, restricted)
    await restrict(vault, DPO, restricted)
    crm = await client_key(vault, "crm", "writer", ["order.delivery"])
    call = {
        "subject_id": sid,
        "brand": "tresor",
        "channel": "phone",
        "type": "service",
        "purpose": "order.delivery",
    }
    async with api(vault) as http:
        r = await http.post("/v1/contacts", json=call, headers=bearer(crm))
        assert assert_problem(r, 403)["reason"] == "no_consent"
        r = await http.post(
            "/v1/contacts", json={**call, "subject_id": restricted}, headers=bearer(crm)
        )
        assert assert_problem(r, 403)["reason"] == "subject_restricted"
        r = await http.post(
            "/v1/contacts", json={**call, "purpose": "moon.landing"}, headers=bearer(crm)
        )
        assert assert_problem(r, 403)["reason"] == "unknown_purpose"
        assert await _contact_count(vault) == 0
        await contract(vault, sid)
        r = await http.post("/v1/contacts", json=call, headers=bearer(crm))
        assert r.status_code == 201, r.text
        assert r.json()["contact"]["points"] == 5
    events = await _record_events(vault)
    assert [(e.decision, e.reason, e.subject_id) for e in events] == [
        ("deny", "no_consent", sid),
        ("deny", "subject_restricted", restricted),
        ("deny", "unknown_purpose", sid),
        ("allow", None, sid),
    ]
    assert events[2].purpose == "<unknown>"  # client input never goes into the trail


async def test_the_contact_must_fit_the_purpose(vault):
    """Channel and type must be the purpose's (as in a lookup): a commercial type or an
    e-mail channel for order.delivery is 422 and changes nothing."""
    sid, _ = await new_subject(vault, 904)
    await contract(vault, sid)
    crm = await client_key(vault, "crm", "writer", ["order.delivery"])
    call = {
        "subject_id": sid,
        "brand": "tresor",
        "channel": "letter",
        "type": "service",
        "purpose": "order.delivery",
    }
    async with api(vault) as http:
        for wrong in ({"type": "commercial"}, {"channel": "email"}, {"type": "calamity"}):
            r = await http.post("/v1/contacts", json={**call, **wrong}, headers=bearer(crm))
            assert_problem(r, 422)
        r = await http.post(
            "/v1/contacts",
            json={k: v for k, v in call.items() if k != "purpose"},
            headers=bearer(crm),
        )
        assert assert_problem(r, 422)["errors"] == [{"field": "/purpose", "message": "is required"}]
    assert await _contact_count(vault) == 0 and await _record_events(vault) == []


async def test_priorities_and_calamities_are_granted_not_claimed(vault):
    """A client that may use the purpose but holds no grant is refused
    contact_priority_not_granted for `critical` and `high` (audited, not downgraded); a
    client granted incident.notice (the default grant) may use them and may announce a
    calamity."""
    sid, _ = await new_subject(vault, 905)
    await contract(vault, sid)
    await contract(vault, sid, "incident.notice")
    crm = await client_key(vault, "crm", "writer", ["order.delivery"])
    alerts = await client_key(vault, "alerts", "writer", ["order.delivery", "incident.notice"])
    call = {
        "subject_id": sid,
        "brand": "tresor",
        "channel": "phone",
        "type": "service",
        "purpose": "order.delivery",
    }
    async with api(vault) as http:
        for priority in ("critical", "high"):
            r = await http.post(
                "/v1/contacts", json={**call, "priority": priority}, headers=bearer(crm)
            )
            body = assert_problem(r, 403)
            assert body["reason"] == "contact_priority_not_granted", body
        assert await _contact_count(vault) == 0
        r = await http.post(
            "/v1/contacts", json={**call, "priority": "critical"}, headers=bearer(alerts)
        )
        assert r.status_code == 201, r.text
        alarm = {
            "subject_id": sid,
            "brand": "tresor",
            "channel": "sms",
            "type": "calamity",
            "purpose": "incident.notice",
        }
        r = await http.post("/v1/contacts", json=alarm, headers=bearer(alerts))
        assert r.status_code == 201, r.text
    events = await _record_events(vault)
    assert [(e.decision, e.reason) for e in events] == [
        ("deny", "contact_priority_not_granted"),
        ("deny", "contact_priority_not_granted"),
        ("allow", None),
        ("allow", None),
    ]
    assert json.loads(events[0].detail)["contact"]["priority"] == "critical"


async def test_an_unknown_subject_is_an_audited_not_found_like_a_lookup(vault):
    """An unknown subject id answers 404 with reason subject_not_found (the lookup's shape)
    and writes a denial event naming the id; nothing is reserved."""
    crm = await client_key(vault, "crm", "writer", ["order.delivery"])
    call = {
        "subject_id": UNKNOWN_ID,
        "brand": "tresor",
        "channel": "letter",
        "type": "service",
        "purpose": "order.delivery",
    }
    async with api(vault) as http:
        r = await http.post("/v1/contacts", json=call, headers=bearer(crm))
        body = assert_problem(r, 404)
        assert body["reason"] == "subject_not_found"
        assert body["type"] == "urn:tresor:problem:not-found"
    (event,) = await _record_events(vault)
    assert (event.decision, event.reason, event.subject_id) == (
        "deny",
        "subject_not_found",
        UNKNOWN_ID,
    )
    async with vault.engine.connect() as conn:
        budgets = select(func.count()).select_from(contact_budgets)
        assert (await conn.execute(budgets)).scalar_one() == 0


async def test_an_inbound_call_is_recorded_at_0_points(vault):
    """The customer replied: `direction: inbound` is recorded at 0 points (it was charged
    like an outbound contact before issue 21), stored and audited as inbound."""
    sid, _ = await new_subject(vault, 905)
    await sms_offers(vault, sid)
    crm = await client_key(vault, "crm", "writer", ["offers.sms"])
    offer = {
        "subject_id": sid,
        "brand": "tresor",
        "channel": "sms",
        "type": "commercial",
        "purpose": "offers.sms",
    }
    async with api(vault) as http:
        r = await http.post("/v1/contacts", json=offer, headers=bearer(crm))
        assert r.status_code == 201, r.text
        call = {**offer, "direction": "inbound"}  # a reply to the SMS
        for _ in range(2):
            r = await http.post("/v1/contacts", json=call, headers=bearer(crm))
            assert r.status_code == 201, r.text
            assert (r.json()["contact"]["points"], r.json()["contact"]["used"]) == (0, 20)
        r = await http.post(
            "/v1/contacts", json={**call, "direction": "sideways"}, headers=bearer(crm)
        )
        assert r.status_code == 422
    async with vault.engine.connect() as conn:
        stored = (await conn.execute(select(contacts.c.direction, contacts.c.points_tenths))).all()
        used = (await conn.execute(select(contact_budgets.c.used_tenths))).scalar_one()
    assert sorted(stored) == [("inbound", 0), ("inbound", 0), ("outbound", 200)]
    assert used == 200
    details = [json.loads(e.detail)["contact"]["direction"] for e in await _record_events(vault)]
    assert details == ["outbound", "inbound", "inbound"]
