"""A mail server the test switches off and on, and driving the outbox until a mail fails:
the setting of the DPO's mail page and API tests."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from vault import mail_outbox
from vault.errors import Unavailable


class SwitchedMailer:
    """A mailer that refuses while `down` and keeps what it accepted otherwise."""

    def __init__(self) -> None:
        self.down = True
        self.accepted: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        if self.down:
            raise Unavailable("mail server is not reachable")
        self.accepted.append(message)

    async def check(self) -> None:
        if self.down:
            raise Unavailable("mail server is not reachable")


async def fail_everything(vault: Any, clock: Any) -> None:
    """Run the sender (server down) until no mail is pending any more."""
    sender = mail_outbox.MailSender(vault)
    for _ in range(200):
        clock.advance(timedelta(minutes=31))
        await sender.run()
        if not (await mail_outbox.counts(vault))["pending"]:
            return
    raise AssertionError("the mails never failed")
