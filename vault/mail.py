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
"""

from __future__ import annotations

import asyncio
import os
import secrets
import smtplib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from vault.clock import Clock, SystemClock
from vault.errors import Unavailable

#: How a file outbox's file names carry the (clock) time they were written at.
_STAMP = "%Y%m%dT%H%M%S%fZ"


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

    def __init__(self, directory: Path, clock: Clock | None = None) -> None:
        self.directory = directory
        self.clock = clock or SystemClock()

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
            await asyncio.to_thread(self._write, message)
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
    """Sends through an SMTP server named by a URL: smtp[s]://user:pass@host:port."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("smtp", "smtps") or not parsed.hostname:
            raise ValueError("TRESOR_SMTP_URL must look like smtp://user:pass@host:port")
        self._ssl = parsed.scheme == "smtps"
        self._host = parsed.hostname
        self._port = parsed.port or (465 if self._ssl else 25)
        self._user = unquote(parsed.username) if parsed.username else None
        self._password = unquote(parsed.password) if parsed.password else None

    def _session(self, message: EmailMessage | None) -> None:
        """One SMTP session: connect, STARTTLS when offered, log in; then send `message`,
        or, without one, only NOOP (the probe behind `check`)."""
        cls = smtplib.SMTP_SSL if self._ssl else smtplib.SMTP
        with cls(self._host, self._port, timeout=10) as smtp:
            if not self._ssl:
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls()
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
            await asyncio.to_thread(self._send, message)
        except (OSError, smtplib.SMTPException) as exc:
            raise Unavailable("mail server is not reachable") from exc

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self._session, None)
        except (OSError, smtplib.SMTPException) as exc:
            raise Unavailable("mail server is not reachable") from exc


def make_mailer(smtp_url: str, outbox: Path, clock: Clock | None = None) -> Mailer:
    return SmtpMailer(smtp_url) if smtp_url else FileOutbox(outbox, clock)
