"""Who must be told, on both databases: recipients that received the subject's data for
a concerned purpose (from the audit trail), external recipients subscribed to the type in
general, nobody else."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.dsar import DPO, contract, erase, new_subject, newsletter
from tests.support.factories import ADMIN
from tests.support.recipients import client_recipient, delivered, lookup_by
from vault.bases.consents import list_bases, withdraw
from vault.errors import Conflict, InvalidInput, NotFound
from vault.recipients import registry
from vault.recipients.fanout import fan_out
from vault.recipients.registry import Subscription
from vault.rights.restriction import restrict

URL = "http://127.0.0.1:9/hook"


async def test_only_recipients_that_received_the_data_are_told(vault):
    """An erasure is delivered to the client that looked the subject up, not to a client
    that never received this subject's data, and not about a subject nobody looked up."""
    mailer, _ = await client_recipient(vault, "mailer", URL)
    await client_recipient(vault, "callcentre", URL)
    sid, _ = await new_subject(vault, 11)
    other, _ = await new_subject(vault, 12)
    await contract(vault, sid)
    await contract(vault, other)
    await lookup_by(vault, mailer, sid)
    await erase(vault, DPO, sid)
    await erase(vault, DPO, other)
    assert await fan_out(vault) > 0
    rows = await delivered(vault)
    assert {(r.recipient, r.subject_id) for r in rows} == {("mailer", sid)}
    assert {r.event_type for r in rows} == {"basis.ended", "subject.erased"}
    assert all(r.status == "pending" for r in rows)
    assert await fan_out(vault) == 0  # each event is fanned out once


async def test_purpose_and_retention_window_limit_who_is_told(vault, clock):
    """A lookup for another purpose than the event's does not count, and one older than
    the purpose's retention window (at least the minimum window) does not either."""
    mailer, _ = await client_recipient(vault, "mailer", URL)
    sid, _ = await new_subject(vault, 13)
    await contract(vault, sid)
    await newsletter(vault, sid)
    await lookup_by(vault, mailer, sid, "order.delivery")
    # The newsletter's withdrawal concerns only its own purpose: not told.
    news = [b for b in await list_bases(vault, DPO, sid) if b.purpose == "newsletter.email"]
    await withdraw(vault, DPO, sid, news[0].id)
    await fan_out(vault)
    assert await delivered(vault) == []
    # order.delivery keeps data 90 days after its end: a lookup 200 days ago is too old.
    clock.advance(timedelta(days=200))
    await restrict(vault, DPO, sid)
    await fan_out(vault)
    assert await delivered(vault) == []


async def test_subscriptions_narrow_and_external_recipients_hear_everything(vault):
    """A client subscribed to erasures only is not told about a restriction; an external
    recipient subscribed with scope `all` is told about every restriction."""
    mailer, _ = await client_recipient(
        vault, "mailer", URL, subscriptions=[Subscription("subject.erased")]
    )
    await registry.create_recipient(
        vault,
        ADMIN,
        name="lettershop",
        kind="external",
        transport="webhook",
        target=URL,
        subscriptions=[Subscription("subject.restricted", scope="all")],
    )
    sid, _ = await new_subject(vault, 14)
    await contract(vault, sid)
    await lookup_by(vault, mailer, sid)
    await restrict(vault, DPO, sid)
    await fan_out(vault)
    rows = await delivered(vault)
    assert [(r.recipient, r.event_type) for r in rows] == [("lettershop", "subject.restricted")]


async def test_bad_registrations_change_nothing(vault):
    """An unknown event type, a non-http(s) URL, scope `all` for a client (a conflict with
    the stored kind when set later) or a client recipient without its API client are
    refused and nothing is stored."""
    await client_recipient(vault, "mailer", URL)
    bad = [
        dict(
            name="x1",
            kind="external",
            transport="webhook",
            target=URL,
            subscriptions=[Subscription("subject.vanished")],
        ),
        dict(name="x2", kind="external", transport="webhook", target="ftp://example.com/x"),
        dict(
            name="x3",
            kind="external",
            transport="webhook",
            target=URL,
            subscriptions=[Subscription("subject.erased", purpose="no.such")],
        ),
    ]
    for kw in bad:
        with pytest.raises(InvalidInput):
            await registry.create_recipient(vault, ADMIN, **kw)
    with pytest.raises(Conflict):
        await registry.set_subscriptions(
            vault, ADMIN, "mailer", [Subscription("subject.erased", scope="all")]
        )
    with pytest.raises(NotFound):
        await registry.create_recipient(
            vault, ADMIN, name="ghost", kind="client", transport="webhook", target=URL
        )
    assert [r.name for r in await registry.list_recipients(vault)] == ["mailer"]
    info = await registry.get_recipient(vault, "mailer")
    assert len(info.subscriptions) == 10  # every event type by default, unchanged
