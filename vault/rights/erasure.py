"""Erasure by crypto-shredding (GDPR Art. 17), with the Art. 17(3)(b) exception.

Erasing a subject destroys its wrapped DEK and deletes every ciphertext and blind-index
digest of it, so whatever a backup still holds can no longer be decrypted or matched. Every
basis ends, and loses its free text (reference, notice version: sealed under the DEK, or
plaintext in rows from before migration 0013). Audit events stay: they are pseudonymous.

Fields a live legal-obligation purpose needs (e.g. the invoice address under §147 AO) must
outlive the erasure. They are re-sealed, before the DEK goes, under a new random key of
their own, wrapped by the KEK bound to `retained:<row id>`, into `retained_fields` with
`retain_until = now + retention_after_end` of the purpose. Shredding the subject's DEK
does not take them along; the retention sweeper shreds them in turn when `retain_until`
has passed.

Retained data is *restricted* (Art. 18(2)): it is only stored. A purpose-checked lookup
after erasure denies with `subject_erased`, for the legal-obligation purpose too: the
statutory retention is an obligation to keep the records for a tax audit, not to keep
writing to the person. Retained data is readable only through the audited export (DPO and,
for Art. 15, the subject) — see `read_retained`.

Contact preferences and agreed follow-ups are **deleted**, rows and history alike (not
reduced). They say when, how and how often the person may be reached (time zone, quiet
hours, preferred channels, own cap; due windows, channel, purpose, touchpoint), and after
an erasure nobody may contact the person any more, so no purpose is left for them. The
preference history does not need to stay for accountability: the audit trail already
proves each change (`*:preferences:set` with version, the *names* of the changed parts,
touchpoint and method, actor and time) without any value; the history's only additions are
exactly those values and the sealed evidence, which is erasable personal data. A history
reduced to timestamps would duplicate the audit trail and keep rows whose columns
(`timezone`, `preferences`) cannot be NULL. Follow-ups are deleted whatever their status,
not merely cancelled: a window is itself a statement about when the person can be reached.
(The append-only `client:followup:create` audit event still names the window it was made
with.)
The erasure's audit event counts what went (no values), and the monthly follow-up report
no longer counts the erased subject's follow-ups.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vault import mail_outbox
from vault.audit import events as audit
from vault.audit.events import Actor, Decision, action_for
from vault.bases.ending import end_live_bases
from vault.catalogue.purposes import CONTACT_FIELDS, LawfulBasis, Purpose
from vault.clock import as_utc
from vault.crypto import open_field, retained_key_id, seal_field
from vault.errors import Conflict
from vault.outreach.bookings import forget_subject
from vault.outreach.followups import FollowupStatus
from vault.recipients import events as outbox
from vault.storage import sessions as web_sessions
from vault.storage.outreach_tables import contact_preference_history, contact_preferences, followups
from vault.storage.rights_tables import (
    dsar_requests,
    identity_changes,
    retained_fields,
    self_service_challenges,
)
from vault.storage.tables import consents, subjects
from vault.subjects.decision import BasisFacts, BasisStatus, effective_status
from vault.subjects.store import INDEXED, SubjectStatus, decrypt_fields

if TYPE_CHECKING:
    from vault.context import VaultContext

#: The legal ground named when data outlives an erasure.
ART_17_3_B = "Art. 17(3)(b) GDPR (compliance with a legal obligation)"


@dataclass(frozen=True, slots=True)
class ErasureResult:
    kept_purposes: list[str]
    retained_until: datetime | None


def retained_field_name(row_id: str, purpose_id: str) -> str:
    return f"retained:{row_id}:{purpose_id}"


def partial_reason(result: ErasureResult) -> str | None:
    """The outcome text of an erasure that kept data, naming the ground and the purposes."""
    if not result.kept_purposes:
        return None
    until = result.retained_until.date().isoformat() if result.retained_until else "-"
    return (
        f"erased except data kept under {ART_17_3_B} for "
        f"{', '.join(result.kept_purposes)}, restricted and shredded on {until}"
    )


async def live_legal_obligations(
    ctx: VaultContext, conn: AsyncConnection, subject_id: str, now: datetime
) -> list[Purpose]:
    """Legal-obligation purposes of the subject with a basis in force right now."""
    rows = (
        await conn.execute(
            select(consents)
            .where(consents.c.subject_id == subject_id)
            .where(consents.c.basis == LawfulBasis.LEGAL_OBLIGATION.value)
            .where(consents.c.status.in_([BasisStatus.ACTIVE, BasisStatus.GRANTED]))
        )
    ).all()
    out: dict[str, Purpose] = {}
    for row in rows:
        facts = BasisFacts(row.id, row.basis, row.status, row.expires_at, row.confirm_deadline)
        if effective_status(facts, now) not in (BasisStatus.ACTIVE, BasisStatus.GRANTED):
            continue
        purpose = ctx.catalogue.get(row.purpose)
        if purpose is not None and purpose.lawful_basis is LawfulBasis.LEGAL_OBLIGATION:
            out[purpose.id] = purpose
    return [out[k] for k in sorted(out)]


#: The purposes whose fields an erasure keeps sealed (legal obligations), and until when.
Keep = list[tuple[Purpose, datetime]]


def retain_fields(
    ctx: VaultContext, row: Row[Any], keep: Keep, now: datetime, out: list[dict[str, Any]]
) -> tuple[list[str], datetime | None]:
    """Seal the fields `keep` names under keys of their own (a fresh DEK each, forgotten at
    once), adding the `retained_fields` rows to `out` for the caller to insert (one by one
    or for a whole batch); returns the purposes kept and until when."""
    kept: list[str] = []
    until: datetime | None = None
    for purpose, retain_until in keep:
        data = decrypt_fields(ctx, row, purpose.fields) if row.wrapped_dek is not None else {}
        if not data:
            continue
        row_id = str(uuid.uuid4())
        aead, kek_version, wrapped = ctx.deks.new_dek(retained_key_id(row_id))
        sealed = seal_field(
            aead,
            row.id,
            retained_field_name(row_id, purpose.id),
            1,
            json.dumps(data, ensure_ascii=False, sort_keys=True),
        )
        ctx.deks.forget(retained_key_id(row_id))
        out.append(
            dict(
                id=row_id,
                subject_id=row.id,
                purpose=purpose.id,
                kek_version=kek_version,
                wrapped_key=wrapped,
                fields_ct=sealed,
                retain_until=retain_until,
                created_at=now,
            )
        )
        kept.append(purpose.id)
        until = retain_until if until is None else max(until, retain_until)
    return kept, until


async def erase_in(
    ctx: VaultContext,
    conn: AsyncConnection,
    actor: Actor,
    row: Row[Any],
    now: datetime,
    *,
    keep: Keep | None = None,
) -> ErasureResult:
    """Erase the (locked) subject row inside the caller's transaction.

    `keep` names the legal-obligation purposes whose fields outlive the erasure and until
    when; by default every live legal-obligation basis, until now + its retention. The
    caller should call `ctx.deks.forget(subject_id)` again after its commit.
    """
    subject_id = row.id
    if row.status == SubjectStatus.ERASED:
        raise Conflict("the subject was already erased")
    if keep is None:
        keep = [
            (p, now + p.retention_after_end)
            for p in await live_legal_obligations(ctx, conn, subject_id, now)
        ]
    retained: list[dict[str, Any]] = []
    kept, until = retain_fields(ctx, row, keep, now, retained)
    if retained:
        await conn.execute(retained_fields.insert(), retained)

    ended = await end_live_bases(conn, actor=actor, subject_id=subject_id, now=now, event="erased")
    # Evidence secrets, free text and payloads were sealed under the DEK: delete them with
    # it. The free text of rows from before migration 0013 may still be plaintext: it goes
    # too (a reference or notice name can say anything about the person).
    await conn.execute(
        update(consents)
        .where(consents.c.subject_id == subject_id)
        .values(
            evidence_ct=None,
            confirm_token_hash=None,
            reference=None,
            reference_ct=None,
            notice_version=None,
            notice_version_ct=None,
        )
    )
    await conn.execute(
        update(dsar_requests)
        .where(dsar_requests.c.subject_id == subject_id)
        .values(payload_ct=None)
    )
    # Self-service challenges are keyed by the address's blind index: they go too.
    digests = [d for d in (row.email_bidx, row.phone_bidx) if d is not None]
    challenge_match = self_service_challenges.c.subject_id == subject_id
    if digests:
        challenge_match = or_(
            challenge_match, self_service_challenges.c.identifier_digest.in_(digests)
        )
    await conn.execute(delete(self_service_challenges).where(challenge_match))
    # Identity changes hold the old and new addresses' blind-index digests: they go too.
    await conn.execute(delete(identity_changes).where(identity_changes.c.subject_id == subject_id))
    # Queued mails hold the address (sealed): pending ones are never sent, none stays.
    await mail_outbox.forget_subject(conn, subject_id)
    await web_sessions.end_subject_sessions_in(conn, subject_id, now, web_sessions.Ended.ERASED)
    # Preferences (with their history and sealed evidence) and follow-ups say when and how
    # the person may be contacted: deleted, not reduced (see the module docstring).
    preference_history = (
        await conn.execute(
            delete(contact_preference_history).where(
                contact_preference_history.c.subject_id == subject_id
            )
        )
    ).rowcount
    preference_rows = (
        await conn.execute(
            delete(contact_preferences).where(contact_preferences.c.subject_id == subject_id)
        )
    ).rowcount
    open_followups = (
        await conn.execute(
            select(func.count())
            .select_from(followups)
            .where(followups.c.subject_id == subject_id)
            .where(followups.c.status == FollowupStatus.OPEN.value)
            .where(followups.c.due_until > now)
        )
    ).scalar_one()
    deleted_followups = (
        await conn.execute(delete(followups).where(followups.c.subject_id == subject_id))
    ).rowcount
    released_holds = await forget_subject(conn, subject_id, now)
    present = [f for f in CONTACT_FIELDS if getattr(row, f"{f}_ct") is not None]
    await outbox.emit(conn, outbox.EventType.SUBJECT_ERASED, subject_id=subject_id, at=now)
    shredded: dict[str, Any] = {f"{f}_ct": None for f in CONTACT_FIELDS}
    shredded.update({column: None for column in INDEXED.values()})
    await conn.execute(
        update(subjects)
        .where(subjects.c.id == subject_id)
        .values(
            status=SubjectStatus.ERASED,
            wrapped_dek=None,
            kek_version=None,
            erased_at=now,
            updated_at=now,
            retention_check_at=None,  # nothing left for the sweeper to erase
            **shredded,
        )
    )
    await audit.record(
        conn,
        at=now,
        actor=actor,
        action=action_for(actor, "subject:erase"),
        decision=Decision.ALLOW,
        subject_id=subject_id,
        fields=present,
        reason="art_17_3_b" if kept else None,
        detail={
            "ended_bases": len(ended),
            "kept_purposes": kept,
            "retained_until": until.isoformat() if until else None,
            # Counts only: what went, never what it said.
            "preferences_deleted": bool(preference_rows),
            "preference_history_deleted": int(preference_history),
            "followups_deleted": int(deleted_followups),
            "open_followups_cancelled": int(open_followups),
            "campaign_holds_released": released_holds,
        },
    )
    ctx.deks.forget(subject_id)
    return ErasureResult(kept_purposes=kept, retained_until=until)


async def read_retained(
    ctx: VaultContext, conn: AsyncConnection, subject_id: str
) -> list[dict[str, Any]]:
    """The subject's retained rows, with the fields decrypted where not yet shredded.

    Only the export (audited by its caller) reads them: they are restricted data.
    """
    rows = (
        await conn.execute(
            select(retained_fields)
            .where(retained_fields.c.subject_id == subject_id)
            .order_by(retained_fields.c.created_at, retained_fields.c.purpose)
        )
    ).all()
    out = []
    for r in rows:
        fields: dict[str, Any] = {}
        if r.wrapped_key is not None and r.fields_ct is not None and r.kek_version is not None:
            key_id = retained_key_id(r.id)
            aead = ctx.deks.dek(key_id, r.kek_version, r.wrapped_key)
            text = open_field(
                aead, subject_id, retained_field_name(r.id, r.purpose), 1, r.fields_ct
            )
            ctx.deks.forget(key_id)
            fields = dict(json.loads(text))
        out.append(
            {
                "purpose": r.purpose,
                "legal_ground": ART_17_3_B,
                "retained_since": as_utc(r.created_at),
                "retain_until": as_utc(r.retain_until),
                "shredded_at": as_utc(r.shredded_at),
                "fields": fields,
            }
        )
    return out
