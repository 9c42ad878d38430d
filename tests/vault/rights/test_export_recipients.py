"""The Art. 15 export names the recipients (system, purpose, first and last read) and,
after a change, which of them were told and which confirmed (both databases)."""

from __future__ import annotations

from datetime import timedelta

from api.export_view import render_html
from tests.support.dsar import DPO, contract, new_subject
from tests.support.recipients import client_recipient, delivered, lookup_by
from vault.recipients import acks
from vault.recipients.fanout import fan_out
from vault.rights.export import build_export
from vault.rights.restriction import restrict

URL = "http://127.0.0.1:9/hook"


async def test_export_lists_recipients_and_who_was_told(vault, clock):
    """Two reads by one system for one purpose are one line with first and last time; a
    restriction's notice shows as told to that system and confirmed once it acked."""
    mailer, _ = await client_recipient(vault, "mailer", URL)
    await client_recipient(vault, "callcentre", URL)
    sid, _ = await new_subject(vault, 51)
    await contract(vault, sid)
    first = clock.now()
    await lookup_by(vault, mailer, sid)
    clock.advance(timedelta(days=3))
    await lookup_by(vault, mailer, sid)
    await restrict(vault, DPO, sid)
    await fan_out(vault)
    (notice,) = await delivered(vault)
    await acks.ack(vault, mailer, notice.id, "updated")
    doc = await build_export(vault, DPO, sid)
    assert doc["recipient_systems"] == [
        {
            "client": "mailer",
            "purpose": "order.delivery",
            "first_at": first.isoformat(),
            "last_at": clock.now().isoformat(),
            "reads": 2,
        }
    ]
    (told,) = doc["recipient_notices"]
    assert told["recipient"] == "mailer" and told["event"] == "subject.restricted"
    assert told["confirmed"] == "updated"
    html = render_html(doc, "en", vault.pressure_rules)
    assert "Recipients told about changes" in html and "mailer" in html
    assert "callcentre" not in html
