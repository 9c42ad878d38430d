"""API clients: internal systems and people, each with one role and an API key.

Keys are 256-bit random strings shown once; the database holds only HMAC-SHA256 of the key
under a key derived from the server secret for this use alone (`KeyLabel.API_KEY_HASH`), so
a leaked table cannot be used to authenticate, and verification is one HMAC plus an indexed
lookup (a password KDF would be slow on every request, and a 256-bit random key needs none).

Hashes stored before the derivation (migration 0015 marks them `key_hash_version` 1) were
made under the raw server secret. They cannot be recomputed, since the keys are not stored,
so a key is looked up under both hashes and its row re-hashed under the derived key on its
first successful use (`vault.admin.authentication`, the per-request check).
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.crypto import KeyLabel
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
