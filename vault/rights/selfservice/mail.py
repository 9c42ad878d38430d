"""The sign-in mails (a one-time code, or a sign-in link while codes are locked), in
German and English, and their delivery on a background task, so the mail's cost never
shows in the answer to the caller (no enumeration of addresses)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import structlog

from vault import mail_outbox
from vault.sms import TextMessage

if TYPE_CHECKING:
    from vault.context import VaultContext


log = structlog.get_logger("tresor.selfservice")

_PENDING: set[asyncio.Task[None]] = set()


async def deliver(
    ctx: VaultContext,
    message: EmailMessage | TextMessage,
    *,
    subject_id: str | None = None,
    expires_at: datetime | None = None,
) -> None:
    """Send `message` (a mail, or an SMS through the gateway); a failure is logged
    (without the address), not raised.

    A mail goes through the outbox (`vault.mail_outbox`): queued, then tried at once and
    retried while the code or link is valid (`expires_at`), never later. It is queued here,
    after the challenge's commit, rather than in the challenge's transaction: known and
    unknown addresses must cost the request the same (no enumeration by timing)."""
    try:
        if isinstance(message, TextMessage):
            await ctx.sms.send(message)
        else:
            async with ctx.transaction() as conn:
                await mail_outbox.queue(
                    ctx,
                    conn,
                    message,
                    kind="signin",
                    subject_id=subject_id,
                    give_up_at=expires_at,
                )
    except Exception as exc:  # noqa: BLE001 - the caller has been answered already
        log.error("self_service_code_mail_failed", error=type(exc).__name__)


def deliver_later(coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro` on a background task that `wait_for_mail` can await."""
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


_SMS_CODE = (
    "Ihr Code für das Datenschutz-Center: {code} (gültig bis {until} UTC). "
    "Your code for the privacy centre: {code}. Nicht weitergeben / do not share."
)
_SMS_LINK = (
    "Anmeldung mit Code gesperrt; Ihr Anmeldelink / Sign-in link (bis/until {until} UTC): {link}"
)


def code_sms(ctx: VaultContext, number: str, code: str, expires_at: datetime) -> TextMessage:
    """The bilingual SMS carrying a one-time code, for a customer without an e-mail
    address; short enough for one message or two."""
    return TextMessage(number, _SMS_CODE.format(code=code, until=expires_at.strftime("%H:%M")))


def link_sms(ctx: VaultContext, number: str, token: str, expires_at: datetime) -> TextMessage:
    """The SMS carrying a one-time sign-in link while sign-in by code is locked."""
    link = f"{ctx.settings.public_url}{link_path(token)}"
    return TextMessage(number, _SMS_LINK.format(link=link, until=expires_at.strftime("%H:%M")))


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
