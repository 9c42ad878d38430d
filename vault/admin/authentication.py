"""Authenticating API clients by key on every request, cheaply and safely.

Split from `clients` (creating, listing and revoking clients): this is the hot path. A key
is checked by its keyed digest, verified keys are cached for `client_cache_seconds` so a
revocation takes effect within that time, keys hashed the legacy way are upgraded on first
use, and `last_used_at` is written at most once a minute per client. Console sign-ins and
role denials are audited here too, as the authentication events they are.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.admin.clients import (
    CURRENT_HASH,
    KEY_PREFIX,
    LEGACY_HASH,
    ClientInfo,
    Role,
    info_of,
    key_hash,
    legacy_key_hash,
    log,
)
from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.crypto import same_digest
from vault.storage.tables import clients

if TYPE_CHECKING:
    from vault.context import VaultContext


def _matching(rows: list[Any], digest: str, legacy: str) -> Any:
    """The row a key's two hashes name, each compared in constant time against the hash of
    the row's own version (a legacy hash never passes as a current one, nor the reverse)."""
    found = None
    for row in rows:
        expected = digest if row.key_hash_version == CURRENT_HASH else legacy
        if row.key_hash_version in (CURRENT_HASH, LEGACY_HASH) and same_digest(
            row.key_hash, expected
        ):
            found = row
    return found


def _matching_previous(rows: list[Any], digest: str, legacy: str) -> Any:
    """The row whose key replaced by `rotate-key` is this one (its hash was taken over as
    it was stored: under the derived key, or the legacy one if the key was not used since
    the upgrade to 0015)."""
    for row in rows:
        held = row.previous_key_hash
        if held is not None and (same_digest(held, digest) or same_digest(held, legacy)):
            return row
    return None


class ClientAuthenticator:
    """Verifies bearer keys with a short-lived cache of verified clients.

    The cache only saves the client-row read: entries expire after `ttl` seconds, which
    bounds how long a revoked key keeps working on a node that verified it just before.
    When an entry expires under load, the concurrent requests with that key share one read
    (a single flight) instead of each opening a transaction of its own.

    A key replaced by `rotate_key` is found by its own column and accepted until its grace
    ends (by the injected clock, also from the cache). The last use of a client is written
    in the background, at most once a minute per client on this node, so the hot path
    never waits for it.
    """

    def __init__(self, ctx: VaultContext, ttl: float) -> None:
        self._ctx = ctx
        self._ttl = ttl
        self._cache: dict[str, tuple[float, ClientInfo, datetime | None]] = {}
        self._reading: dict[str, asyncio.Task[tuple[ClientInfo, datetime | None] | None]] = {}
        self._touched: dict[str, float] = {}
        self._touching: set[asyncio.Task[None]] = set()

    async def authenticate(self, key: str) -> ClientInfo | None:
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        digest = key_hash(self._ctx, key)
        hit = self._cache.get(digest)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            if hit[2] is None or self._ctx.clock.now() < hit[2]:
                self._touch(hit[1].id)
                return hit[1]
        reading = self._reading.get(digest)
        if reading is None:
            # The read is a task of its own: a waiting request that is cancelled (client
            # gone) does not cancel it for the others.
            reading = self._reading[digest] = asyncio.get_running_loop().create_task(
                self._read(digest, legacy_key_hash(self._ctx, key))
            )
            reading.add_done_callback(lambda t: self._finished(digest, t))
        found = await asyncio.shield(reading)
        if found is None or (found[1] is not None and self._ctx.clock.now() >= found[1]):
            return None
        self._touch(found[0].id)
        return found[0]

    def _finished(
        self, digest: str, task: asyncio.Task[tuple[ClientInfo, datetime | None] | None]
    ) -> None:
        if self._reading.get(digest) is task:
            del self._reading[digest]
        if not task.cancelled():
            task.exception()  # retrieved here; every waiter re-raises it

    async def _read(self, digest: str, legacy: str) -> tuple[ClientInfo, datetime | None] | None:
        now = time.monotonic()
        c = clients.c
        async with self._ctx.transaction() as conn:
            rows = (
                await conn.execute(
                    select(clients).where(
                        or_(
                            c.key_hash.in_((digest, legacy)),
                            c.previous_key_hash.in_((digest, legacy)),
                        )
                    )
                )
            ).all()
            # Constant-time comparison of the stored digest, on top of the indexed lookup.
            row = _matching(list(rows), digest, legacy)
            previous = None if row is not None else _matching_previous(list(rows), digest, legacy)
            if row is not None and not row.revoked_at and row.key_hash_version == LEGACY_HASH:
                await _rehash(conn, row.id, legacy, digest)
        found = row if row is not None else previous
        if found is None or found.revoked_at:
            self._cache.pop(digest, None)
            return None
        info = info_of(found)
        until = info.previous_key_until if previous is not None else None
        if previous is not None and (until is None or self._ctx.clock.now() >= until):
            self._cache.pop(digest, None)
            return None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now, info, until)
        return info, until

    def _touch(self, client_id: str) -> None:
        """Record the client's use in the background, at most once a minute (per node)."""
        now = time.monotonic()
        last = self._touched.get(client_id)
        if last is not None and now - last < LAST_USED_EVERY:
            return
        if len(self._touched) > 10_000:
            self._touched.clear()
        self._touched[client_id] = now
        task = asyncio.get_running_loop().create_task(
            mark_used(self._ctx, client_id, self._ctx.clock.now())
        )
        self._touching.add(task)
        task.add_done_callback(self._touched_done)

    def _touched_done(self, task: asyncio.Task[None]) -> None:
        self._touching.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # A failed write of the last use loses nothing but a timestamp.
            log.warning("client_last_used_not_written", error=type(task.exception()).__name__)

    async def drain(self) -> None:
        """Wait for the pending last-use writes (shutdown, tests)."""
        while self._touching:
            await asyncio.gather(*list(self._touching), return_exceptions=True)


#: Seconds between two writes of a client's last use by one node.
LAST_USED_EVERY = 60.0


async def mark_used(ctx: VaultContext, client_id: str, at: datetime) -> None:
    """Set the client's last use to `at` (never backwards)."""
    c = clients.c
    async with ctx.transaction() as conn:
        await conn.execute(
            update(clients)
            .where(c.id == client_id)
            .where(or_(c.last_used_at.is_(None), c.last_used_at < at))
            .values(last_used_at=at)
        )


async def _rehash(conn: AsyncConnection, client_id: str, legacy: str, digest: str) -> None:
    """Store a legacy-hashed key under the derived key, now that its holder has shown it.
    Conditional on the old hash, so a node that re-hashed it first is left alone."""
    done = await conn.execute(
        update(clients)
        .where(clients.c.id == client_id, clients.c.key_hash == legacy)
        .values(key_hash=digest, key_hash_version=CURRENT_HASH)
    )
    if done.rowcount:
        log.info("api key re-hashed under the derived key", client_id=client_id)


async def active_client(ctx: VaultContext, client_id: str) -> ClientInfo | None:
    """The client with this id unless it was revoked: a DPO console session stays valid only
    while its client does (and still has the role it signed in with)."""
    async with ctx.transaction() as conn:
        row = (await conn.execute(select(clients).where(clients.c.id == client_id))).first()
    if row is None or row.revoked_at is not None:
        return None
    return info_of(row)


#: The reason of a refusal for a missing role in the audit trail.
ROLE_NOT_ALLOWED = "role_not_allowed"


async def record_console_sign_in(
    ctx: VaultContext, client: ClientInfo, request_id: str | None, expires_at: datetime | None
) -> None:
    """Put a DPO console sign-in with a valid key on record: allowed (with the session's
    expiry) for a DPO, denied `role_not_allowed` for any other role. Raises if the event
    cannot be written, so no session is issued without it."""
    allowed = client.role is Role.DPO
    async with ctx.transaction() as conn:
        await audit.record(
            conn,
            at=ctx.clock.now(),
            actor=Actor(client.actor_type, client.name, request_id),
            action=AuditAction.DPO_SESSION_START,
            decision=Decision.ALLOW if allowed else Decision.DENY,
            reason=None if allowed else ROLE_NOT_ALLOWED,
            detail={"expires_at": expires_at.isoformat()} if allowed and expires_at else None,
        )


async def record_console_sign_out(ctx: VaultContext, actor: Actor) -> None:
    """Put the end of a DPO console session on record."""
    async with ctx.transaction() as conn:
        await audit.record(
            conn,
            at=ctx.clock.now(),
            actor=actor,
            action=AuditAction.DPO_SESSION_END,
            decision=Decision.ALLOW,
        )


async def record_role_denial(
    ctx: VaultContext,
    client: ClientInfo,
    request_id: str | None,
    subject_id: str | None,
    detail: dict[str, object],
) -> None:
    """Put a refusal for a missing role on record before the 403 leaves (`detail` names the
    method, route template, operation and role, never the raw path). Fail closed: raises
    `Unavailable` if the event cannot be written, so the refusal is a 503, not an unrecorded
    403. Goes through the group commit where the hot paths share one."""
    row = audit.event_row(
        at=ctx.clock.now(),
        actor=Actor(type=client.actor_type, id=client.name, request_id=request_id),
        action=AuditAction.ACCESS_DENIED,
        decision=Decision.DENY,
        subject_id=subject_id,
        reason=ROLE_NOT_ALLOWED,
        detail=detail,
    )
    await ctx.audit_batcher.append(row)
