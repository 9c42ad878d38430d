"""The data-subject request workflow on both databases: deadlines, transitions, extension
notice, overdue ordering, immediate execution of verified requests, sealed payloads."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.db import audit_trail
from tests.support.dsar import (
    DPO,
    SELF,
    consent_rows,
    contract,
    look,
    new_subject,
    newsletter,
    plaintext_values,
    rows,
    sms_offers,
    subject_row,
    trail_text,
)
from tests.support.factories import WRITER
from vault import mail_outbox
from vault.access.lookup import LookupDenied
from vault.errors import Conflict, InvalidInput, NotFound, Unavailable
from vault.rights import requests as dsar
from vault.storage.rights_tables import dsar_requests


def _mails(vault) -> list[email.message.EmailMessage]:
    out = []
    for path in sorted(vault.settings.outbox_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        out.append(email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
    return out


# --- creating ------------------------------------------------------------------------


async def test_created_request_is_due_one_calendar_month_later(vault, clock):
    """A request received now waits for identity verification and is due one month later."""
    sid, _ = await new_subject(vault, 1)
    record = await dsar.create_request(vault, DPO, subject_id=sid, type="access", channel="letter")
    assert record.status == "identity_verification"
    assert record.received_at == clock.now()
    assert record.due_at == datetime(2026, 12, 23, 10, 0, tzinfo=UTC)
    assert record.overdue is False
    assert [h["event"] for h in record.history] == ["received"]
    assert record.history[0]["actor"] == "dpo:dpo-anna"
    (event,) = await audit_trail(vault, "dpo:request:create")
    assert event.subject_id == sid and record.id in event.detail


async def test_due_date_at_a_leap_month_end(vault, clock):
    """Received on 31 January 2028, the request is due on 29 February 2028."""
    sid, _ = await new_subject(vault, 2)
    clock.set(datetime(2028, 1, 31, 9, 30, tzinfo=UTC))
    record = await dsar.create_request(vault, DPO, subject_id=sid, type="erasure", channel="phone")
    assert record.due_at == datetime(2028, 2, 29, 9, 30, tzinfo=UTC)


async def test_request_without_subject_is_received_and_can_only_be_completed_or_rejected(vault):
    """A letter from someone not (yet) matched is `received`; it cannot be verified."""
    record = await dsar.create_request(vault, DPO, subject_id=None, type="access", channel="letter")
    assert record.status == "received" and record.subject_id is None
    with pytest.raises(Conflict):
        await dsar.verify(vault, DPO, record.id)
    done = await dsar.complete(vault, DPO, record.id, "no data about the requester is stored")
    assert done.status == "completed"
    assert done.outcome_reason == "no data about the requester is stored"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"type": "deletion", "channel": "letter"}, "type"),
        ({"type": "access", "channel": "fax"}, "channel"),
        ({"type": "rectification", "channel": "letter"}, "payload.changes"),
        (
            {"type": "rectification", "channel": "letter", "payload": {"changes": {"email": "x"}}},
            "payload.changes.email",
        ),
        (
            {"type": "rectification", "channel": "letter", "payload": {"changes": {"iban": "DE"}}},
            "payload.changes.iban",
        ),
        ({"type": "erasure", "channel": "letter", "payload": {"why": "x"}}, "payload"),
        (
            {"type": "consent_withdrawal", "channel": "email", "payload": {"purposes": ["nope.x"]}},
            "payload.purposes",
        ),
        (
            {"type": "consent_withdrawal", "channel": "email", "payload": {"consent_ids": ["1"]}},
            "payload.consent_ids",
        ),
    ],
)
async def test_bad_input_is_refused_and_stores_nothing(vault, kwargs, field):
    """Unknown types or channels and malformed payloads raise InvalidInput naming the field."""
    sid, _ = await new_subject(vault, 3)
    with pytest.raises(InvalidInput) as exc:
        await dsar.create_request(vault, DPO, subject_id=sid, **kwargs)
    assert field in exc.value.errors
    assert await rows(vault, dsar_requests) == []


async def test_unknown_subject_and_erased_subject(vault):
    """A request for an unknown subject is NotFound; an erased subject takes only access."""
    with pytest.raises(NotFound):
        await dsar.create_request(
            vault,
            DPO,
            subject_id="00000000-0000-4000-8000-000000000000",
            type="access",
            channel="letter",
        )
    sid, _ = await new_subject(vault, 4)
    await dsar.create_request(
        vault, SELF, subject_id=sid, type="erasure", channel="self_service", verified=True
    )
    with pytest.raises(Conflict):
        await dsar.create_request(vault, DPO, subject_id=sid, type="restriction", channel="letter")
    access = await dsar.create_request(vault, DPO, subject_id=sid, type="access", channel="letter")
    assert access.status == "identity_verification"


# --- transitions ---------------------------------------------------------------------


async def test_verify_then_approve_carries_out_a_restriction(vault):
    """verify → in_review, approve → restriction applied and request completed, all audited."""
    sid, _ = await new_subject(vault, 5)
    await contract(vault, sid)
    record = await dsar.create_request(
        vault, DPO, subject_id=sid, type="restriction", channel="phone"
    )
    record = await dsar.verify(vault, DPO, record.id)
    assert record.status == "in_review" and record.verified_at is not None
    record = await dsar.approve(vault, DPO, record.id)
    assert record.status == "completed" and record.completed_at is not None
    assert "Art. 18" in (record.outcome_reason or "")
    assert [h["event"] for h in record.history] == ["received", "verified", "approved", "completed"]
    assert (await subject_row(vault, sid)).status == "restricted"
    with pytest.raises(LookupDenied) as denied:
        await look(vault, "order.delivery", "subject_id", sid)
    assert denied.value.reason == "subject_restricted"
    for action in ("dpo:request:verify", "dpo:request:approve", "dpo:subject:restrict"):
        assert await audit_trail(vault, action), action


async def test_illegal_transitions_raise_conflict(vault):
    """Approving before verification, verifying twice and acting on a closed request conflict."""
    sid, _ = await new_subject(vault, 6)
    record = await dsar.create_request(
        vault, DPO, subject_id=sid, type="objection", channel="email"
    )
    with pytest.raises(Conflict):
        await dsar.approve(vault, DPO, record.id)
    with pytest.raises(Conflict):
        await dsar.complete(vault, DPO, record.id)
    await dsar.verify(vault, DPO, record.id)
    with pytest.raises(Conflict):
        await dsar.verify(vault, DPO, record.id)
    rejected = await dsar.reject(
        vault, DPO, record.id, "the signature on the letter does not match"
    )
    assert rejected.status == "rejected"
    assert rejected.outcome_reason == "the signature on the letter does not match"
    for move in (
        dsar.verify(vault, DPO, record.id),
        dsar.approve(vault, DPO, record.id),
        dsar.reject(vault, DPO, record.id, "again"),
        dsar.complete(vault, DPO, record.id),
        dsar.extend(vault, DPO, record.id, "too late"),
    ):
        with pytest.raises(Conflict):
            await move


@pytest.mark.parametrize(
    ("status", "action", "message"),
    [
        ("in_review", "verify", "the request is in_review; only a new request can be verified"),
        (
            "identity_verification",
            "approve",
            "the request is identity_verification; "
            "only a verified request in review can be approved",
        ),
        (
            "identity_verification",
            "complete",
            "the request is identity_verification; only a verified open request can be completed",
        ),
        ("rejected", "reject", "the request is already rejected"),
        ("completed", "extend", "the request is already completed"),
    ],
)
def test_a_move_missing_from_the_table_is_a_conflict_with_its_message(status, action, message):
    """`transition` refuses a (status, action) pair the table lacks with the action's message."""
    with pytest.raises(Conflict) as exc:
        dsar.transition(status, dsar.RequestAction(action))
    assert str(exc.value) == message


def test_closed_requests_are_final_and_every_open_one_can_still_close():
    """No move leaves a closed status, and from every open status some path closes the request."""
    moves = dsar.TRANSITIONS
    assert not [pair for pair in moves if pair[0] in dsar.CLOSED]
    for start in dsar.OPEN:
        seen, todo = {start}, [start]
        while todo:
            here = todo.pop()
            for (status, _), after in moves.items():
                if status == here and after not in seen:
                    seen.add(after)
                    todo.append(after)
        assert seen & dsar.CLOSED, start


def test_the_documented_workflow_table_is_the_code_table():
    """docs/architecture.md shows exactly the table `transition` consults."""
    doc = (Path(__file__).resolve().parents[3] / "docs" / "architecture.md").read_text()
    start, end = "<!-- request-transitions:start -->\n", "<!-- request-transitions:end -->"
    documented = doc.split(start, 1)[1].split(end, 1)[0]
    assert documented == dsar.transition_table_markdown()


async def test_unknown_request_id_is_not_found(vault):
    """Every operation on an unknown request id raises NotFound."""
    missing = "00000000-0000-4000-8000-000000000000"
    for call in (
        dsar.get_request(vault, missing),
        dsar.verify(vault, DPO, missing),
        dsar.approve(vault, DPO, missing),
        dsar.reject(vault, DPO, missing, "x"),
        dsar.extend(vault, DPO, missing, "x"),
        dsar.complete(vault, DPO, missing),
    ):
        with pytest.raises(NotFound):
            await call


async def test_reason_and_note_are_validated(vault):
    """A reject or extend needs a non-blank reason without control characters."""
    sid, _ = await new_subject(vault, 7)
    record = await dsar.create_request(vault, DPO, subject_id=sid, type="access", channel="letter")
    for bad in ("", "   ", "x" * 1001, "bell\x07"):
        with pytest.raises(InvalidInput):
            await dsar.reject(vault, DPO, record.id, bad)
        with pytest.raises(InvalidInput):
            await dsar.extend(vault, DPO, record.id, bad)
    assert (await dsar.get_request(vault, record.id)).status == "identity_verification"


async def test_complete_closes_a_reviewed_request_with_a_note(vault):
    """A DPO can close a verified request carried out by other means, with a note."""
    sid, _ = await new_subject(vault, 8)
    record = await dsar.create_request(vault, DPO, subject_id=sid, type="access", channel="letter")
    await dsar.verify(vault, DPO, record.id)
    done = await dsar.complete(vault, DPO, record.id, "export sent by registered letter")
    assert done.status == "completed"
    assert done.history[-1]["note"] == "export sent by registered letter"


# --- extension -----------------------------------------------------------------------


async def test_extension_within_the_first_month_mails_the_subject_in_german_and_english(
    vault, clock
):
    """Extending adds two months from receipt, once, and mails the new date and the reason."""
    sid, data = await new_subject(vault, 9)
    record = await dsar.create_request(vault, DPO, subject_id=sid, type="access", channel="letter")
    clock.advance(timedelta(days=20))
    reason = "Ihre Anfrage betrifft Daten aus drei Konzerngesellschaften"
    extended = await dsar.extend(vault, DPO, record.id, reason)
    assert extended.due_at == datetime(2027, 2, 23, 10, 0, tzinfo=UTC)
    assert extended.extended_at == clock.now() and extended.extension_reason == reason
    assert [h["event"] for h in extended.history][-2:] == ["extended", "notice_mailed"]
    (mail,) = _mails(vault)
    assert mail["To"] == data["email"].lower()
    body = mail.get_body(("plain",)).get_content()
    assert "23.02.2027" in body and "2027-02-23" in body
    assert body.count(reason) == 2
    assert "Art. 12 Abs. 3 DSGVO" in body and "Art. 12(3) GDPR" in body
    assert mail["Content-Language"] == "de, en"
    assert await audit_trail(vault, "system:request:extension_mail")
    with pytest.raises(Conflict, match="only once"):
        await dsar.extend(vault, DPO, record.id, "once more")


async def test_extension_after_the_first_month_is_refused(vault, clock):
    """At or after the original due date no extension is possible any more."""
    sid, _ = await new_subject(vault, 10)
    clock.set(datetime(2027, 1, 31, 10, 0, tzinfo=UTC))
    record = await dsar.create_request(vault, DPO, subject_id=sid, type="access", channel="letter")
    clock.set(datetime(2027, 2, 28, 10, 0, tzinfo=UTC))  # the due date itself
    with pytest.raises(Conflict, match="first month"):
        await dsar.extend(vault, DPO, record.id, "too late")
    clock.set(datetime(2027, 2, 28, 9, 59, tzinfo=UTC))
    extended = await dsar.extend(vault, DPO, record.id, "still in time", months=1)
    assert extended.due_at == datetime(2027, 3, 31, 10, 0, tzinfo=UTC)
    with pytest.raises(InvalidInput):
        await dsar.extend(vault, DPO, record.id, "three months", months=3)


async def test_extension_without_an_email_address_records_that_notice_is_due(vault):
    """Without a stored e-mail address no mail goes out and the history says so."""
    sid, _ = await new_subject(vault, 11, email=None)
    record = await dsar.create_request(vault, DPO, subject_id=sid, type="access", channel="letter")
    extended = await dsar.extend(vault, DPO, record.id, "complex request")
    assert extended.history[-1]["event"] == "notice_pending"
    assert _mails(vault) == []


async def test_a_failing_mailer_delays_the_notice_not_the_extension(vault):
    """If the mail server is down, the extension is recorded and its notice waits in the
    mail outbox (retried later), instead of being lost or failing the extension."""
    sid, _ = await new_subject(vault, 12)
    record = await dsar.create_request(vault, DPO, subject_id=sid, type="access", channel="letter")

    class Broken:
        async def send(self, message):
            raise Unavailable("mail server is not reachable")

    vault.mailer = Broken()
    extended = await dsar.extend(vault, DPO, record.id, "complex request")
    assert extended.extended_at is not None and extended.due_at > record.due_at
    assert (await mail_outbox.counts(vault))["pending"] == 1
    assert sum((await mail_outbox.counts(vault)).values()) == 1
    assert _mails(vault) == []


# --- listing -------------------------------------------------------------------------


async def test_overdue_requests_come_first_then_by_due_date(vault, clock):
    """The list shows open overdue requests first, then everything by due date ascending."""
    sid, _ = await new_subject(vault, 13)
    first = await dsar.create_request(vault, DPO, subject_id=sid, type="access", channel="letter")
    clock.advance(timedelta(days=5))
    closed = await dsar.create_request(
        vault, DPO, subject_id=sid, type="objection", channel="letter"
    )
    await dsar.reject(vault, DPO, closed.id, "withdrawn by the customer")
    clock.advance(timedelta(days=5))
    second = await dsar.create_request(vault, DPO, subject_id=sid, type="erasure", channel="phone")
    clock.advance(timedelta(days=20))
    fresh = await dsar.create_request(
        vault, DPO, subject_id=sid, type="restriction", channel="email"
    )
    clock.advance(timedelta(days=7))  # first (due day 31) and second (due day 41)?: first only
    listed = await dsar.list_requests(vault)
    assert [r.id for r in listed] == [first.id, closed.id, second.id, fresh.id]
    assert [r.overdue for r in listed] == [True, False, False, False]
    clock.advance(timedelta(days=10))  # now the second is overdue too; the closed one never
    listed = await dsar.list_requests(vault)
    assert [r.id for r in listed] == [first.id, second.id, closed.id, fresh.id]
    assert [r.overdue for r in listed] == [True, True, False, False]


async def test_list_filters_by_type_status_subject_and_due_date(vault, clock):
    """Filters narrow the list; bad filter values raise InvalidInput."""
    a, _ = await new_subject(vault, 14)
    b, _ = await new_subject(vault, 15)
    r1 = await dsar.create_request(vault, DPO, subject_id=a, type="access", channel="letter")
    clock.advance(timedelta(days=3))
    r2 = await dsar.create_request(vault, DPO, subject_id=b, type="erasure", channel="letter")
    await dsar.verify(vault, DPO, r2.id)
    assert [r.id for r in await dsar.list_requests(vault, type="erasure")] == [r2.id]
    assert [r.id for r in await dsar.list_requests(vault, status="in_review")] == [r2.id]
    assert [r.id for r in await dsar.list_requests(vault, subject_id=a)] == [r1.id]
    cutoff = r1.due_at + timedelta(days=1)
    assert [r.id for r in await dsar.list_requests(vault, due_before=cutoff)] == [r1.id]
    assert len(await dsar.list_requests(vault, limit=1)) == 1
    for bad in ({"type": "nope"}, {"status": "done"}, {"limit": 0}, {"limit": 5000}):
        with pytest.raises(InvalidInput):
            await dsar.list_requests(vault, **bad)
    with pytest.raises(InvalidInput):
        await dsar.list_requests(vault, due_before=datetime(2027, 1, 1))


# --- verified (self-service) requests run at once ------------------------------------


async def test_verified_consent_withdrawal_runs_at_once(vault):
    """A verified withdrawal ends the named consents immediately and completes."""
    sid, data = await new_subject(vault, 16)
    news = await newsletter(vault, sid)
    sms = await sms_offers(vault, sid)
    record = await dsar.create_request(
        vault,
        SELF,
        subject_id=sid,
        type="consent_withdrawal",
        channel="self_service",
        payload={"purposes": ["newsletter.email"]},
        verified=True,
    )
    assert record.status == "completed" and "1 consent" in (record.outcome_reason or "")
    assert [h["event"] for h in record.history] == ["received", "verified", "completed"]
    statuses = {r.id: r.status for r in await consent_rows(vault, sid)}
    assert statuses[news.id] == "withdrawn" and statuses[sms.id] == "granted"
    with pytest.raises(LookupDenied) as denied:
        await look(vault, "newsletter.email", "email", data["email"])
    assert denied.value.reason == "consent_withdrawn"
    (event,) = await audit_trail(vault, "subject:request:create")
    assert '"status": "completed"' in event.detail
    assert await audit_trail(vault, "subject:consent:withdraw")


async def test_verified_withdrawal_without_payload_ends_every_consent_but_not_contracts(vault):
    """With no consent named, every consent ends; a contract basis is not a consent."""
    sid, _ = await new_subject(vault, 17)
    await newsletter(vault, sid)
    await sms_offers(vault, sid)
    deal = await contract(vault, sid)
    record = await dsar.create_request(
        vault,
        SELF,
        subject_id=sid,
        type="consent_withdrawal",
        channel="self_service",
        verified=True,
    )
    assert "2 consent" in (record.outcome_reason or "")
    statuses = {r.id: r.status for r in await consent_rows(vault, sid)}
    assert statuses.pop(deal.id) == "active"
    assert set(statuses.values()) == {"withdrawn"}


async def test_verified_access_request_completes_and_rectification_waits_for_review(vault):
    """Access completes at once; a verified rectification waits in review for a DPO."""
    sid, _ = await new_subject(vault, 18)
    access = await dsar.create_request(
        vault, SELF, subject_id=sid, type="access", channel="self_service", verified=True
    )
    assert access.status == "completed" and "Art. 15" in (access.outcome_reason or "")
    fix = await dsar.create_request(
        vault,
        SELF,
        subject_id=sid,
        type="rectification",
        channel="self_service",
        payload={"changes": {"name": "Erika Musterfrau"}},
        verified=True,
    )
    assert fix.status == "in_review" and fix.verified_at is not None


async def test_verified_request_needs_a_subject(vault):
    """A verified request without a subject is refused."""
    with pytest.raises(InvalidInput):
        await dsar.create_request(
            vault, SELF, subject_id=None, type="access", channel="self_service", verified=True
        )


# --- rectification and the sealed payload --------------------------------------------


async def test_rectification_is_applied_on_approval_and_its_payload_stays_sealed(vault):
    """The corrected data is sealed in the request, applied when a DPO approves, and never
    appears in audit events or histories."""
    sid, _ = await new_subject(vault, 19)
    await contract(vault, sid)
    new_phone = "+49 30 55501234"
    new_address = {
        "street": "Korrekturweg 12",
        "postal_code": "10117",
        "city": "Berlin",
        "country": "DE",
    }
    record = await dsar.create_request(
        vault,
        DPO,
        subject_id=sid,
        type="rectification",
        channel="letter",
        payload={"changes": {"phone": new_phone, "postal_address": new_address}},
    )
    (stored,) = await rows(vault, dsar_requests)
    assert stored.payload_ct is not None
    assert b"Korrekturweg" not in stored.payload_ct and b"55501234" not in stored.payload_ct
    await dsar.verify(vault, DPO, record.id)
    done = await dsar.approve(vault, DPO, record.id)
    assert done.status == "completed"
    assert done.outcome_reason == "rectified (Art. 16 GDPR): phone, postal_address"
    result = await look(vault, "order.delivery", "subject_id", sid)
    assert result.fields["phone"] == "+493055501234"
    assert result.fields["postal_address"]["street"] == "Korrekturweg 12"
    trail = await trail_text(vault)
    for needle in ("Korrekturweg", "55501234"):
        assert needle not in trail


async def test_a_failing_rectification_leaves_the_request_in_review(vault):
    """If the correction cannot be applied (subject erased meanwhile), the request stays open."""
    sid, _ = await new_subject(vault, 20)
    record = await dsar.create_request(
        vault,
        DPO,
        subject_id=sid,
        type="rectification",
        channel="letter",
        payload={"changes": {"name": "Neuer Name"}},
    )
    await dsar.verify(vault, DPO, record.id)
    await dsar.create_request(
        vault, SELF, subject_id=sid, type="erasure", channel="self_service", verified=True
    )
    with pytest.raises(Conflict):
        await dsar.approve(vault, DPO, record.id)
    assert (await dsar.get_request(vault, record.id)).status == "in_review"
    rejected = await dsar.reject(vault, DPO, record.id, "the data was erased meanwhile")
    assert rejected.status == "rejected"


async def test_plaintext_never_reaches_audit_or_history(vault, clock):
    """A full flow over every request type leaves no contact value in audit events, consent
    history, request history or request rows."""
    sid, data = await new_subject(vault, 21)
    await newsletter(vault, sid)
    await contract(vault, sid)
    for type_ in ("access", "portability", "objection", "restriction"):
        r = await dsar.create_request(vault, DPO, subject_id=sid, type=type_, channel="letter")
        await dsar.verify(vault, DPO, r.id)
        await dsar.approve(vault, DPO, r.id)
    fix = await dsar.create_request(
        vault,
        DPO,
        subject_id=sid,
        type="rectification",
        channel="letter",
        payload={"changes": {"email": "Korrigiert.Adresse@example.net"}},
    )
    await dsar.extend(vault, DPO, fix.id, "needs a check of the old address")
    await dsar.verify(vault, DPO, fix.id)
    await dsar.approve(vault, DPO, fix.id)
    await dsar.create_request(
        vault, SELF, subject_id=sid, type="erasure", channel="self_service", verified=True
    )
    trail = await trail_text(vault)
    for needle in plaintext_values(data) + ["Korrigiert.Adresse", "korrigiert.adresse"]:
        assert needle not in trail, needle


async def test_writer_clients_record_as_staff_source(vault):
    """Any non-subject, non-system actor is recorded under the dpo source."""
    sid, _ = await new_subject(vault, 22)
    await dsar.create_request(vault, WRITER, subject_id=sid, type="access", channel="phone")
    (event,) = await audit_trail(vault, "dpo:request:create")
    assert event.actor_type == "client" and event.actor_id == "crm"
