"""Proof of one consent for a regulator (GDPR Art. 7(1)): the record, its evidence, its
history and every audit event about it, with the newest signed checkpoint of the chain.

The evidence includes the IP address and user agent of the grant, which are stored sealed
under the subject's key: the DPO needs them to prove the consent, so the proof opens them,
and that read is audited (`dpo:consent:proof`) in the same transaction, before anything
leaves the vault. After an erasure the sealed evidence is gone (crypto-shredded); the proof
then says so. The record's free text (reference, notice version) is sealed the same way and
gone after an erasure too. Sealed data that fails to open is an audited refusal
(`vault.subjects.integrity`), never a proof built on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from vault.audit import events as audit
from vault.audit.chain_links import select_events_with_seals
from vault.audit.events import Actor, AuditAction, Decision
from vault.audit.query import AuditItem, audit_item
from vault.bases.consents import evidence_secrets, open_texts
from vault.clock import as_utc
from vault.errors import InvalidInput, NotFound
from vault.recipients import acks
from vault.recipients.acks import Notice
from vault.storage.audit_tables import audit_checkpoints, audit_events
from vault.storage.rows import canonical_id
from vault.storage.tables import consent_history, consents, subjects
from vault.subjects.decision import BasisFacts, effective_status
from vault.subjects.integrity import audited_read

if TYPE_CHECKING:
    from vault.context import VaultContext


@dataclass(frozen=True, slots=True)
class ProofEvidence:
    touchpoint: str | None
    method: str | None
    notice_version: str | None
    notice_text_hash: str | None
    language: str | None
    collected_by: str | None
    ip: str | None
    user_agent: str | None
    #: `opened` (IP / user agent shown), `none` (none were recorded) or `shredded` (erased).
    sealed_evidence: str
    #: The brands the consent was given for (empty: every brand its purpose covers).
    brands: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProofHistory:
    at: datetime
    event: str
    status: str
    actor: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class ProofPurpose:
    id: str
    title_de: str
    title_en: str
    lawful_basis: str
    double_opt_in: bool
    explicit_consent: bool
    channel: str
    data_use: str
    catalogue_version: str


@dataclass(frozen=True, slots=True)
class ProofCheckpoint:
    position: int
    seq: int
    head: str
    at: datetime
    key_id: str
    signature: str


@dataclass(frozen=True, slots=True)
class ConsentProof:
    consent_id: str
    subject_id: str
    purpose_id: str
    purpose: ProofPurpose | None
    basis: str
    status: str
    stored_status: str
    reference: str | None
    created_at: datetime
    granted_at: datetime | None
    expires_at: datetime | None
    withdrawn_at: datetime | None
    confirm_deadline: datetime | None
    subject_status: str
    evidence: ProofEvidence
    history: list[ProofHistory]
    events: list[AuditItem]
    checkpoint: ProofCheckpoint | None
    generated_at: datetime
    generated_by: str
    #: Recipients told about changes concerning this purpose, and how they confirmed
    #: (Art. 19 GDPR).
    notices: list[Notice] = field(default_factory=list)
    #: The purpose's fields the subject left out of this consent: part of what was
    #: consented to (Art. 7(1)), so part of its proof.
    excluded_fields: list[str] = field(default_factory=list)


async def consent_proof(ctx: VaultContext, actor: Actor, consent_id: str) -> ConsentProof:
    """Everything that proves (or disproves) one consent; `NotFound` for an unknown id."""
    if canonical_id(consent_id) != consent_id:
        raise InvalidInput("bad consent id", {"consent_id": "must be a UUID"})
    now = ctx.clock.now()
    async with audited_read(ctx, actor, AuditAction.DPO_CONSENT_PROOF, at=now) as read:
        conn = read.conn
        row = (await conn.execute(select(consents).where(consents.c.id == consent_id))).first()
        if row is None:
            raise NotFound("no such consent")
        read.about(subject_id=row.subject_id, purpose=row.purpose, consent_id=consent_id)
        subject = (
            await conn.execute(select(subjects).where(subjects.c.id == row.subject_id))
        ).first()
        history = (
            await conn.execute(
                select(consent_history)
                .where(consent_history.c.consent_id == consent_id)
                .order_by(consent_history.c.id)
            )
        ).all()
        events = (
            await conn.execute(
                select_events_with_seals()
                # By the subject's index: every event naming a consent names its subject
                # (consent_id itself is not indexed, migration 0011).
                .where(audit_events.c.subject_id == row.subject_id)
                .where(audit_events.c.consent_id == consent_id)
                .order_by(audit_events.c.seq)
            )
        ).all()
        notices = await acks.notices_for_purpose(conn, row.subject_id, row.purpose)
        checkpoint = (
            await conn.execute(
                select(audit_checkpoints).order_by(audit_checkpoints.c.chain_pos.desc()).limit(1)
            )
        ).first()
        texts = open_texts(ctx, subject, row)
        secrets: dict[str, Any] = {}
        if row.evidence_ct is not None and subject is not None and subject.wrapped_dek is not None:
            sealed_state = "opened"
            secrets = await evidence_secrets(ctx, conn, subject, row)
        elif subject is not None and subject.wrapped_dek is None:
            sealed_state = "shredded"
        else:
            sealed_state = "none"
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.DPO_CONSENT_PROOF,
            decision=Decision.ALLOW,
            subject_id=row.subject_id,
            purpose=row.purpose,
            consent_id=consent_id,
            detail={
                "evidence_opened": sorted(k for k, v in secrets.items() if v is not None),
                "events": len(events),
            },
        )
    purpose = ctx.catalogue.get(row.purpose)
    facts = BasisFacts(
        id=row.id,
        basis=row.basis,
        status=row.status,
        expires_at=row.expires_at,
        confirm_deadline=row.confirm_deadline,
    )
    return ConsentProof(
        consent_id=row.id,
        subject_id=row.subject_id,
        purpose_id=row.purpose,
        purpose=(
            ProofPurpose(
                id=purpose.id,
                title_de=purpose.title_de,
                title_en=purpose.title_en,
                lawful_basis=purpose.lawful_basis.value,
                double_opt_in=purpose.double_opt_in,
                explicit_consent=purpose.explicit_consent,
                channel=purpose.channel,
                data_use=purpose.data_use,
                catalogue_version=ctx.catalogue.version,
            )
            if purpose is not None
            else None
        ),
        basis=row.basis,
        status=str(effective_status(facts, now)),
        stored_status=row.status,
        reference=texts["reference"],
        created_at=as_utc(row.created_at),
        granted_at=as_utc(row.granted_at),
        expires_at=as_utc(row.expires_at),
        withdrawn_at=as_utc(row.withdrawn_at),
        confirm_deadline=as_utc(row.confirm_deadline),
        subject_status=subject.status if subject is not None else "unknown",
        excluded_fields=row.excluded_fields.split(",") if row.excluded_fields else [],
        evidence=ProofEvidence(
            touchpoint=row.touchpoint,
            method=row.method,
            notice_version=texts["notice_version"],
            notice_text_hash=row.notice_text_hash,
            language=row.language,
            collected_by=row.collected_by,
            ip=secrets.get("ip"),
            user_agent=secrets.get("user_agent"),
            sealed_evidence=sealed_state,
            brands=tuple(row.brands.split(",")) if row.brands else (),
        ),
        history=[
            ProofHistory(
                at=as_utc(h.at),
                event=h.event,
                status=h.status,
                actor=h.actor,
                expires_at=as_utc(h.expires_at),
            )
            for h in history
        ],
        events=[audit_item(e) for e in events],
        checkpoint=(
            ProofCheckpoint(
                position=checkpoint.chain_pos,
                seq=checkpoint.seq,
                head=checkpoint.head,
                at=as_utc(checkpoint.at),
                key_id=checkpoint.key_id,
                signature=checkpoint.signature,
            )
            if checkpoint is not None
            else None
        ),
        generated_at=now,
        generated_by=actor.label,
        notices=notices,
    )
