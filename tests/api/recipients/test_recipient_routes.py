"""Recipients over HTTP: admin registers and manages them, a recipient acknowledges its
own notices only, bad input gets a problem and changes nothing, and no secret or contact
value shows up where it must not."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.support.dsar import DPO, contract, erase, new_subject
from tests.support.factories import api, bearer, client_key
from tests.support.privacy import assert_problem
from tests.support.recipients import delivered, lookup_by
from vault.audit.events import Actor
from vault.recipients.fanout import fan_out
from vault.storage.audit_tables import audit_events
from vault.storage.recipient_tables import recipient_subscriptions, recipients

URL = "http://127.0.0.1:9/hook"


async def _count(vault, table) -> int:
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def test_admin_registers_and_manages_a_recipient(vault):
    """Create (secret shown once), list, narrow the subscriptions, pause, resume and rotate
    the secret; each action is audited and the secret is in no audit event."""
    admin = await client_key(vault, "ops", "admin")
    await client_key(vault, "mailer", "lookup", ["order.delivery"])
    async with api(vault) as http:
        r = await http.post(
            "/v1/recipients",
            headers=bearer(admin),
            json={"name": "mailer", "kind": "client", "transport": "webhook", "target": URL},
        )
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        assert secret.startswith("whsec_")
        assert len(r.json()["recipient"]["subscriptions"]) == 10
        r = await http.put(
            "/v1/recipients/mailer/subscriptions",
            headers=bearer(admin),
            json={"subscriptions": [{"event_type": "subject.erased"}]},
        )
        assert r.json()["subscriptions"] == [
            {"event_type": "subject.erased", "purpose": "*", "scope": "received"}
        ]
        assert (await http.post("/v1/recipients/mailer/pause", headers=bearer(admin))).json()[
            "paused"
        ]
        r = await http.post("/v1/recipients/mailer/resume", headers=bearer(admin))
        assert r.json()["paused"] is False
        r = await http.post("/v1/recipients/mailer/secret", headers=bearer(admin), json={})
        assert r.status_code == 200 and r.json()["secret"] != secret
        r = await http.get("/v1/recipients", headers=bearer(admin))
        assert [i["name"] for i in r.json()["items"]] == ["mailer"]
    async with vault.engine.connect() as conn:
        events = (await conn.execute(select(audit_events))).all()
    actions = [e.action for e in events]
    for action in ("create", "subscribe", "pause", "resume", "rotate_signing_key"):
        assert f"admin:recipient:{action}" in actions
    assert secret[6:] not in str([tuple(e) for e in events])


async def test_bad_registrations_get_problems_and_change_nothing(vault):
    """A URL that is not http(s), http to a non-loopback host, credentials in the URL, an
    unknown event type, and a non-admin caller each get a problem; nothing is stored."""
    admin = await client_key(vault, "ops", "admin")
    lookup = await client_key(vault, "mailer", "lookup", ["order.delivery"])
    base = {"name": "mailer", "kind": "client", "transport": "webhook"}
    async with api(vault) as http:
        for body, status in (
            (base | {"target": "ftp://example.com/x"}, 422),
            (base | {"target": "http://example.com/x"}, 422),
            (base | {"target": "https://u:p@example.com/x"}, 422),
            (base | {"target": URL, "subscriptions": [{"event_type": "subject.gone"}]}, 422),
        ):
            r = await http.post("/v1/recipients", headers=bearer(admin), json=body)
            problem = assert_problem(r, status)
            assert "u:p" not in str(problem)
        r = await http.post("/v1/recipients", headers=bearer(lookup), json=base | {"target": URL})
        assert_problem(r, 403)
    assert await _count(vault, recipients) == 0
    assert await _count(vault, recipient_subscriptions) == 0


async def test_only_the_recipient_acknowledges_its_notice(vault):
    """The recipient's own client acknowledges a notice; another client gets a 403 problem
    and the notice stays unconfirmed; a bad outcome is a 422 problem; both refusals and
    the ack are audited."""
    admin = await client_key(vault, "ops", "admin")
    mailer = await client_key(vault, "mailer", "lookup", ["order.delivery"])
    other = await client_key(vault, "callcentre", "lookup", ["order.delivery"])
    async with api(vault) as http:
        for name in ("mailer", "callcentre"):
            r = await http.post(
                "/v1/recipients",
                headers=bearer(admin),
                json={"name": name, "kind": "client", "transport": "webhook", "target": URL},
            )
            assert r.status_code == 201
        sid, _ = await new_subject(vault, 31)
        await contract(vault, sid)
        await lookup_by(vault, Actor("client", "mailer"), sid)
        await erase(vault, DPO, sid)
        await fan_out(vault)
        notice = [d for d in await delivered(vault) if d.event_type == "subject.erased"][0]
        path = f"/v1/notifications/{notice.id}/ack"
        r = await http.post(path, headers=bearer(other), json={"outcome": "deleted"})
        problem = assert_problem(r, 403)
        assert problem["type"].endswith("not_the_recipient")
        r = await http.post(path, headers=bearer(mailer), json={"outcome": "burnt"})
        assert_problem(r, 422)
        assert (await delivered(vault))[-1].acked_at is None
        r = await http.post(path, headers=bearer(mailer), json={"outcome": "deleted"})
        assert r.status_code == 200, r.text
        assert r.json()["ack_outcome"] == "deleted"
        r = await http.post(
            "/v1/notifications/00000000-0000-4000-8000-000000000000/ack",
            headers=bearer(mailer),
            json={"outcome": "deleted"},
        )
        assert_problem(r, 404)
    async with vault.engine.connect() as conn:
        acks = (
            await conn.execute(
                select(audit_events.c.actor_id, audit_events.c.decision).where(
                    audit_events.c.action == "client:notification:ack"
                )
            )
        ).all()
    assert sorted(map(tuple, acks)) == [("callcentre", "deny"), ("mailer", "allow")]
