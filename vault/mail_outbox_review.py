"""The DPO's view of the mail outbox (`vault.mail_outbox`): which mails wait and which were
given up, and the two things a DPO may do about one: send a failed mail again once the
mail server is fixed, or discard a mail that should not go (any more).

What is shown is what the row holds besides the sealed message: the template's name, the
subject id, times, attempts and the class of the last failure; never the address or the
body (`sealed` is not opened here). A retry is refused (`Conflict`) for a mail whose
content no longer means anything: a sign-in code (never sent late) or a mail past its
`valid_until` (a confirmation deadline), and for one whose sealed message is gone. Every
listing, retry and discard is audited; the DPO's reason is kept on the row (`dpo_note`),
the audit event records the mail id, its kind and that a reason was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault import mail_outbox
from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.clock import as_utc
from vault.errors import Conflict, InvalidInput, NotFound
from vault.rights.free_text import clean_text
from vault.storage.mail_tables import mail_outbox as outbox_table

if TYPE_CHECKING:
    from vault.context import VaultContext

#: The statuses the DPO's list shows (sent and discarded mails need nothing).
LISTED = ("pending", "failed")
#: Rows listed at most, newest first.
LIST_LIMIT = 500


@dataclass(frozen=True, slots=True)
class OutboxMail:
    """One mail of the outbox as the DPO sees it: no address, no body."""

    id: str
    kind: str
    subject_id: str | None
    status: str
    created_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    valid_until: datetime | None
    #: Whether a DPO may send it again now (failed, content still meaningful and kept).
    retriable: bool
    dpo_note: str | None


_COLUMNS = (
    outbox_table.c.id,
    outbox_table.c.kind,
    outbox_table.c.subject_id,
    outbox_table.c.status,
    outbox_table.c.created_at,
    outbox_table.c.attempts,
    outbox_table.c.next_attempt_at,
    outbox_table.c.last_error,
    outbox_table.c.valid_until,
    outbox_table.c.dpo_note,
    outbox_table.c.sealed.is_not(None).label("has_message"),
)


def _mail(row: Any, now: datetime) -> OutboxMail:
    """The DPO's view of a row selected with `_COLUMNS`."""
    valid_until = as_utc(row.valid_until) if row.valid_until is not None else None
    return OutboxMail(
        id=row.id,
        kind=row.kind,
        subject_id=row.subject_id,
        status=row.status,
        created_at=as_utc(row.created_at),
        attempts=int(row.attempts),
        next_attempt_at=as_utc(row.next_attempt_at) if row.status == "pending" else None,
        last_error=row.last_error,
        valid_until=valid_until,
        retriable=row.status == "failed"
        and bool(row.has_message)
        and mail_outbox.retriable(row.kind, valid_until, now),
        dpo_note=row.dpo_note,
    )


async def list_mails(
    ctx: VaultContext, actor: Actor, status: str | None = None
) -> list[OutboxMail]:
    """The pending and failed mails (or those of one `status`), newest first; audited
    (`dpo:mail:list`). Raises `InvalidInput` for a status that is not listed."""
    if status is not None and status not in LISTED:
        raise InvalidInput("unknown mail status", {"status": f"is not one of {', '.join(LISTED)}"})
    now = ctx.clock.now()
    statuses = (status,) if status else LISTED
    async with ctx.transaction() as conn:
        rows = (
            await conn.execute(
                select(*_COLUMNS)
                .where(outbox_table.c.status.in_(statuses))
                .order_by(outbox_table.c.created_at.desc(), outbox_table.c.id)
                .limit(LIST_LIMIT)
            )
        ).all()
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.DPO_MAIL_LIST,
            decision=Decision.ALLOW,
            detail={"status": status or "pending,failed", "count": len(rows)},
        )
    return [_mail(r, now) for r in rows]


async def get_mail(ctx: VaultContext, mail_id: str) -> OutboxMail:
    """One mail as the DPO sees it (after an action); raises `NotFound`."""
    async with ctx.engine.connect() as conn:
        row = (
            await conn.execute(select(*_COLUMNS).where(outbox_table.c.id == mail_id))
        ).one_or_none()
    if row is None:
        raise NotFound("no such mail")
    return _mail(row, ctx.clock.now())


async def retry(ctx: VaultContext, actor: Actor, mail_id: str, reason: object) -> OutboxMail:
    """Send a failed mail again: it is pending again, tried right after the commit and then
    by the `mail` job with the usual back-off for up to `TRESOR_MAIL_RETRY_HOURS` (never
    past its `valid_until`). Audited (`dpo:mail:retry`). Raises `InvalidInput` without a
    reason, `NotFound`, or `Conflict` when the mail is not failed or cannot be retried."""
    text = clean_text(reason, "reason")
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = await _load(conn, mail_id)
        mail = _mail(row, now)
        if mail.status != "failed":
            raise Conflict(f"only a failed mail can be sent again; this one is {mail.status}")
        if not mail.retriable:
            raise Conflict(
                "this mail cannot be sent again: a sign-in code, past its deadline, "
                "or its message is no longer kept"
            )
        limit = now + timedelta(hours=ctx.settings.mail_retry_hours)
        give_up = min(limit, mail.valid_until) if mail.valid_until else limit
        await conn.execute(
            update(outbox_table)
            .where(outbox_table.c.id == mail_id)
            .values(status="pending", next_attempt_at=now, give_up_at=give_up, dpo_note=text)
        )
        await _audit(conn, actor, AuditAction.DPO_MAIL_RETRY, mail, now)
        mail_outbox.schedule(conn, mail_id)
    return await get_mail(ctx, mail_id)


async def discard(ctx: VaultContext, actor: Actor, mail_id: str, reason: object) -> OutboxMail:
    """Never send a pending or failed mail: its sealed message is wiped at once and the row
    goes with the outbox's retention. Audited (`dpo:mail:discard`). Raises `InvalidInput`
    without a reason, `NotFound`, or `Conflict` when it was sent or discarded already. (A
    mail whose attempt is under way at this moment may still leave.)"""
    text = clean_text(reason, "reason")
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = await _load(conn, mail_id)
        mail = _mail(row, now)
        if mail.status not in LISTED:
            raise Conflict(
                f"only a pending or failed mail can be discarded; this one is {mail.status}"
            )
        await conn.execute(
            update(outbox_table)
            .where(outbox_table.c.id == mail_id)
            .values(status="discarded", sealed=None, give_up_at=now, dpo_note=text)
        )
        await _audit(conn, actor, AuditAction.DPO_MAIL_DISCARD, mail, now)
    return await get_mail(ctx, mail_id)


async def _load(conn: AsyncConnection, mail_id: str) -> Any:
    """The mail's row (`_COLUMNS`), locked for the action; `NotFound` if there is none."""
    row = (
        await conn.execute(select(*_COLUMNS).where(outbox_table.c.id == mail_id).with_for_update())
    ).one_or_none()
    if row is None:
        raise NotFound("no such mail")
    return row


async def _audit(
    conn: AsyncConnection, actor: Actor, action: AuditAction, mail: OutboxMail, now: datetime
) -> None:
    await audit.record(
        conn,
        at=now,
        actor=actor,
        action=action,
        decision=Decision.ALLOW,
        subject_id=mail.subject_id,
        detail={"mail_id": mail.id, "kind": mail.kind, "status": mail.status, "reason_given": True},
    )
