"""Server-side browser sessions (`web_sessions`): the row mechanics both surfaces share.

The privacy centre (`vault.rights.selfservice`, kind "privacy", a subject) and the DPO
console (`vault.admin.console_sessions`, kind "console", an API client) keep their sessions
here; each owning area audits its own sign-in and sign-out. The cookie carries a random id
of 256 bits; the table stores only its HMAC under a key derived for sessions (the owning area
computes it), so a leaked table opens no session and nothing in the database, a log or the
trail can be turned back into a cookie.

A session is live while it is not ended, its absolute expiry (`expires_at`) is ahead and it
was seen within the idle timeout (`last_seen_at`). Every request reads the one row by its
primary key; `last_seen_at` is written at most once per `TOUCH_EVERY`, so a page view is
not a write each time (the idle timeout may thus end a session up to `TOUCH_EVERY` early).
An ending (sign-out, revocation, an erasure, an identity change) is a row update, so it
holds on every node with the next request.

Infrastructure: the kernel only, like the rest of `storage`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, insert, or_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.clock import as_utc
from vault.storage.rights_tables import console_signins, web_sessions

#: How often a live session's `last_seen_at` is written (at most).
TOUCH_EVERY = timedelta(seconds=30)
#: The window console sign-in attempts count in (`vault.admin.console_sessions`).
SIGNIN_WINDOW = timedelta(minutes=15)
#: A cookie value longer than this is no session id (nothing is hashed for it).
TOKEN_MAX = 128


class Kind(StrEnum):
    PRIVACY = "privacy"
    CONSOLE = "console"


class Ended(StrEnum):
    """Why a session ended (`web_sessions.ended_why`)."""

    SIGNED_OUT = "signed_out"
    IDLE = "idle"
    EXPIRED = "expired"
    REVOKED = "revoked"
    ERASED = "erased"
    IDENTITY_CHANGED = "identity_changed"


def new_token() -> str:
    """A fresh session id for the cookie (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def well_formed(token: str | None) -> bool:
    """Whether a cookie value could be a session id at all (bounded, non-empty)."""
    return bool(token) and len(token or "") <= TOKEN_MAX


@dataclass(frozen=True, slots=True)
class Lifetime:
    """How long a session of one kind may live: since its last request, and at all."""

    idle: timedelta
    absolute: timedelta


async def open_in(
    conn: AsyncConnection,
    *,
    digest: str,
    kind: Kind,
    now: datetime,
    lifetime: Lifetime,
    subject_id: str | None = None,
    client_id: str | None = None,
    account: str | None = None,
    channel: str | None = None,
    role: str | None = None,
) -> datetime:
    """Insert a live session; returns its absolute expiry."""
    expires = now + lifetime.absolute
    await conn.execute(
        insert(web_sessions).values(
            token_hash=digest,
            kind=kind.value,
            subject_id=subject_id,
            client_id=client_id,
            account=account,
            created_at=now,
            last_seen_at=now,
            expires_at=expires,
            ended_at=None,
            ended_why=None,
            channel=channel,
            role=role,
        )
    )
    return expires


def lapsed(row: Any, now: datetime, lifetime: Lifetime) -> Ended | None:
    """Why a read session row is no longer live (None while it is): ended, past its
    absolute expiry, or idle too long."""
    if row.ended_at is not None:
        try:
            return Ended(row.ended_why)
        except ValueError:  # an older row, ended before reasons were kept
            return Ended.SIGNED_OUT
    if as_utc(row.expires_at) <= now:
        return Ended.EXPIRED
    if as_utc(row.last_seen_at) + lifetime.idle <= now:
        return Ended.IDLE
    return None


async def touch_in(conn: AsyncConnection, digest: str, last_seen: datetime, now: datetime) -> None:
    """Record activity, at most once per `TOUCH_EVERY` (a page view is mostly a pure read)."""
    if as_utc(last_seen) + TOUCH_EVERY <= now:
        await conn.execute(
            update(web_sessions)
            .where(web_sessions.c.token_hash == digest)
            .where(web_sessions.c.ended_at.is_(None))
            .values(last_seen_at=now)
        )


async def end_in(conn: AsyncConnection, digest: str, now: datetime, why: Ended) -> Any:
    """End one session if it is not ended yet; returns its row (subject, client) or None."""
    return (
        await conn.execute(
            update(web_sessions)
            .where(web_sessions.c.token_hash == digest)
            .where(web_sessions.c.ended_at.is_(None))
            .values(ended_at=now, ended_why=why.value)
            .returning(web_sessions.c.kind, web_sessions.c.subject_id, web_sessions.c.client_id)
        )
    ).first()


async def end_subject_sessions_in(
    conn: AsyncConnection, subject_id: str, now: datetime, why: Ended
) -> int:
    """End every live privacy-centre session of a subject; returns how many."""
    result = await conn.execute(
        update(web_sessions)
        .where(web_sessions.c.subject_id == subject_id)
        .where(web_sessions.c.ended_at.is_(None))
        .values(ended_at=now, ended_why=why.value)
    )
    return int(result.rowcount or 0)


async def end_client_sessions_in(
    conn: AsyncConnection, client_id: str, now: datetime, why: Ended
) -> int:
    """End every live console session of an API client; returns how many."""
    result = await conn.execute(
        update(web_sessions)
        .where(web_sessions.c.client_id == client_id)
        .where(web_sessions.c.ended_at.is_(None))
        .values(ended_at=now, ended_why=why.value)
    )
    return int(result.rowcount or 0)


async def purge_in(conn: AsyncConnection, now: datetime, idle: timedelta) -> int:
    """Delete the sessions of either kind that ended, expired or went idle (data
    minimisation; their start and end are on the audit trail), and the console sign-in
    attempts that no longer count for a limit. Returns how many sessions went."""
    await conn.execute(delete(console_signins).where(console_signins.c.at <= now - SIGNIN_WINDOW))
    result = await conn.execute(
        delete(web_sessions).where(
            or_(
                web_sessions.c.ended_at.is_not(None),
                web_sessions.c.expires_at <= now,
                web_sessions.c.last_seen_at <= now - idle,
            )
        )
    )
    return int(result.rowcount or 0)
