"""Extending a request's deadline once (Art. 12(3) GDPR), and the notice that tells the
subject the new date and the reason, in German and English."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING

from vault import mail_outbox
from vault.audit import events as audit
from vault.audit.events import Actor, Decision
from vault.clock import as_utc
from vault.errors import Conflict, InvalidInput, InvariantViolation
from vault.rights.deadlines import extended_due, extension_refusal
from vault.rights.free_text import clean_text
from vault.rights.requests.kinds import TYPE_TITLES
from vault.rights.requests.queue import get_request
from vault.rights.requests.store import (
    RequestRecord,
    add_history,
    audit_request,
    load_request,
    update_request,
)
from vault.rights.requests.transitions import RequestAction, transition
from vault.subjects.store import decrypt_fields, load_subject

if TYPE_CHECKING:
    from vault.context import VaultContext


async def extend(
    ctx: VaultContext, actor: Actor, request_id: str, reason: str, *, months: int = 2
) -> RequestRecord:
    """Extend the deadline once, within the first month, by up to two months (Art. 12(3)).

    The subject is told by mail (German and English, the new date and the reason) when an
    e-mail address is stored; the mail goes out before the change commits, so a failing
    mailer extends nothing. Without an address the history says the notice is still due.
    """
    text = clean_text(reason, "reason")
    if not isinstance(months, int) or isinstance(months, bool):
        raise InvalidInput("months must be 1 or 2", {"months": "must be 1 or 2"})
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        req = await load_request(conn, request_id, for_update=True)
        transition(req.status, RequestAction.EXTEND)
        received = as_utc(req.received_at)
        if received is None:
            raise InvariantViolation("received is unset")
        refusal = extension_refusal(received, as_utc(req.extended_at), now, months)
        if refusal and months in (1, 2):
            raise Conflict(refusal)
        if refusal:
            raise InvalidInput("months must be 1 or 2", {"months": refusal})
        new_due = extended_due(received, months)
        await update_request(
            conn,
            request_id,
            now,
            due_at=new_due,
            extended_at=now,
            extension_reason=text,
        )
        await add_history(
            conn,
            request_id,
            at=now,
            event="extended",
            status=req.status,
            actor=actor,
            note=f"due {new_due.isoformat()}: {text}",
        )
        await audit_request(conn, actor, "extend", req, now, req.status, due_at=new_due.isoformat())
        address = None
        if req.subject_id is not None:
            subject = await load_subject(conn, req.subject_id)
            if subject.wrapped_dek is not None:
                address = decrypt_fields(ctx, subject, ("email",)).get("email")
        if address:
            await audit.record(
                conn,
                at=now,
                actor=audit.SYSTEM,
                action=audit.AuditAction.REQUEST_EXTENSION_MAIL,
                decision=Decision.ALLOW,
                subject_id=req.subject_id,
                fields=["email"],
                detail={"request_id": request_id},
            )
            await add_history(
                conn,
                request_id,
                at=now,
                event="notice_mailed",
                status=req.status,
                actor=audit.SYSTEM,
                note="the subject was told the new date and the reason by e-mail",
            )
            await mail_outbox.queue(
                ctx,
                conn,
                extension_mail(ctx, address, request_id, req.type, received, new_due, text),
                kind="request_extension",
                subject_id=req.subject_id,
            )
        else:
            await add_history(
                conn,
                request_id,
                at=now,
                event="notice_pending",
                status=req.status,
                actor=audit.SYSTEM,
                note="no e-mail address stored: tell the subject by letter within the first month",
            )
    return await get_request(ctx, request_id)


_EXTENSION_SUBJECT = (
    "Ihre Datenschutz-Anfrage: Frist verlängert / Your privacy request: deadline extended"
)
_EXTENSION_BODY = """(English below)

Guten Tag,

Ihre Anfrage – {type_de} – vom {received_de} können wir nicht innerhalb eines Monats
abschließen. Nach Art. 12 Abs. 3 DSGVO verlängern wir die Frist: Sie erhalten unsere
Antwort spätestens am {due_de}.

Grund: {reason}

Ihre Vorgangsnummer: {request_id}

----------------------------------------------------------------------

Hello,

we cannot complete your request – {type_en} – of {received_en} within one month. Under
Art. 12(3) GDPR we extend the deadline: you will receive our answer by {due_en} at the
latest.

Reason: {reason}

Your reference: {request_id}
"""


def extension_mail(
    ctx: VaultContext,
    address: str,
    request_id: str,
    type_: str,
    received_at: datetime,
    due_at: datetime,
    reason: str,
) -> EmailMessage:
    """The notice of an extension, in German and English, with the new date and reason."""
    type_de, type_en = TYPE_TITLES.get(type_, (type_, type_))
    msg = EmailMessage()
    msg["From"] = ctx.settings.mail_from
    msg["To"] = address
    msg["Subject"] = _EXTENSION_SUBJECT
    msg.set_content(
        _EXTENSION_BODY.format(
            type_de=type_de,
            type_en=type_en,
            received_de=received_at.strftime("%d.%m.%Y"),
            received_en=received_at.strftime("%Y-%m-%d"),
            due_de=due_at.strftime("%d.%m.%Y"),
            due_en=due_at.strftime("%Y-%m-%d"),
            reason=reason,
            request_id=request_id,
        )
    )
    # After set_content, which clears the Content-* headers set before it.
    msg["Content-Language"] = "de, en"
    return msg
