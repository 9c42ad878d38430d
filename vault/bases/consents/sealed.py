"""The free text of a basis record (`reference`, `notice_version`) and a grant's evidence,
sealed under the subject's DEK and bound to (subject, column, consent id), so the erasure
that destroys the key makes them unreadable. Rows from before migration 0013 hold the
texts in plaintext until the retention sweep seals them (`seal_legacy_texts`); `open_texts`
reads both forms."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.crypto import IntegrityCheckFailed, open_field, seal_field
from vault.storage.tables import consents, subjects

if TYPE_CHECKING:
    from vault.context import VaultContext


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
