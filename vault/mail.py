"""Mail the vault sends itself (double opt-in confirmations, request-extension notices,
self-service sign-in codes), behind one interface.

Production uses SMTP; the embedded default writes `.eml` files into the outbox directory of
the data dir, which is also how tests read confirmation links. The file outbox is for
development only: its files hold addresses, sign-in codes and confirmation links in
plaintext, so the retention sweep deletes them after `TRESOR_OUTBOX_HOURS` (`prune`,
measured with the vault's clock, whose time of writing is in each file's name).

Nothing is queued in the vault: `send` either hands the message over or raises
`Unavailable`, and callers answer 503 rather than acknowledge a mail that did not leave.
`check` asks whether the mailer would take a message now, for callers that must answer
before they send (sign-in codes).

Every mail leaves as a real sender's would (`as_sent`): with `Date` (the vault's clock) and
a `Message-ID` in the sender's domain, as `multipart/alternative` of the plain text the
caller wrote and an HTML rendering of it (`lang` from the mail's `Content-Language`, links
as links). The text part is 7bit when it is ASCII (lines may run to RFC 5322's 998
characters, so a link is never cut by a soft line break), else quoted-printable.

SMTP is encrypted unless the server is this machine (`TRESOR_SMTP_TLS`, default by
`vault.setting_values.default_smtp_tls`): `starttls` is required, not "when offered", so a server
(or someone in the path) that does not offer it gets no mail; certificates are verified
against the system's CAs (`SSL_CERT_FILE` names others).
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import secrets
import smtplib
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from vault.clock import Clock, SystemClock
from vault.errors import Unavailable

#: How a file outbox's file names carry the (clock) time they were written at.
_STAMP = "%Y%m%dT%H%M%S%fZ"


#: Headers of a caller's message that the sent one keeps (the content headers are rebuilt).
_KEPT = ("From", "To", "Cc", "Reply-To", "Subject", "Auto-Submitted")
_URL = re.compile(r"https?://[^\s<>\"']+")


#: The lines a mail ends with, in a language: who sends it and how to reach the DPO
#: (`ControllerSettings.mail_footer`, policies/controller.toml).
Footer = Callable[[str], str]


def as_sent(message: EmailMessage, now: datetime, footer: Footer | None = None) -> EmailMessage:
    """The message as it leaves: `Date`, `Message-ID`, and the text (ending with the
    footer in the message's language, after the "-- " signature line) with its HTML
    rendering as alternatives in that language. A message that is already multipart is
    only dated and given an id."""
    if message.is_multipart():
        sent = message
    else:
        language = str(message.get("Content-Language") or "")
        text = message.get_content()
        if footer is not None:
            text = f"{text.rstrip()}\n\n-- \n{footer(language)}\n"
        sent = EmailMessage()
        for name in _KEPT:
            if message[name] is not None:
                sent[name] = message[name]
        cte = "7bit" if text.isascii() and all(len(x) <= 998 for x in text.splitlines()) else None
        if cte:
            sent.set_content(text, cte=cte)
        else:
            sent.set_content(text)
        sent.add_alternative(_html(text, language, str(message["Subject"] or "")), subtype="html")
        if language:
            sent["Content-Language"] = language
    if sent["Date"] is None:
        sent["Date"] = format_datetime(now.astimezone(UTC))
    if sent["Message-ID"] is None:
        domain = parseaddr(str(sent["From"] or ""))[1].rpartition("@")[2] or "localhost"
        sent["Message-ID"] = make_msgid(domain=domain)
    return sent


def _html(text: str, language: str, subject: str) -> str:
    """The plain text as a small HTML document: a paragraph per block, its lines kept,
    addresses as links; everything escaped."""

    def line(raw: str) -> str:
        out, last = [], 0
        for match in _URL.finditer(raw):
            out.append(html.escape(raw[last : match.start()]))
            url = html.escape(match.group(0))
            out.append(f'<a href="{url}">{url}</a>')
            last = match.end()
        out.append(html.escape(raw[last:]))
        return "".join(out).strip()

    paragraphs = [
        "<br>\n".join(line(x) for x in block.splitlines())
        for block in re.split(r"\n\s*\n", text.strip())
    ]
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    lang = f' lang="{html.escape(language)}"' if language else ""
    return (
        f'<!DOCTYPE html>\n<html{lang}>\n<head><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title></head>\n"
        f'<body style="font-family: sans-serif; line-height: 1.5">\n{body}\n</body>\n</html>\n'
    )


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Deliver (or durably queue) a message; raise `Unavailable` when that fails."""
        ...

    async def check(self) -> None:
        """Raise `Unavailable` unless a message could be handed over right now."""
        ...


class FileOutbox:
    """Writes each message as an .eml file, atomically, into a directory (development
    only; see the module docstring)."""

    def __init__(
        self, directory: Path, clock: Clock | None = None, footer: Footer | None = None
    ) -> None:
        self.directory = directory
        self.clock = clock or SystemClock()
        self.footer = footer

    def _write(self, message: EmailMessage) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = self.clock.now().astimezone(UTC).strftime(_STAMP)
        name = f"{stamp}-{secrets.token_hex(8)}.eml"
        tmp = self.directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(bytes(message))
            fh.flush()
            os.fsync(fh.fileno())
        final = self.directory / name
        os.replace(tmp, final)
        return final

    async def send(self, message: EmailMessage) -> None:
        try:
            await asyncio.to_thread(self._write, as_sent(message, self.clock.now(), self.footer))
        except OSError as exc:
            raise Unavailable("mail outbox is not writable") from exc

    def _probe(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise PermissionError(self.directory.name)

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self._probe)
        except OSError as exc:
            raise Unavailable("mail outbox is not writable") from exc

    async def prune(self, max_age: timedelta) -> int:
        """Delete the mails (and leftover temporary files) written longer than `max_age`
        ago by the clock; returns how many mails went."""
        return await asyncio.to_thread(self._prune, self.clock.now() - max_age)

    def _prune(self, cutoff: datetime) -> int:
        if not self.directory.is_dir():
            return 0
        pruned = 0
        for path in [*self.directory.glob("*.eml"), *self.directory.glob(".*.tmp")]:
            try:
                if _written_at(path) < cutoff:
                    path.unlink()
                    pruned += path.suffix == ".eml"
            except FileNotFoundError:
                continue  # another process pruned it first
        return pruned


def _written_at(path: Path) -> datetime:
    """When a mail was written, by the clock (from its name); a file without a stamp in
    its name (written by an older version) by its modification time."""
    try:
        return datetime.strptime(path.name.lstrip(".").split("-", 1)[0], _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)


class SmtpMailer:
    """Sends through an SMTP server named by a URL: smtp[s]://user:pass@host:port, with the
    TLS mode of `TRESOR_SMTP_TLS` (see the module docstring)."""

    def __init__(
        self,
        url: str,
        tls: str = "starttls",
        clock: Clock | None = None,
        footer: Footer | None = None,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("smtp", "smtps") or not parsed.hostname:
            raise ValueError("TRESOR_SMTP_URL must look like smtp://user:pass@host:port")
        if tls not in ("starttls", "tls", "none"):
            raise ValueError("TRESOR_SMTP_TLS must be starttls, tls or none")
        self._tls = tls
        self._host = parsed.hostname
        self._port = parsed.port or (465 if tls == "tls" else 25)
        self._user = unquote(parsed.username) if parsed.username else None
        self._password = unquote(parsed.password) if parsed.password else None
        self.clock = clock or SystemClock()
        self.footer = footer

    def _connect(self) -> smtplib.SMTP:
        if self._tls == "tls":
            return smtplib.SMTP_SSL(
                self._host, self._port, timeout=10, context=ssl.create_default_context()
            )
        smtp = smtplib.SMTP(self._host, self._port, timeout=10)
        if self._tls == "starttls":
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                smtp.close()
                raise smtplib.SMTPNotSupportedError("the mail server offers no STARTTLS")
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        return smtp

    def _session(self, message: EmailMessage | None) -> None:
        """One SMTP session: connect (with the TLS mode), log in; then send `message`, or,
        without one, only NOOP (the probe behind `check`)."""
        with self._connect() as smtp:
            if self._user:
                smtp.login(self._user, self._password or "")
            if message is None:
                code, _ = smtp.noop()
                if code != 250:
                    raise smtplib.SMTPResponseException(code, b"NOOP refused")
            else:
                smtp.send_message(message)

    def _send(self, message: EmailMessage) -> None:
        self._session(message)

    async def send(self, message: EmailMessage) -> None:
        try:
            await asyncio.to_thread(self._send, as_sent(message, self.clock.now(), self.footer))
        except (OSError, smtplib.SMTPException) as exc:
            raise Unavailable("mail server is not reachable") from exc

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self._session, None)
        except (OSError, smtplib.SMTPException) as exc:
            raise Unavailable("mail server is not reachable") from exc


def make_mailer(
    smtp_url: str,
    outbox: Path,
    clock: Clock | None = None,
    tls: str = "starttls",
    footer: Footer | None = None,
) -> Mailer:
    if smtp_url:
        return SmtpMailer(smtp_url, tls, clock, footer)
    return FileOutbox(outbox, clock, footer)
