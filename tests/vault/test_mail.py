"""The file outbox (development only) keeps no mail longer than its retention, measured
with the injected clock; the retention sweep prunes it."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from email.message import EmailMessage

from vault.mail import FileOutbox
from vault.rights.retention import run_retention


def _mail(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["To"] = f"kunde{n}@example.org"
    msg["Subject"] = f"Code {n}"
    msg.set_content(f"Ihr Code: {n:06d}")
    return msg


async def test_outbox_prunes_mail_older_than_its_retention_by_the_clock(tmp_path, clock):
    """A mail older than the retention (by the injected clock, not the file system's) is
    deleted, a younger one is kept."""
    outbox = FileOutbox(tmp_path / "outbox", clock=clock)
    await outbox.send(_mail(1))
    clock.advance(timedelta(hours=23))
    await outbox.send(_mail(2))
    assert await outbox.prune(timedelta(hours=24)) == 0
    assert len(list(outbox.directory.glob("*.eml"))) == 2
    clock.advance(timedelta(hours=1, seconds=1))
    assert await outbox.prune(timedelta(hours=24)) == 1
    (left,) = outbox.directory.glob("*.eml")
    assert b"kunde2@example.org" in left.read_bytes()


async def test_retention_sweep_prunes_the_outbox(vault, clock):
    """`tresor retention run` deletes outbox mail past TRESOR_OUTBOX_HOURS (default 24 h)
    and says how many."""
    await vault.mailer.send(_mail(3))
    report = await run_retention(vault)
    assert report.pruned_mails == 0 and len(list(vault.settings.outbox_dir.glob("*.eml"))) == 1
    clock.advance(timedelta(hours=vault.settings.outbox_hours, seconds=1))
    report = await run_retention(vault)
    assert report.pruned_mails == 1 and list(vault.settings.outbox_dir.glob("*.eml")) == []


async def test_every_mail_ends_with_the_controller_and_its_dpo(vault):
    """The vault's mails are signed with the controller of policies/controller.toml and how
    to reach its DPO, in the text and the HTML part, in the mail's language."""
    msg = _mail(4)
    msg["Content-Language"] = "en"
    await vault.mailer.send(msg)
    (path,) = vault.settings.outbox_dir.glob("*.eml")
    sent = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    text = sent.get_body(("plain",)).get_content()
    assert text.startswith("Ihr Code: 000004") and "\n-- \n" in text
    assert vault.controller.controller.name in text
    assert f"Data protection officer: {vault.controller.dpo.name}" in text
    assert vault.controller.dpo.email in sent.get_body(("html",)).get_content()
