"""The DPO console's recipients page: states per recipient, failed notices and overdue
confirmations, in German and English, read audited."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.api.dpo.test_dpo_console import _sign_in
from tests.support.dsar import DPO, contract, new_subject
from tests.support.factories import api, client_key
from tests.support.recipients import client_recipient, lookup_by
from vault.recipients.delivery import GIVE_UP, Deliverer
from vault.recipients.fanout import fan_out
from vault.rights.restriction import lift_restriction, restrict
from vault.storage.recipient_tables import deliveries
from vault.storage.tables import audit_events


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
