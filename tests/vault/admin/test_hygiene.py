"""Key hygiene: a rotated key works through its grace period and not after (by the
injected clock, also from the cache); last use is recorded at most once a minute; unused
keys are listed for clean-up; every rotation is audited without key material."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.support.db import audit_trail
from tests.support.factories import ADMIN
from vault.admin import authentication
from vault.admin import clients as clients_mod
from vault.admin.authentication import ClientAuthenticator
from vault.admin.clients import create_client, list_clients, revoke_client
from vault.admin.hygiene import parse_duration, rotate_key, unused_clients
from vault.errors import InvalidInput, NotFound


async def test_rotated_key_works_in_grace_and_is_refused_after(vault, clock):
    """After `rotate_key` with 7 days of grace both keys authenticate; one second after the
    grace only the new one does, even from a node that cached the old one."""
    _, old = await create_client(vault, ADMIN, "crm", "writer", [])
    info, new = await rotate_key(vault, ADMIN, "crm", timedelta(days=7))
    assert new != old and info.previous_key_until == clock.now() + timedelta(days=7)
    cached = ClientAuthenticator(vault, ttl=3600)  # a node that keeps its cache for long
    fresh = ClientAuthenticator(vault, ttl=0)
    for auth in (cached, fresh):
        assert (await auth.authenticate(old)).name == "crm"
        assert (await auth.authenticate(new)).name == "crm"
    clock.advance(timedelta(days=7, seconds=1))
    for auth in (cached, fresh):
        assert await auth.authenticate(old) is None
        assert (await auth.authenticate(new)).name == "crm"
        await auth.drain()


async def test_rotation_without_grace_ends_the_old_key_at_once_and_a_second_replaces_it(
    vault,
):
    """Grace 0 refuses the old key immediately; a second rotation keeps only the key it
    replaced, not the one before."""
    _, first = await create_client(vault, ADMIN, "crm", "writer", [])
    _, second = await rotate_key(vault, ADMIN, "crm", timedelta(hours=1))
    _, third = await rotate_key(vault, ADMIN, "crm", timedelta(0))
    auth = ClientAuthenticator(vault, ttl=0)
    assert [await auth.authenticate(k) is not None for k in (first, second, third)] == [
        False,
        False,
        True,
    ]
    await auth.drain()


async def test_rotation_is_audited_without_key_material_and_refuses_bad_input(vault):
    """The event names the client and the grace, never a key or its hash; an unknown or
    revoked client and a grace over 90 days are refused."""
    _, old = await create_client(vault, ADMIN, "crm", "writer", [])
    _, new = await rotate_key(vault, ADMIN, "crm", timedelta(days=2))
    events = await audit_trail(vault, "admin:client:rotate_key")
    assert len(events) == 1 and events[0].actor_id == ADMIN.id
    detail = json.loads(events[0].detail)
    assert detail["client"] == "crm" and detail["grace_seconds"] == 2 * 86400
    text = json.dumps([dict(e._mapping) for e in events], default=str)
    digests = [clients_mod.key_hash(vault, k) for k in (old, new)]
    assert not any(s in text for s in (old, new, *digests))
    with pytest.raises(InvalidInput):
        await rotate_key(vault, ADMIN, "crm", timedelta(days=91))
    with pytest.raises(NotFound):
        await rotate_key(vault, ADMIN, "nobody", timedelta(0))
    await revoke_client(vault, ADMIN, "crm")
    with pytest.raises(NotFound):
        await rotate_key(vault, ADMIN, "crm", timedelta(0))


async def test_last_use_is_written_at_most_once_a_minute_per_client(vault, clock, monkeypatch):
    """The first authentication records the use; further ones within the minute write
    nothing (the stored time stays), and after the minute the next one updates it."""
    mono = [1000.0]
    monkeypatch.setattr(authentication.time, "monotonic", lambda: mono[0])
    _, key = await create_client(vault, ADMIN, "crm", "writer", [])
    auth = ClientAuthenticator(vault, ttl=3600)
    t0 = clock.now()
    for step, at in enumerate((1000.0, 1030.0, 1061.0)):
        mono[0] = at
        assert await auth.authenticate(key) is not None
        await auth.drain()
        clock.advance(timedelta(seconds=30))
        used = {c.name: c.last_used_at for c in await list_clients(vault)}["crm"]
        assert used == (t0 if step < 2 else t0 + timedelta(seconds=60))


async def test_unused_lists_keys_not_used_for_the_days_given(vault, clock):
    """A key never used since its issue or last used before the cut-off is listed; a
    recently used one, a recently rotated one and a revoked one are not."""
    for name in ("idle", "busy", "rotated", "gone"):
        await create_client(vault, ADMIN, name, "writer", [])
    _, busy_key = await rotate_key(vault, ADMIN, "busy", timedelta(0))
    clock.advance(timedelta(days=100))
    auth = ClientAuthenticator(vault, ttl=0)
    await auth.authenticate(busy_key)
    await auth.drain()
    await rotate_key(vault, ADMIN, "rotated", timedelta(0))
    await revoke_client(vault, ADMIN, "gone")
    assert [c.name for c in await unused_clients(vault, 90)] == ["idle"]
    assert [c.name for c in await unused_clients(vault, 101)] == []
    with pytest.raises(InvalidInput):
        await unused_clients(vault, 0)


@pytest.mark.parametrize(
    ("text", "seconds"), [("7d", 604800), ("12h", 43200), ("30m", 1800), ("0", 0)]
)
def test_parse_duration(text, seconds):
    """Grace periods are written as a number and a unit."""
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "7", "d", "7w", "-1d", "x7d"])
def test_parse_duration_refuses_anything_else(text):
    """Anything but a number with d, h, m or s is a clear input error."""
    with pytest.raises(InvalidInput):
        parse_duration(text)
