"""Consents and other lawful bases on both databases: expiry, evidence, double opt-in, withdrawal,
history."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import timedelta, timezone
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.support.db import count_rows
from tests.support.factories import NEWSLETTER_EVIDENCE, WRITER, outbox_links, person
from vault import mail_outbox
from vault.audit.events import Actor, AuditAction
from vault.bases.consents import (
    Evidence,
    confirm,
    evidence_secrets,
    list_bases,
    peek_confirmation,
    record_basis,
    withdraw,
)
from vault.errors import Conflict, InvalidInput, NotFound, Unavailable
from vault.storage.audit_tables import audit_events
from vault.storage.tables import consent_history, consents, subjects
from vault.subjects.decision import BasisStatus
from vault.subjects.store import create_subject

NEWS = Evidence(**NEWSLETTER_EVIDENCE)
EXPLICIT = Evidence(
    touchpoint="hotline.inbound",
    method="recorded_call",
    notice_version="2026-10",
    language="de",
    explicit=True,
)
SUBJECT = Actor("subject", "confirmation-link")
IP = "203.0.113.77"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) TresorTestBrowser/9.1"


async def _subject(vault, seed: int = 1, **overrides: Any) -> str:
    return await create_subject(vault, WRITER, {**person(seed), **overrides})


async def _rows(vault, table, *order) -> list[Any]:
    async with vault.engine.connect() as conn:
        return (await conn.execute(select(table).order_by(*order))).all()


async def _basis(vault, sid: str, consent_id: str):
    (record,) = await list_bases(vault, WRITER, sid, consent_id=consent_id)
    return record


# --- recording a consent ---------------------------------------------------------------


async def test_consent_defaults_to_the_purpose_duration(vault, clock):
    """A consent without its own expiry is granted at once and expires after the purpose's default
    duration."""
    sid = await _subject(vault)
    rec = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    assert rec.status == "granted" and rec.basis == "consent"
    assert rec.granted_at == clock.now()
    assert rec.expires_at == clock.now() + timedelta(days=365)
    stored = await _basis(vault, sid, rec.id)
    assert stored.expires_at == clock.now() + timedelta(days=365)
    assert stored.evidence["touchpoint"] == "hotline.inbound"
    assert stored.evidence["collected_by"] == "crm"


async def test_explicit_expiry_is_honoured_and_stored_as_utc(vault, clock):
    """An expiry the client names replaces the default, in any time zone, and is stored as UTC."""
    sid = await _subject(vault)
    cet = timezone(timedelta(hours=1))
    wanted = (clock.now() + timedelta(days=30)).astimezone(cet)
    rec = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT, expires_at=wanted)
    stored = await _basis(vault, sid, rec.id)
    assert stored.expires_at == wanted
    assert stored.expires_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(seconds=-1), timedelta(days=-400)])
async def test_expiry_not_in_the_future_is_refused(vault, clock, offset):
    """An expiry at or before now is refused and nothing is stored."""
    sid = await _subject(vault)
    with pytest.raises(InvalidInput) as info:
        await record_basis(
            vault, WRITER, sid, "offers.sms", evidence=EXPLICIT, expires_at=clock.now() + offset
        )
    assert "expires_at" in info.value.errors
    assert await count_rows(vault, consents) == 0


@pytest.mark.parametrize("purpose", ["newsletter.email", "offers.sms", "offers.email"])
async def test_consent_without_evidence_is_refused(vault, purpose):
    """A consent without evidence (GDPR Art. 7(1) proof) is refused and nothing is stored."""
    sid = await _subject(vault)
    with pytest.raises(InvalidInput) as info:
        await record_basis(vault, WRITER, sid, purpose)
    assert "evidence" in info.value.errors
    assert await count_rows(vault, consents) == 0


async def test_bad_evidence_fields_are_all_reported(vault):
    """Evidence with a blank touchpoint, unknown method, unknown language and bad hash is refused
    field by field."""
    sid = await _subject(vault)
    bad = Evidence(
        touchpoint=" ",
        method="telepathy",
        notice_version="v1",
        language="fr",
        notice_text_hash="md5:abc",
    )
    with pytest.raises(InvalidInput) as info:
        await record_basis(vault, WRITER, sid, "newsletter.email", evidence=bad)
    assert set(info.value.errors) == {
        "evidence.touchpoint",
        "evidence.method",
        "evidence.language",
        "evidence.notice_text_hash",
    }


async def test_touchpoint_outside_the_catalogue_is_refused(vault):
    """Evidence naming a touchpoint not in policies/touchpoints.toml is refused naming the field,
    and nothing is stored or audited."""
    sid = await _subject(vault)
    before = await count_rows(vault, audit_events)
    for unknown in ("shop.counter.berlin", "web.<b>form</b>", "Shop.Counter"):
        with pytest.raises(InvalidInput) as info:
            await record_basis(
                vault, WRITER, sid, "newsletter.email", evidence=replace(NEWS, touchpoint=unknown)
            )
        assert set(info.value.errors) == {"evidence.touchpoint"}
        assert "catalogue" in info.value.errors["evidence.touchpoint"]
    assert await count_rows(vault, consents) == 0
    assert await count_rows(vault, consent_history) == 0
    assert await count_rows(vault, audit_events) == before
    rec = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    assert rec.status == "pending_confirmation"  # the catalogue's ids pass


async def test_phone_offers_need_explicit_consent(vault):
    """offers.phone without evidence.explicit=true is refused (UWG §7); with it, it is granted."""
    sid = await _subject(vault)
    implicit = replace(EXPLICIT, explicit=False)
    with pytest.raises(InvalidInput) as info:
        await record_basis(vault, WRITER, sid, "offers.phone", evidence=implicit)
    assert "evidence.explicit" in info.value.errors
    assert await count_rows(vault, consents) == 0
    rec = await record_basis(vault, WRITER, sid, "offers.phone", evidence=EXPLICIT)
    assert rec.status == "granted"


async def test_unknown_purpose_is_refused(vault):
    """Recording a basis for a purpose outside the catalogue is refused."""
    sid = await _subject(vault)
    with pytest.raises(InvalidInput):
        await record_basis(vault, WRITER, sid, "offers.carrier_pigeon", evidence=EXPLICIT)


async def test_unknown_subject_is_not_found(vault):
    """Recording a basis for a subject that does not exist is NotFound."""
    with pytest.raises(NotFound):
        await record_basis(
            vault,
            WRITER,
            "00000000-0000-4000-8000-000000000000",
            "order.delivery",
            reference="Bestellung 1",
        )


async def test_erased_subject_gets_no_new_basis(vault):
    """An erased subject cannot receive a new basis."""
    sid = await _subject(vault)
    async with vault.engine.begin() as conn:
        await conn.execute(update(subjects).where(subjects.c.id == sid).values(status="erased"))
    with pytest.raises(Conflict):
        await record_basis(vault, WRITER, sid, "order.delivery", reference="Bestellung 1")


# --- other lawful bases ----------------------------------------------------------------


@pytest.mark.parametrize("reference", [None, "", "   ", "x" * 201])
async def test_contract_basis_needs_a_reference(vault, reference):
    """A contract basis without a 1-200 character reference (e.g. the contract number) is
    refused."""
    sid = await _subject(vault)
    with pytest.raises(InvalidInput) as info:
        await record_basis(vault, WRITER, sid, "order.delivery", reference=reference)
    assert "reference" in info.value.errors


async def test_contract_basis_is_active_without_or_with_end_date(vault, clock):
    """A contract basis is active at once, has no expiry unless given one, and needs no evidence."""
    sid = await _subject(vault)
    rec = await record_basis(vault, WRITER, sid, "order.delivery", reference=" Bestellung 4711 ")
    assert rec.status == "active" and rec.basis == "contract" and rec.expires_at is None
    stored = await _basis(vault, sid, rec.id)
    assert stored.reference == "Bestellung 4711"

    end = clock.now() + timedelta(days=90)
    rec2 = await record_basis(
        vault, WRITER, sid, "account.service", reference="Kundenkonto", expires_at=end
    )
    assert (await _basis(vault, sid, rec2.id)).expires_at == end
    clock.set(end)
    assert (await _basis(vault, sid, rec2.id)).status == "expired"


async def test_ending_a_contract_basis_gives_ended(vault):
    """Withdrawing a non-consent basis ends it (status ended, not withdrawn)."""
    sid = await _subject(vault)
    rec = await record_basis(vault, WRITER, sid, "invoice.postal", reference="Rechnung 2026-1")
    assert rec.basis == "legal_obligation" and rec.status == "active"
    assert (await withdraw(vault, WRITER, sid, rec.id)).status == "ended"


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
    assert (await _basis(vault, sid, rec.id)).status == "granted"


async def test_confirmation_keeps_an_explicit_expiry(vault, clock):
    """A double opt-in consent with an expiry the client named keeps exactly that expiry when
    confirmed late."""
    sid = await _subject(vault)
    until = clock.now() + timedelta(days=40)
    rec = await record_basis(
        vault, WRITER, sid, "newsletter.email", evidence=NEWS, expires_at=until
    )
    (token,) = outbox_links(vault.settings.outbox_dir)
    clock.advance(timedelta(hours=30))
    assert (await confirm(vault, token, SUBJECT)).expires_at == until
    assert (await _basis(vault, sid, rec.id)).expires_at == until


async def test_english_evidence_gets_an_english_mail(vault):
    """The confirmation mail is written in the language of the evidence."""
    sid = await _subject(vault)
    await record_basis(
        vault, WRITER, sid, "newsletter.email", evidence=replace(NEWS, language="en")
    )
    (mail,) = _outbox(vault)
    assert mail["Subject"] == "Please confirm your consent: Newsletter by e-mail"
    assert mail["Content-Language"] == "en"


async def test_confirmation_after_the_deadline_fails_and_lapses(vault, clock):
    """A link used after the double opt-in window fails and the consent shows as lapsed."""
    sid = await _subject(vault)
    rec = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    (token,) = outbox_links(vault.settings.outbox_dir)
    clock.advance(timedelta(hours=vault.settings.double_opt_in_hours))
    with pytest.raises(Conflict):
        await confirm(vault, token, SUBJECT)
    stored = await _basis(vault, sid, rec.id)
    assert stored.status == "lapsed" and stored.granted_at is None
    assert (await peek_confirmation(vault, token))[1] is BasisStatus.LAPSED


async def test_confirmation_one_microsecond_before_the_deadline_succeeds(vault, clock):
    """The confirmation window includes every instant before the deadline."""
    sid = await _subject(vault)
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
    events = await _rows(vault, audit_events, audit_events.c.seq)
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
    sid = await _subject(vault)
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
    sid = await _subject(vault)
    first = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    (token,) = outbox_links(vault.settings.outbox_dir)
    await confirm(vault, token, SUBJECT)
    vault.mailer = _BrokenMailer()
    clock.advance(timedelta(days=1))
    second = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    assert second.status == "pending_confirmation"
    assert (await _basis(vault, sid, first.id)).status == "superseded"
    assert (await mail_outbox.counts(vault))["pending"] == 1


# --- withdrawal, supersession, history -------------------------------------------------


async def test_withdrawal_is_immediate_and_only_once(vault, clock):
    """Withdrawal takes effect at once; withdrawing again is a Conflict."""
    sid = await _subject(vault)
    rec = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    clock.advance(timedelta(minutes=5))
    out = await withdraw(vault, WRITER, sid, rec.id)
    assert out.status == "withdrawn" and out.withdrawn_at == clock.now()
    with pytest.raises(Conflict):
        await withdraw(vault, WRITER, sid, rec.id)


async def test_withdrawing_a_pending_consent_kills_its_link(vault):
    """A pending double opt-in can be withdrawn, after which its link no longer works."""
    sid = await _subject(vault)
    rec = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    (token,) = outbox_links(vault.settings.outbox_dir)
    assert (await withdraw(vault, WRITER, sid, rec.id)).status == "withdrawn"
    with pytest.raises(NotFound):
        await confirm(vault, token, SUBJECT)


async def test_withdrawing_an_expired_consent_is_a_conflict(vault, clock):
    """An expired consent has nothing left to withdraw."""
    sid = await _subject(vault)
    rec = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    clock.advance(timedelta(days=365))
    with pytest.raises(Conflict):
        await withdraw(vault, WRITER, sid, rec.id)


async def test_withdrawal_of_another_subjects_consent_is_not_found(vault):
    """A consent id only works together with its own subject."""
    a = await _subject(vault, 1)
    b = await _subject(vault, 2)
    rec = await record_basis(vault, WRITER, a, "offers.sms", evidence=EXPLICIT)
    with pytest.raises(NotFound):
        await withdraw(vault, WRITER, b, rec.id)
    assert (await _basis(vault, a, rec.id)).status == "granted"


async def test_new_grant_supersedes_the_earlier_live_one(vault, clock):
    """A new grant for the same purpose supersedes the earlier live record, visible in its
    history."""
    sid = await _subject(vault)
    old = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    clock.advance(timedelta(days=1))
    new = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    old_now = await _basis(vault, sid, old.id)
    assert old_now.status == "superseded"
    assert [h["event"] for h in old_now.history] == ["recorded", "superseded"]
    assert old_now.history[-1]["at"] == clock.now()
    assert (await _basis(vault, sid, new.id)).status == "granted"
    # Other purposes are untouched.
    other = await record_basis(vault, WRITER, sid, "offers.phone", evidence=EXPLICIT)
    assert (await _basis(vault, sid, new.id)).status == "granted"
    assert (await _basis(vault, sid, other.id)).status == "granted"


async def test_list_bases_gives_history_in_order_with_actors(vault, clock):
    """list_bases returns records newest first, each with its history in order and the acting
    party."""
    sid = await _subject(vault)
    doi = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    (token,) = outbox_links(vault.settings.outbox_dir)
    clock.advance(timedelta(hours=1))
    await confirm(vault, token, SUBJECT)
    clock.advance(timedelta(hours=1))
    dpo = Actor("dpo", "anna")
    await withdraw(vault, dpo, sid, doi.id)
    clock.advance(timedelta(hours=1))
    contract = await record_basis(vault, WRITER, sid, "order.delivery", reference="Bestellung 9")

    records = await list_bases(vault, dpo, sid)
    assert [r.id for r in records] == [contract.id, doi.id]
    history = records[1].history
    assert [(h["event"], h["status"], h["actor"]) for h in history] == [
        ("confirmation_requested", "pending_confirmation", "client:crm"),
        ("confirmed", "granted", "subject:confirmation-link"),
        ("withdrawn", "withdrawn", "dpo:anna"),
    ]
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)
    listed = [
        e
        for e in await _rows(vault, audit_events, audit_events.c.seq)
        if e.action == AuditAction.CONSENT_LIST
    ]
    assert len(listed) == 1 and listed[0].actor_id == "anna"


async def test_history_is_append_only(vault, clock):
    """Each change appends history rows; earlier rows are never changed."""
    sid = await _subject(vault)
    rec = await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    before = await _rows(vault, consent_history, consent_history.c.id)
    assert len(before) == 1
    clock.advance(timedelta(days=1))
    await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    middle = await _rows(vault, consent_history, consent_history.c.id)
    assert len(middle) == 3 and middle[:1] == before
    latest = (await list_bases(vault, WRITER, sid))[0]
    clock.advance(timedelta(days=1))
    await withdraw(vault, WRITER, sid, latest.id)
    after = await _rows(vault, consent_history, consent_history.c.id)
    assert len(after) == 4 and after[:3] == middle
    assert rec.id in {h.consent_id for h in after}


async def test_every_change_is_audited(vault, clock):
    """Grant, confirmation mail, confirmation and withdrawal each write their audit event."""
    sid = await _subject(vault)
    rec = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    (token,) = outbox_links(vault.settings.outbox_dir)
    await confirm(vault, token, SUBJECT)
    await withdraw(vault, WRITER, sid, rec.id)
    events = [e for e in await _rows(vault, audit_events, audit_events.c.seq)][1:]
    assert [e.action for e in events] == [
        AuditAction.CONSENT_GRANT,
        AuditAction.DOI_MAIL,
        AuditAction.CONSENT_CONFIRM,
        AuditAction.CONSENT_WITHDRAW,
    ]
    assert all(e.consent_id == rec.id and e.subject_id == sid for e in events)
    assert all(e.purpose == "newsletter.email" for e in events)


# --- sealed evidence -------------------------------------------------------------------


def _blobs(row: Any, skip: tuple[str, ...] = ()) -> list[bytes]:
    return [
        v if isinstance(v, bytes) else str(v).encode()
        for k, v in row._mapping.items()
        if v is not None and k not in skip
    ]


async def test_ip_and_user_agent_are_stored_only_sealed(vault):
    """The grant's IP address and user agent exist only inside evidence_ct and open again with the
    subject's key."""
    sid = await _subject(vault)
    evidence = replace(NEWS, ip=IP, user_agent=USER_AGENT)
    rec = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=evidence)
    secrets = [IP.encode(), USER_AGENT.encode(), b"TresorTestBrowser"]

    (row,) = await _rows(vault, consents, consents.c.id)
    assert row.evidence_ct
    for blob in _blobs(row):
        assert not any(s in blob for s in secrets)
    for table, order in (
        (consent_history, consent_history.c.id),
        (audit_events, audit_events.c.seq),
    ):
        for other in await _rows(vault, table, order):
            for blob in _blobs(other):
                assert not any(s in blob for s in secrets)
    listed = await _basis(vault, sid, rec.id)
    assert IP not in repr(listed) and USER_AGENT not in repr(listed)

    async with vault.engine.connect() as conn:
        subject = (await conn.execute(select(subjects).where(subjects.c.id == sid))).one()
        assert await evidence_secrets(vault, conn, subject, row) == {
            "ip": IP,
            "user_agent": USER_AGENT,
        }


async def test_evidence_without_ip_has_nothing_sealed(vault):
    """Evidence without IP or user agent stores no sealed part and recovers as empty."""
    sid = await _subject(vault)
    await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    (row,) = await _rows(vault, consents, consents.c.id)
    assert row.evidence_ct is None
    async with vault.engine.connect() as conn:
        subject = (await conn.execute(select(subjects).where(subjects.c.id == sid))).one()
        assert await evidence_secrets(vault, conn, subject, row) == {}
