"""Key hygiene: rotating a client's key with a grace period, and finding unused keys.

A rotation must not break the client mid-deployment: the new key is shown once, and the
old one keeps working until the grace period ends, so the client's secret store can be
updated at leisure. The old key is then refused everywhere (by the injected clock, also
from a node's cache). Only HMACs of keys are stored, as for `create_client`.

`clients list` shows when each key was issued and last used; `unused_clients` lists the
active clients whose key has not been used for a number of days (never-used keys count
from their issue), for clean-up by revoking them.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from vault.admin.clients import CURRENT_HASH, KEY_PREFIX, ClientInfo, info_of, key_hash
from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.errors import InvalidInput, NotFound
from vault.storage.tables import clients

if TYPE_CHECKING:
    from vault.context import VaultContext

#: The longest grace a rotated key may keep: a forgotten old key is what rotation removes.
MAX_GRACE = timedelta(days=90)


async def rotate_key(
    ctx: VaultContext, actor: Actor, name: str, grace: timedelta
) -> tuple[ClientInfo, str]:
    """Issue a new key for the active client `name`; the current key stays valid for
    `grace` (0: not at all). A key still in an earlier grace is replaced: only the last
    one is kept. Returns the client and its new key (shown once). Audited."""
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise InvalidInput("bad grace period", {"grace": "between 0 and 90 days"})
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = (
            await conn.execute(
                select(clients)
                .where(clients.c.name == name)
                .where(clients.c.revoked_at.is_(None))
                .with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound(f"no active client named {name}")
        until = now + grace if grace > timedelta(0) else None
        await conn.execute(
            update(clients)
            .where(clients.c.id == row.id)
            .values(
                key_hash=key_hash(ctx, key),
                key_hash_version=CURRENT_HASH,
                key_created_at=now,
                previous_key_hash=row.key_hash if until else None,
                previous_key_until=until,
            )
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.CLIENT_KEY_ROTATE,
            decision=Decision.ALLOW,
            detail={
                "client": name,
                "grace_seconds": int(grace.total_seconds()),
                "previous_valid_until": until.isoformat() if until else None,
            },
        )
        fresh = (await conn.execute(select(clients).where(clients.c.id == row.id))).one()
    return info_of(fresh), key


async def unused_clients(ctx: VaultContext, days: int) -> list[ClientInfo]:
    """Active clients whose key was not used in the last `days` days (a key never used
    counts from when it was issued), oldest use first."""
    if days < 1:
        raise InvalidInput("bad number of days", {"days": "a whole number of days, at least 1"})
    since = ctx.clock.now() - timedelta(days=days)
    async with ctx.transaction() as conn:
        rows = (await conn.execute(select(clients).where(clients.c.revoked_at.is_(None)))).all()
    out = [i for i in map(info_of, rows) if _last_activity(i) < since]
    return sorted(out, key=_last_activity)


def _last_activity(info: ClientInfo) -> datetime:
    used = as_utc(info.last_used_at)
    issued = info.key_created_at or info.created_at
    return max(used, issued) if used else issued


def parse_duration(text: str) -> timedelta:
    """`7d`, `12h`, `30m`, `0`: a grace period for `rotate-key --grace`."""
    text = text.strip().lower()
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    try:
        if text == "0":
            return timedelta(0)
        if not text[:-1].isdigit() or text.startswith("0"):
            raise ValueError(text)
        return timedelta(seconds=int(text[:-1]) * units[text[-1]])
    except (KeyError, ValueError, IndexError):
        raise InvalidInput(
            "bad duration", {"grace": "a number with d, h, m or s, e.g. 7d"}
        ) from None


__all__ = ["MAX_GRACE", "parse_duration", "rotate_key", "unused_clients"]
