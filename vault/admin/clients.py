"""API clients: internal systems and people, each with one role and an API key.

Keys are 256-bit random strings shown once; the database holds only HMAC-SHA256 of the key
under a key derived from the server secret for this use alone (`KeyLabel.API_KEY_HASH`), so
a leaked table cannot be used to authenticate, and verification is one HMAC plus an indexed
lookup (a password KDF would be slow on every request, and a 256-bit random key needs none).

Hashes stored before the derivation (migration 0015 marks them `key_hash_version` 1) were
made under the raw server secret. They cannot be recomputed, since the keys are not stored,
so a key is looked up under both hashes and its row re-hashed under the derived key on its
first successful use.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.crypto import KeyLabel, same_digest
from vault.errors import Conflict, InvalidInput, NotFound, Unavailable
from vault.storage.tables import clients

if TYPE_CHECKING:
    from vault.context import VaultContext

KEY_PREFIX = "tresor_"
#: `clients.key_hash_version`: 1 under the raw server secret (before 0015), 2 under the
#: derived `KeyLabel.API_KEY_HASH` key.
LEGACY_HASH = 1
CURRENT_HASH = 2
log = structlog.get_logger("tresor.admin")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


class Role(StrEnum):
    WRITER = "writer"
    LOOKUP = "lookup"
    DPO = "dpo"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class ClientInfo:
    id: str
    name: str
    role: Role
    purposes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def actor_type(self) -> str:
        return "dpo" if self.role is Role.DPO else "client"


def key_hash(ctx: VaultContext, key: str) -> str:
    """The stored form of an API key (`CURRENT_HASH`)."""
    return ctx.keys.mac(KeyLabel.API_KEY_HASH).digest(key.encode())


def legacy_key_hash(ctx: VaultContext, key: str) -> str:
    """The form a key was stored in before 0015 (`LEGACY_HASH`): only to recognise it."""
    return ctx.keys.legacy_mac().digest(key.encode())


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


def _info(row: Any) -> ClientInfo:
    return ClientInfo(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        purposes=frozenset(json.loads(row.purposes)),
        created_at=as_utc(row.created_at),
        revoked_at=as_utc(row.revoked_at),
    )


async def create_client(
    ctx: VaultContext, actor: Actor, name: str, role: str, purposes: list[str]
) -> tuple[ClientInfo, str]:
    """Create a client; returns it and its API key (which is never stored or shown again)."""
    if not _NAME_RE.match(name):
        raise InvalidInput("bad client name", {"name": "lower-case letters, digits, . _ -"})
    try:
        role_ = Role(role)
    except ValueError:
        raise InvalidInput(
            "bad role", {"role": "one of " + ", ".join(r.value for r in Role)}
        ) from None
    unknown = [p for p in purposes if p not in ctx.catalogue]
    if unknown:
        raise InvalidInput(
            "unknown purpose", {"purpose": "not in catalogue: " + ", ".join(unknown)}
        )
    if role_ is Role.LOOKUP and not purposes:
        raise InvalidInput(
            "a lookup client needs at least one purpose", {"purpose": "name one with --purpose"}
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    now = ctx.clock.now()
    client_id = str(uuid.uuid4())
    try:
        async with ctx.transaction() as conn:
            await conn.execute(
                insert(clients).values(
                    id=client_id,
                    name=name,
                    role=role_.value,
                    purposes=json.dumps(sorted(set(purposes))),
                    key_hash=key_hash(ctx, key),
                    key_hash_version=CURRENT_HASH,
                    created_at=now,
                )
            )
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=AuditAction.CLIENT_CREATE,
                decision=Decision.ALLOW,
                detail={"client": name, "role": role_.value, "purposes": sorted(set(purposes))},
            )
    except Unavailable as exc:
        if isinstance(exc.__cause__, IntegrityError) and "name" in str(exc.__cause__.orig):
            raise Conflict(f"a client named {name} already exists") from None
        raise
    info = ClientInfo(client_id, name, role_, frozenset(purposes), now, None)
    return info, key


async def list_clients(ctx: VaultContext) -> list[ClientInfo]:
    async with ctx.transaction() as conn:
        rows = (await conn.execute(select(clients).order_by(clients.c.name))).all()
    return [_info(r) for r in rows]


async def revoke_client(ctx: VaultContext, actor: Actor, name: str) -> None:
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        result = await conn.execute(
            update(clients)
            .where(clients.c.name == name)
            .where(clients.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        if result.rowcount != 1:
            raise NotFound(f"no active client named {name}")
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.CLIENT_REVOKE,
            decision=Decision.ALLOW,
            detail={"client": name},
        )


class ClientAuthenticator:
    """Verifies bearer keys with a short-lived cache of verified clients.

    The cache only saves the client-row read: entries expire after `ttl` seconds, which
    bounds how long a revoked key keeps working on a node that verified it just before.
    When an entry expires under load, the concurrent requests with that key share one read
    (a single flight) instead of each opening a transaction of its own.
    """

    def __init__(self, ctx: VaultContext, ttl: float) -> None:
        self._ctx = ctx
        self._ttl = ttl
        self._cache: dict[str, tuple[float, ClientInfo]] = {}
        self._reading: dict[str, asyncio.Task[ClientInfo | None]] = {}

    async def authenticate(self, key: str) -> ClientInfo | None:
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        digest = key_hash(self._ctx, key)
        hit = self._cache.get(digest)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        reading = self._reading.get(digest)
        if reading is None:
            # The read is a task of its own: a waiting request that is cancelled (client
            # gone) does not cancel it for the others.
            reading = self._reading[digest] = asyncio.get_running_loop().create_task(
                self._read(digest, legacy_key_hash(self._ctx, key))
            )
            reading.add_done_callback(lambda t: self._finished(digest, t))
        return await asyncio.shield(reading)

    def _finished(self, digest: str, task: asyncio.Task[ClientInfo | None]) -> None:
        if self._reading.get(digest) is task:
            del self._reading[digest]
        if not task.cancelled():
            task.exception()  # retrieved here; every waiter re-raises it

    async def _read(self, digest: str, legacy: str) -> ClientInfo | None:
        now = time.monotonic()
        async with self._ctx.transaction() as conn:
            rows = (
                await conn.execute(select(clients).where(clients.c.key_hash.in_((digest, legacy))))
            ).all()
            # Constant-time comparison of the stored digest, on top of the indexed lookup.
            row = _matching(list(rows), digest, legacy)
            if row is None or row.revoked_at:
                self._cache.pop(digest, None)
                return None
            if row.key_hash_version == LEGACY_HASH:
                await _rehash(conn, row.id, legacy, digest)
        info = _info(row)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now, info)
        return info


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
    return _info(row)


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
