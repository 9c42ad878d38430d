"""Self-service identity and the subject's own view: one-time codes, sessions, "my data".

A customer proves control of a stored address by a one-time code mailed to the subject's
*stored* e-mail address; a correct code opens a session (a `web_sessions` row,
`vault.storage.sessions`: it ends after TRESOR_SESSION_IDLE_MINUTES without a request or
TRESOR_SELF_SESSION_MINUTES in all, at sign-out, erasure or a change of the address).
The outcome a caller sees never depends on whether the address exists (no enumeration): the
same queries run, a challenge row is written either way, and the mail leaves on a background
task, so its cost does not show in the answer. Before answering, the mailer is probed
(`check`) for known and unknown addresses alike: while it is down every caller gets the same
503 and nothing is written, so no code is promised that cannot leave. Rate limits per
address and per client IP are counted from the database (multi-node safe). Codes and session
tokens are stored only as HMACs under a server key; addresses and IPs only as keyed digests.
Every step is audited pseudonymously (subject id when known, never the address).

Per customer, across its addresses, codes are limited and wrong codes lead to an
escalating lockout (`vault.signin_limits`). The lock keeps guessers out, but anyone can
cause it, so it must not keep the customer out: while it holds, a request mails a one-time
sign-in *link* to the stored e-mail address instead of a code (`open_link_session`). Its
token has 256 bits, so it needs neither an attempt limit nor a lock; it is short-lived
(`otp_minutes`), single use, stored only as an HMAC, and void once the address changes.
Requests for known and unknown addresses still run the same statements and get the same
answer. A session opened through an e-mail address whose change is not yet confirmed
(by code or by link) is restricted (`vault.subjects.identity`): `session_subject` refuses it,
`session_info` and `my_data` serve only the reduced overview.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import and_, delete, func, insert, or_, select, update

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.bases import consents
from vault.catalogue.purposes import LawfulBasis
from vault.clock import as_utc
from vault.crypto import KeyLabel, same_digest
from vault.errors import (
    AccessDenied,
    Conflict,
    InvalidInput,
    InvariantViolation,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from vault.rights import signin_limits
from vault.storage import sessions as web
from vault.storage.tables import (
    audit_events,
    subjects,
)
from vault.storage.tables import (
    consents as consents_table,
)
from vault.storage.tables import (
    self_service_challenges as challenges,
)
from vault.storage.tables import (
    web_sessions as sessions,
)
from vault.subjects import identity
from vault.subjects.decision import BasisFacts, BasisStatus, effective_status
from vault.subjects.integrity import audited_read
from vault.subjects.store import (
    INDEXED,
    SubjectStatus,
    decrypt_fields,
    identifier_digest,
    load_subject,
)

if TYPE_CHECKING:
    from vault.context import VaultContext

KINDS = ("email", "phone")
CODE_DIGITS = 6
RATE_WINDOW = timedelta(hours=1)
#: How many access-log entries the subject's view shows (newest first).
ACCESS_LOG_LIMIT = 200
#: What the subject's access log lists, by audit action, and the kind it shows (labels:
#: api/i18n.py `access_<kind>`). Default deny: an action not named here is not listed.
#: Lookups by anyone (as always); the rest only when a client did it, since a DPO's work
#: and the subject's own reads are not accesses by an internal system. A follow-up's use
#: is listed through the lookup or recorded contact that used it.
ACCESS_KINDS = {
    AuditAction.LOOKUP: "lookup",
    AuditAction.AUDIENCE_DRY_RUN: "audience_check",
    AuditAction.CONTACT_RECORD: "contact_record",
    AuditAction.CONSENT_LIST: "consents_read",
    AuditAction.CLIENT_PREFERENCES_READ: "preferences_read",
    AuditAction.FOLLOWUP_READ: "followup_read",
    AuditAction.ACCESS_DENIED: "refused",
}
_CODE_RE = re.compile(rf"^[0-9]{{{CODE_DIGITS}}}$")
_NOWHERE = "nobody@invalid"
_TOKEN_MAX = 200

log = structlog.get_logger("tresor.selfservice")


def subject_actor(request_id: str | None = None) -> Actor:
    """The actor of everything a subject does in the privacy centre."""
    return Actor("subject", "self-service", request_id)


@dataclass(frozen=True, slots=True)
class SessionToken:
    """A verified subject's session; `token` is shown once and stored only as a hash."""

    token: str
    subject_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ConsentView:
    id: str
    purpose: str
    title_de: str
    title_en: str
    basis: str
    status: str
    touchpoint: str | None
    method: str | None
    given_at: datetime | None
    expires_at: datetime | None
    withdrawn_at: datetime | None
    #: A consent in force (or awaiting confirmation) can be withdrawn here in one click;
    #: contract and legal-obligation bases end with the contract or by a request.
    withdrawable: bool

    def title(self, language: str) -> str:
        return self.title_de if language == "de" else self.title_en


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One access of an internal system to the subject's data (from the audit trail): a
    lookup, being counted in an audience check, a recorded contact, ... (`kind`, one of
    `ACCESS_KINDS`' values)."""

    at: datetime
    client: str
    actor_type: str
    purpose: str | None
    title_de: str | None
    title_en: str | None
    fields: list[str]
    decision: str
    reason: str | None
    kind: str = "lookup"

    def title(self, language: str) -> str | None:
        return self.title_de if language == "de" else self.title_en


@dataclass(frozen=True, slots=True)
class SelfView:
    subject_id: str
    status: str
    contact: dict[str, Any]
    consents: list[ConsentView] = field(default_factory=list)
    access_log: list[AccessEntry] = field(default_factory=list)
    #: Set for a session through an unconfirmed new e-mail address: contact data hidden.
    restriction: identity.Restriction | None = None


# -- keyed digests ---------------------------------------------------------------------------


# Codes, links, sessions and rate-limited addresses are hashed under a key derived for each
# alone. All of them live minutes (a client address counts for an hour), so there is no
# legacy key: a code, link or session from just before an upgrade fails and the customer
# asks again; the per-address request count starts afresh.


def _keyed(ctx: VaultContext, label: KeyLabel, value: str) -> str:
    """HMAC-SHA256 of `value` under `label`'s key; 64 hex characters."""
    return ctx.keys.mac(label).digest(value.encode())


def _code_hash(ctx: VaultContext, challenge_id: str, code: str) -> str:
    """A one-time code's hash, bound to its challenge."""
    return _keyed(ctx, KeyLabel.SELF_SERVICE_CODE, f"{challenge_id}\x00{code}")


def _link_hash(ctx: VaultContext, token: str) -> str:
    return _keyed(ctx, KeyLabel.SELF_SERVICE_LINK, token)


def _session_hash(ctx: VaultContext, token: str) -> str:
    return _keyed(ctx, KeyLabel.SELF_SERVICE_SESSION, token)


def _new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def _normalise_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "")


def _digest(ctx: VaultContext, kind: str, value: str) -> str:
    if kind not in KINDS:
        raise InvalidInput("unknown identifier", {"kind": "use email or phone"})
    return identifier_digest(ctx, kind, value)  # raises InvalidInput for a malformed value


# -- background mail ---------------------------------------------------------------------------

_PENDING: set[asyncio.Task[None]] = set()


async def _deliver(ctx: VaultContext, message: EmailMessage) -> None:
    try:
        await ctx.mailer.send(message)
    except Exception as exc:  # noqa: BLE001 - the caller has been answered already
        log.error("self_service_code_mail_failed", error=type(exc).__name__)


def _deliver_later(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


async def wait_for_mail() -> None:
    """Wait until every code mail this event loop handed to the mailer has been delivered
    (or has failed). The server calls this on shutdown; tests before reading the outbox."""
    loop = asyncio.get_running_loop()
    while True:
        for task in list(_PENDING):
            if task.get_loop().is_closed():
                _PENDING.discard(task)  # its loop ended without running it
        mine = [t for t in _PENDING if t.get_loop() is loop]
        if not mine:
            return
        await asyncio.gather(*mine, return_exceptions=True)


_MAIL_SUBJECT = "Ihr Anmeldecode / Your sign-in code: {code}"
_MAIL_BODY = (
    "Guten Tag,\n\n"
    "Ihr Code für das Datenschutz-Center lautet:\n\n    {code}\n\n"
    "Er ist {minutes} Minuten gültig (bis {until} UTC). Geben Sie ihn niemandem weiter; "
    "wir fragen nie danach. Wenn Sie keinen Code angefordert haben, ignorieren Sie diese "
    "E-Mail; dann geschieht nichts.\n\n"
    "-----\n\n"
    "Hello,\n\n"
    "your code for the privacy centre is:\n\n    {code}\n\n"
    "It is valid for {minutes} minutes (until {until} UTC). Do not share it with anyone; we "
    "never ask for it. If you did not ask for a code, simply ignore this e-mail; nothing "
    "will happen.\n"
)


def code_mail(ctx: VaultContext, address: str, code: str, expires_at: datetime) -> EmailMessage:
    """The bilingual (German, English) mail carrying a one-time code."""
    msg = EmailMessage()
    msg["From"] = ctx.settings.mail_from
    msg["To"] = address
    msg["Subject"] = _MAIL_SUBJECT.format(code=code)
    msg.set_content(
        _MAIL_BODY.format(
            code=code,
            minutes=ctx.settings.otp_minutes,
            until=expires_at.strftime("%Y-%m-%d %H:%M"),
        )
    )
    msg["Content-Language"] = "de, en"
    return msg


_LINK_SUBJECT = "Ihr Anmeldelink / Your sign-in link"
_LINK_BODY = (
    "Guten Tag,\n\n"
    "für Ihr Kundenkonto wurden zu oft falsche Codes eingegeben. Zu Ihrem Schutz ist die "
    "Anmeldung mit Code deshalb bis {locked_de} UTC gesperrt. Sie selbst melden sich "
    "stattdessen mit diesem Link im Datenschutz-Center an:\n\n    {link}\n\n"
    "Er ist {minutes} Minuten gültig (bis {until_de} UTC) und nur einmal verwendbar. Geben "
    "Sie ihn niemandem weiter. Wenn Sie keine Anmeldung angefordert haben, ignorieren Sie "
    "diese E-Mail: Ohne diesen Link kann sich niemand anmelden.\n\n"
    "-----\n\n"
    "Hello,\n\n"
    "wrong codes were entered for your customer account too often. For your protection, "
    "signing in with a code is therefore locked until {locked_en} UTC. You can sign in to "
    "the privacy centre with this link instead:\n\n    {link}\n\n"
    "It is valid for {minutes} minutes (until {until_en} UTC) and works once. Do not share "
    "it with anyone. If you did not ask to sign in, simply ignore this e-mail: nobody can "
    "sign in without this link.\n"
)


def link_path(token: str) -> str:
    """The privacy-centre page a sign-in link opens (a page with a button: mail scanners
    open links, so opening it changes nothing)."""
    return f"/privacy/sign-in-link/{token}"


def link_mail(
    ctx: VaultContext, address: str, token: str, expires_at: datetime, locked_until: datetime
) -> EmailMessage:
    """The bilingual (German, English) mail carrying a one-time sign-in link, sent instead
    of a code while sign-in by code is locked."""
    msg = EmailMessage()
    msg["From"] = ctx.settings.mail_from
    msg["To"] = address
    msg["Subject"] = _LINK_SUBJECT
    msg.set_content(
        _LINK_BODY.format(
            link=f"{ctx.settings.public_url}{link_path(token)}",
            minutes=ctx.settings.otp_minutes,
            until_de=expires_at.strftime("%d.%m.%Y, %H:%M"),
            until_en=expires_at.strftime("%Y-%m-%d %H:%M"),
            locked_de=locked_until.strftime("%d.%m.%Y, %H:%M"),
            locked_en=locked_until.strftime("%Y-%m-%d %H:%M"),
        )
    )
    msg["Content-Language"] = "de, en"
    return msg


# -- challenges --------------------------------------------------------------------------------


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
    still goes to the stored e-mail address; a subject without one receives nothing.

    Per customer (`vault.signin_limits`): past `otp_per_subject_hour` codes an hour over
    all its addresses the answer is the same but no code is made or sent (the challenge row
    is written without one). While its sign-in is locked after wrong codes, the row holds
    a one-time sign-in link instead of a code, and the link is mailed (`link_mail`); an
    unknown address locked alike gets the same row and no mail.
    """
    digest = _digest(ctx, kind, value)
    ip_hash = _keyed(ctx, KeyLabel.SELF_SERVICE_IP, client_ip or "unknown")
    settings = ctx.settings
    now = ctx.clock.now()
    since = now - RATE_WINDOW
    challenge_id = str(uuid.uuid4())
    code = _new_code()
    code_hash = _code_hash(ctx, challenge_id, code)  # also for unknown addresses: same work
    link_token = secrets.token_urlsafe(32)
    link_hash = _link_hash(ctx, link_token)
    expires_at = now + timedelta(minutes=settings.otp_minutes)
    actor = subject_actor(request_id)
    message: EmailMessage | None = None
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
            address = None
            if subject is not None:
                address = decrypt_fields(ctx, subject, ("email",)).get("email")
            # Built in every case, so known and unknown addresses cost the same.
            if by_link:
                if locked is None:
                    raise InvariantViolation("locked is unset")
                message = link_mail(ctx, address or _NOWHERE, link_token, expires_at, locked)
            else:
                message = code_mail(ctx, address or _NOWHERE, code, expires_at)
            if subject is None:
                reason = "ambiguous_identifier" if rows else "subject_not_found"
            elif withheld:
                reason = withheld
            elif address is None:
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
                fields=["email"] if reason is None else None,
                reason=reason,
                detail={"kind": kind, "sent": "link"} if by_link else {"kind": kind},
            )
            if reason is not None:
                message = None
    if retry is not None:
        raise RateLimited("too many codes were requested; please wait", retry)
    if message is not None:
        _deliver_later(_deliver(ctx, message))


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
    digest = _digest(ctx, kind, value)
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
            same = same_digest(row.code_hash or "", _code_hash(ctx, row.id, given))
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
                digest=_session_hash(ctx, token),
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


# -- sign-in links ----------------------------------------------------------------------------

_LINK_MESSAGE = "the sign-in link is unknown, has expired or was used already"


def _live_link(ctx: VaultContext, token: str, now: datetime) -> Any:
    """The condition of a link that may still open a session: known, unused, not expired,
    and mailed to a customer (a link row for an unknown address is never usable)."""
    return and_(
        challenges.c.link_hash == _link_hash(ctx, token),
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
                            challenges.c.link_hash == _link_hash(ctx, token)
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
                digest=_session_hash(ctx, session_token),
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


# -- sessions ----------------------------------------------------------------------------------

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
    digest = _session_hash(ctx, token)
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
        ended = await web.end_in(conn, _session_hash(ctx, token), now, web.Ended.SIGNED_OUT)
        if ended is not None and ended.kind == web.Kind.PRIVACY.value:
            await audit.record(
                conn,
                at=now,
                actor=subject_actor(request_id),
                action=AuditAction.SELF_SESSION_END,
                decision=Decision.ALLOW,
                subject_id=ended.subject_id,
            )


async def purge_expired(ctx: VaultContext) -> tuple[int, int]:
    """Delete the challenges that neither verify nor count for a rate limit any more, and the
    sessions that have expired or were ended (data minimisation). Returns both counts.
    Sign-in lockout rows that neither lock nor count any more go too (not counted).
    Meant for the periodic retention sweep; safe to run on several nodes at once."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        gone_challenges = await conn.execute(
            delete(challenges)
            .where(challenges.c.created_at <= now - RATE_WINDOW)
            .where(challenges.c.expires_at <= now)
        )
        # Both surfaces' sessions share the table: an ended one goes, whoever opened it.
        gone_sessions = await web.purge_in(
            conn, now, timedelta(minutes=ctx.settings.session_idle_minutes)
        )
        await signin_limits.purge_in(conn, now)
    return int(gone_challenges.rowcount or 0), gone_sessions


# -- the subject's own view --------------------------------------------------------------------

_READ_FIELDS = ("email", "phone", "name", "postal_address", "external_ref")


def _consent_view(ctx: VaultContext, row: Any, now: datetime) -> ConsentView:
    purpose = ctx.catalogue.get(row.purpose)
    status = effective_status(
        BasisFacts(row.id, row.basis, row.status, row.expires_at, row.confirm_deadline), now
    )
    return ConsentView(
        id=row.id,
        purpose=row.purpose,
        title_de=purpose.title_de if purpose else row.purpose,
        title_en=purpose.title_en if purpose else row.purpose,
        basis=row.basis,
        status=str(status),
        touchpoint=row.touchpoint,
        method=row.method,
        given_at=as_utc(row.granted_at) or as_utc(row.created_at),
        expires_at=as_utc(row.expires_at),
        withdrawn_at=as_utc(row.withdrawn_at),
        withdrawable=row.basis == LawfulBasis.CONSENT.value
        and status in (BasisStatus.GRANTED, BasisStatus.PENDING_CONFIRMATION),
    )


_LISTED_ACCESS = or_(
    audit_events.c.action == str(AuditAction.LOOKUP),
    and_(
        audit_events.c.action.in_([str(a) for a in ACCESS_KINDS if a != AuditAction.LOOKUP]),
        audit_events.c.actor_type == "client",
    ),
)


def _access_entry(ctx: VaultContext, row: Any) -> AccessEntry:
    purpose = ctx.catalogue.get(row.purpose) if row.purpose else None
    return AccessEntry(
        at=as_utc(row.at),
        client=row.actor_id,
        actor_type=row.actor_type,
        purpose=row.purpose,
        title_de=purpose.title_de if purpose else None,
        title_en=purpose.title_en if purpose else None,
        fields=[f for f in (row.fields or "").split(",") if f],
        decision=row.decision,
        reason=row.reason,
        kind=ACCESS_KINDS[AuditAction(row.action)],
    )


async def my_data(
    ctx: VaultContext,
    actor: Actor,
    subject_id: str,
    *,
    restriction: identity.Restriction | None = None,
) -> SelfView:
    """Everything the privacy centre shows a signed-in subject: contact data, consents with
    where and when they were given, and which internal system accessed the data (allowed
    or denied, from the audit trail: `ACCESS_KINDS`). Audited as a self-read in the same
    transaction.

    For a session under `restriction` (opened through an e-mail address whose change is
    not confirmed, `vault.subjects.identity`) only the consents' titles and statuses: no contact
    value is decrypted, and neither the access log nor anything else is read."""
    now = ctx.clock.now()
    async with audited_read(
        ctx, actor, AuditAction.SELF_CONTACT_READ, at=now, subject_id=subject_id
    ) as read:  # data that fails its integrity check: an audited refusal (vault.subjects.integrity)
        conn = read.conn
        subject = await load_subject(conn, subject_id)
        if subject.status == SubjectStatus.ERASED:
            raise NotFound("the subject's data was erased")
        contact = {} if restriction else decrypt_fields(ctx, subject, _READ_FIELDS)
        rows = (
            await conn.execute(
                select(consents_table)
                .where(consents_table.c.subject_id == subject_id)
                .where(consents_table.c.status != BasisStatus.SUPERSEDED)
                .order_by(consents_table.c.created_at.desc())
            )
        ).all()
        reads = (
            []
            if restriction
            else (
                await conn.execute(
                    select(audit_events)
                    .where(audit_events.c.subject_id == subject_id)
                    .where(_LISTED_ACCESS)
                    .order_by(audit_events.c.seq.desc())
                    .limit(ACCESS_LOG_LIMIT)
                )
            ).all()
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.SELF_CONTACT_READ,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            fields=sorted(contact),
            detail={"restricted": restriction.reason} if restriction else None,
        )
    return SelfView(
        subject_id=subject_id,
        status=subject.status,
        contact=contact,
        consents=[_consent_view(ctx, r, now) for r in rows],
        access_log=[_access_entry(ctx, r) for r in reads],
        restriction=restriction,
    )


async def withdraw_consent(
    ctx: VaultContext, actor: Actor, subject_id: str, consent_id: str
) -> consents.BasisRecord:
    """Withdraw one of the subject's own consents, effective at once (Art. 7(3)).

    Someone else's (or an unknown) consent id is `NotFound`; a contract or legal-obligation
    basis cannot be ended here (`Conflict`): that takes an objection, restriction or
    erasure request."""
    async with ctx.transaction() as conn:
        row = (
            await conn.execute(
                select(consents_table.c.basis)
                .where(consents_table.c.id == consent_id)
                .where(consents_table.c.subject_id == subject_id)
            )
        ).first()
    if row is None:
        raise NotFound("no such consent for this subject")
    if row.basis != LawfulBasis.CONSENT.value:
        raise Conflict(
            "only a consent can be withdrawn here; a contract or legal obligation is ended "
            "by a request (objection, restriction or erasure)"
        )
    return await consents.withdraw(ctx, actor, subject_id, consent_id)


__all__ = [
    "ACCESS_KINDS",
    "ACCESS_LOG_LIMIT",
    "AccessEntry",
    "ConsentView",
    "KINDS",
    "SelfSession",
    "SelfView",
    "SessionToken",
    "code_mail",
    "end_session",
    "link_mail",
    "link_path",
    "link_usable",
    "my_data",
    "open_link_session",
    "purge_expired",
    "refuse_restricted",
    "session_info",
    "session_subject",
    "start_challenge",
    "subject_actor",
    "verify_code",
    "wait_for_mail",
    "withdraw_consent",
]
