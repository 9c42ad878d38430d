"""One-time codes: asking for one (a sign-in link instead while codes are locked) and
exchanging a correct one for a session.

The same statements run and the same answer comes whether or not the address is known;
codes are limited per address, client IP and customer, and wrong codes lead to the
customer's escalating lockout (`vault.rights.signin_limits`).
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, insert, select, update

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.crypto import KeyLabel, same_digest
from vault.errors import InvariantViolation, RateLimited, Unauthenticated
from vault.rights import signin_limits
from vault.rights.selfservice.digests import (
    address_digest,
    hash_code,
    hash_link,
    hash_session,
    keyed_digest,
)
from vault.rights.selfservice.mail import (
    code_mail,
    code_sms,
    deliver,
    deliver_later,
    link_mail,
    link_sms,
)
from vault.rights.selfservice.sessions import SessionToken, session_lifetime, subject_actor
from vault.sms import TextMessage
from vault.storage import sessions as web
from vault.storage.rights_tables import self_service_challenges as challenges
from vault.storage.tables import subjects
from vault.subjects.store import INDEXED, SubjectStatus, decrypt_fields

if TYPE_CHECKING:
    from vault.context import VaultContext


CODE_DIGITS = 6
RATE_WINDOW = timedelta(hours=1)
_CODE_RE = re.compile(rf"^[0-9]{{{CODE_DIGITS}}}$")
_NOWHERE = "nobody@invalid"


def _new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def _normalise_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "")


def _retry_after(count: int, oldest: datetime | None, limit: int, now: datetime) -> int | None:
    if count < limit:
        return None
    oldest = as_utc(oldest) or now
    return max(1, int((oldest + RATE_WINDOW - now).total_seconds()) + 1)


def _withheld(settings: Any, subject_id: str | None, sent: int) -> str | None:
    """Why no code may be made for this request (the answer stays the same), or None.
    Links (while sign-in by code is locked) are not counted against the customer's hourly
    codes, or a guesser could use those up; they are limited per address and per IP."""
    if subject_id is not None and sent >= settings.otp_per_subject_hour:
        return "subject_rate_limited"
    return None


async def start_challenge(
    ctx: VaultContext,
    *,
    kind: str,
    value: str,
    client_ip: str,
    request_id: str | None = None,
) -> None:
    """Send a one-time code to the stored e-mail address of the subject behind `value`.

    Returns the same way whether or not a subject matches; raises `InvalidInput` only for a
    malformed address (which says nothing about existence) and `RateLimited` when the
    address or the client IP asked too often within the last hour (counted alike for known
    and unknown addresses), and `Unavailable` when the mailer cannot take mail now (probed
    alike for known and unknown addresses; nothing is written). For `kind="phone"` the code
    goes to the stored e-mail address, or, for a subject without one, by SMS to the stored
    phone number (`ctx.sms`, probed like the mailer for every phone sign-in, known or not),
    under the same limits.

    Per customer (`vault.signin_limits`): past `otp_per_subject_hour` codes an hour over
    all its addresses the answer is the same but no code is made or sent (the challenge row
    is written without one). While its sign-in is locked after wrong codes, the row holds
    a one-time sign-in link instead of a code, and the link is mailed (`link_mail`); an
    unknown address locked alike gets the same row and no mail.
    """
    digest = address_digest(ctx, kind, value)
    ip_hash = keyed_digest(ctx, KeyLabel.SELF_SERVICE_IP, client_ip or "unknown")
    settings = ctx.settings
    now = ctx.clock.now()
    since = now - RATE_WINDOW
    challenge_id = str(uuid.uuid4())
    code = _new_code()
    code_hash = hash_code(ctx, challenge_id, code)  # also for unknown addresses: same work
    link_token = secrets.token_urlsafe(32)
    link_hash = hash_link(ctx, link_token)
    expires_at = now + timedelta(minutes=settings.otp_minutes)
    actor = subject_actor(request_id)
    message: EmailMessage | TextMessage | None = None
    retry: int | None = None

    async with ctx.transaction() as conn:
        by_address = (
            await conn.execute(
                select(func.count(), func.min(challenges.c.created_at))
                .where(challenges.c.identifier_digest == digest)
                .where(challenges.c.created_at > since)
            )
        ).one()
        by_ip = (
            await conn.execute(
                select(func.count(), func.min(challenges.c.created_at))
                .where(challenges.c.client_ip_hash == ip_hash)
                .where(challenges.c.created_at > since)
            )
        ).one()
        rows = (
            await conn.execute(
                select(subjects)
                .where(getattr(subjects.c, INDEXED[kind]) == digest)
                .where(subjects.c.status != SubjectStatus.ERASED)
                .limit(2)
            )
        ).all()
        subject = rows[0] if len(rows) == 1 else None
        subject_id = subject.id if subject is not None else None
        # Run alike for unknown addresses (keyed by the digest; counting nothing).
        sent_to_subject = await signin_limits.codes_sent_in(conn, subject_id, since)
        locked = await signin_limits.locked_until_in(conn, subject_id or digest, now)
        waits = [
            w
            for w in (
                _retry_after(by_address[0], by_address[1], settings.otp_per_address_hour, now),
                _retry_after(by_ip[0], by_ip[1], settings.otp_per_ip_hour, now),
            )
            if w is not None
        ]
        if waits:
            retry = max(waits)
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=AuditAction.SELF_SESSION_START,
                decision=Decision.DENY,
                subject_id=subject_id,
                reason="rate_limited",
                detail={"kind": kind},
            )
        else:
            # For every address alike, known or not: a 202 must not promise a code the
            # mailer cannot take now. `Unavailable` rolls back; nothing is written.
            await ctx.mailer.check()
            if kind == "phone":
                await ctx.sms.check()
            # While code sign-in is locked, a link is the customer's way in instead.
            by_link = locked is not None
            withheld = None if by_link else _withheld(settings, subject_id, sent_to_subject)
            await conn.execute(
                insert(challenges).values(
                    id=challenge_id,
                    identifier_digest=digest,
                    subject_id=subject_id,
                    code_hash=None if withheld or by_link else code_hash,
                    link_hash=link_hash if by_link else None,
                    client_ip_hash=ip_hash,
                    created_at=now,
                    expires_at=expires_at,
                    attempts=0,
                    consumed_at=None,
                )
            )
            address = number = None
            if subject is not None:
                stored = decrypt_fields(ctx, subject, ("email", "phone"))
                address = stored.get("email")
                # Only a customer without an e-mail address, signing in by phone, gets SMS.
                number = stored.get("phone") if kind == "phone" and address is None else None
            # Built in every case, so known and unknown addresses cost the same.
            if by_link:
                if locked is None:
                    raise InvariantViolation("locked is unset")
                message = link_mail(ctx, address or _NOWHERE, link_token, expires_at, locked)
                if number is not None:
                    message = link_sms(ctx, number, link_token, expires_at)
            else:
                message = code_mail(ctx, address or _NOWHERE, code, expires_at)
                if number is not None:
                    message = code_sms(ctx, number, code, expires_at)
            if subject is None:
                reason = "ambiguous_identifier" if rows else "subject_not_found"
            elif withheld:
                reason = withheld
            elif address is None and number is None:
                reason = "no_email_address"
            else:
                reason = None
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=AuditAction.SELF_SESSION_START,
                decision=Decision.ALLOW if reason is None else Decision.DENY,
                subject_id=subject_id,
                fields=None if reason is not None else ["phone" if number else "email"],
                reason=reason,
                detail={"kind": kind, "sent": "link"} if by_link else {"kind": kind},
            )
            if reason is not None:
                message = None
    if retry is not None:
        raise RateLimited("too many codes were requested; please wait", retry)
    if message is not None:
        deliver_later(deliver(ctx, message, subject_id=subject_id, expires_at=expires_at))


async def verify_code(
    ctx: VaultContext,
    *,
    kind: str,
    value: str,
    code: str,
    client_ip: str,
    request_id: str | None = None,
) -> SessionToken:
    """Exchange a correct one-time code for a session token.

    Every live code of the address is tried (a customer who asked twice may type either);
    each call counts as one attempt on each of them, and a code allows
    `settings.otp_max_attempts` attempts. A wrong, expired, used-up or unknown code all
    raise the same `Unauthenticated`. A correct code is consumed, together with the other
    live codes of the address. `client_ip` is accepted for symmetry with `start_challenge`;
    attempt limits per code, code limits per address, IP and customer, and the customer's
    escalating lockout after wrong codes (`vault.signin_limits`) bound guessing: while
    locked, even a right code gets the same error, and wrong ones are not counted.
    """
    del client_ip
    digest = address_digest(ctx, kind, value)
    given = _normalise_code(code)
    now = ctx.clock.now()
    settings = ctx.settings
    actor = subject_actor(request_id)
    token = web.new_token()
    session_expires = now
    opened: str | None = None

    async with ctx.transaction() as conn:
        live = and_(
            challenges.c.identifier_digest == digest,
            challenges.c.consumed_at.is_(None),
            challenges.c.expires_at > now,
            challenges.c.attempts < settings.otp_max_attempts,
        )
        # Count the attempt first, atomically: concurrent guesses cannot share one.
        tried = (
            await conn.execute(
                update(challenges)
                .where(live)
                .values(attempts=challenges.c.attempts + 1)
                .returning(challenges.c.id, challenges.c.subject_id, challenges.c.code_hash)
            )
        ).all()
        matched = None
        well_formed = bool(_CODE_RE.match(given))
        for row in tried:
            # Every candidate is hashed and compared in constant time, match or not.
            same = same_digest(row.code_hash or "", hash_code(ctx, row.id, given))
            if same and well_formed and row.subject_id:
                matched = row
        known = next((r.subject_id for r in tried if r.subject_id), None)
        lock_key = known or digest  # an unknown address locks alike (by its digest)
        locked = await signin_limits.locked_until_in(conn, lock_key, now)
        if locked is not None:
            matched = None
        if matched is not None:
            consumed = await conn.execute(
                update(challenges)
                .where(challenges.c.id == matched.id)
                .where(challenges.c.consumed_at.is_(None))
                .values(consumed_at=now)
            )
            if consumed.rowcount != 1:
                matched = None
        if matched is not None:
            subject = (
                await conn.execute(
                    select(subjects.c.status).where(subjects.c.id == matched.subject_id)
                )
            ).first()
            if subject is None or subject.status == SubjectStatus.ERASED:
                matched = None
        if matched is not None:
            # One code opens one session: the address's other codes are void now.
            await conn.execute(
                update(challenges)
                .where(challenges.c.identifier_digest == digest)
                .where(challenges.c.consumed_at.is_(None))
                .values(consumed_at=now)
            )
            session_expires = await web.open_in(
                conn,
                digest=hash_session(ctx, token),
                kind=web.Kind.PRIVACY,
                now=now,
                lifetime=session_lifetime(settings),
                subject_id=matched.subject_id,
                channel=kind,
            )
            opened = matched.subject_id
            await signin_limits.clear_in(conn, lock_key)
        elif tried and locked is None:
            await _count_wrong_code(conn, settings, lock_key, known, now, request_id)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.SELF_SESSION_VERIFY,
            decision=Decision.ALLOW if opened else Decision.DENY,
            subject_id=opened or known,
            # The caller hears "invalid_code" either way; the trail says why.
            reason=None if opened else ("locked_out" if locked else "invalid_code"),
            detail={"kind": kind},
        )
    if opened is None:
        raise Unauthenticated("the code is wrong, has expired or was used up", "invalid_code")
    return SessionToken(token=token, subject_id=opened, expires_at=session_expires)


async def _count_wrong_code(
    conn: Any,
    settings: Any,
    lock_key: str,
    subject_id: str | None,
    now: datetime,
    request_id: str | None,
) -> None:
    """One wrong code against a live code; when it starts a lock, that is audited."""
    started = await signin_limits.register_failure_in(conn, settings, lock_key, now)
    if started is not None:
        until, level = started
        await audit.record(
            conn,
            at=now,
            actor=Actor("system", "tresor", request_id),
            action=AuditAction.SYSTEM_SESSION_LOCKOUT,
            decision=Decision.DENY,
            subject_id=subject_id,
            reason="too_many_wrong_codes",
            detail={"until": until.isoformat(), "level": level},
        )
