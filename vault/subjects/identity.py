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

The notice's text is `identity_notice`; the old address's link is handled in
`identity_links` and the DPO's listing and approval in `identity_review`; both settle changes
through this module.

Phone changes are recorded, told and end sessions alike, but restrict no session: sign-in
codes always go to the e-mail address, so a session proves control of that, not of the
phone.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
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
from vault.errors import InvariantViolation
from vault.storage import sessions as web_sessions
from vault.storage.rights_tables import identity_changes as changes
from vault.storage.rights_tables import self_service_challenges as challenges
from vault.subjects import identity_notice

if TYPE_CHECKING:
    from vault.context import VaultContext

#: The identifying addresses whose change is an identity change.
KINDS = ("email", "phone")
#: The reason (and problem type suffix) of everything a restricted session is refused.
REFUSED_REASON = "identity_change_unconfirmed"
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
    server secret). Such a link stays usable for `identity_notice.LINK_VALIDITY` after it was
    sent, so it is still looked up; this can go once every release has run that long."""
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
            identity_notice.mail(ctx.settings, notice_to, kinds, token, now, until),
            kind="identity_notice",
            subject_id=before.id,
        )
    return kinds


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


__all__ = [
    "EFFECTIVE",
    "KINDS",
    "REFUSED_REASON",
    "ChangeRecord",
    "ChangeStatus",
    "NoticeView",
    "Restriction",
    "changed_kinds",
    "end_sessions_in",
    "record_in",
    "restriction_in",
]
