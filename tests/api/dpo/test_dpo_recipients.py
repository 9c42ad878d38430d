"""The DPO console's recipients page: states per recipient, failed notices and overdue
confirmations, in German and English, read audited; its actions (pause, resume, replay,
rotate, close) CSRF-checked and audited."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from sqlalchemy import select

from tests.api.dpo.test_dpo_console import _csrf, _sign_in
from tests.support.dsar import DPO, contract, new_subject
from tests.support.factories import api, client_key
from tests.support.recipients import client_recipient, delivered, lookup_by
from vault.recipients import registry
from vault.recipients.delivery import GIVE_UP, Deliverer
from vault.recipients.fanout import fan_out
from vault.rights.restriction import lift_restriction, restrict
from vault.storage.audit_tables import audit_events
from vault.storage.recipient_tables import deliveries


async def test_recipients_page_shows_failed_and_overdue_notices(vault, clock):
    """A recipient whose endpoint never answers shows its failed notice; a delivered one
    unconfirmed for over a week is overdue; the page is audited as a recipients read."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    mailer, _ = await client_recipient(vault, "mailer", "http://127.0.0.1:9/closed")
    sid, _ = await new_subject(vault, 61)
    await contract(vault, sid)
    await lookup_by(vault, mailer, sid)
    await restrict(vault, DPO, sid)
    deliverer = Deliverer(vault)
    try:
        await deliverer.run()
        clock.advance(GIVE_UP)
        await deliverer.run()
    finally:
        await deliverer.close()
    await lift_restriction(vault, DPO, sid)
    await fan_out(vault)
    # Pretend the second notice reached the recipient eight days ago.
    async with vault.transaction() as conn:
        await conn.execute(
            deliveries.update()
            .where(deliveries.c.status == "pending")
            .values(status="delivered", delivered_at=clock.now() - timedelta(days=8))
        )
    async with api(vault) as http:
        await _sign_in(http, dpo, lang="en")
        r = await http.get("/dpo/recipients?lang=en")
        assert r.status_code == 200, r.text
        assert "Recipients and notices" in r.text
        assert 'data-recipient="mailer"' in r.text
        assert "subject.restricted" in r.text and "connect_error" in r.text
        assert "subject.restriction_lifted" in r.text and "overdue-row" in r.text
        r = await http.get("/dpo/recipients?lang=de")
        assert "Empfänger und Benachrichtigungen" in r.text
    async with vault.engine.connect() as conn:
        actions = (await conn.execute(select(audit_events.c.action))).scalars().all()
    assert actions.count("admin:recipient:list") == 2


async def _failed_notice(vault, clock, seed: int):
    """A `mailer` recipient whose endpoint never answers, with one failed notice."""
    mailer, _ = await client_recipient(vault, "mailer", "http://127.0.0.1:9/closed")
    sid, _ = await new_subject(vault, seed)
    await contract(vault, sid)
    await lookup_by(vault, mailer, sid)
    started = clock.now()
    await restrict(vault, DPO, sid)
    deliverer = Deliverer(vault)
    try:
        await deliverer.run()
        clock.advance(GIVE_UP)
        await deliverer.run()
    finally:
        await deliverer.close()
    return sid, started


async def _actions(vault) -> list[tuple[str, str]]:
    async with vault.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(audit_events.c.action, audit_events.c.actor_id).order_by(audit_events.c.seq)
            )
        ).all()
    return [
        (r.action, r.actor_id) for r in rows if "recipient" in r.action or "delivery" in r.action
    ]


async def test_console_actions_pause_replay_rotate_and_close_are_audited(vault, clock):
    """Pause, resume, replay from a time, rotate (the secret shown once, no-store, never in
    a URL) and close a failed notice with a reason: each changes the recipient or notice,
    answers back on the page and is one audit event by the signed-in DPO."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    sid, started = await _failed_notice(vault, clock, 62)
    async with api(vault) as http:
        await _sign_in(http, dpo, lang="en")
        page = await http.get("/dpo/recipients?lang=en")
        token = _csrf(page)
        r = await http.post("/dpo/recipients/mailer/pause?lang=en", data={"_csrf_token": token})
        assert r.status_code == 303 and "done=paused" in r.headers["location"]
        assert (await registry.get_recipient(vault, "mailer")).paused_at is not None
        r = await http.get(r.headers["location"])
        assert "The recipient is paused" in r.text and ">Resume<" in r.text
        r = await http.post("/dpo/recipients/mailer/resume?lang=en", data={"_csrf_token": token})
        assert (await registry.get_recipient(vault, "mailer")).paused_at is None
        since = (started - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
        r = await http.post(
            "/dpo/recipients/mailer/replay?lang=en", data={"_csrf_token": token, "since": since}
        )
        assert r.status_code == 303 and "count=1" in r.headers["location"]
        r = await http.get(r.headers["location"])
        assert "1 notices are sent again" in r.text
        (row,) = await delivered(vault)
        assert row.status == "pending"
        r = await http.post("/dpo/recipients/mailer/rotate?lang=en", data={"_csrf_token": token})
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        secret = re.search(r'<code id="secret-value">(whsec_[^<]+)</code>', r.text)
        assert secret is not None and secret.group(1) not in str(r.url)
        again = await http.get("/dpo/recipients?lang=en")
        assert secret.group(1) not in again.text  # shown once
        # The replayed notice fails again at once (past its first deadline): close it.
        deliverer = Deliverer(vault)
        try:
            assert (await deliverer.run()).failed == 1
        finally:
            await deliverer.close()
        r = await http.post(
            f"/dpo/recipients/notices/{row.id}/close?lang=en",
            data={"_csrf_token": token, "reason": "Mailer shut down in 2026"},
        )
        assert r.status_code == 303 and "done=closed" in r.headers["location"]
    (row,) = await delivered(vault)
    assert row.closed_reason == "Mailer shut down in 2026" and row.closed_by == "dpo:datenschutz"
    by_dpo = [a for a, actor in await _actions(vault) if actor == "datenschutz"]
    for action in (
        "admin:recipient:pause",
        "admin:recipient:resume",
        "admin:recipient:replay",
        "admin:recipient:rotate_signing_key",
        "dpo:delivery:close",
    ):
        assert by_dpo.count(action) == 1, (action, by_dpo)
    assert secret.group(1) not in json.dumps(await _actions(vault))


async def test_console_actions_need_the_csrf_token_and_good_input(vault, clock):
    """Without the CSRF token nothing changes (403); a missing time, an empty reason or an
    unknown recipient is an error page (422, 404) and changes nothing."""
    dpo = await client_key(vault, "datenschutz", "dpo")
    await _failed_notice(vault, clock, 63)
    (row,) = await delivered(vault)
    async with api(vault) as http:
        await _sign_in(http, dpo, lang="en")
        token = _csrf(await http.get("/dpo/recipients?lang=en"))
        r = await http.post("/dpo/recipients/mailer/pause?lang=en", data={})
        assert r.status_code == 403
        assert (await registry.get_recipient(vault, "mailer")).paused_at is None
        r = await http.post(
            "/dpo/recipients/mailer/replay?lang=en", data={"_csrf_token": token, "since": ""}
        )
        assert r.status_code == 422
        r = await http.post(
            f"/dpo/recipients/notices/{row.id}/close?lang=en",
            data={"_csrf_token": token, "reason": "  "},
        )
        assert r.status_code == 422
        r = await http.post("/dpo/recipients/nobody/pause?lang=en", data={"_csrf_token": token})
        assert r.status_code == 404
    (after,) = await delivered(vault)
    assert after.status == "failed" and after.closed_reason is None
    assert not [a for a, _ in await _actions(vault) if a.endswith(("pause", "replay", "close"))]
