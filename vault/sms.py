"""Text messages the vault sends itself (self-service sign-in codes for customers known only
by a phone number), behind one provider interface like the mail's (`vault.mail`).

A provider implements `SmsGateway`: `send` hands a message over or raises `Unavailable`,
`check` says whether it would take one now (sign-in answers before it sends, so it must not
promise a code that cannot leave). The embedded default, `FileSmsOutbox`, writes each
message as a JSON file into the data dir's `sms-outbox` (development and tests). Its files
hold phone numbers and codes in plaintext, so the retention sweep deletes them after
`TRESOR_OUTBOX_HOURS`, as the mail outbox's.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from vault.clock import Clock, SystemClock
from vault.errors import Unavailable

#: How a file outbox's file names carry the (clock) time they were written at.
_STAMP = "%Y%m%dT%H%M%S%fZ"


@dataclass(frozen=True, slots=True)
class TextMessage:
    """One SMS: the number in E.164 (as the vault stores phones) and the text."""

    to: str
    text: str


class SmsGateway(Protocol):
    async def send(self, message: TextMessage) -> None:
        """Deliver (or durably queue) a message; raise `Unavailable` when that fails."""
        ...

    async def check(self) -> None:
        """Raise `Unavailable` unless a message could be handed over right now."""
        ...


class FileSmsOutbox:
    """Writes each message as a `.sms.json` file, atomically, into a directory
    (development and tests only; see the module docstring)."""

    def __init__(self, directory: Path, clock: Clock | None = None) -> None:
        self.directory = directory
        self.clock = clock or SystemClock()

    def _write(self, message: TextMessage) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = self.clock.now().astimezone(UTC)
        name = f"{now.strftime(_STAMP)}-{secrets.token_hex(8)}.sms.json"
        tmp = self.directory / f".{name}.tmp"
        body = {"to": message.to, "text": message.text, "at": now.isoformat()}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(body, fh, ensure_ascii=False)
            fh.flush()
            os.fsync(fh.fileno())
        final = self.directory / name
        os.replace(tmp, final)
        return final

    async def send(self, message: TextMessage) -> None:
        try:
            await asyncio.to_thread(self._write, message)
        except OSError as exc:
            raise Unavailable("sms outbox is not writable") from exc

    def _probe(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise PermissionError(self.directory.name)

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self._probe)
        except OSError as exc:
            raise Unavailable("sms outbox is not writable") from exc

    async def prune(self, max_age: timedelta) -> int:
        """Delete the messages written longer than `max_age` ago by the clock; returns how
        many went."""
        return await asyncio.to_thread(self._prune, self.clock.now() - max_age)

    def _prune(self, cutoff: datetime) -> int:
        if not self.directory.is_dir():
            return 0
        pruned = 0
        for path in [*self.directory.glob("*.sms.json"), *self.directory.glob(".*.tmp")]:
            try:
                stamp = path.name.lstrip(".").split("-", 1)[0]
                if datetime.strptime(stamp, _STAMP).replace(tzinfo=UTC) < cutoff:
                    path.unlink()
                    pruned += path.name.endswith(".sms.json")
            except (FileNotFoundError, ValueError):
                continue  # pruned by another process, or not one of ours
        return pruned


def read_outbox(directory: Path) -> list[TextMessage]:
    """The messages in a file outbox, oldest first (for development tools and tests)."""
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.sms.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        out.append(TextMessage(to=body["to"], text=body["text"]))
    return out
