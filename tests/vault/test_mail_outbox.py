"""The mail outbox (`vault.mail_outbox`) against a real SMTP server started by the test
(aiosmtpd), on SQLite and PostgreSQL: a mail server outage delays mail instead of losing it,
a rolled-back change sends nothing, two senders never send one row twice, and no address
appears at rest, in the log or in the error recorded."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from tests.support.db import count_rows
from tests.support.dsar import erase
from tests.support.factories import NEWSLETTER_EVIDENCE, WRITER, person
from tests.support.server import free_port
from vault import mail_outbox
from vault.audit.events import Actor
from vault.bases.consents import Evidence, list_bases, record_basis
from vault.mail import SmtpMailer
from vault.storage.mail_tables import mail_outbox as outbox_table
from vault.subjects.store import create_subject

NEWS = Evidence(**NEWSLETTER_EVIDENCE)
DPO = Actor("dpo", "dpo@example.test")


class Inbox:
    """An aiosmtpd handler: answers 451 (try later) to the first `refuse` messages, then
    250; keeps the Message-ID of every DATA it saw and the messages it accepted."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.seen: list[str] = []
        self.accepted: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.seen.append(str(parsed["Message-ID"]))
        if self.refuse > 0:
            self.refuse -= 1
            return "451 4.3.0 try again later"
        self.accepted.append(parsed)  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def smtp(vault: Any, port: int) -> SmtpMailer:
    """The vault sends through SMTP to 127.0.0.1:`port`, without TLS (loopback)."""
    mailer = SmtpMailer(f"smtp://127.0.0.1:{port}", "none", vault.clock)
    vault.mailer = mailer
    return mailer


def _serve(inbox: Inbox, port: int) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller


@pytest.fixture
def server() -> Iterator[dict[str, Controller]]:
    """Where a test puts the SMTP server it starts (stopped at the end)."""
    holder: dict[str, Controller] = {}
    yield holder
    if "controller" in holder:
        holder["controller"].stop()


async def _rows(vault: Any) -> list[Any]:
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(outbox_table))).all()


async def _doi(vault: Any, seed: int = 1) -> tuple[str, str]:
    data = person(seed)
    sid = await create_subject(vault, WRITER, data)
    await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    return sid, data["email"]


async def test_down_then_up_the_mail_arrives_once_with_one_message_id(
    vault, clock, smtp, port, server
):
    """With the server down the change still commits and the mail waits; a server that then
    defers (451) and finally accepts gets the same Message-ID each time, and one copy."""
    sid, address = await _doi(vault)
    ((row,),) = [await _rows(vault)]
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error == "ConnectionRefusedError"
    assert address.encode() not in bytes(row.sealed)
    assert (await list_bases(vault, WRITER, sid))[0].status == "pending_confirmation"

    inbox = Inbox(refuse=1)
    server["controller"] = _serve(inbox, port)
    sender = mail_outbox.MailSender(vault)
    assert await sender.run() == mail_outbox.SendReport()  # not due yet: back-off
    clock.advance(timedelta(minutes=2))
    assert await sender.run() == mail_outbox.SendReport(retried=1)
    clock.advance(timedelta(minutes=5))
    assert await sender.run() == mail_outbox.SendReport(sent=1)
    clock.advance(timedelta(hours=1))
    assert await sender.run() == mail_outbox.SendReport()

    assert len(inbox.accepted) == 1 and len(inbox.seen) == 2
    assert inbox.seen[0] == inbox.seen[1]
    assert inbox.accepted[0]["To"] == address
    ((row,),) = [await _rows(vault)]
    assert row.status == "sent" and row.attempts == 3 and row.sealed is None


async def test_a_server_up_gets_the_mail_at_once(vault, smtp, port, server):
    """The first attempt runs right after the commit: no job needed while the server is up."""
    inbox = Inbox()
    server["controller"] = _serve(inbox, port)
    _, address = await _doi(vault)
    assert [m["To"] for m in inbox.accepted] == [address]
    ((row,),) = [await _rows(vault)]
    assert row.status == "sent" and row.attempts == 1 and row.sealed is None


async def test_rollback_of_the_causing_change_sends_nothing(vault, smtp, port, server):
    """A mail queued in a transaction that rolls back is neither stored nor sent."""
    inbox = Inbox()
    server["controller"] = _serve(inbox, port)
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "v@example.test", "x@example.test", "s"
    message.set_content("hello")
    with pytest.raises(RuntimeError):
        async with vault.transaction() as conn:
            await mail_outbox.queue(vault, conn, message, kind="test", subject_id=None)
            raise RuntimeError("the change fails after queueing its mail")
    assert await count_rows(vault, outbox_table) == 0
    await mail_outbox.MailSender(vault).run()
    assert inbox.seen == []


async def test_given_up_after_the_retry_window_and_counted(vault, clock, smtp):
    """A mail the server never takes is `failed` once its window (24 h) has passed and
    counted for the DPO; its sealed copy is wiped by the sweep once its confirmation
    deadline has passed (no DPO may send it again then)."""
    await _doi(vault)
    sender = mail_outbox.MailSender(vault)
    # The confirmation link is valid for the double opt-in window: not sent after it.
    for _ in range(200):
        clock.advance(timedelta(minutes=31))
        await sender.run()
        if (await mail_outbox.counts(vault))["failed"]:
            break
    ((row,),) = [await _rows(vault)]
    assert row.status == "failed"
    assert row.last_error in ("ConnectionRefusedError", "Expired")
    assert await mail_outbox.counts(vault) == {
        "pending": 0,
        "sent": 0,
        "failed": 1,
        "discarded": 0,
    }
    clock.advance(timedelta(hours=vault.settings.double_opt_in_hours))
    assert await mail_outbox.prune(vault, clock.now() - mail_outbox.KEEP_DONE) == 0
    ((row,),) = [await _rows(vault)]
    assert row.status == "failed" and row.sealed is None


async def test_a_sign_in_code_is_never_sent_late(vault, clock, smtp, port, server):
    """A mail whose give-up time (a code's expiry) passed while the server was down is
    failed, not sent, when the server is back."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "v@example.test", "x@example.test", "c"
    message.set_content("code 123456")
    async with vault.transaction() as conn:
        await mail_outbox.queue(
            vault,
            conn,
            message,
            kind="signin",
            subject_id=None,
            give_up_at=clock.now() + timedelta(minutes=10),
        )
    inbox = Inbox()
    server["controller"] = _serve(inbox, port)
    clock.advance(timedelta(minutes=11))
    assert await mail_outbox.MailSender(vault).run() == mail_outbox.SendReport(failed=1)
    assert inbox.seen == []


async def test_erasure_deletes_the_subjects_queued_mail(vault, smtp):
    """Erasing a subject deletes its pending mails: no sealed address outlives it."""
    sid, _ = await _doi(vault)
    other, _ = await _doi(vault, seed=2)
    await erase(vault, DPO, sid)
    rows = await _rows(vault)
    assert [r.subject_id for r in rows] == [other]


async def test_no_address_in_the_log_or_the_recorded_error(vault, clock, smtp, log_stream):
    """The attempts' log lines and the stored error name a class, never the address."""
    _, address = await _doi(vault)
    clock.advance(timedelta(minutes=2))
    await mail_outbox.MailSender(vault).run()
    ((row,),) = [await _rows(vault)]
    assert address not in (row.last_error or "")
    text = log_stream.getvalue()
    assert address not in text and address.split("@")[0] not in text


async def test_two_senders_never_send_one_row_twice(vault, clock, smtp, port, server, db_url):
    """While one node's claim holds rows (locked, not yet committed), a second sender
    neither waits for them nor sends them; after the claim commits they are leased to the
    first node, and only a lease that ran out (the node died) lets another send them."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer; two nodes share only a PostgreSQL outbox")
    for seed in range(1, 9):
        await _doi(vault, seed)  # server down: all pending
    inbox = Inbox()
    server["controller"] = _serve(inbox, port)
    clock.advance(timedelta(minutes=2))
    now = clock.now()
    ids = sorted(r.id for r in await _rows(vault))
    held = ids[:4]
    other = mail_outbox.MailSender(vault)
    async with vault.engine.begin() as node_a:  # the first node's claim, mid-transaction
        locked = select(outbox_table.c.id).where(outbox_table.c.id.in_(held)).with_for_update()
        assert len((await node_a.execute(locked)).all()) == 4
        await node_a.execute(
            update(outbox_table)
            .where(outbox_table.c.id.in_(held))
            .values(next_attempt_at=now + mail_outbox.LEASE)
        )
        report = await asyncio.wait_for(other.run(), timeout=20)
        assert report.sent == 4
    assert await other.run() == mail_outbox.SendReport()  # leased to the first node
    clock.advance(mail_outbox.LEASE * 2)  # the first node died without sending
    assert (await other.run()).sent == 4
    assert len(inbox.seen) == 8 and len(set(inbox.seen)) == 8


async def test_rows_of_sent_mails_are_pruned_after_30_days(vault, clock, smtp, port, server):
    """The retention sweep deletes the rows of mails sent more than 30 days ago; a mail
    still pending stays."""
    inbox = Inbox()
    server["controller"] = _serve(inbox, port)
    await _doi(vault, 1)  # sent at once
    server.pop("controller").stop()
    await _doi(vault, 2)  # pending: the server is down
    clock.advance(mail_outbox.KEEP_DONE + timedelta(minutes=1))
    assert await mail_outbox.prune(vault, clock.now() - mail_outbox.KEEP_DONE) == 1
    assert [r.status for r in await _rows(vault)] == ["pending"]


def test_free_port_is_closed() -> None:
    """The "down" server of these tests: nothing listens on a fresh free port."""
    port = free_port()
    with socket.socket() as sock, pytest.raises(OSError):
        sock.connect(("127.0.0.1", port))
