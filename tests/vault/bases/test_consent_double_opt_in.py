"""Double opt-in on both databases: the confirmation mail and link, deadlines, the
queued mail when the mailer fails."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage

import pytest

from tests.support.consent_records import NEWS, SUBJECT, basis_record, new_subject, table_rows
from tests.support.db import count_rows
from tests.support.factories import WRITER, outbox_links, person
from vault import mail_outbox
from vault.audit.events import AuditAction
from vault.bases.consents import confirm, peek_confirmation, record_basis
from vault.errors import Conflict, NotFound, Unavailable
from vault.storage.audit_tables import audit_events
from vault.storage.tables import consent_history, consents
from vault.subjects.decision import BasisStatus
from vault.subjects.store import create_subject

# --- double opt-in ---------------------------------------------------------------------


def _outbox(vault) -> list[EmailMessage]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted(vault.settings.outbox_dir.glob("*.eml"))
    ]


async def test_double_opt_in_mails_the_link_and_confirm_grants(vault, clock):
    """A newsletter consent is pending, mails a link to the subject's address, and confirming it
    grants the consent for the full duration."""
    p = person(3)
    sid = await create_subject(vault, WRITER, {**p, "email": p["email"].upper()})
    rec = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    assert rec.status == "pending_confirmation" and rec.granted_at is None
    assert rec.confirm_deadline == clock.now() + timedelta(hours=vault.settings.double_opt_in_hours)

    (mail,) = _outbox(vault)
    assert mail["To"] == p["email"].lower()
    assert mail["From"] == vault.settings.mail_from
    (token,) = outbox_links(vault.settings.outbox_dir)
    body = mail.get_body(("plain",)).get_content()
    assert f"{vault.settings.public_url}/confirm/{token}" in body
    assert "Newsletter per E-Mail" in mail["Subject"]

    assert await peek_confirmation(vault, token) == (
        "newsletter.email",
        BasisStatus.PENDING_CONFIRMATION,
    )
    clock.advance(timedelta(hours=2))
    done = await confirm(vault, token, SUBJECT)
    assert done.id == rec.id and done.status == "granted"
    assert done.granted_at == clock.now()
    assert done.expires_at == clock.now() + timedelta(days=730)
    assert [h["event"] for h in done.history] == ["confirmation_requested", "confirmed"]
    assert done.history[-1]["actor"] == "subject:confirmation-link"

    with pytest.raises((NotFound, Conflict)):
        await confirm(vault, token, SUBJECT)
    assert (await basis_record(vault, sid, rec.id)).status == "granted"


async def test_confirmation_keeps_an_explicit_expiry(vault, clock):
    """A double opt-in consent with an expiry the client named keeps exactly that expiry when
    confirmed late."""
    sid = await new_subject(vault)
    until = clock.now() + timedelta(days=40)
    rec = await record_basis(
        vault, WRITER, sid, "newsletter.email", evidence=NEWS, expires_at=until
    )
    (token,) = outbox_links(vault.settings.outbox_dir)
    clock.advance(timedelta(hours=30))
    assert (await confirm(vault, token, SUBJECT)).expires_at == until
    assert (await basis_record(vault, sid, rec.id)).expires_at == until


async def test_english_evidence_gets_an_english_mail(vault):
    """The confirmation mail is written in the language of the evidence."""
    sid = await new_subject(vault)
    await record_basis(
        vault, WRITER, sid, "newsletter.email", evidence=replace(NEWS, language="en")
    )
    (mail,) = _outbox(vault)
    assert mail["Subject"] == "Please confirm your consent: Newsletter by e-mail"
    assert mail["Content-Language"] == "en"


async def test_confirmation_after_the_deadline_fails_and_lapses(vault, clock):
    """A link used after the double opt-in window fails and the consent shows as lapsed."""
    sid = await new_subject(vault)
    rec = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    (token,) = outbox_links(vault.settings.outbox_dir)
    clock.advance(timedelta(hours=vault.settings.double_opt_in_hours))
    with pytest.raises(Conflict):
        await confirm(vault, token, SUBJECT)
    stored = await basis_record(vault, sid, rec.id)
    assert stored.status == "lapsed" and stored.granted_at is None
    assert (await peek_confirmation(vault, token))[1] is BasisStatus.LAPSED


async def test_confirmation_one_microsecond_before_the_deadline_succeeds(vault, clock):
    """The confirmation window includes every instant before the deadline."""
    sid = await new_subject(vault)
    await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    (token,) = outbox_links(vault.settings.outbox_dir)
    clock.advance(timedelta(hours=vault.settings.double_opt_in_hours, microseconds=-1))
    assert (await confirm(vault, token, SUBJECT)).status == "granted"


@pytest.mark.parametrize("token", ["", "short", "x" * 43, "../../etc/passwd" + "a" * 20])
async def test_unknown_or_malformed_token_is_not_found(vault, token):
    """A token that is malformed or was never issued is NotFound, for peek and confirm alike."""
    with pytest.raises(NotFound):
        await confirm(vault, token, SUBJECT)
    with pytest.raises(NotFound):
        await peek_confirmation(vault, token)


async def test_double_opt_in_without_email_is_refused_and_nothing_is_stored(vault):
    """A double opt-in consent for a subject without e-mail is refused as a conflict with the
    stored subject (the request itself is valid), with no consent, history or mail left and
    the refusal audited as a denial."""
    sid = await create_subject(vault, WRITER, {"name": "Erika Mustermann", "phone": "030 12345678"})
    with pytest.raises(Conflict, match="double opt-in needs an e-mail address"):
        await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    assert await count_rows(vault, consents) == 0
    assert await count_rows(vault, consent_history) == 0
    events = await table_rows(vault, audit_events, audit_events.c.seq)
    assert [(e.action, e.decision, e.reason) for e in events] == [
        (AuditAction.SUBJECT_CREATE, "allow", None),
        (AuditAction.CONSENT_GRANT, "deny", "conflict"),
    ]
    assert not list(vault.settings.outbox_dir.glob("*.eml"))


class _BrokenMailer:
    async def send(self, msg: EmailMessage) -> None:
        raise Unavailable("mail server is not reachable")


async def test_failing_mailer_queues_the_confirmation(vault):
    """When the mail server is down, the consent is recorded pending confirmation and its
    confirmation mail waits in the mail outbox (retried), instead of failing the request."""
    sid = await new_subject(vault)
    vault.mailer = _BrokenMailer()
    rec = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    assert rec.status == "pending_confirmation"
    assert await count_rows(vault, consents) == 1
    assert (await mail_outbox.counts(vault))["pending"] == 1
    assert sum((await mail_outbox.counts(vault)).values()) == 1
    assert not list(vault.settings.outbox_dir.glob("*.eml"))


async def test_a_resubscription_whose_mail_waits_is_recorded_as_one_mailed(vault, clock):
    """A re-subscription whose confirmation mail the server does not take now is recorded
    exactly as one whose mail left (the mail is delayed, not lost): pending, superseding
    the earlier consent as a re-subscription always does, its mail queued."""
    sid = await new_subject(vault)
    first = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    (token,) = outbox_links(vault.settings.outbox_dir)
    await confirm(vault, token, SUBJECT)
    vault.mailer = _BrokenMailer()
    clock.advance(timedelta(days=1))
    second = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    assert second.status == "pending_confirmation"
    assert (await basis_record(vault, sid, first.id)).status == "superseded"
    assert (await mail_outbox.counts(vault))["pending"] == 1
