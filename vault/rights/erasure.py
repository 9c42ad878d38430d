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
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.events import Actor
from vault.catalogue.purposes import LawfulBasis, Purpose
from vault.clock import as_utc
from vault.crypto import open_field, retained_key_id
from vault.errors import Conflict
from vault.rights.erasure_batch import erase_many_in
from vault.rights.erasure_keeps import ErasureResult, Keep, retained_field_name
from vault.storage.rights_tables import (
    retained_fields,
)
from vault.storage.tables import consents
from vault.subjects.decision import BasisFacts, BasisStatus, effective_status
from vault.subjects.store import SubjectStatus

if TYPE_CHECKING:
    from vault.context import VaultContext

#: The legal ground named when data outlives an erasure.
ART_17_3_B = "Art. 17(3)(b) GDPR (compliance with a legal obligation)"


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
    (result,) = await erase_many_in(ctx, conn, actor, [row], now, [keep])
    return result


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
