"""vault.admin.idempotency: claiming a key, storing the answer sealed, replaying it,
refusing another request under the key, the lease of a running request, expiry; both
databases."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from vault.admin import idempotency
from vault.audit.events import Actor
from vault.storage.audit_tables import audit_events
from vault.storage.tables import idempotency_records

ACTOR = Actor("client", "crm")
CLIENT = "11111111-1111-4111-8111-111111111111"
FP = idempotency.fingerprint("POST", "/v1/subjects", b'{"name":"A"}')
ANSWER = idempotency.StoredResponse(201, "application/json", b'{"subject_id":"s-1"}')


async def _rows(vault):
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(idempotency_records))).all()


async def test_the_first_claim_wins_and_the_same_request_later_replays(vault):
    """First claim: Claimed; while running: Busy; after `complete`: Replay of the stored
    status, media type and body, and the replay is an audit event."""
    first = await idempotency.claim(vault, ACTOR, CLIENT, "k1", FP)
    assert isinstance(first, idempotency.Claimed)
    assert isinstance(await idempotency.claim(vault, ACTOR, CLIENT, "k1", FP), idempotency.Busy)
    await idempotency.complete(vault, first.record_id, ANSWER)
    again = await idempotency.claim(vault, ACTOR, CLIENT, "k1", FP)
    assert again == idempotency.Replay(ANSWER)
    async with vault.engine.connect() as conn:
        actions = (await conn.execute(select(audit_events.c.action))).scalars().all()
    assert actions == ["client:request:replay"]


async def test_another_request_under_the_key_is_a_mismatch(vault):
    """The same key with another fingerprint is refused, also while the first runs."""
    first = await idempotency.claim(vault, ACTOR, CLIENT, "k2", FP)
    other = idempotency.fingerprint("POST", "/v1/subjects", b'{"name":"B"}')
    assert isinstance(first, idempotency.Claimed)
    assert isinstance(
        await idempotency.claim(vault, ACTOR, CLIENT, "k2", other), idempotency.Mismatch
    )


async def test_concurrent_claims_leave_exactly_one_holder(vault):
    """Twenty claims at once: one Claimed, the others Busy; one row."""
    outcomes = await asyncio.gather(
        *(idempotency.claim(vault, ACTOR, CLIENT, "k3", FP) for _ in range(20))
    )
    assert sum(isinstance(o, idempotency.Claimed) for o in outcomes) == 1
    assert sum(isinstance(o, idempotency.Busy) for o in outcomes) == 19
    assert len(await _rows(vault)) == 1


async def test_a_released_key_and_an_expired_lease_can_be_claimed_again(vault, clock):
    """`release` forgets the key; a running claim whose worker stopped is taken over after
    the lease; a stored answer is forgotten after 24 hours."""
    first = await idempotency.claim(vault, ACTOR, CLIENT, "k4", FP)
    await idempotency.release(vault, first.record_id)
    second = await idempotency.claim(vault, ACTOR, CLIENT, "k4", FP)
    assert isinstance(second, idempotency.Claimed)
    clock.advance(idempotency.LEASE + timedelta(seconds=1))
    third = await idempotency.claim(vault, ACTOR, CLIENT, "k4", FP)
    assert isinstance(third, idempotency.Claimed) and third != second
    await idempotency.complete(vault, third.record_id, ANSWER)
    clock.advance(idempotency.KEEP)
    assert await idempotency.purge_expired(vault) == 1
    assert await _rows(vault) == []


async def test_the_record_holds_neither_the_key_nor_the_answer_in_plaintext(vault):
    """Key stored as a digest, answer sealed: neither appears in the row."""
    first = await idempotency.claim(vault, ACTOR, CLIENT, "visible-key-zx81", FP)
    secret = idempotency.StoredResponse(200, "application/json", b'{"email":"zx81@example.org"}')
    await idempotency.complete(vault, first.record_id, secret)
    (row,) = await _rows(vault)
    stored = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
    assert b"visible-key-zx81" not in stored and b"zx81@example.org" not in stored
    replay = await idempotency.claim(vault, ACTOR, CLIENT, "visible-key-zx81", FP)
    assert replay == idempotency.Replay(secret)


async def test_keys_of_different_clients_do_not_meet(vault):
    """The same key string of two clients is two records."""
    other = "22222222-2222-4222-8222-222222222222"
    a = await idempotency.claim(vault, ACTOR, CLIENT, "k5", FP)
    b = await idempotency.claim(vault, ACTOR, other, "k5", FP)
    assert isinstance(a, idempotency.Claimed) and isinstance(b, idempotency.Claimed)
