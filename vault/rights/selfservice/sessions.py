"""Privacy-centre sessions: who acts in them, their lifetime, reading a live one (restricted
while it was opened through an unconfirmed new e-mail address, `vault.subjects.identity`),
refusing a restricted one and signing out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.errors import AccessDenied, Unauthenticated
from vault.rights.selfservice.digests import hash_session
from vault.storage import sessions as web
from vault.storage.rights_tables import web_sessions as sessions
from vault.storage.tables import subjects
from vault.subjects import identity
from vault.subjects.store import SubjectStatus

if TYPE_CHECKING:
    from vault.context import VaultContext


def subject_actor(request_id: str | None = None) -> Actor:
    """The actor of everything a subject does in the privacy centre."""
    return Actor("subject", "self-service", request_id)


@dataclass(frozen=True, slots=True)
class SessionToken:
    """A verified subject's session; `token` is shown once and stored only as a hash."""

    token: str
    subject_id: str
    expires_at: datetime


_SESSION_MESSAGE = "the session is unknown, has expired or was ended; please sign in again"


@dataclass(frozen=True, slots=True)
class SelfSession:
    """A live session: whose, opened with which identifier, and whether it is restricted
    (opened through an e-mail address whose change is not confirmed, `vault.subjects.identity`)."""

    subject_id: str
    channel: str | None
    restriction: identity.Restriction | None


def session_lifetime(settings: Any) -> web.Lifetime:
    """A privacy-centre session's lifetime: the idle timeout (TRESOR_SESSION_IDLE_MINUTES)
    and the absolute one (TRESOR_SELF_SESSION_MINUTES)."""
    return web.Lifetime(
        idle=timedelta(minutes=settings.session_idle_minutes),
        absolute=timedelta(minutes=settings.self_session_minutes),
    )


async def session_info(ctx: VaultContext, token: str) -> SelfSession:
    """The live session of `token`, restricted or not, or `Unauthenticated` (one error for
    every reason). Only for what a restricted session may still do (the reduced overview,
    sign-out); everything else asks `session_subject`, which refuses restricted sessions.

    One indexed read of the session row (with its subject); a session found idle or past
    its expiry is marked ended with the reason, a live one has its activity recorded."""
    if not web.well_formed(token):
        raise Unauthenticated(_SESSION_MESSAGE, "invalid_session")
    now = ctx.clock.now()
    digest = hash_session(ctx, token)
    async with ctx.transaction() as conn:
        row = (
            await conn.execute(
                select(
                    sessions.c.subject_id,
                    sessions.c.expires_at,
                    sessions.c.last_seen_at,
                    sessions.c.ended_at,
                    sessions.c.ended_why,
                    sessions.c.channel,
                    subjects.c.status,
                    subjects.c.email_bidx,
                )
                .select_from(sessions.outerjoin(subjects, subjects.c.id == sessions.c.subject_id))
                .where(sessions.c.token_hash == digest)
                .where(sessions.c.kind == web.Kind.PRIVACY.value)
            )
        ).first()
        why = None if row is None else web.lapsed(row, now, session_lifetime(ctx.settings))
        if row is not None and why is None and row.status in (None, SubjectStatus.ERASED):
            why = web.Ended.ERASED
        if row is not None and why is None:
            await web.touch_in(conn, digest, row.last_seen_at, now)
            # The code went to the e-mail address stored now: changing it ends every session.
            restriction = await identity.restriction_in(conn, row.subject_id, row.email_bidx, now)
            return SelfSession(str(row.subject_id), row.channel, restriction)
        if row is not None and why is not None and row.ended_at is None:
            # Marked ended with its reason (committed; the refusal is raised outside).
            await web.end_in(conn, digest, now, why)
    raise Unauthenticated(_SESSION_MESSAGE, "invalid_session")


_RESTRICTED_MESSAGE = (
    "the e-mail address of this account was changed recently and the change is not "
    "confirmed yet: until it is, this session shows no contact data and cannot act on the "
    "account (confirm it with the link sent to the previous address, or ask the data "
    "protection team)"
)


async def session_subject(
    ctx: VaultContext,
    token: str,
    *,
    operation: str = "self_service",
    request_id: str | None = None,
) -> str:
    """The subject id of a live, unrestricted session, or `Unauthenticated`. Default deny:
    a restricted session gets `AccessDenied` (reason `identity_change_unconfirmed`), and
    the refused `operation` is audited like any other attempt on the account."""
    session = await session_info(ctx, token)
    if session.restriction is not None:
        await refuse_restricted(ctx, session.subject_id, operation, request_id)
    return session.subject_id


async def refuse_restricted(
    ctx: VaultContext, subject_id: str, operation: str, request_id: str | None = None
) -> None:
    """Audit the refusal of `operation` to a restricted session, then raise `AccessDenied`."""
    async with ctx.transaction() as conn:
        await audit.record(
            conn,
            at=ctx.clock.now(),
            actor=subject_actor(request_id),
            action=AuditAction.SELF_IDENTITY_REFUSED,
            decision=Decision.DENY,
            subject_id=subject_id,
            reason=identity.REFUSED_REASON,
            detail={"operation": operation[:64]},
        )
    raise AccessDenied(identity.REFUSED_REASON, _RESTRICTED_MESSAGE)


async def end_session(ctx: VaultContext, token: str, request_id: str | None = None) -> None:
    """End a session (sign-out). Idempotent: an unknown or ended token is no error."""
    if not web.well_formed(token):
        return
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        ended = await web.end_in(conn, hash_session(ctx, token), now, web.Ended.SIGNED_OUT)
        if ended is not None and ended.kind == web.Kind.PRIVACY.value:
            await audit.record(
                conn,
                at=now,
                actor=subject_actor(request_id),
                action=AuditAction.SELF_SESSION_END,
                decision=Decision.ALLOW,
                subject_id=ended.subject_id,
            )
