"""Double opt-in: the mailed confirmation link (German or English), looking at what a
token would confirm without confirming it (mail scanners open links), and confirming.
Tokens are stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.bases.consents.listing import get_basis
from vault.bases.consents.records import (
    BasisRecord,
    add_history,
    basis_facts,
)
from vault.catalogue.purposes import Purpose
from vault.clock import as_utc
from vault.errors import Conflict, InvariantViolation, NotFound
from vault.recipients import events as outbox
from vault.storage.tables import consents
from vault.subjects.decision import BasisStatus, effective_status

if TYPE_CHECKING:
    from vault.context import VaultContext


_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


def hash_token(token: str) -> str:
    """A confirmation token as stored: its SHA-256, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


_MAIL_TEXT = {
    "de": (
        "Bitte bestätigen Sie Ihre Einwilligung: {title}",
        "Guten Tag,\n\nbitte bestätigen Sie, dass wir Sie für folgenden Zweck kontaktieren "
        "dürfen:\n\n  {title}\n\nZum Bestätigen öffnen Sie diesen Link:\n\n  {link}\n\n"
        "Der Link ist gültig bis {deadline} (UTC). Wenn Sie das nicht angefordert haben, "
        "ignorieren Sie diese E-Mail einfach; dann geschieht nichts.\n",
    ),
    "en": (
        "Please confirm your consent: {title}",
        "Hello,\n\nplease confirm that we may contact you for this purpose:\n\n  {title}\n\n"
        "To confirm, open this link:\n\n  {link}\n\nThe link is valid until {deadline} (UTC). "
        "If you did not ask for this, simply ignore this e-mail; nothing will happen.\n",
    ),
}


def confirmation_link(ctx: VaultContext, token: str) -> str:
    return f"{ctx.settings.public_url}/confirm/{token}"


def confirmation_mail(
    ctx: VaultContext,
    purpose: Purpose,
    address: str,
    token: str,
    language: str,
    deadline: datetime | None,
) -> EmailMessage:
    subject_tpl, body_tpl = _MAIL_TEXT.get(language, _MAIL_TEXT["de"])
    title = purpose.title(language)
    msg = EmailMessage()
    msg["From"] = ctx.settings.mail_from
    msg["To"] = address
    msg["Subject"] = subject_tpl.format(title=title)
    msg.set_content(
        body_tpl.format(
            title=title,
            link=confirmation_link(ctx, token),
            deadline=deadline.strftime("%Y-%m-%d %H:%M") if deadline else "-",
        )
    )
    # After set_content, which clears every Content-* header set before it.
    msg["Content-Language"] = language
    return msg


async def confirm(ctx: VaultContext, token: str, actor: Actor) -> BasisRecord:
    """Turn a pending double opt-in consent into a granted one via its mailed token."""
    if not _TOKEN_RE.match(token or ""):
        raise NotFound("unknown or used confirmation link")
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = (
            await conn.execute(
                select(consents)
                .where(consents.c.confirm_token_hash == hash_token(token))
                .with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound("unknown or used confirmation link")
        status = effective_status(basis_facts(row), now)
        if status is BasisStatus.LAPSED:
            raise Conflict("the confirmation link has expired; please subscribe again")
        if status is not BasisStatus.PENDING_CONFIRMATION:
            raise Conflict("this consent can no longer be confirmed")
        purpose = ctx.catalogue.get(row.purpose)
        expires_at = as_utc(row.expires_at)
        created = as_utc(row.created_at)
        if created is None:
            raise InvariantViolation("created is unset")
        if (
            purpose is not None
            and purpose.default_duration
            and expires_at is not None
            and expires_at - created == purpose.default_duration
        ):
            # A default duration runs in full from confirmation, not from the request; an
            # expiry the client named explicitly is kept as it is.
            expires_at = now + purpose.default_duration
        await conn.execute(
            update(consents)
            .where(consents.c.id == row.id)
            .values(
                status=BasisStatus.GRANTED,
                granted_at=now,
                expires_at=expires_at,
                confirm_token_hash=None,
            )
        )
        await add_history(
            conn,
            consent_id=row.id,
            subject_id=row.subject_id,
            at=now,
            event="confirmed",
            status=BasisStatus.GRANTED,
            actor=actor,
            expires_at=expires_at,
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.CONSENT_CONFIRM,
            decision=Decision.ALLOW,
            subject_id=row.subject_id,
            purpose=row.purpose,
            consent_id=row.id,
        )
        await outbox.emit(
            conn,
            outbox.EventType.CONSENT_GRANTED,
            subject_id=row.subject_id,
            purposes=[row.purpose],
            at=now,
        )
    return await get_basis(ctx, row.subject_id, row.id)


async def peek_confirmation(ctx: VaultContext, token: str) -> tuple[str, BasisStatus]:
    """Purpose id and effective status behind a confirmation token, without confirming.

    The page behind the mailed link shows this first and confirms only on a button press,
    because mail scanners open links on their own.
    """
    if not _TOKEN_RE.match(token or ""):
        raise NotFound("unknown or used confirmation link")
    async with ctx.transaction() as conn:
        row = (
            await conn.execute(
                select(consents).where(consents.c.confirm_token_hash == hash_token(token))
            )
        ).first()
    if row is None:
        raise NotFound("unknown or used confirmation link")
    return row.purpose, effective_status(basis_facts(row), ctx.clock.now())
