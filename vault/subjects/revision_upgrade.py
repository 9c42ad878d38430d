"""Subjects written before migration 0013 (contact revision 0: no revision in the
associated data of their ciphertexts) re-sealed at revision 1 by the retention sweep, so
that an older ciphertext put back fails for them too (`vault.subjects.store`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import literal_column, select, update

from vault.crypto import IntegrityCheckFailed
from vault.storage.tables import LEGACY_REVISION, subjects
from vault.subjects.store import load_subject, resealed_columns

if TYPE_CHECKING:
    from vault.context import VaultContext


async def upgrade_legacy_revisions(ctx: VaultContext, *, batch: int = 500) -> int:
    """Re-seal the contact fields of subjects written before migration 0013 (revision 0, no
    revision in the associated data) at revision 1, so that an older ciphertext put back
    fails for them too; returns how many subjects. The values and blind indexes stay as
    they are. Needs the keyring, so the retention sweep runs it rather than Alembic; each
    row is locked and re-checked, so concurrent sweeps never double-write. A row whose
    data does not open is left as it is (its reads fail closed) and the sweep goes on."""
    total = 0
    after = ""
    while True:
        async with ctx.transaction() as conn:
            ids = (
                (
                    await conn.execute(
                        select(subjects.c.id)
                        # spelt as the partial index's condition, so that it is used
                        .where(literal_column(LEGACY_REVISION))
                        .where(subjects.c.wrapped_dek.is_not(None))
                        .where(subjects.c.id > after)
                        .order_by(subjects.c.id)
                        .limit(batch)
                    )
                )
                .scalars()
                .all()
            )
            for subject_id in ids:
                row = await load_subject(conn, subject_id, for_update=True)
                if row.contact_revision != 0 or row.wrapped_dek is None:
                    continue
                try:
                    dek = ctx.deks.dek(subject_id, row.kek_version, row.wrapped_dek)
                    values = resealed_columns(ctx, row, dek, {})
                except IntegrityCheckFailed:
                    continue
                await conn.execute(
                    update(subjects).where(subjects.c.id == subject_id).values(**values)
                )
                total += 1
        if len(ids) < batch:
            return total
        after = ids[-1]
