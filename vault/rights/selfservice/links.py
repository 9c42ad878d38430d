"""Sign-in links: mailed instead of a code while sign-in by code is locked, so the lock
keeps guessers out without keeping the customer out. A link is single use, short-lived,
stored only as an HMAC and void once the address changes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select, update

from vault.audit import events as audit
from vault.audit.events import AuditAction, Decision
from vault.errors import Unauthenticated
from vault.rights.selfservice.digests import hash_link, hash_session
from vault.rights.selfservice.sessions import SessionToken, session_lifetime, subject_actor
from vault.storage import sessions as web
from vault.storage.rights_tables import self_service_challenges as challenges
from vault.storage.tables import subjects
from vault.subjects.store import SubjectStatus

if TYPE_CHECKING:
    from vault.context import VaultContext


_TOKEN_MAX = 200

_LINK_MESSAGE = "the sign-in link is unknown, has expired or was used already"


def _live_link(ctx: VaultContext, token: str, now: datetime) -> Any:
    """The condition of a link that may still open a session: known, unused, not expired,
    and mailed to a customer (a link row for an unknown address is never usable)."""
    return and_(
        challenges.c.link_hash == hash_link(ctx, token),
        challenges.c.consumed_at.is_(None),
        challenges.c.expires_at > now,
        challenges.c.subject_id.is_not(None),
    )


def _link_shape(token: str) -> bool:
    return isinstance(token, str) and 0 < len(token) <= _TOKEN_MAX


async def link_usable(ctx: VaultContext, token: str) -> bool:
    """Whether the link could open a session now (for its page, which changes nothing)."""
    if not _link_shape(token):
        return False
    async with ctx.transaction() as conn:
        row = (
            await conn.execute(
                select(challenges.c.id).where(_live_link(ctx, token, ctx.clock.now()))
            )
        ).first()
    return row is not None


async def open_link_session(
    ctx: VaultContext, token: str, *, request_id: str | None = None
) -> SessionToken:
    """Exchange a sign-in link (mailed while sign-in by code is locked) for a session.

    The link is consumed by one guarded UPDATE, so of two parallel uses one wins; an
    unknown, expired, used or voided link (a change of the e-mail address voids it, as it
    voids codes) and an erased customer all raise the same `Unauthenticated`. Audited like
    a code sign-in (`subject:session:verify`, detail `kind=link`). The session is an
    ordinary one: restricted through an unconfirmed new address (`session_info`). The
    lock on codes stays: it is the guesser's, and the customer no longer depends on it;
    clearing it would hand the guesser a fresh count at the lowest level."""
    now = ctx.clock.now()
    session_token = web.new_token()
    session_expires = now
    opened: str | None = None
    named: str | None = None
    async with ctx.transaction() as conn:
        row = None
        if _link_shape(token):
            row = (
                await conn.execute(
                    update(challenges)
                    .where(_live_link(ctx, token, now))
                    .values(consumed_at=now)
                    .returning(challenges.c.subject_id)
                )
            ).first()
            if row is None:  # name the customer of a used or expired link in the trail
                named = (
                    await conn.execute(
                        select(challenges.c.subject_id).where(
                            challenges.c.link_hash == hash_link(ctx, token)
                        )
                    )
                ).scalar_one_or_none()
        if row is not None:
            named = row.subject_id
            status = (
                await conn.execute(select(subjects.c.status).where(subjects.c.id == named))
            ).scalar_one_or_none()
            if status not in (None, SubjectStatus.ERASED):
                opened = named
        if opened is not None:
            # One sign-in voids the other codes and links mailed for the customer.
            await conn.execute(
                update(challenges)
                .where(challenges.c.subject_id == opened)
                .where(challenges.c.consumed_at.is_(None))
                .values(consumed_at=now)
            )
            session_expires = await web.open_in(
                conn,
                digest=hash_session(ctx, session_token),
                kind=web.Kind.PRIVACY,
                now=now,
                lifetime=session_lifetime(ctx.settings),
                subject_id=opened,
                channel="link",
            )
        await audit.record(
            conn,
            at=now,
            actor=subject_actor(request_id),
            action=AuditAction.SELF_SESSION_VERIFY,
            decision=Decision.ALLOW if opened else Decision.DENY,
            subject_id=named,
            reason=None if opened else "invalid_link",
            detail={"kind": "link"},
        )
    if opened is None:
        raise Unauthenticated(_LINK_MESSAGE, "invalid_link")
    return SessionToken(token=session_token, subject_id=opened, expires_at=session_expires)
