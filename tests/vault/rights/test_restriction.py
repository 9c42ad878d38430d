"""Restriction (Art. 18) and objection to direct marketing (Art. 21(2)-(3)) on both
databases: effects on lookups and on new consents."""

from __future__ import annotations

import pytest

from tests.support.dsar import (
    DPO,
    EXPLICIT,
    NEWS,
    SELF,
    actions,
    consent_rows,
    contract,
    erase,
    invoice,
    look,
    new_subject,
    newsletter,
    object_to_marketing,
    rows,
    sms_offers,
    subject_row,
)
from tests.support.factories import WRITER, outbox_links
from vault.access.lookup import LookupDenied
from vault.audit.events import Actor
from vault.bases.consents import Evidence, confirm, record_basis
from vault.clock import as_utc
from vault.errors import Conflict, NotFound
from vault.rights import requests as dsar
from vault.rights.restriction import lift_restriction, restrict
from vault.storage.tables import consent_history


async def test_restricted_subject_is_denied_except_for_the_legal_obligation(vault):
    """A restricted subject's data is only stored: lookups deny `subject_restricted`, except
    the legal-obligation purpose (invoices)."""
    sid, data = await new_subject(vault, 1)
    await contract(vault, sid)
    await invoice(vault, sid)
    await newsletter(vault, sid)
    await restrict(vault, DPO, sid)
    assert (await subject_row(vault, sid)).status == "restricted"
    for purpose, kind in (("order.delivery", "subject_id"), ("newsletter.email", "email")):
        with pytest.raises(LookupDenied) as denied:
            await look(vault, purpose, kind, sid if kind == "subject_id" else data[kind])
        assert denied.value.reason == "subject_restricted"
    result = await look(vault, "invoice.postal", "external_ref", data["external_ref"])
    assert result.fields["name"] == data["name"]
    assert "dpo:subject:restrict" in await actions(vault)


async def test_lifting_a_restriction_restores_lookups(vault):
    """After the restriction is lifted the subject is active and lookups are allowed again."""
    sid, _ = await new_subject(vault, 2)
    await contract(vault, sid)
    await restrict(vault, DPO, sid)
    with pytest.raises(Conflict):
        await restrict(vault, DPO, sid)
    await lift_restriction(vault, DPO, sid)
    assert (await subject_row(vault, sid)).status == "active"
    assert (await look(vault, "order.delivery", "subject_id", sid)).fields
    with pytest.raises(Conflict):
        await lift_restriction(vault, DPO, sid)
    assert "dpo:subject:lift_restriction" in await actions(vault)


async def test_restriction_of_unknown_or_erased_subjects(vault):
    """Restricting an unknown subject is NotFound; an erased one is a Conflict."""
    with pytest.raises(NotFound):
        await restrict(vault, DPO, "00000000-0000-4000-8000-000000000000")
    sid, _ = await new_subject(vault, 3)
    await erase(vault, DPO, sid)
    with pytest.raises(Conflict):
        await restrict(vault, DPO, sid)
    with pytest.raises(Conflict):
        await object_to_marketing(vault, DPO, sid)


async def test_objection_ends_every_marketing_basis_at_once_and_keeps_the_rest(vault, clock):
    """Newsletter (editorial) and SMS offers (commercial) end with history `objection`; the
    delivery contract and the incident notices stay."""
    sid, data = await new_subject(vault, 4)
    news = await newsletter(vault, sid)
    sms = await sms_offers(vault, sid)
    deal = await contract(vault, sid)
    notice = await record_basis(vault, WRITER, sid, "incident.notice", reference="security")
    ended = await object_to_marketing(vault, SELF, sid)
    assert {e.id for e in ended} == {news.id, sms.id}
    statuses = {r.id: r.status for r in await consent_rows(vault, sid)}
    assert statuses == {
        news.id: "withdrawn",
        sms.id: "withdrawn",
        deal.id: "active",
        notice.id: "active",
    }
    assert as_utc((await subject_row(vault, sid)).marketing_objection_at) == clock.now()
    history = await rows(vault, consent_history, consent_history.c.event == "objection")
    assert {h.consent_id for h in history} == {news.id, sms.id}
    with pytest.raises(LookupDenied) as denied:
        await look(vault, "offers.sms", "phone", data["phone"])
    assert denied.value.reason == "consent_withdrawn"
    assert (await look(vault, "order.delivery", "subject_id", sid)).fields
    assert "subject:subject:object" in await actions(vault)


async def test_objection_kills_a_pending_double_opt_in(vault):
    """An unconfirmed marketing consent ends too; its mailed link no longer confirms."""
    sid, _ = await new_subject(vault, 5)
    await record_basis(vault, WRITER, sid, "offers.email", evidence=NEWS)
    (token,) = outbox_links(vault.settings.outbox_dir)
    await object_to_marketing(vault, DPO, sid)
    with pytest.raises((Conflict, NotFound)):
        await confirm(vault, token, Actor("subject", "confirmation-link"))


async def test_after_objection_new_marketing_needs_a_fresh_explicit_opt_in(vault):
    """New marketing consents are refused after an objection, unless the evidence shows an
    explicit opt-in by the subject, which lifts the objection; other purposes are unaffected."""
    sid, _ = await new_subject(vault, 6)
    await object_to_marketing(vault, DPO, sid)
    with pytest.raises(Conflict, match="objected to direct marketing"):
        await record_basis(vault, WRITER, sid, "newsletter.email", evidence=NEWS)
    assert await consent_rows(vault, sid) == []
    assert (await contract(vault, sid)).status == "active"  # not marketing
    explicit_news = Evidence(
        touchpoint="web.privacy_centre",
        method="double_opt_in",
        notice_version="2026-10",
        language="de",
        explicit=True,
    )
    record = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=explicit_news)
    assert record.status == "pending_confirmation"
    assert (await subject_row(vault, sid)).marketing_objection_at is None
    # The objection is lifted: further marketing bases need no special evidence.
    assert (
        await record_basis(vault, WRITER, sid, "offers.sms", evidence=EXPLICIT)
    ).status == "granted"


async def test_objection_request_is_carried_out_immediately_for_a_verified_subject(vault):
    """A verified self-service objection completes at once and names Art. 21(3)."""
    sid, _ = await new_subject(vault, 7)
    await sms_offers(vault, sid)
    record = await dsar.create_request(
        vault, SELF, subject_id=sid, type="objection", channel="self_service", verified=True
    )
    assert record.status == "completed"
    assert "Art. 21(3)" in (record.outcome_reason or "") and "1 marketing" in record.outcome_reason
    assert (await subject_row(vault, sid)).marketing_objection_at is not None


async def test_restriction_request_on_an_already_restricted_subject_completes(vault):
    """Approving a restriction request for a subject already restricted completes and says so."""
    sid, _ = await new_subject(vault, 8)
    await restrict(vault, DPO, sid)
    record = await dsar.create_request(
        vault, DPO, subject_id=sid, type="restriction", channel="letter"
    )
    await dsar.verify(vault, DPO, record.id)
    done = await dsar.approve(vault, DPO, record.id)
    assert done.status == "completed" and "already restricted" in (done.outcome_reason or "")
