"""Recording a consent or another lawful basis, with its evidence checked (GDPR Art. 7(1))
and its free text sealed; a double opt-in consent waits for its confirmation."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update

from vault import mail_outbox
from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.bases.consents.confirmation import (
    confirmation_mail,
    hash_token,
)
from vault.bases.consents.records import (
    COLLECTION_METHODS,
    LANGUAGES,
    BasisRecord,
    Evidence,
    add_history,
)
from vault.bases.consents.sealed import (
    sealed_texts,
)
from vault.catalogue.purposes import LawfulBasis, Purpose, is_direct_marketing
from vault.catalogue.touchpoints import TouchpointCatalogue
from vault.clock import as_utc
from vault.crypto import seal_field
from vault.errors import Conflict, InvalidInput
from vault.recipients import events as outbox
from vault.storage.tables import consents, subjects
from vault.subjects.decision import BasisStatus, DenyReason
from vault.subjects.integrity import audited_attempt
from vault.subjects.store import decrypt_fields, load_live_subject

if TYPE_CHECKING:
    from vault.context import VaultContext


def _validate_evidence(
    purpose: Purpose, evidence: Evidence | None, touchpoints: TouchpointCatalogue
) -> None:
    # Evidence is required for a consent only, but checked whenever given: the document
    # states one shape of evidence, and what it refuses must not pass for another basis.
    if evidence is None:
        if purpose.lawful_basis is not LawfulBasis.CONSENT:
            return
        raise InvalidInput("consent needs evidence", {"evidence": "is required for consent"})
    errors: dict[str, str] = {}
    for name in ("touchpoint", "notice_version"):
        value = getattr(evidence, name)
        if not value or not value.strip() or len(value) > 100:
            errors[f"evidence.{name}"] = "must be 1 to 100 characters"
    if "evidence.touchpoint" not in errors and evidence.touchpoint not in touchpoints:
        # The catalogue (policies/touchpoints.toml) is the only vocabulary, so the proof and
        # the contact reports name the same places.
        errors["evidence.touchpoint"] = "is not in the touchpoint catalogue"
    if evidence.method not in COLLECTION_METHODS:
        errors["evidence.method"] = "must be one of " + ", ".join(COLLECTION_METHODS)
    if evidence.language not in LANGUAGES:
        errors["evidence.language"] = "must be one of " + ", ".join(LANGUAGES)
    if evidence.notice_text_hash is not None and not re.fullmatch(
        r"(sha256:)?[0-9a-f]{64}", evidence.notice_text_hash
    ):
        errors["evidence.notice_text_hash"] = "must be a hex SHA-256 digest"
    if purpose.explicit_consent and not evidence.explicit:
        errors["evidence.explicit"] = (
            "this purpose needs express, separate consent (UWG §7); set explicit to true"
        )
    if evidence.ip is not None and len(evidence.ip) > 64:
        errors["evidence.ip"] = "is too long"
    if evidence.user_agent is not None and len(evidence.user_agent) > 512:
        errors["evidence.user_agent"] = "is too long"
    if errors:
        raise InvalidInput("consent evidence is invalid", errors)


def _brands_problem(purpose: Purpose, named: Sequence[str], known: Collection[str]) -> str | None:
    """Why a consent's brands are refused, or None: each once, each a brand of the rules,
    and within the purpose's own brands when the purpose is scoped (a consent can narrow
    what the purpose covers, never widen it)."""
    allowed = purpose.brands or tuple(known)
    if len(set(named)) != len(named) or not set(named) <= set(allowed):
        return "each once, some of " + ", ".join(allowed)
    return None


def _left_out(purpose: Purpose, fields: Sequence[str]) -> str | None:
    """The stored form of the fields left out of a consent (sorted, comma-separated), or
    None; only a consent can leave out fields, only the purpose's own, never all of them."""
    if not fields:
        return None
    if purpose.lawful_basis is not LawfulBasis.CONSENT:
        raise InvalidInput(
            "only a consent can leave out fields", {"excluded_fields": "only for a consent"}
        )
    chosen = set(fields)
    if len(chosen) != len(fields) or not chosen <= set(purpose.fields):
        raise InvalidInput(
            "fields to leave out must be the purpose's own, each once",
            {"excluded_fields": "some of " + ", ".join(purpose.fields)},
        )
    if chosen == set(purpose.fields):
        raise InvalidInput(
            "a consent cannot leave out every field", {"excluded_fields": "keep at least one"}
        )
    return ",".join(sorted(chosen))


async def record_basis(
    ctx: VaultContext,
    actor: Actor,
    subject_id: str,
    purpose_id: str,
    *,
    evidence: Evidence | None = None,
    expires_at: datetime | None = None,
    reference: str | None = None,
    excluded_fields: Sequence[str] = (),
) -> BasisRecord:
    """Record a consent (or contract / legal-obligation / legitimate-interest basis).

    A double opt-in purpose starts `pending_confirmation` and the vault mails the
    confirmation link to the subject's stored address; the mail is sent before the
    transaction commits, so a failing mailer leaves nothing half-recorded.
    `excluded_fields`: fields of the purpose the subject left out of a consent (some, not
    all); a lookup that would reveal one is then `field_not_covered`.
    """
    purpose = ctx.catalogue.get(purpose_id)
    if purpose is None:
        raise InvalidInput("unknown purpose", {"purpose": "is not in the purpose catalogue"})
    _validate_evidence(purpose, evidence, ctx.touchpoints)
    if evidence is not None and evidence.brands:
        problem = _brands_problem(purpose, evidence.brands, ctx.pressure_rules.brands)
        if problem is not None:
            raise InvalidInput("the consent's brands are not valid", {"evidence.brands": problem})
    excluded = _left_out(purpose, excluded_fields)
    now = ctx.clock.now()
    if expires_at is not None:
        expires_at = as_utc(expires_at)
        if expires_at is None or expires_at <= now:
            raise InvalidInput("expiry must lie in the future", {"expires_at": "is in the past"})
    if purpose.lawful_basis is not LawfulBasis.CONSENT:
        if not reference or not reference.strip() or len(reference) > 200:
            raise InvalidInput(
                f"a {purpose.lawful_basis.value} basis needs a reference",
                {"reference": "must be 1 to 200 characters (e.g. the contract number)"},
            )
    elif expires_at is None and purpose.default_duration:
        expires_at = now + purpose.default_duration

    consent_id = str(uuid.uuid4())
    token: str | None = None
    if purpose.double_opt_in:
        status = BasisStatus.PENDING_CONFIRMATION
        token = secrets.token_urlsafe(32)
    elif purpose.lawful_basis is LawfulBasis.CONSENT:
        status = BasisStatus.GRANTED
    else:
        status = BasisStatus.ACTIVE
    deadline = now + timedelta(hours=ctx.settings.double_opt_in_hours) if token else None
    action = (
        AuditAction.CONSENT_GRANT
        if purpose.lawful_basis is LawfulBasis.CONSENT
        else AuditAction.BASIS_RECORD
    )

    # A refusal (unknown or erased subject, an objection) is audited (finding 6).
    async with audited_attempt(
        ctx,
        actor,
        action,
        at=now,
        subject_id=subject_id,
        purpose=purpose_id,
        not_found=DenyReason.SUBJECT_NOT_FOUND.value,
    ) as attempt:
        conn = attempt.conn
        row = await load_live_subject(attempt, subject_id)
        # Art. 21(3): after an objection, marketing needs a fresh explicit opt-in by the
        # subject, which lifts the objection.
        objection_cleared = False
        if row.marketing_objection_at is not None and is_direct_marketing(purpose):
            if evidence is None or not evidence.explicit:
                attempt.reason = "marketing_objection"
                raise Conflict("the subject objected to direct marketing")
            await conn.execute(
                update(subjects)
                .where(subjects.c.id == subject_id)
                .values(marketing_objection_at=None)
            )
            objection_cleared = True
        dek = ctx.deks.dek(subject_id, row.kek_version, row.wrapped_dek)
        texts = sealed_texts(
            dek,
            subject_id,
            row.dek_version,
            consent_id,
            reference=reference.strip() if reference else None,
            notice_version=evidence.notice_version if evidence else None,
        )
        evidence_ct = None
        if evidence is not None and (evidence.ip or evidence.user_agent):
            sealed = json.dumps({"ip": evidence.ip, "user_agent": evidence.user_agent})
            evidence_ct = seal_field(
                dek, subject_id, f"consent_evidence:{consent_id}", row.dek_version, sealed
            )
        # A new record for a purpose supersedes the subject's earlier live ones, so that one
        # withdrawal always ends the permission.
        earlier = (
            await conn.execute(
                select(consents.c.id, consents.c.expires_at)
                .where(consents.c.subject_id == subject_id)
                .where(consents.c.purpose == purpose_id)
                .where(
                    consents.c.status.in_(
                        [BasisStatus.GRANTED, BasisStatus.ACTIVE, BasisStatus.PENDING_CONFIRMATION]
                    )
                )
            )
        ).all()
        for old in earlier:
            await conn.execute(
                update(consents)
                .where(consents.c.id == old.id)
                .values(status=BasisStatus.SUPERSEDED)
            )
            await add_history(
                conn,
                consent_id=old.id,
                subject_id=subject_id,
                at=now,
                event="superseded",
                status=BasisStatus.SUPERSEDED,
                actor=actor,
                expires_at=old.expires_at,
            )
        # Art. 18(1)(d): an Art. 21(1) objection still open for the purpose restricts
        # this basis too, exactly as it does the bases it found when it was filed.
        objected = purpose.lawful_basis is LawfulBasis.LEGITIMATE_INTEREST and (
            purpose_id in await ctx.objected_purposes(conn, subject_id)
        )
        await conn.execute(
            insert(consents).values(
                id=consent_id,
                subject_id=subject_id,
                purpose=purpose_id,
                basis=purpose.lawful_basis.value,
                status=status,
                created_at=now,
                granted_at=now if status is not BasisStatus.PENDING_CONFIRMATION else None,
                expires_at=expires_at,
                confirm_deadline=deadline,
                confirm_token_hash=hash_token(token) if token else None,
                touchpoint=evidence.touchpoint if evidence else None,
                method=evidence.method if evidence else None,
                notice_text_hash=evidence.notice_text_hash if evidence else None,
                language=evidence.language if evidence else None,
                collected_by=actor.id,
                evidence_ct=evidence_ct,
                excluded_fields=excluded,
                brands=",".join(sorted(evidence.brands)) if evidence and evidence.brands else None,
                objection_pending_at=now if objected else None,
                **texts,
            )
        )
        await add_history(
            conn,
            consent_id=consent_id,
            subject_id=subject_id,
            at=now,
            event="confirmation_requested" if token else "recorded",
            status=status,
            actor=actor,
            expires_at=expires_at,
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=action,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            purpose=purpose_id,
            consent_id=consent_id,
            detail={"status": str(status), "superseded": len(earlier)}
            | ({"objection_cleared": True} if objection_cleared else {})
            | ({"left_out": excluded.split(",")} if excluded else {})
            | ({"brands": sorted(evidence.brands)} if evidence and evidence.brands else {})
            | ({"objection_pending": True} if objected else {}),
        )
        if status is BasisStatus.GRANTED:
            await outbox.emit(
                conn,
                outbox.EventType.CONSENT_GRANTED,
                subject_id=subject_id,
                purposes=[purpose_id],
                at=now,
            )
        if token:
            address = decrypt_fields(ctx, row, ("email",)).get("email")
            if address is None:
                # The request is well-formed; the stored subject lacks what it needs: a
                # conflict with the stored state (409), not invalid input (422).
                raise Conflict(
                    "double opt-in needs an e-mail address; the subject has none to confirm with"
                )
            await audit.record(
                conn,
                at=now,
                actor=audit.SYSTEM,
                action=AuditAction.DOI_MAIL,
                decision=Decision.ALLOW,
                subject_id=subject_id,
                purpose=purpose_id,
                fields=["email"],
                consent_id=consent_id,
            )
            language = evidence.language if evidence else "de"
            await mail_outbox.queue(
                ctx,
                conn,
                confirmation_mail(ctx, purpose, address, token, language, deadline),
                kind="doi_confirmation",
                subject_id=subject_id,
                give_up_at=deadline,
            )
    return BasisRecord(
        id=consent_id,
        subject_id=subject_id,
        purpose=purpose_id,
        basis=purpose.lawful_basis.value,
        status=str(status),
        reference=reference,
        created_at=now,
        granted_at=None if token else now,
        expires_at=expires_at,
        withdrawn_at=None,
        confirm_deadline=deadline,
        evidence={},
        excluded_fields=excluded.split(",") if excluded else [],
    )
