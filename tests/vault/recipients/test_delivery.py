"""Delivery on both databases: Standard Webhooks to a real receiver on loopback (signed,
same id on every retry, back-off, ordering per subject, failed after three days, paused
recipients wait) and NATS JetStream on the local server (publish acknowledged, one subject
per event type, message id for de-duplication)."""

from __future__ import annotations

import json
from datetime import timedelta

import nats
import pytest

from tests.support.dsar import DPO, contract, erase, new_subject, plaintext_values
from tests.support.factories import ADMIN
from tests.support.receiver import Faults, serving
from tests.support.recipients import client_recipient, delivered, lookup_by, receiver
from vault.admin.clients import create_client
from vault.recipients import registry
from vault.recipients.delivery import GIVE_UP, Deliverer, backoff
from vault.recipients.signing import decode_secret
from vault.recipients.transports import stream_name
from vault.rights.restriction import lift_restriction, restrict


async def _subject_seen_by(vault, actor, seed):
    sid, data = await new_subject(vault, seed)
    await contract(vault, sid)
    await lookup_by(vault, actor, sid)
    return sid, data


async def test_webhook_delivery_is_signed_and_carries_no_value(vault):
    """Notices reach the receiver with a valid signature, in event order, holding ids,
    purposes and times but no contact value; the deliveries are `delivered`."""
    state, app = receiver(vault, [])
    async with serving(app) as base:
        actor, key = await client_recipient(vault, "mailer", base + "/tresor/notices")
        state.keys.append(key)
        sid, data = await _subject_seen_by(vault, actor, 21)
        state.copies[sid] = {"kept": True}
        await restrict(vault, DPO, sid)
        await lift_restriction(vault, DPO, sid)
        await erase(vault, DPO, sid)
        deliverer = Deliverer(vault)
        try:
            report = await deliverer.run()
        finally:
            await deliverer.close()
    types = [n["type"] for n in state.handled]
    assert types == [
        "subject.restricted",
        "subject.restriction_lifted",
        "basis.ended",
        "subject.erased",
    ]
    assert report.delivered == 4
    assert sid not in state.copies  # the receiver deleted its copy
    text = json.dumps(state.handled)
    assert not [v for v in plaintext_values(data) if v in text]
    assert all(n["data"]["subject_id"] == sid for n in state.handled)
    assert {r.status for r in await delivered(vault)} == {"delivered"}


async def test_retries_keep_the_id_and_back_off(vault, clock):
    """A receiver answering 503 gets the same webhook-id again after the back-off; once it
    answers, the notice is delivered exactly once from its point of view."""
    state, app = receiver(vault, [])
    faults = Faults(fail_rate=1.0)
    async with serving(faults.wrap(app)) as base:
        actor, key = await client_recipient(vault, "mailer", base + "/tresor/notices")
        state.keys.append(key)
        sid, _ = await _subject_seen_by(vault, actor, 22)
        await restrict(vault, DPO, sid)
        deliverer = Deliverer(vault)
        try:
            first = await deliverer.run()
            assert (first.delivered, first.retried) == (0, 1)
            (row,) = await delivered(vault)
            assert row.status == "pending" and row.attempts == 1 and row.last_error == "http_503"
            assert await deliverer.run() == type(first)()  # not due before the back-off
            clock.advance(timedelta(seconds=10))
            faults.fail_rate = 0.0
            second = await deliverer.run()
        finally:
            await deliverer.close()
    assert second.delivered == 1
    assert faults.requests == 2 and len(state.seen) == 1
    (row,) = await delivered(vault)
    assert row.status == "delivered" and row.attempts == 2
    assert state.handled[0]["data"]["notification_id"] == row.id


def test_backoff_doubles_with_jitter():
    """The wait doubles per attempt from 5 s, within 0.5 to 1.5 times, capped at an hour."""
    for attempts, base in ((1, 5), (2, 10), (3, 20), (20, 3600)):
        wait = backoff(attempts).total_seconds()
        assert base * 0.5 <= wait <= base * 1.5


async def test_an_earlier_notice_blocks_later_ones_for_the_subject(vault, clock):
    """While the first notice about a subject is failing, later ones about the same subject
    wait (ordering per recipient and subject); another subject's notices go on."""
    state, app = receiver(vault, [])
    faults = Faults(fail_rate=1.0)
    async with serving(faults.wrap(app)) as base:
        actor, key = await client_recipient(vault, "mailer", base + "/tresor/notices")
        state.keys.append(key)
        sid, _ = await _subject_seen_by(vault, actor, 23)
        await restrict(vault, DPO, sid)
        await lift_restriction(vault, DPO, sid)
        deliverer = Deliverer(vault)
        try:
            await deliverer.run()
            assert faults.requests == 1  # only the first of the two was tried
            faults.fail_rate = 0.0
            clock.advance(timedelta(minutes=1))
            await deliverer.run()
        finally:
            await deliverer.close()
    assert [n["type"] for n in state.handled] == [
        "subject.restricted",
        "subject.restriction_lifted",
    ]


async def test_after_three_days_a_delivery_fails(vault, clock):
    """A receiver that never answers: the delivery is `failed` once three days passed since
    it was created, and is not tried again."""
    actor, _ = await client_recipient(vault, "mailer", "http://127.0.0.1:9/closed")
    sid, _ = await _subject_seen_by(vault, actor, 24)
    await restrict(vault, DPO, sid)
    deliverer = Deliverer(vault)
    try:
        await deliverer.run()
        clock.advance(GIVE_UP)
        report = await deliverer.run()
        clock.advance(timedelta(days=1))
        assert (await deliverer.run()).failed == 0
    finally:
        await deliverer.close()
    assert report.failed == 1
    (row,) = await delivered(vault)
    assert row.status == "failed" and row.last_error == "connect_error"


async def test_a_paused_recipient_waits_and_a_rotation_signs_twice(vault, clock):
    """Nothing goes to a paused recipient; after resuming, a notice signed with the new and
    the old secret verifies with either (the rotation's overlap)."""
    state, app = receiver(vault, [])
    async with serving(app) as base:
        actor, old = await client_recipient(vault, "mailer", base + "/tresor/notices")
        sid, _ = await _subject_seen_by(vault, actor, 25)
        await registry.set_paused(vault, ADMIN, "mailer", True)
        await restrict(vault, DPO, sid)
        deliverer = Deliverer(vault)
        try:
            assert (await deliverer.run()).delivered == 0
            new = decode_secret(await registry.rotate_secret(vault, ADMIN, "mailer"))
            state.keys.append(old)  # a receiver that still knows only the old secret
            await registry.set_paused(vault, ADMIN, "mailer", False)
            assert (await deliverer.run()).delivered == 1
            clock.advance(timedelta(days=2))  # the overlap is over: only the new key signs
            await lift_restriction(vault, DPO, sid)
            await deliverer.run()
            (_, second) = await delivered(vault)
            assert second.status == "pending" and second.last_error == "http_401"
            state.keys.append(new)
            clock.advance(timedelta(minutes=1))
            assert (await deliverer.run()).delivered == 1
        finally:
            await deliverer.close()


async def test_nats_publish_is_acknowledged_with_a_message_id(vault):
    """A NATS recipient's notices are stored in JetStream under `<prefix>.<event type>`
    with the delivery id as Nats-Msg-Id, and count as delivered once acknowledged."""
    prefix = f"tresor-test-{vault.settings.data_dir.parent.name[-12:]}".replace("_", "-")
    await create_client(vault, ADMIN, "bus", "lookup", ["order.delivery"])
    await registry.create_recipient(
        vault, ADMIN, name="bus", kind="client", transport="nats", target=prefix
    )
    from vault.audit.events import Actor

    sid, _ = await _subject_seen_by(vault, Actor("client", "bus"), 26)
    await erase(vault, DPO, sid)
    deliverer = Deliverer(vault)
    try:
        report = await deliverer.run()
    finally:
        await deliverer.close()
    assert report.delivered == 2
    nc = await nats.connect(vault.settings.nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(f"{prefix}.subject.erased", durable=None)
        (msg,) = await sub.fetch(1, timeout=5)
        rows = await delivered(vault)
        erased = [r for r in rows if r.event_type == "subject.erased"][0]
        assert msg.headers["Nats-Msg-Id"] == erased.id
        assert json.loads(msg.data)["data"]["subject_id"] == sid
        await msg.ack()
        await js.delete_stream(stream_name(prefix))
    finally:
        await nc.close()
    assert {r.status for r in rows} == {"delivered"}


@pytest.mark.parametrize("kind", ["connect"])
async def test_nats_down_is_retried(vault, kind):
    """With the NATS server unreachable the delivery stays pending with a `nats_` error
    kind, to be tried again."""
    from dataclasses import replace

    vault.settings = replace(vault.settings, nats_url="nats://127.0.0.1:9")
    await create_client(vault, ADMIN, "bus", "lookup", ["order.delivery"])
    await registry.create_recipient(
        vault, ADMIN, name="bus", kind="client", transport="nats", target="tresor-down"
    )
    from vault.audit.events import Actor

    sid, _ = await _subject_seen_by(vault, Actor("client", "bus"), 27)
    await restrict(vault, DPO, sid)
    deliverer = Deliverer(vault)
    try:
        report = await deliverer.run()
    finally:
        await deliverer.close()
    assert report.retried == 1
    (row,) = await delivered(vault)
    assert row.status == "pending" and row.last_error.startswith("nats_")
