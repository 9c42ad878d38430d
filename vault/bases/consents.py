"""Consents and the other lawful bases: record, confirm (double opt-in), withdraw, list.

Every change appends to `consent_history` and writes an audit event in the same
transaction. Consent evidence is kept as proof (GDPR Art. 7(1)); the IP address and user
agent of a grant are personal data and stored only sealed under the subject's DEK.

So is the free text of a record: a basis's `reference` (a contract number, an order: what
the client typed) and a consent's `notice_version`. They are sealed under the subject's DEK,
bound to (subject, column, consent id), so they are unreadable after the erasure destroys
the key (which also clears them). Rows written before migration 0013 hold them in plaintext
until the retention sweep seals them (`seal_legacy_texts`); `open_texts` reads both forms.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.catalogue.purposes import LawfulBasis, Purpose, is_direct_marketing
from vault.catalogue.touchpoints import TouchpointCatalogue
from vault.clock import as_utc
from vault.crypto import IntegrityCheckFailed, open_field, seal_field
from vault.errors import Conflict, InvalidInput, InvariantViolation, NotFound
from vault.recipients import events as outbox
from vault.storage.tables import consent_history, consents, subjects
from vault.subjects.decision import BasisFacts, BasisStatus, DenyReason, effective_status
from vault.subjects.integrity import audited_attempt, audited_read
from vault.subjects.store import decrypt_fields, load_live_subject, load_subject

if TYPE_CHECKING:
    from vault.context import VaultContext

COLLECTION_METHODS = (
    "web_form",
    "checkbox",
    "double_opt_in",
    "paper_form",
    "signature",
    "recorded_call",
    "email_reply",
    "in_person",
    "app",
)
LANGUAGES = ("de", "en")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


@dataclass(frozen=True, slots=True)
class Evidence:
    """How and where a consent was given. `ip` and `user_agent` are sealed at rest."""

    touchpoint: str
    method: str
    notice_version: str
    language: str
    notice_text_hash: str | None = None
    explicit: bool = False
    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class BasisRecord:
    id: str
    subject_id: str
    purpose: str
    basis: str
    status: str
    reference: str | None
    created_at: datetime
    granted_at: datetime | None
    expires_at: datetime | None
    withdrawn_at: datetime | None
    confirm_deadline: datetime | None
    evidence: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def _facts(row: Any) -> BasisFacts:
    return BasisFacts(
        id=row.id,
        basis=row.basis,
        status=row.status,
        expires_at=row.expires_at,
        confirm_deadline=row.confirm_deadline,
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _validate_evidence(
    purpose: Purpose, evidence: Evidence | None, touchpoints: TouchpointCatalogue
) -> None:
    if purpose.lawful_basis is not LawfulBasis.CONSENT:
        return
    if evidence is None:
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


async def _history(
    conn: AsyncConnection,
    *,
    consent_id: str,
    subject_id: str,
    at: datetime,
    event: str,
    status: str,
    actor: Actor,
    expires_at: datetime | None,
) -> None:
    await conn.execute(
        insert(consent_history).values(
            consent_id=consent_id,
            subject_id=subject_id,
            at=at,
            event=event,
            status=status,
            actor=actor.label,
            expires_at=expires_at,
        )
    )


async def record_basis(
    ctx: VaultContext,
    actor: Actor,
    subject_id: str,
    purpose_id: str,
    *,
    evidence: Evidence | None = None,
    expires_at: datetime | None = None,
    reference: str | None = None,
) -> BasisRecord:
    """Record a consent (or contract / legal-obligation / legitimate-interest basis).

    A double opt-in purpose starts `pending_confirmation` and the vault mails the
    confirmation link to the subject's stored address; the mail is sent before the
    transaction commits, so a failing mailer leaves nothing half-recorded.
    """
    purpose = ctx.catalogue.get(purpose_id)
    if purpose is None:
        raise InvalidInput("unknown purpose", {"purpose": "is not in the purpose catalogue"})
    _validate_evidence(purpose, evidence, ctx.touchpoints)
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
            await _history(
                conn,
                consent_id=old.id,
                subject_id=subject_id,
                at=now,
                event="superseded",
                status=BasisStatus.SUPERSEDED,
                actor=actor,
                expires_at=old.expires_at,
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
                confirm_token_hash=_token_hash(token) if token else None,
                touchpoint=evidence.touchpoint if evidence else None,
                method=evidence.method if evidence else None,
                notice_text_hash=evidence.notice_text_hash if evidence else None,
                language=evidence.language if evidence else None,
                collected_by=actor.id,
                evidence_ct=evidence_ct,
                **texts,
            )
        )
        await _history(
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
            | ({"objection_cleared": True} if objection_cleared else {}),
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
                raise InvalidInput(
                    "double opt-in needs an e-mail address",
                    {"purpose": "the subject has no e-mail address to confirm with"},
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
            await ctx.mailer.send(
                confirmation_mail(ctx, purpose, address, token, language, deadline)
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
    )


_MAIL_TEXT = {
    "de": (
        "Bitte bestätigen Sie Ihre Einwilligung: {title}",
        "Guten Tag,\n\nbitte bestätigen Sie, dass wir Sie für folgenden Zweck kontaktieren "
        "dürfen:\n\n  {title}\n\nZum Bestätigen öffnen Sie diesen Link:\n\n  {link}\n\n"
        "Der Link ist gültig bis {deadline} (UTC). Wenn Sie das nicht angefordert haben, "
        "ignorieren Sie diese E-Mail einfach; dann geschieht nichts.\n",
    ),
    "en": (
        "Please confirm your consent: {title}",
        "Hello,\n\nplease confirm that we may contact you for this purpose:\n\n  {title}\n\n"
        "To confirm, open this link:\n\n  {link}\n\nThe link is valid until {deadline} (UTC). "
        "If you did not ask for this, simply ignore this e-mail; nothing will happen.\n",
    ),
}


def confirmation_link(ctx: VaultContext, token: str) -> str:
    return f"{ctx.settings.public_url}/confirm/{token}"


def confirmation_mail(
    ctx: VaultContext,
    purpose: Purpose,
    address: str,
    token: str,
    language: str,
    deadline: datetime | None,
) -> EmailMessage:
    subject_tpl, body_tpl = _MAIL_TEXT.get(language, _MAIL_TEXT["de"])
    title = purpose.title(language)
    msg = EmailMessage()
    msg["From"] = ctx.settings.mail_from
    msg["To"] = address
    msg["Subject"] = subject_tpl.format(title=title)
    msg.set_content(
        body_tpl.format(
            title=title,
            link=confirmation_link(ctx, token),
            deadline=deadline.strftime("%Y-%m-%d %H:%M") if deadline else "-",
        )
    )
    # After set_content, which clears every Content-* header set before it.
    msg["Content-Language"] = language
    return msg


async def confirm(ctx: VaultContext, token: str, actor: Actor) -> BasisRecord:
    """Turn a pending double opt-in consent into a granted one via its mailed token."""
    if not _TOKEN_RE.match(token or ""):
        raise NotFound("unknown or used confirmation link")
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        row = (
            await conn.execute(
                select(consents)
                .where(consents.c.confirm_token_hash == _token_hash(token))
                .with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound("unknown or used confirmation link")
        status = effective_status(_facts(row), now)
        if status is BasisStatus.LAPSED:
            raise Conflict("the confirmation link has expired; please subscribe again")
        if status is not BasisStatus.PENDING_CONFIRMATION:
            raise Conflict("this consent can no longer be confirmed")
        purpose = ctx.catalogue.get(row.purpose)
        expires_at = as_utc(row.expires_at)
        created = as_utc(row.created_at)
        if created is None:
            raise InvariantViolation("created is unset")
        if (
            purpose is not None
            and purpose.default_duration
            and expires_at is not None
            and expires_at - created == purpose.default_duration
        ):
            # A default duration runs in full from confirmation, not from the request; an
            # expiry the client named explicitly is kept as it is.
            expires_at = now + purpose.default_duration
        await conn.execute(
            update(consents)
            .where(consents.c.id == row.id)
            .values(
                status=BasisStatus.GRANTED,
                granted_at=now,
                expires_at=expires_at,
                confirm_token_hash=None,
            )
        )
        await _history(
            conn,
            consent_id=row.id,
            subject_id=row.subject_id,
            at=now,
            event="confirmed",
            status=BasisStatus.GRANTED,
            actor=actor,
            expires_at=expires_at,
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.CONSENT_CONFIRM,
            decision=Decision.ALLOW,
            subject_id=row.subject_id,
            purpose=row.purpose,
            consent_id=row.id,
        )
        await outbox.emit(
            conn,
            outbox.EventType.CONSENT_GRANTED,
            subject_id=row.subject_id,
            purposes=[row.purpose],
            at=now,
        )
    return await get_basis(ctx, row.subject_id, row.id)


async def withdraw(
    ctx: VaultContext, actor: Actor, subject_id: str, consent_id: str
) -> BasisRecord:
    """Withdraw a consent (or end another basis) at once (GDPR Art. 7(3)). A refusal (an
    unknown consent, one no longer in force) is audited (finding 6)."""
    now = ctx.clock.now()
    action = (
        AuditAction.SUBJECT_CONSENT_WITHDRAW
        if actor.type == "subject"
        else AuditAction.CONSENT_WITHDRAW
    )
    async with audited_attempt(
        ctx, actor, action, at=now, subject_id=subject_id, not_found="consent_not_found"
    ) as attempt:
        conn = attempt.conn
        row = (
            await conn.execute(
                select(consents)
                .where(consents.c.id == consent_id)
                .where(consents.c.subject_id == subject_id)
                .with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound("no such consent for this subject")
        attempt.about(subject_id=subject_id, purpose=row.purpose)
        current = effective_status(_facts(row), now)
        if current not in (
            BasisStatus.GRANTED,
            BasisStatus.ACTIVE,
            BasisStatus.PENDING_CONFIRMATION,
        ):
            attempt.reason = "consent_not_in_force"
            raise Conflict(f"the consent is {current.value}; nothing to withdraw")
        new_status = (
            BasisStatus.WITHDRAWN if row.basis == LawfulBasis.CONSENT.value else BasisStatus.ENDED
        )
        await conn.execute(
            update(consents)
            .where(consents.c.id == consent_id)
            .values(status=new_status, withdrawn_at=now, confirm_token_hash=None)
        )
        await _history(
            conn,
            consent_id=consent_id,
            subject_id=subject_id,
            at=now,
            event=str(new_status),
            status=new_status,
            actor=actor,
            expires_at=row.expires_at,
        )
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=action,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            purpose=row.purpose,
            consent_id=consent_id,
            detail={"status": str(new_status)},
        )
        await outbox.emit(
            conn,
            outbox.EventType.CONSENT_WITHDRAWN
            if new_status is BasisStatus.WITHDRAWN
            else outbox.EventType.BASIS_ENDED,
            subject_id=subject_id,
            purposes=[row.purpose],
            at=now,
        )
    return await get_basis(ctx, subject_id, consent_id)


def _record(
    ctx: VaultContext, row: Any, texts: dict[str, str | None], history: list[Any]
) -> BasisRecord:
    now = ctx.clock.now()
    evidence: dict[str, Any] = {
        "touchpoint": row.touchpoint,
        "method": row.method,
        "notice_version": texts["notice_version"],
        "notice_text_hash": row.notice_text_hash,
        "language": row.language,
        "collected_by": row.collected_by,
    }
    return BasisRecord(
        id=row.id,
        subject_id=row.subject_id,
        purpose=row.purpose,
        basis=row.basis,
        status=str(effective_status(_facts(row), now)),
        reference=texts["reference"],
        created_at=as_utc(row.created_at),
        granted_at=as_utc(row.granted_at),
        expires_at=as_utc(row.expires_at),
        withdrawn_at=as_utc(row.withdrawn_at),
        confirm_deadline=as_utc(row.confirm_deadline),
        evidence={k: v for k, v in evidence.items() if v is not None},
        history=[
            {
                "at": as_utc(h.at),
                "event": h.event,
                "status": h.status,
                "actor": h.actor,
                "expires_at": as_utc(h.expires_at),
            }
            for h in history
        ],
    )


async def list_bases(
    ctx: VaultContext, actor: Actor, subject_id: str, *, consent_id: str | None = None
) -> list[BasisRecord]:
    """Every basis record of a subject, newest first, each with its history. Audited; a
    sealed text that fails to open is an audited `IntegrityFailure`."""
    now = ctx.clock.now()
    async with audited_read(
        ctx,
        actor,
        AuditAction.CONSENT_LIST,
        at=now,
        subject_id=subject_id,
        consent_id=consent_id,
        not_found=DenyReason.SUBJECT_NOT_FOUND.value,
    ) as read:
        conn = read.conn
        subject = await load_subject(conn, subject_id)
        stmt = select(consents).where(consents.c.subject_id == subject_id)
        if consent_id is not None:
            stmt = stmt.where(consents.c.id == consent_id)
        rows = (await conn.execute(stmt.order_by(consents.c.created_at.desc()))).all()
        texts = {r.id: open_texts(ctx, subject, r) for r in rows}
        hist = (
            await conn.execute(
                select(consent_history)
                .where(consent_history.c.subject_id == subject_id)
                .order_by(consent_history.c.id)
            )
        ).all()
        if actor.type != "internal":
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=AuditAction.CONSENT_LIST,
                decision=Decision.ALLOW,
                subject_id=subject_id,
                consent_id=consent_id,
            )
    by_consent: dict[str, list[Any]] = {}
    for h in hist:
        by_consent.setdefault(h.consent_id, []).append(h)
    return [_record(ctx, r, texts[r.id], by_consent.get(r.id, [])) for r in rows]


async def get_basis(ctx: VaultContext, subject_id: str, consent_id: str) -> BasisRecord:
    records = await list_bases(ctx, Actor("internal", "tresor"), subject_id, consent_id=consent_id)
    if not records:
        raise NotFound("no such consent for this subject")
    return records[0]


#: Free-text columns of a basis record, each sealed into `<column>_ct` (migration 0013).
SEALED_TEXTS = ("reference", "notice_version")


def _text_field(column: str, consent_id: str) -> str:
    """The name a sealed text is bound to: its column and its row."""
    return f"consents.{column}:{consent_id}"


def sealed_texts(
    dek: Any, subject_id: str, dek_version: int, consent_id: str, **texts: str | None
) -> dict[str, Any]:
    """`<column>_ct` values for a basis record's free text (None stays None); the plaintext
    columns are left empty."""
    return {
        f"{column}_ct": None
        if text is None
        else seal_field(dek, subject_id, _text_field(column, consent_id), dek_version, text)
        for column, text in texts.items()
    }


def open_texts(ctx: VaultContext, subject: Any, row: Any) -> dict[str, str | None]:
    """A basis record's free text: opened from its sealed column, or, in a row written
    before migration 0013 and not yet sealed by the sweep, its plaintext column. None once
    erased. Raises `DecryptionError` if a sealed text does not open."""
    out: dict[str, str | None] = {}
    dek = None
    for column in SEALED_TEXTS:
        blob = getattr(row, f"{column}_ct")
        if blob is None:
            out[column] = getattr(row, column)
            continue
        if subject is None or subject.wrapped_dek is None:
            out[column] = None  # the key is destroyed: nothing can be opened any more
            continue
        if dek is None:
            dek = ctx.deks.dek(subject.id, subject.kek_version, subject.wrapped_dek)
        out[column] = open_field(
            dek, row.subject_id, _text_field(column, row.id), subject.dek_version, blob
        )
    return out


async def seal_legacy_texts(ctx: VaultContext, *, batch: int = 500) -> int:
    """Seal the plaintext free text of basis records written before migration 0013 under
    their subject's key, and empty the plaintext columns; returns how many rows. (Erased
    subjects' rows were cleared by the erasure.) A data migration that needs the keyring,
    so the retention sweep runs it rather than Alembic. Each update is guarded by the
    plaintext it read, so concurrent sweeps never double-write; a row whose subject key does
    not open is left as it is (its reads fail closed) and the sweep goes on."""
    total = 0
    legacy = or_(consents.c.reference.is_not(None), consents.c.notice_version.is_not(None))
    after = ""
    while True:
        async with ctx.transaction() as conn:
            rows = (
                await conn.execute(
                    select(
                        consents.c.id,
                        consents.c.subject_id,
                        consents.c.reference,
                        consents.c.notice_version,
                        subjects.c.kek_version,
                        subjects.c.wrapped_dek,
                        subjects.c.dek_version,
                    )
                    .join(subjects, subjects.c.id == consents.c.subject_id)
                    .where(legacy)
                    .where(subjects.c.wrapped_dek.is_not(None))
                    .where(consents.c.id > after)
                    .order_by(consents.c.id)
                    .limit(batch)
                )
            ).all()
            for r in rows:
                plain = {c: getattr(r, c) for c in SEALED_TEXTS if getattr(r, c) is not None}
                try:
                    dek = ctx.deks.dek(r.subject_id, r.kek_version, r.wrapped_dek)
                except IntegrityCheckFailed:
                    continue
                done = await conn.execute(
                    update(consents)
                    .where(consents.c.id == r.id)
                    .where(_same(consents.c.reference, r.reference))
                    .where(_same(consents.c.notice_version, r.notice_version))
                    .values(
                        reference=None,
                        notice_version=None,
                        **sealed_texts(dek, r.subject_id, r.dek_version, r.id, **plain),
                    )
                )
                total += done.rowcount
        if len(rows) < batch:
            return total
        after = rows[-1].id


def _same(column: Any, value: str | None) -> Any:
    return column.is_(None) if value is None else column == value


async def evidence_secrets(
    ctx: VaultContext, conn: AsyncConnection, subject: Any, consent_row: Any
) -> dict[str, Any]:
    """The sealed IP / user agent of a grant (for consent proof to the subject or a DPO)."""
    if consent_row.evidence_ct is None:
        return {}
    dek = ctx.deks.dek(subject.id, subject.kek_version, subject.wrapped_dek)
    text = open_field(
        dek,
        subject.id,
        f"consent_evidence:{consent_row.id}",
        subject.dek_version,
        consent_row.evidence_ct,
    )
    return dict(json.loads(text))


async def peek_confirmation(ctx: VaultContext, token: str) -> tuple[str, BasisStatus]:
    """Purpose id and effective status behind a confirmation token, without confirming.

    The page behind the mailed link shows this first and confirms only on a button press,
    because mail scanners open links on their own.
    """
    if not _TOKEN_RE.match(token or ""):
        raise NotFound("unknown or used confirmation link")
    async with ctx.transaction() as conn:
        row = (
            await conn.execute(
                select(consents).where(consents.c.confirm_token_hash == _token_hash(token))
            )
        ).first()
    if row is None:
        raise NotFound("unknown or used confirmation link")
    return row.purpose, effective_status(_facts(row), ctx.clock.now())
