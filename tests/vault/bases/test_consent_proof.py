"""Consent proof for a regulator: evidence with sealed IP / user agent, history, audit events."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.support.db import audit_trail
from tests.support.factories import NEWSLETTER_EVIDENCE, WRITER, outbox_links, person
from vault.access.lookup import lookup
from vault.audit import chain as audit_chain
from vault.audit.events import Actor, AuditAction
from vault.bases.consent_proof import consent_proof
from vault.bases.consents import Evidence, confirm, record_basis, withdraw
from vault.errors import InvalidInput, NotFound
from vault.outreach.basket import ContactSpec
from vault.subjects.store import create_subject

DPO = Actor("dpo", "datenschutz", "req-dpo")
IP = "198.51.100.23"
UA = "Mozilla/5.0 (Windows NT 10.0) Chrome/131.0"


async def _newsletter(vault, seed: int = 1):
    """A confirmed double opt-in newsletter consent with IP and user agent, read once."""
    p = person(seed)
    sid = await create_subject(vault, WRITER, p)
    evidence = Evidence(**NEWSLETTER_EVIDENCE, ip=IP, user_agent=UA)
    basis = await record_basis(vault, WRITER, sid, "newsletter.email", evidence=evidence)
    token = outbox_links(vault.settings.outbox_dir)[-1]
    await confirm(vault, token, Actor("subject", "confirmation-link"))
    await lookup(
        vault,
        Actor("client", "newsletter-tool", "r-1"),
        frozenset({"newsletter.email"}),
        purpose_id="newsletter.email",
        identifier_kind="subject_id",
        identifier=sid,
        contact=ContactSpec(brand="tresor"),
    )
    return p, sid, basis.id


async def test_proof_carries_evidence_history_and_every_event(vault, clock):
    """The proof opens IP and user agent, lists the history and all events naming the consent."""
    p, sid, cid = await _newsletter(vault)
    clock.advance(timedelta(days=3))
    await withdraw(vault, WRITER, sid, cid)
    await audit_chain.seal_all(vault, grace=timedelta(0))

    proof = await consent_proof(vault, DPO, cid)
    assert (proof.consent_id, proof.subject_id, proof.purpose_id) == (cid, sid, "newsletter.email")
    assert proof.basis == "consent" and proof.status == "withdrawn"
    assert proof.purpose is not None and proof.purpose.double_opt_in
    assert proof.purpose.catalogue_version == vault.catalogue.version
    e = proof.evidence
    assert (e.touchpoint, e.method, e.notice_version, e.language) == (
        "web.newsletter_form",
        "web_form",
        "2026-10",
        "de",
    )
    assert (e.ip, e.user_agent, e.sealed_evidence) == (IP, UA, "opened")
    assert e.collected_by == "crm"
    assert [h.event for h in proof.history] == ["confirmation_requested", "confirmed", "withdrawn"]
    actions = [x.action for x in proof.events]
    assert actions == [
        "client:consent:grant",
        "system:consent:confirmation_mail",
        "subject:consent:confirm",
        "client:contact:lookup",
        "client:consent:withdraw",
    ]
    assert all(x.consent_id == cid and x.sealed for x in proof.events)
    assert proof.checkpoint is not None and proof.checkpoint.seq >= proof.events[-1].seq
    assert proof.generated_by == "dpo:datenschutz" and proof.generated_at == clock.now()


async def test_opening_the_evidence_is_audited_without_the_values(vault):
    """The proof writes dpo:consent:proof naming what was opened, never the IP or user agent."""
    _, sid, cid = await _newsletter(vault)
    await consent_proof(vault, DPO, cid)
    events = await audit_trail(vault)
    mine = [x for x in events if x.action == AuditAction.DPO_CONSENT_PROOF]
    assert len(mine) == 1
    x = mine[0]
    assert (x.actor_type, x.actor_id, x.subject_id, x.consent_id, x.purpose) == (
        "dpo",
        "datenschutz",
        sid,
        cid,
        "newsletter.email",
    )
    assert json.loads(x.detail) == {"evidence_opened": ["ip", "user_agent"], "events": 4}
    text = json.dumps([[str(v) for v in e] for e in events])
    assert IP not in text and UA not in text
    again = await consent_proof(vault, DPO, cid)
    assert again.events[-1].action == AuditAction.DPO_CONSENT_PROOF  # earlier proofs are listed


async def test_a_contract_basis_has_no_sealed_evidence(vault):
    """A basis recorded without IP or user agent says so instead of opening anything."""
    sid = await create_subject(vault, WRITER, person(3))
    basis = await record_basis(vault, WRITER, sid, "order.delivery", reference="Bestellung 7")
    proof = await consent_proof(vault, DPO, basis.id)
    assert proof.evidence.sealed_evidence == "none" and proof.evidence.ip is None
    assert proof.reference == "Bestellung 7" and proof.status == "active"


async def test_after_erasure_the_evidence_is_shredded(vault):
    """Once the subject is erased the proof reports the sealed evidence as shredded."""
    from tests.support.dsar import erase

    _, sid, cid = await _newsletter(vault)
    await erase(vault, Actor("dpo", "datenschutz"), sid)
    proof = await consent_proof(vault, DPO, cid)
    assert proof.evidence.sealed_evidence == "shredded"
    assert proof.evidence.ip is None and proof.subject_status == "erased"


async def test_unknown_and_malformed_consent_ids(vault):
    """An unknown id is NotFound; something that is not a UUID is refused before any read."""
    with pytest.raises(NotFound):
        await consent_proof(vault, DPO, "00000000-0000-4000-8000-000000000000")
    with pytest.raises(InvalidInput):
        await consent_proof(vault, DPO, "erika@example.org")
    assert not [x for x in await audit_trail(vault) if x.action == AuditAction.DPO_CONSENT_PROOF]
