"""API clients on both databases: keys shown once and stored as HMAC, authentication, revocation,
validation."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.support.factories import ADMIN
from vault.admin.authentication import ClientAuthenticator
from vault.admin.clients import (
    CURRENT_HASH,
    KEY_PREFIX,
    LEGACY_HASH,
    Role,
    create_client,
    key_hash,
    list_clients,
    revoke_client,
)
from vault.audit.events import AuditAction
from vault.crypto import KeyLabel, derive_key
from vault.errors import Conflict, InvalidInput, NotFound
from vault.storage.audit_tables import audit_events
from vault.storage.tables import clients


async def _client_rows(vault) -> list[Any]:
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(clients))).all()


async def test_create_returns_a_prefixed_high_entropy_key(vault, clock):
    """A new client gets a "tresor_" key with 256 random bits, and its info names role and
    purposes."""
    info, key = await create_client(vault, ADMIN, "shop", "lookup", ["order.delivery"])
    assert key.startswith(KEY_PREFIX) and len(key) >= len(KEY_PREFIX) + 43
    assert (info.name, info.role, info.purposes) == (
        "shop",
        Role.LOOKUP,
        frozenset({"order.delivery"}),
    )
    assert info.created_at == clock.now() and info.revoked_at is None
    _, other = await create_client(vault, ADMIN, "crm", "writer", [])
    assert other != key


async def test_only_the_keys_hmac_is_stored(vault):
    """The clients table holds HMAC-SHA256 of the key under the key derived for API-key
    hashes (version 2), not under the raw server secret, and never the key itself."""
    _, key = await create_client(vault, ADMIN, "shop", "lookup", ["order.delivery"])
    (row,) = await _client_rows(vault)
    derived = derive_key(vault.secrets.client_key, KeyLabel.API_KEY_HASH)
    expected = hmac.new(derived, key.encode(), hashlib.sha256).hexdigest()
    assert row.key_hash == expected and row.key_hash_version == CURRENT_HASH
    legacy = hmac.new(vault.secrets.client_key, key.encode(), hashlib.sha256).hexdigest()
    assert row.key_hash != legacy
    secret_part = key[len(KEY_PREFIX) :]
    for value in row._mapping.values():
        assert secret_part not in str(value)
    assert row.key_hash != hashlib.sha256(key.encode()).hexdigest()


async def _store_as_before_0015(vault, name: str, key: str, version: int = LEGACY_HASH) -> None:
    """Put the client's key hash back as the code before the derivation stored it: HMAC
    under the raw server secret."""
    legacy = hmac.new(vault.secrets.client_key, key.encode(), hashlib.sha256).hexdigest()
    async with vault.transaction() as conn:
        await conn.execute(
            update(clients)
            .where(clients.c.name == name)
            .values(key_hash=legacy, key_hash_version=version)
        )


async def test_a_key_hashed_before_the_derivation_authenticates_and_is_rehashed(vault, log_stream):
    """A key whose row still holds the legacy hash authenticates once as its client, and that
    use re-hashes the row under the derived key (version 2), after which it keeps working.
    The re-hash is logged by client id, with neither the key nor either hash."""
    _, key = await create_client(vault, ADMIN, "shop", "lookup", ["order.delivery"])
    await _store_as_before_0015(vault, "shop", key)
    (before,) = await _client_rows(vault)
    info = await ClientAuthenticator(vault, ttl=0).authenticate(key)
    assert info is not None and info.name == "shop"
    (row,) = await _client_rows(vault)
    assert row.key_hash_version == CURRENT_HASH and row.key_hash == key_hash(vault, key)
    logs = log_stream.getvalue()
    assert "re-hashed" in logs and info.id in logs
    for secret in (key[len(KEY_PREFIX) :], before.key_hash, row.key_hash):
        assert secret not in logs
    again = await ClientAuthenticator(vault, ttl=0).authenticate(key)
    assert again is not None and again.id == info.id


async def test_a_hash_is_checked_only_under_its_own_version(vault):
    """A legacy hash marked as version 2 does not authenticate (nor would a derived one
    marked 1): the version decides which key the stored hash is compared under."""
    _, key = await create_client(vault, ADMIN, "shop", "lookup", ["order.delivery"])
    await _store_as_before_0015(vault, "shop", key, version=CURRENT_HASH)
    assert await ClientAuthenticator(vault, ttl=0).authenticate(key) is None
    async with vault.transaction() as conn:
        await conn.execute(
            update(clients).values(key_hash=key_hash(vault, key), key_hash_version=LEGACY_HASH)
        )
    assert await ClientAuthenticator(vault, ttl=0).authenticate(key) is None


async def test_a_revoked_legacy_key_is_refused_and_left_as_it_was(vault, clock):
    """Revocation wins over the upgrade: a revoked client's legacy key is refused and its
    row not re-hashed; a wrong key does not touch a legacy row either."""
    info, key = await create_client(vault, ADMIN, "shop", "lookup", ["order.delivery"])
    _, other = await create_client(vault, ADMIN, "crm", "writer", [])
    await _store_as_before_0015(vault, "shop", key)
    await _store_as_before_0015(vault, "crm", other)
    await revoke_client(vault, ADMIN, "shop")
    auth = ClientAuthenticator(vault, ttl=0)
    assert await auth.authenticate(key) is None
    assert await auth.authenticate(other[:-2] + "xx") is None
    assert {r.name: r.key_hash_version for r in await _client_rows(vault)} == {
        "shop": LEGACY_HASH,
        "crm": LEGACY_HASH,
    }


async def test_creation_is_audited_without_the_key(vault):
    """Creating a client writes one admin audit event naming the client, without its key."""
    _, key = await create_client(vault, ADMIN, "shop", "lookup", ["order.delivery"])
    async with vault.engine.connect() as conn:
        (event,) = (await conn.execute(select(audit_events))).all()
    assert event.action == AuditAction.CLIENT_CREATE and event.actor_type == "admin"
    assert '"client": "shop"' in event.detail
    assert all(key[len(KEY_PREFIX) :] not in str(v) for v in event._mapping.values())


async def test_authenticator_accepts_the_key(vault):
    """The issued key authenticates as its client with its role and purposes."""
    _, key = await create_client(
        vault, ADMIN, "shop", "lookup", ["order.delivery", "invoice.postal"]
    )
    info = await ClientAuthenticator(vault, ttl=0).authenticate(key)
    assert info is not None and info.name == "shop" and info.role is Role.LOOKUP
    assert info.purposes == frozenset({"order.delivery", "invoice.postal"})
    assert info.actor_type == "client"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),
        lambda k: k[len(KEY_PREFIX) :],
        lambda k: k + "x",
        lambda k: KEY_PREFIX + "x" * 300,
        lambda k: "",
    ],
)
async def test_authenticator_rejects_a_wrong_key(vault, mangle):
    """A changed, truncated, extended, overlong or empty key is rejected."""
    _, key = await create_client(vault, ADMIN, "shop", "lookup", ["order.delivery"])
    assert await ClientAuthenticator(vault, ttl=0).authenticate(mangle(key)) is None


async def test_concurrent_requests_with_an_expired_entry_share_one_read(vault, monkeypatch):
    """Thirty requests with the same key while no cache entry is fresh make one read, and
    the next request after it (ttl 0) reads again."""
    _, key = await create_client(vault, ADMIN, "shop", "lookup", ["order.delivery"])
    auth = ClientAuthenticator(vault, ttl=0)
    reads = 0
    real_read = ClientAuthenticator._read

    async def counted(self: ClientAuthenticator, digest: str, legacy: str) -> Any:
        nonlocal reads
        reads += 1
        return await real_read(self, digest, legacy)

    monkeypatch.setattr(ClientAuthenticator, "_read", counted)
    infos = await asyncio.gather(*(auth.authenticate(key) for _ in range(30)))
    assert reads == 1 and {i.name for i in infos if i is not None} == {"shop"}
    assert all(i is not None for i in infos)
    assert (await auth.authenticate(key)) is not None and reads == 2


async def test_a_cancelled_request_does_not_fail_the_others_waiting_on_its_read(vault):
    """The shared read belongs to no single request: cancelling the first leaves it running."""
    _, key = await create_client(vault, ADMIN, "shop", "lookup", ["order.delivery"])
    auth = ClientAuthenticator(vault, ttl=0)
    first = asyncio.ensure_future(auth.authenticate(key))
    second = asyncio.ensure_future(auth.authenticate(key))
    await asyncio.sleep(0)
    first.cancel()
    info = await second
    assert info is not None and info.name == "shop"
    assert first.cancelled()


async def test_revoked_key_is_rejected(vault, clock):
    """After revocation the key no longer authenticates (cache ttl 0) and the client is listed as
    revoked."""
    _, key = await create_client(vault, ADMIN, "shop", "lookup", ["order.delivery"])
    auth = ClientAuthenticator(vault, ttl=0)
    assert await auth.authenticate(key) is not None
    await revoke_client(vault, ADMIN, "shop")
    assert await auth.authenticate(key) is None
    (listed,) = await list_clients(vault)
    assert listed.revoked_at == clock.now()
    with pytest.raises(NotFound):
        await revoke_client(vault, ADMIN, "shop")


async def test_revoking_an_unknown_client_is_not_found(vault):
    """Revoking a name no active client has is NotFound."""
    with pytest.raises(NotFound):
        await revoke_client(vault, ADMIN, "nobody")


async def test_lookup_role_requires_a_purpose(vault):
    """A lookup client without any purpose is refused."""
    with pytest.raises(InvalidInput) as info:
        await create_client(vault, ADMIN, "shop", "lookup", [])
    assert "purpose" in info.value.errors
    assert await _client_rows(vault) == []


async def test_unknown_purpose_is_refused(vault):
    """A client may only be given purposes from the catalogue."""
    with pytest.raises(InvalidInput) as info:
        await create_client(vault, ADMIN, "shop", "lookup", ["order.delivery", "spam.everyone"])
    assert "spam.everyone" in info.value.errors["purpose"]
    assert await _client_rows(vault) == []


@pytest.mark.parametrize(
    ("name", "role"), [("Shop", "lookup"), ("-shop", "lookup"), ("", "writer"), ("shop", "root")]
)
async def test_bad_name_or_role_is_refused(vault, name, role):
    """Client names must be lower-case slugs and roles one of writer, lookup, dpo, admin."""
    with pytest.raises(InvalidInput):
        await create_client(vault, ADMIN, name, role, ["order.delivery"])


async def test_duplicate_name_is_a_conflict(vault):
    """A second client with a taken name is a Conflict and is not stored."""
    await create_client(vault, ADMIN, "shop", "lookup", ["order.delivery"])
    with pytest.raises(Conflict):
        await create_client(vault, ADMIN, "shop", "writer", [])
    assert len(await _client_rows(vault)) == 1


async def test_list_clients_is_sorted_by_name(vault):
    """list_clients returns every client, sorted by name, with role and purposes."""
    await create_client(vault, ADMIN, "shop", "lookup", ["order.delivery"])
    await create_client(vault, ADMIN, "crm", "writer", [])
    await create_client(vault, ADMIN, "dsb", "dpo", [])
    listed = await list_clients(vault)
    assert [(c.name, c.role.value) for c in listed] == [
        ("crm", "writer"),
        ("dsb", "dpo"),
        ("shop", "lookup"),
    ]
    assert listed[1].actor_type == "dpo"
