"""Recipients, their subscriptions and their signing secrets (managed by `admin`).

A recipient is an API client (its lookups in the audit trail say what it received; named
by the client's name) or an external recipient a DPO registers (a letter shop fed by
exports). Each has subscriptions: event types, for a purpose or every purpose (`*`), with
a scope: `received` tells it only about subjects whose data it received (data
minimisation); `all` (external recipients only: Tresor sees no lookup of theirs) about
every event of the type.

A webhook recipient's secret is a 256-bit HMAC key wrapped by the KEK like a DEK, shown
once (`whsec_...`) and never logged. A rotation adds a new key and keeps the previous one
valid for an overlap, during which every notice carries both signatures.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.errors import Conflict, InvalidInput, NotFound
from vault.recipients import signing
from vault.recipients.events import EventType
from vault.recipients.urls import validate_webhook_url
from vault.storage.recipient_tables import (
    recipient_secrets,
    recipient_subscriptions,
    recipients,
)
from vault.storage.tables import clients

if TYPE_CHECKING:
    from vault.context import VaultContext

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_NATS_PREFIX_RE = re.compile(r"^[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*$")
KINDS = ("client", "external")
TRANSPORTS = ("webhook", "nats")
SCOPES = ("received", "all")
ANY_PURPOSE = "*"
#: How long the previous secret stays valid after a rotation, unless told otherwise.
DEFAULT_OVERLAP = timedelta(hours=24)


def secret_key_id(secret_id: str) -> str:
    """The identity a recipient secret is wrapped under (the KEK binds it): never a subject
    id, so it cannot unwrap as a DEK or the other way round."""
    return f"recipient-secret:{secret_id}"


@dataclass(frozen=True, slots=True)
class Subscription:
    event_type: str
    purpose: str = ANY_PURPOSE
    scope: str = "received"


@dataclass(frozen=True, slots=True)
class RecipientInfo:
    id: str
    name: str
    kind: str
    client_name: str | None
    transport: str
    target: str
    paused_at: datetime | None
    created_at: datetime
    subscriptions: tuple[Subscription, ...]


def _every_type() -> list[Subscription]:
    return [Subscription(str(t)) for t in EventType]


def _check_subscriptions(
    ctx: VaultContext, kind: str, subs: Iterable[Subscription], *, stored: bool = False
) -> list[Subscription]:
    """The subscriptions, each once; `InvalidInput` for one the request itself gets wrong.
    Scope `all` for a client recipient depends on the kind: named in the same request it is
    invalid input, for a `stored` recipient a conflict with the stored state (a 409: the
    request alone is not wrong, and its document cannot know the kind)."""
    out: list[Subscription] = []
    for sub in subs:
        if sub.event_type not in {str(t) for t in EventType}:
            raise InvalidInput(
                "unknown event type",
                {"event_type": f"{sub.event_type!r} is not one of {sorted(map(str, EventType))}"},
            )
        if sub.purpose != ANY_PURPOSE and ctx.catalogue.get(sub.purpose) is None:
            raise InvalidInput("unknown purpose", {"purpose": "is not in the purpose catalogue"})
        if sub.scope not in SCOPES:
            raise InvalidInput("bad scope", {"scope": "must be received or all"})
        if sub.scope == "all" and kind != "external":
            # A client's lookups say what it received: it is told about those subjects only.
            if stored:
                raise Conflict(
                    "scope all is for external recipients; this one is a client recipient"
                )
            raise InvalidInput(
                "scope all is for external recipients",
                {"scope": "a client recipient is told only about subjects it received"},
            )
        if sub not in out:
            out.append(sub)
    return out


def _check_target(ctx: VaultContext, transport: str, target: str) -> str:
    if transport == "webhook":
        return validate_webhook_url(target, allow_private=ctx.settings.webhook_allow_private)
    if transport == "nats":
        if not _NATS_PREFIX_RE.match(target) or len(target) > 100:
            raise InvalidInput(
                "bad NATS subject prefix", {"target": "dot-separated tokens of [A-Za-z0-9_-]"}
            )
        return target
    raise InvalidInput("bad transport", {"transport": "must be webhook or nats"})


async def _new_secret(
    ctx: VaultContext, conn: AsyncConnection, recipient_id: str, now: datetime
) -> str:
    secret_id = str(uuid.uuid4())
    key = signing.new_key()
    version, wrapped = ctx.kek.wrap(secret_key_id(secret_id), key)
    await conn.execute(
        insert(recipient_secrets).values(
            id=secret_id,
            recipient_id=recipient_id,
            kek_version=version,
            wrapped_key=wrapped,
            created_at=now,
            valid_until=None,
        )
    )
    return signing.encode_secret(key)


async def create_recipient(
    ctx: VaultContext,
    actor: Actor,
    *,
    name: str,
    kind: str,
    transport: str,
    target: str,
    subscriptions: Sequence[Subscription] | None = None,
) -> tuple[RecipientInfo, str | None]:
    """Register a recipient; returns it and, for a webhook, its secret (shown only here).

    A `client` recipient is named by its API client's name, which must exist."""
    if not _NAME_RE.match(name):
        raise InvalidInput("bad recipient name", {"name": "lower-case letters, digits, . _ -"})
    if kind not in KINDS:
        raise InvalidInput("bad kind", {"kind": "must be client or external"})
    target = _check_target(ctx, transport, target)
    subs = _check_subscriptions(ctx, kind, subscriptions if subscriptions else _every_type())
    now = ctx.clock.now()
    recipient_id = str(uuid.uuid4())
    secret: str | None = None
    async with ctx.transaction() as conn:
        if kind == "client":
            known = (await conn.execute(select(clients.c.id).where(clients.c.name == name))).first()
            if known is None:
                raise NotFound("no API client of that name")
        taken = (
            await conn.execute(select(recipients.c.id).where(recipients.c.name == name))
        ).first()
        if taken is not None:
            raise Conflict("a recipient of that name exists")
        await conn.execute(
            insert(recipients).values(
                id=recipient_id,
                name=name,
                kind=kind,
                client_name=name if kind == "client" else None,
                transport=transport,
                target=target,
                paused_at=None,
                created_at=now,
            )
        )
        await _write_subscriptions(conn, recipient_id, subs)
        if transport == "webhook":
            secret = await _new_secret(ctx, conn, recipient_id, now)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.RECIPIENT_CREATE,
            decision=Decision.ALLOW,
            detail={"recipient": name, "kind": kind, "transport": transport},
        )
    info = await get_recipient(ctx, name)
    return info, secret


async def _write_subscriptions(
    conn: AsyncConnection, recipient_id: str, subs: Sequence[Subscription]
) -> None:
    await conn.execute(
        delete(recipient_subscriptions).where(
            recipient_subscriptions.c.recipient_id == recipient_id
        )
    )
    for sub in subs:
        await conn.execute(
            insert(recipient_subscriptions).values(
                recipient_id=recipient_id,
                event_type=sub.event_type,
                purpose=sub.purpose,
                scope=sub.scope,
            )
        )


async def recipient_row(conn: AsyncConnection, name: str, *, lock: bool = False) -> Any:
    stmt = select(recipients).where(recipients.c.name == name)
    if lock:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound("no recipient of that name")
    return row


async def _info(conn: AsyncConnection, row: Any) -> RecipientInfo:
    subs = (
        await conn.execute(
            select(recipient_subscriptions)
            .where(recipient_subscriptions.c.recipient_id == row.id)
            .order_by(recipient_subscriptions.c.id)
        )
    ).all()
    return RecipientInfo(
        id=row.id,
        name=row.name,
        kind=row.kind,
        client_name=row.client_name,
        transport=row.transport,
        target=row.target,
        paused_at=as_utc(row.paused_at),
        created_at=as_utc(row.created_at),
        subscriptions=tuple(Subscription(s.event_type, s.purpose, s.scope) for s in subs),
    )


async def get_recipient(ctx: VaultContext, name: str) -> RecipientInfo:
    async with ctx.engine.connect() as conn:
        return await _info(conn, await recipient_row(conn, name))


async def list_recipients(ctx: VaultContext) -> list[RecipientInfo]:
    async with ctx.engine.connect() as conn:
        rows = (await conn.execute(select(recipients).order_by(recipients.c.name))).all()
        return [await _info(conn, r) for r in rows]


async def set_subscriptions(
    ctx: VaultContext, actor: Actor, name: str, subscriptions: Sequence[Subscription]
) -> RecipientInfo:
    """Replace the recipient's subscriptions (unknown event types or purposes: nothing
    changes)."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = await recipient_row(conn, name, lock=True)
        subs = _check_subscriptions(ctx, row.kind, subscriptions, stored=True)
        await _write_subscriptions(conn, row.id, subs)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.RECIPIENT_SUBSCRIBE,
            decision=Decision.ALLOW,
            detail={"recipient": name, "subscriptions": len(subs)},
        )
    return await get_recipient(ctx, name)


async def set_paused(ctx: VaultContext, actor: Actor, name: str, paused: bool) -> RecipientInfo:
    """Pause (no delivery is attempted; notices wait) or resume a recipient."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = await recipient_row(conn, name, lock=True)
        await conn.execute(
            update(recipients)
            .where(recipients.c.id == row.id)
            .values(paused_at=now if paused else None)
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.RECIPIENT_PAUSE if paused else AuditAction.RECIPIENT_RESUME,
            decision=Decision.ALLOW,
            detail={"recipient": name},
        )
    return await get_recipient(ctx, name)


async def rotate_secret(
    ctx: VaultContext, actor: Actor, name: str, *, overlap: timedelta = DEFAULT_OVERLAP
) -> str:
    """A new signing secret (returned, shown only here); the current one stays valid for
    `overlap`, older ones end now. Every notice in between carries both signatures."""
    if overlap < timedelta(0) or overlap > timedelta(days=30):
        raise InvalidInput("bad overlap", {"overlap": "0 to 30 days"})
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = await recipient_row(conn, name, lock=True)
        if row.transport != "webhook":
            raise Conflict("only a webhook recipient has a signing secret")
        live = or_(recipient_secrets.c.valid_until.is_(None), recipient_secrets.c.valid_until > now)
        await conn.execute(
            update(recipient_secrets)
            .where(recipient_secrets.c.recipient_id == row.id)
            .where(recipient_secrets.c.valid_until.is_not(None))
            .where(live)
            .values(valid_until=now)
        )
        await conn.execute(
            update(recipient_secrets)
            .where(recipient_secrets.c.recipient_id == row.id)
            .where(recipient_secrets.c.valid_until.is_(None))
            .values(valid_until=now + overlap)
        )
        # Secrets that no longer sign are shredded: nothing can sign with them again, and
        # their KEK version can retire.
        await conn.execute(
            update(recipient_secrets)
            .where(recipient_secrets.c.recipient_id == row.id)
            .where(recipient_secrets.c.valid_until <= now)
            .values(wrapped_key=None, kek_version=None)
        )
        secret = await _new_secret(ctx, conn, row.id, now)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.RECIPIENT_ROTATE,
            decision=Decision.ALLOW,
            detail={"recipient": name, "overlap_seconds": int(overlap.total_seconds())},
        )
    return secret
