"""Changes of a subject's identifying addresses must not hand over the account (security
finding 1).

The privacy centre mails sign-in codes to the stored e-mail address, so whoever can set
that address (a writer client, a DPO carrying out a rectification) could otherwise sign in
as the customer, read everything and erase it. Therefore each change of the e-mail address
or phone number (`rectify_contact` calls `record_in` in its own transaction):

- is recorded in `identity_changes` with keyed digests (the blind index) of the old and
  new value, never plaintext, and audited as identity-relevant (field names only);
- ends every self-service session of the subject and voids its unused sign-in codes,
  also when an address is changed back;
- is told to the *old* e-mail address (German and English, no address in it), with a
  link to confirm the change or to object ("this was not me"). The mail is handed to
  the mailer before the change commits: no notice, no change;
- opens a cooling-off (`identity_cooling_off_days`, 7) during which a session is
  *restricted* unless it was opened through the trusted address: the e-mail address in
  force before the earliest change still open (pending in its cooling-off, or objected).
  A restricted session shows no contact data and cannot act on the account.

The change is settled by the old address's link (confirm), a DPO's approval, or the end
of the cooling-off. An objection from the old address ends every session, marks the change
objected (sessions through the disputed address stay restricted until a DPO approves it)
and opens a restriction request (Art. 18(1)(a): accuracy contested) in the DPO's queue.
The request belongs to the rights area, above this one: `vault.rights.identity_objection`
runs the objection (`record_objection`, then the request, then `attach_request`).

Phone changes are recorded, told and end sessions alike, but restrict no session: sign-in
codes always go to the e-mail address, so a session proves control of that, not of the
phone.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vault import mail_outbox
from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.crypto import KeyLabel, same_digest
from vault.errors import Conflict, InvalidInput, InvariantViolation, NotFound
from vault.storage import sessions as web_sessions
from vault.storage.rights_tables import identity_changes as changes
from vault.storage.rights_tables import self_service_challenges as challenges

if TYPE_CHECKING:
    from vault.context import VaultContext

#: The identifying addresses whose change is an identity change.
KINDS = ("email", "phone")
#: The reason (and problem type suffix) of everything a restricted session is refused.
REFUSED_REASON = "identity_change_unconfirmed"
#: How long the link in the notice can be used: long enough to be back from a holiday.
LINK_VALIDITY = timedelta(days=30)
_TOKEN_MAX = 200


class ChangeStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    OBJECTED = "objected"


#: As shown: `pending` past its cooling-off is `effective` (in force without confirmation).
EFFECTIVE = "effective"


@dataclass(frozen=True, slots=True)
class Restriction:
    """Why and until when a session is restricted (`until` None: an objection stands)."""

    changed_at: datetime
    until: datetime | None
    reason: str = REFUSED_REASON


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    id: str
    subject_id: str
    kind: str
    status: str
    changed_at: datetime
    changed_by: str
    cooling_off_until: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    request_id: str | None


@dataclass(frozen=True, slots=True)
class NoticeView:
    """What the link's page shows: which fields changed when, and what it may still do."""

    subject_id: str
    kinds: list[str]
    changed_at: datetime
    cooling_off_until: datetime
    status: str


# -- helpers -------------------------------------------------------------------------------


def _token_hash(ctx: VaultContext, token: str) -> str:
    """HMAC of a notice link's token, under the key derived for notice links."""
    return ctx.keys.mac(KeyLabel.IDENTITY_NOTICE).digest(token.encode())


def _legacy_token_hash(ctx: VaultContext, token: str) -> str:
    """The hash a notice mailed before the keys were derived was stored under (the raw
    server secret). Such a link stays usable for `LINK_VALIDITY` after it was sent, so it is
    still looked up; this can go once every release has run that long."""
    msg = f"tresor.identity.notice.v1\x00{token}".encode()
    return ctx.keys.legacy_mac().digest(msg)


def _as_utc(value: datetime | None) -> datetime:
    """A stored, non-null time as an aware UTC datetime (SQLite returns naive ones)."""
    out = as_utc(value)
    if out is None:
        raise InvariantViolation("out is unset")
    return out


def _effective(row: Any, now: datetime) -> str:
    until = as_utc(row.cooling_off_until)
    if row.status == ChangeStatus.PENDING and until is not None and until <= now:
        return EFFECTIVE
    return str(row.status)


def _open(row: Any, now: datetime) -> bool:
    """Still deciding about trust: pending in its cooling-off, or objected."""
    return _effective(row, now) in (ChangeStatus.PENDING, ChangeStatus.OBJECTED)


def _record(row: Any, now: datetime) -> ChangeRecord:
    return ChangeRecord(
        id=row.id,
        subject_id=row.subject_id,
        kind=row.kind,
        status=_effective(row, now),
        changed_at=_as_utc(row.changed_at),
        changed_by=row.changed_by,
        cooling_off_until=_as_utc(row.cooling_off_until),
        resolved_at=as_utc(row.resolved_at),
        resolved_by=row.resolved_by,
        request_id=row.request_id,
    )


def changed_kinds(
    ctx: VaultContext, before: Row[Any], fields: Mapping[str, str | None]
) -> list[str]:
    """The identifying fields `fields` (canonical texts, None clears) really change: the
    same address written again is no change."""
    out = []
    for kind in KINDS:
        if kind not in fields:
            continue
        text = fields[kind]
        new = None if text is None else ctx.indexer.digest(kind, text)
        if new != getattr(before, f"{kind}_bidx"):
            out.append(kind)
    return out


async def end_sessions_in(conn: AsyncConnection, subject_id: str, now: datetime) -> int:
    """End every live self-service session of the subject (rows revoked: every node sees
    it) and void its unused sign-in codes and links, which went to the address as it was."""
    ended = await web_sessions.end_subject_sessions_in(
        conn, subject_id, now, web_sessions.Ended.IDENTITY_CHANGED
    )
    await conn.execute(
        update(challenges)
        .where(challenges.c.subject_id == subject_id)
        .where(challenges.c.consumed_at.is_(None))
        .values(consumed_at=now)
    )
    return ended


# -- recording a change ----------------------------------------------------------------------


async def record_in(
    ctx: VaultContext,
    conn: AsyncConnection,
    actor: Actor,
    before: Row[Any],
    fields: Mapping[str, str | None],
    now: datetime,
    *,
    notice_to: str | None,
) -> list[str]:
    """Record the identity changes among `fields` inside the caller's transaction (which
    holds the subject's row lock): rows, ended sessions, audit, and the notice mailed to
    `notice_to` (the e-mail address before the change) before the caller commits. Returns
    the kinds that changed; nothing happens when none did."""
    kinds = changed_kinds(ctx, before, fields)
    if not kinds:
        return []
    token = secrets.token_urlsafe(32) if notice_to else None
    until = now + timedelta(days=ctx.settings.identity_cooling_off_days)
    last = (
        await conn.execute(
            select(func.max(changes.c.ordinal)).where(changes.c.subject_id == before.id)
        )
    ).scalar_one()
    ids = []
    for n, kind in enumerate(kinds, start=(last or 0) + 1):
        text = fields[kind]
        ids.append(str(uuid.uuid4()))
        await conn.execute(
            changes.insert().values(
                id=ids[-1],
                subject_id=before.id,
                ordinal=n,
                kind=kind,
                old_digest=getattr(before, f"{kind}_bidx"),
                new_digest=None if text is None else ctx.indexer.digest(kind, text),
                changed_at=now,
                changed_by=actor.label,
                cooling_off_until=until,
                status=ChangeStatus.PENDING.value,
                token_hash=_token_hash(ctx, token) if token else None,
            )
        )
    ended = await end_sessions_in(conn, before.id, now)
    await audit.record(
        conn,
        at=now,
        actor=actor,
        action=(
            AuditAction.DPO_IDENTITY_CHANGE if actor.type == "dpo" else AuditAction.IDENTITY_CHANGE
        ),
        decision=Decision.ALLOW,
        subject_id=before.id,
        fields=kinds,
        detail={
            "change_ids": ids,
            "cooling_off_until": until.isoformat(),
            "sessions_ended": ended,
            "notice": token is not None,
        },
    )
    if notice_to and token:
        await audit.record(
            conn,
            at=now,
            actor=audit.SYSTEM,
            action=AuditAction.IDENTITY_NOTICE_MAIL,
            decision=Decision.ALLOW,
            subject_id=before.id,
            fields=["email"],
            detail={"change_ids": ids},
        )
        await mail_outbox.queue(
            ctx,
            conn,
            notice_mail(ctx, notice_to, kinds, token, now, until),
            kind="identity_notice",
            subject_id=before.id,
        )
    return kinds


# -- the notice ------------------------------------------------------------------------------

_WHAT = {
    ("email",): ("die E-Mail-Adresse", "the e-mail address"),
    ("phone",): ("die Telefonnummer", "the phone number"),
    ("email", "phone"): (
        "die E-Mail-Adresse und die Telefonnummer",
        "the e-mail address and the phone number",
    ),
}
_NOTICE_SUBJECT = (
    "Ihre Kontaktdaten wurden geändert – waren Sie das? / "
    "Your contact details were changed – was this you?"
)
_NOTICE_BODY = """(English below)

Guten Tag,

am {at_de} UTC wurde {what_de} Ihres Kundenkontos bei uns geändert. Zu Ihrem Schutz zeigt
das Datenschutz-Center bei einer Anmeldung über eine neue E-Mail-Adresse bis zum
{until_de} UTC keine Kontaktdaten an und erlaubt dort weder Auskunft noch Löschung noch
andere Änderungen – es sei denn, Sie bestätigen die Änderung.

Waren Sie das? Bestätigen Sie die Änderung oder widersprechen Sie ihr hier:

    {link}

Wenn Sie die Änderung nicht veranlasst haben, wählen Sie dort „Das war ich nicht“. Dann
beenden wir alle Anmeldungen im Datenschutz-Center, die neue Adresse bleibt gesperrt, und
unser Datenschutzteam prüft den Vorgang und meldet sich bei Ihnen. Der Link ist
{days} Tage gültig. Geben Sie ihn nicht weiter.

----------------------------------------------------------------------

Hello,

on {at_en} UTC {what_en} of your customer account was changed. For your protection, until
{until_en} UTC the privacy centre shows no contact data to a sign-in through a new e-mail
address and allows no export, erasure or other change there, unless you confirm the change.

Was this you? Confirm the change or object to it here:

    {link}

If you did not make this change, choose "This was not me" there. We then end every
sign-in to the privacy centre, the new address stays locked, and our data protection team
looks into it and gets back to you. The link is valid for {days} days. Do not pass it on.
"""


def notice_mail(
    ctx: VaultContext,
    address: str,
    kinds: Sequence[str],
    token: str,
    at: datetime,
    until: datetime,
) -> EmailMessage:
    """The notice to the old address, in German and English. It names the changed fields,
    never an address (the new one could belong to someone else now)."""
    what_de, what_en = _WHAT[tuple(k for k in KINDS if k in kinds)]
    msg = EmailMessage()
    msg["From"] = ctx.settings.mail_from
    msg["To"] = address
    msg["Subject"] = _NOTICE_SUBJECT
    msg.set_content(
        _NOTICE_BODY.format(
            at_de=at.strftime("%d.%m.%Y, %H:%M"),
            at_en=at.strftime("%Y-%m-%d %H:%M"),
            until_de=until.strftime("%d.%m.%Y, %H:%M"),
            until_en=until.strftime("%Y-%m-%d %H:%M"),
            what_de=what_de,
            what_en=what_en,
            link=f"{ctx.settings.public_url}/privacy/identity/{token}",
            days=LINK_VALIDITY.days,
        )
    )
    msg["Content-Language"] = "de, en"
    return msg


# -- trust: is a session restricted? ---------------------------------------------------------


async def restriction_in(
    conn: AsyncConnection, subject_id: str, email_digest: str | None, now: datetime
) -> Restriction | None:
    """The restriction of a session of the subject opened through the e-mail address with
    `email_digest` (the one stored now: any change ends every session), or None.

    Trusted is the address in force before the earliest e-mail change still open (pending
    in its cooling-off, or objected): a change and its change back leave the old address
    trusted; a second change cannot launder the first."""
    rows = (
        await conn.execute(
            select(changes)
            .where(changes.c.subject_id == subject_id)
            .where(changes.c.kind == "email")
            .where(changes.c.status != ChangeStatus.CONFIRMED.value)
            .order_by(changes.c.ordinal)
        )
    ).all()
    still_open = [r for r in rows if _open(r, now)]
    if not still_open:
        return None
    trusted = still_open[0].old_digest
    if trusted is not None and email_digest is not None:
        if same_digest(trusted, email_digest):
            return None
    objected = any(r.status == ChangeStatus.OBJECTED for r in still_open)
    return Restriction(
        changed_at=_as_utc(still_open[-1].changed_at),
        until=None if objected else max(_as_utc(r.cooling_off_until) for r in still_open),
    )


# -- the link in the notice ------------------------------------------------------------------


async def _by_token(conn: AsyncConnection, ctx: VaultContext, token: str) -> list[Row[Any]]:
    if not isinstance(token, str) or not token or len(token) > _TOKEN_MAX:
        return []
    return list(
        (
            await conn.execute(
                select(changes)
                .where(
                    changes.c.token_hash.in_(
                        (_token_hash(ctx, token), _legacy_token_hash(ctx, token))
                    )
                )
                .order_by(changes.c.ordinal)
                .with_for_update()
            )
        ).all()
    )


def _usable(rows: Sequence[Row[Any]], now: datetime) -> list[Row[Any]]:
    """The changes a link may still confirm or object to: pending, link not expired."""
    return [
        r
        for r in rows
        if r.status == ChangeStatus.PENDING and _as_utc(r.changed_at) + LINK_VALIDITY > now
    ]


_UNUSABLE = "the link is unknown, has expired or was used already"


async def peek_notice(ctx: VaultContext, token: str) -> NoticeView:
    """What a still usable link is about (for its page); `NotFound` otherwise."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        rows = _usable(await _by_token(conn, ctx, token), now)
    if not rows:
        raise NotFound(_UNUSABLE)
    return NoticeView(
        subject_id=rows[0].subject_id,
        kinds=[r.kind for r in rows],
        changed_at=_as_utc(rows[0].changed_at),
        cooling_off_until=_as_utc(rows[0].cooling_off_until),
        status=_effective(rows[0], now),
    )


async def confirm_by_token(ctx: VaultContext, actor: Actor, token: str) -> list[ChangeRecord]:
    """The old address confirms the change: sessions through the new address are no longer
    restricted. Refused (`Conflict`) while an earlier e-mail change is still open: then
    the old address was itself not yet trusted, and a DPO decides."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        rows = _usable(await _by_token(conn, ctx, token), now)
        if not rows:
            raise NotFound(_UNUSABLE)
        earlier = (
            await conn.execute(
                select(changes)
                .where(changes.c.subject_id == rows[0].subject_id)
                .where(changes.c.kind == "email")
                .where(changes.c.ordinal < min(r.ordinal for r in rows))
                .where(changes.c.status != ChangeStatus.CONFIRMED.value)
            )
        ).all()
        if any(r.kind == "email" for r in rows) and any(_open(r, now) for r in earlier):
            raise Conflict(
                "an earlier change of the e-mail address is still open; our data protection "
                "team has to confirm this one"
            )
        ids = [r.id for r in rows]
        await _settle(conn, ids, ChangeStatus.CONFIRMED, actor, now)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.SUBJECT_IDENTITY_CONFIRM,
            decision=Decision.ALLOW,
            subject_id=rows[0].subject_id,
            fields=[r.kind for r in rows],
            detail={"change_ids": ids},
        )
    return await _records(ctx, ids)


async def record_objection(ctx: VaultContext, actor: Actor, token: str) -> tuple[str, list[str]]:
    """The old address objects ("this was not me"), the protection half: every session
    ends and the changes are marked objected (sessions through the disputed address stay
    restricted until a DPO approves). Returns the subject and the objected changes still
    without their restriction request, which `vault.rights.identity_objection` opens next
    (a retry of the same link gets them again, so a request that failed to open is
    completed); `NotFound` for a link that is unknown, expired, or used up."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        rows = await _by_token(conn, ctx, token)
        usable = _usable(rows, now)
        if usable:
            ids = [r.id for r in usable]
            await _settle(conn, ids, ChangeStatus.OBJECTED, actor, now, keep_token=True)
            ended = await end_sessions_in(conn, usable[0].subject_id, now)
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=AuditAction.SUBJECT_IDENTITY_OBJECT,
                decision=Decision.ALLOW,
                subject_id=usable[0].subject_id,
                fields=[r.kind for r in usable],
                detail={"change_ids": ids, "sessions_ended": ended},
            )
        else:
            usable = [r for r in rows if r.status == ChangeStatus.OBJECTED and not r.request_id]
            ids = [r.id for r in usable]
        if not usable:
            raise NotFound(_UNUSABLE)
    return usable[0].subject_id, ids


async def attach_request(
    ctx: VaultContext, change_ids: list[str], request_id: str
) -> list[ChangeRecord]:
    """Link objected changes to the request opened for them; their link stops working."""
    async with ctx.transaction() as conn:
        await conn.execute(
            update(changes)
            .where(changes.c.id.in_(change_ids))
            .values(request_id=request_id, token_hash=None)
        )
    return await _records(ctx, change_ids)


async def _settle(
    conn: AsyncConnection,
    ids: list[str],
    status: ChangeStatus,
    actor: Actor,
    now: datetime,
    *,
    keep_token: bool = False,
) -> None:
    values: dict[str, Any] = {
        "status": status.value,
        "resolved_at": now,
        "resolved_by": actor.label,
    }
    if not keep_token:
        values["token_hash"] = None
    await conn.execute(update(changes).where(changes.c.id.in_(ids)).values(**values))


async def _records(ctx: VaultContext, ids: list[str]) -> list[ChangeRecord]:
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        rows = (
            await conn.execute(
                select(changes).where(changes.c.id.in_(ids)).order_by(changes.c.ordinal)
            )
        ).all()
    return [_record(r, now) for r in rows]


# -- the DPO ---------------------------------------------------------------------------------

_STATUSES = (
    ChangeStatus.PENDING.value,
    EFFECTIVE,
    ChangeStatus.CONFIRMED.value,
    ChangeStatus.OBJECTED.value,
)


async def list_changes(
    ctx: VaultContext,
    actor: Actor,
    *,
    subject_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[ChangeRecord]:
    """Identity changes, newest first, optionally of one subject and one (shown) status;
    objected ones are the DPO's to resolve. The read is audited."""
    if status is not None and status not in _STATUSES:
        raise InvalidInput("unknown status", {"status": "must be one of " + ", ".join(_STATUSES)})
    now = ctx.clock.now()
    stmt = select(changes).order_by(changes.c.changed_at.desc(), changes.c.ordinal.desc())
    if subject_id is not None:
        stmt = stmt.where(changes.c.subject_id == subject_id)
    if status in (ChangeStatus.PENDING.value, EFFECTIVE):
        stmt = stmt.where(changes.c.status == ChangeStatus.PENDING.value)
        if status == EFFECTIVE:
            stmt = stmt.where(changes.c.cooling_off_until <= now)
        else:
            stmt = stmt.where(changes.c.cooling_off_until > now)
    elif status is not None:
        stmt = stmt.where(changes.c.status == status)
    async with ctx.transaction() as conn:
        rows = (await conn.execute(stmt.limit(limit))).all()
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.DPO_IDENTITY_LIST,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            detail={"status": status, "count": len(rows)},
        )
    return [_record(r, now) for r in rows]


async def approve(ctx: VaultContext, actor: Actor, change_id: str) -> ChangeRecord:
    """A DPO confirms a change (pending, in force, or objected after looking into it):
    sessions through the address it set are no longer restricted by it. Approve each open
    change of an address in turn: the earliest open one names the trusted address."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = (
            await conn.execute(select(changes).where(changes.c.id == change_id).with_for_update())
        ).first()
        if row is None:
            raise NotFound("no such identity change")
        if row.status == ChangeStatus.CONFIRMED:
            raise Conflict("the change is confirmed already")
        await _settle(conn, [row.id], ChangeStatus.CONFIRMED, actor, now)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.DPO_IDENTITY_APPROVE,
            decision=Decision.ALLOW,
            subject_id=row.subject_id,
            fields=[row.kind],
            detail={"change_id": row.id, "was": _effective(row, now)},
        )
    (record,) = await _records(ctx, [change_id])
    return record


__all__ = [
    "EFFECTIVE",
    "KINDS",
    "LINK_VALIDITY",
    "REFUSED_REASON",
    "ChangeRecord",
    "ChangeStatus",
    "NoticeView",
    "Restriction",
    "approve",
    "attach_request",
    "changed_kinds",
    "confirm_by_token",
    "end_sessions_in",
    "list_changes",
    "notice_mail",
    "peek_notice",
    "record_in",
    "record_objection",
    "restriction_in",
]
