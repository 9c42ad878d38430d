"""Recipients' signing secrets (both databases): stored only wrapped by the KEK, moved
along by a KEK rotation so retiring old KEK versions keeps them usable, and shredded once
a secret rotation's overlap is over."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from tests.support.factories import ADMIN
from tests.support.recipients import client_recipient
from vault.admin.keys import retire_unused, rotate
from vault.audit.ropa import record_of_processing
from vault.recipients import registry
from vault.recipients.delivery_claims import SigningKeys
from vault.recipients.registry import Subscription
from vault.recipients.signing import decode_secret
from vault.storage.recipient_tables import recipient_secrets

URL = "http://127.0.0.1:9/hook"


async def _keys(vault, name: str) -> list[bytes]:
    info = await registry.get_recipient(vault, name)
    async with vault.engine.connect() as conn:
        keys = await SigningKeys(vault).read(conn, {info.id}, vault.clock.now())
    return keys[info.id]


async def _secret_rows(vault) -> list:
    async with vault.engine.connect() as conn:
        return list((await conn.execute(select(recipient_secrets))).all())


async def test_a_kek_rotation_carries_the_secrets_along(vault):
    """After a KEK rotation and retiring the old version, the recipient's secret still
    unwraps to the key shown at registration; the stored blob is not the key."""
    _, key = await client_recipient(vault, "mailer", URL)
    (row,) = await _secret_rows(vault)
    assert key not in bytes(row.wrapped_key)
    report = await rotate(vault, ADMIN)
    assert 1 in await retire_unused(vault, ADMIN)
    (row,) = await _secret_rows(vault)
    assert row.kek_version == report.new_version
    assert await _keys(vault, "mailer") == [key]


async def test_a_secret_rotation_overlaps_then_shreds(vault, clock):
    """Rotating gives a new secret; both sign during the overlap, only the new one after
    it, and the old one is shredded at the next rotation."""
    _, old = await client_recipient(vault, "mailer", URL)
    new = decode_secret(
        await registry.rotate_secret(vault, ADMIN, "mailer", overlap=timedelta(hours=1))
    )
    assert sorted(await _keys(vault, "mailer")) == sorted([old, new])
    clock.advance(timedelta(hours=2))
    assert await _keys(vault, "mailer") == [new]
    newest = decode_secret(await registry.rotate_secret(vault, ADMIN, "mailer"))
    assert sorted(await _keys(vault, "mailer")) == sorted([new, newest])
    rows = await _secret_rows(vault)
    assert sum(1 for r in rows if r.wrapped_key is None) == 1


async def test_the_art_30_record_names_the_notified_recipients(vault):
    """A recipient subscribed for every purpose appears under each purpose's activity with
    its transport and event types; one narrowed to a purpose only under that one."""
    await client_recipient(vault, "mailer", URL)
    await client_recipient(
        vault,
        "shop",
        URL,
        subscriptions=[Subscription("subject.erased", purpose="order.delivery")],
    )
    ropa = await record_of_processing(vault, ADMIN)
    by_purpose = {a.purpose: a for a in ropa.activities}
    order = {r.name: r for r in by_purpose["order.delivery"].notified_recipients}
    assert order["shop"].event_types == ["subject.erased"]
    assert len(order["mailer"].event_types) == 10 and order["mailer"].transport == "webhook"
    assert [r.name for r in by_purpose["newsletter.email"].notified_recipients] == ["mailer"]
