"""The DPO's view of the mail outbox (`vault.mail_outbox_review`) on SQLite and PostgreSQL,
against a real SMTP server started by the test (aiosmtpd): a failed notice keeps its sealed
message and is sent again, once, with its Message-ID, when the DPO retries it; sign-in codes
and mails past their deadline are refused; a discarded mail never leaves; every action is
audited and nothing listed carries an address."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from tests.support.factories import WRITER, person
from tests.support.server import free_port
from vault import mail_outbox
from vault.audit.events import Actor
from vault.errors import Conflict, InvalidInput, NotFound
from vault.mail import SmtpMailer
from vault.mail_outbox_review import discard, get_mail, list_mails, retry
from vault.storage.audit_tables import audit_events
from vault.storage.mail_tables import mail_outbox as outbox_table
from vault.subjects.store import create_subject

DPO = Actor("dpo", "datenschutz")
ADDRESS = "kundin@example.test"


class Inbox:
    """An aiosmtpd handler that accepts every message and keeps it."""

    def __init__(self) -> None:
        self.accepted: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.accepted.append(parsed)  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def port(vault: Any) -> int:
    """The vault sends through SMTP to a free loopback port where nothing listens yet."""
    free = free_port()
    vault.mailer = SmtpMailer(f"smtp://127.0.0.1:{free}", "none", vault.clock)
    return free


@pytest.fixture
def inbox(port: int) -> Iterator[Inbox]:
    """Start the SMTP server on `port` only when a test asks for it (the server is back)."""
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    holder: dict[str, Controller] = {}

    def start() -> None:
        controller.start()
        holder["c"] = controller

    box.start = start  # type: ignore[attr-defined]
    yield box
    if "c" in holder:
        holder["c"].stop()


async def _queue(vault: Any, kind: str, subject_id: str | None, until: datetime | None) -> str:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "v@example.test", ADDRESS, "notice"
    message.set_content("Your request takes longer.")
    async with vault.transaction() as conn:
        return await mail_outbox.queue(
            vault, conn, message, kind=kind, subject_id=subject_id, give_up_at=until
        )


async def _fail(vault: Any, clock: Any) -> None:
    """Run the sender with the server down until every mail has failed."""
    sender = mail_outbox.MailSender(vault)
    for _ in range(200):
        clock.advance(timedelta(minutes=31))
        await sender.run()
        if not (await mail_outbox.counts(vault))["pending"]:
            return
    raise AssertionError("the mails never failed")


async def _row(vault: Any, mail_id: str) -> Any:
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(outbox_table).where(outbox_table.c.id == mail_id))).one()


async def _actions(vault: Any) -> list[tuple[str, str | None, str | None]]:
    async with vault.engine.connect() as conn:
        rows = await conn.execute(
            select(audit_events.c.action, audit_events.c.subject_id, audit_events.c.detail)
            .where(audit_events.c.action.like("dpo:mail:%"))
            .order_by(audit_events.c.seq)
        )
        return [(r.action, r.subject_id, r.detail) for r in rows]


async def test_a_failed_notice_is_kept_and_sent_once_when_the_dpo_retries(vault, clock, inbox):
    """A notice given up while the server was down keeps its sealed message and is listed as
    retriable without its address; the DPO's retry sends it at once, one copy with the
    Message-ID fixed at queueing, wipes the seal, and is audited with the subject."""
    sid = await create_subject(vault, WRITER, person(1))
    mail_id = await _queue(vault, "request_extension", sid, None)
    await _fail(vault, clock)
    row = await _row(vault, mail_id)
    assert row.status == "failed" and row.sealed is not None

    (listed,) = await list_mails(vault, DPO, "failed")
    assert listed.id == mail_id and listed.retriable and listed.subject_id == sid
    assert listed.last_error == "ConnectionRefusedError" and listed.next_attempt_at is None
    assert ADDRESS not in repr(listed)
    assert await list_mails(vault, DPO, "pending") == []

    inbox.start()  # type: ignore[attr-defined]
    done = await retry(vault, DPO, mail_id, "mail server repaired")
    assert done.status == "sent" and done.dpo_note == "mail server repaired"
    assert [m["To"] for m in inbox.accepted] == [ADDRESS]
    row = await _row(vault, mail_id)
    assert row.sealed is None
    assert inbox.accepted[0]["Message-ID"]
    assert await mail_outbox.MailSender(vault).run() == mail_outbox.SendReport()
    assert len(inbox.accepted) == 1

    actions = await _actions(vault)
    assert [a for a, _, _ in actions] == ["dpo:mail:list", "dpo:mail:list", "dpo:mail:retry"]
    _, subject, detail = actions[-1]
    assert subject == sid
    assert mail_id in str(detail) and "mail server repaired" not in str(detail)
    assert ADDRESS not in str(await _actions(vault))


async def test_a_retry_while_the_server_is_still_down_waits_again(vault, clock, port):
    """A retry with the server still down leaves the mail pending, due again after the
    back-off, with its seal kept for the next attempt."""
    mail_id = await _queue(vault, "restriction_lifted", None, None)
    await _fail(vault, clock)
    done = await retry(vault, DPO, mail_id, "try once more")
    assert done.status == "pending" and done.attempts >= 2
    assert (await _row(vault, mail_id)).sealed is not None
    assert [m.id for m in await list_mails(vault, DPO, "pending")] == [mail_id]


async def test_sign_in_codes_and_stale_mails_are_not_retried(vault, clock, port):
    """A failed sign-in code (never sent late) has no seal left and a retry is refused
    with 409; so is a confirmation mail once its deadline has passed (the sweep wipes its
    seal); nothing changes either time."""
    code = await _queue(vault, "signin", None, clock.now() + timedelta(minutes=10))
    confirmation = await _queue(vault, "doi_confirmation", None, clock.now() + timedelta(hours=3))
    await _fail(vault, clock)
    assert (await _row(vault, code)).sealed is None
    assert not (await get_mail(vault, code)).retriable
    with pytest.raises(Conflict):
        await retry(vault, DPO, code, "please")
    clock.advance(timedelta(hours=3))
    await mail_outbox.prune(vault, clock.now() - mail_outbox.KEEP_DONE)
    assert (await _row(vault, confirmation)).sealed is None
    with pytest.raises(Conflict):
        await retry(vault, DPO, confirmation, "please")
    assert {(await _row(vault, i)).status for i in (code, confirmation)} == {"failed"}
    assert [a for a, _, _ in await _actions(vault)] == []


async def test_a_confirmation_before_its_deadline_can_be_retried(vault, clock, inbox):
    """A double opt-in mail that failed while its link is still valid keeps its seal and
    is sent when retried; its retries then stop at the confirmation deadline."""
    deadline = clock.now() + timedelta(days=3)
    mail_id = await _queue(vault, "doi_confirmation", None, deadline)
    await _fail(vault, clock)
    assert (await get_mail(vault, mail_id)).retriable
    inbox.start()  # type: ignore[attr-defined]
    assert (await retry(vault, DPO, mail_id, "server back")).status == "sent"
    assert len(inbox.accepted) == 1


async def test_a_discarded_mail_never_leaves(vault, clock, inbox):
    """Discarding a pending mail wipes its seal at once and the sender never sends it; a
    second discard or a retry is refused with 409, an unknown id is `NotFound`, a missing
    reason is `InvalidInput`, and only the discard is audited."""
    sid = await create_subject(vault, WRITER, person(2))
    mail_id = await _queue(vault, "identity_notice", sid, None)
    with pytest.raises(InvalidInput):
        await discard(vault, DPO, mail_id, "   ")
    assert (await _row(vault, mail_id)).status == "pending"
    done = await discard(vault, DPO, mail_id, "sent by letter instead")
    assert done.status == "discarded"
    assert (await _row(vault, mail_id)).sealed is None
    inbox.start()  # type: ignore[attr-defined]
    clock.advance(timedelta(hours=1))
    assert await mail_outbox.MailSender(vault).run() == mail_outbox.SendReport()
    assert inbox.accepted == []
    assert await list_mails(vault, DPO) == []
    with pytest.raises(Conflict):
        await discard(vault, DPO, mail_id, "again")
    with pytest.raises(Conflict):
        await retry(vault, DPO, mail_id, "again")
    with pytest.raises(NotFound):
        await discard(vault, DPO, "00000000-0000-4000-8000-000000000000", "gone")
    assert [(a, s) for a, s, _ in await _actions(vault)] == [
        ("dpo:mail:discard", sid),
        ("dpo:mail:list", None),
    ]


async def test_listing_an_unknown_status_is_refused(vault):
    """Only pending and failed mails are listed; another status is `InvalidInput`."""
    with pytest.raises(InvalidInput):
        await list_mails(vault, DPO, "sent")
