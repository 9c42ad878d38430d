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
from sqlalchemy import insert, or_, select, update
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
DISPLAY_NAME_MAX = 100


class Role(StrEnum):
    WRITER = "writer"
    LOOKUP = "lookup"
    DPO = "dpo"
    ADMIN = "admin"
    #: Plans campaigns and reads their forecasts: counts only, never a contact value or a
    #: subject-level row (issue 21).
    MARKETING = "marketing"


@dataclass(frozen=True, slots=True)
class Quota:
    """A client's optional limits: `rate` requests per `window` seconds, `daily_lookups`
    lookups per UTC day (a batch counts each item). None: no such limit."""

    rate: int | None = None
    window: int | None = None
    daily_lookups: int | None = None


@dataclass(frozen=True, slots=True)
class ClientInfo:
    id: str
    name: str
    role: Role
    purposes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None
    quota: Quota = Quota()
    #: When the current key was issued; the last authenticated use (to the minute).
    key_created_at: datetime | None = None
    last_used_at: datetime | None = None
    #: Until when the key replaced by the last rotation stays valid.
    previous_key_until: datetime | None = None
    #: What customers read for this client (the privacy centre's access log), if set.
    display_name: str | None = None

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


def _matching_previous(rows: list[Any], digest: str, legacy: str) -> Any:
    """The row whose key replaced by `rotate-key` is this one (its hash was taken over as
    it was stored: under the derived key, or the legacy one if the key was not used since
    the upgrade to 0015)."""
    for row in rows:
        held = row.previous_key_hash
        if held is not None and (same_digest(held, digest) or same_digest(held, legacy)):
            return row
    return None


def info_of(row: Any) -> ClientInfo:
    return ClientInfo(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        purposes=frozenset(json.loads(row.purposes)),
        created_at=as_utc(row.created_at),
        revoked_at=as_utc(row.revoked_at),
        quota=Quota(row.rate_limit, row.rate_window, row.daily_lookups),
        key_created_at=as_utc(row.key_created_at) or as_utc(row.created_at),
        last_used_at=as_utc(row.last_used_at),
        previous_key_until=as_utc(row.previous_key_until),
        display_name=row.display_name,
    )


def checked_display_name(value: str | None) -> str | None:
    """A display name as stored: trimmed, 1 to 100 printable characters; empty means none."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > DISPLAY_NAME_MAX or not value.isprintable():
        raise InvalidInput(
            "bad display name",
            {"display_name": f"at most {DISPLAY_NAME_MAX} printable characters"},
        )
    return value


async def create_client(
    ctx: VaultContext,
    actor: Actor,
    name: str,
    role: str,
    purposes: list[str],
    quota: Quota = Quota(),
    display_name: str | None = None,
) -> tuple[ClientInfo, str]:
    """Create a client (with optional quotas and the name customers read for it); returns
    it and its API key (which is never stored or shown again)."""
    if not _NAME_RE.match(name):
        raise InvalidInput("bad client name", {"name": "lower-case letters, digits, . _ -"})
    display_name = checked_display_name(display_name)
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
                    key_created_at=now,
                    rate_limit=quota.rate,
                    rate_window=quota.window,
                    daily_lookups=quota.daily_lookups,
                    display_name=display_name,
                )
            )
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=AuditAction.CLIENT_CREATE,
                decision=Decision.ALLOW,
                detail={
                    "client": name,
                    "role": role_.value,
                    "purposes": sorted(set(purposes)),
                    **(
                        {"rate": f"{quota.rate}/{quota.window}s"}
                        if quota.rate and quota.window
                        else {}
                    ),
                    **({"daily_lookups": quota.daily_lookups} if quota.daily_lookups else {}),
                    **({"display_name": display_name} if display_name else {}),
                },
            )
    except Unavailable as exc:
        if isinstance(exc.__cause__, IntegrityError) and "name" in str(exc.__cause__.orig):
            raise Conflict(f"a client named {name} already exists") from None
        raise
    info = ClientInfo(
        client_id,
        name,
        role_,
        frozenset(purposes),
        now,
        None,
        quota,
        key_created_at=now,
        display_name=display_name,
    )
    return info, key


async def list_clients(ctx: VaultContext) -> list[ClientInfo]:
    async with ctx.transaction() as conn:
        rows = (await conn.execute(select(clients).order_by(clients.c.name))).all()
    return [info_of(r) for r in rows]


async def set_display_name(
    ctx: VaultContext, actor: Actor, name: str, display_name: str | None
) -> str | None:
    """Set (or, with None or "", clear) the name customers read for a client; audited.
    Returns the stored display name."""
    stored = checked_display_name(display_name)
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        result = await conn.execute(
            update(clients).where(clients.c.name == name).values(display_name=stored)
        )
        if result.rowcount != 1:
            raise NotFound(f"no client named {name}")
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.CLIENT_UPDATE,
            decision=Decision.ALLOW,
            detail={"client": name, "display_name": stored},
        )
    return stored


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
