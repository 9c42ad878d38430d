"""Bulk seeding for benchmarks: N realistic subjects with a contract basis, through the
vault's own crypto (per-subject DEK, sealed fields, blind indexes), inserted in batches."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import insert

from vault.bases.consents import sealed_texts
from vault.context import VaultContext
from vault.storage.tables import consents, subjects
from vault.subjects.contact import normalise_contact
from vault.subjects.store import sealed_columns


def _person(i: int) -> dict[str, Any]:
    return {
        "email": f"kunde{i}@beispiel.de",
        "phone": f"+4930{1000000 + i}",
        "name": f"Kundin Nummer {i}",
        "postal_address": {
            "street": f"Lindenallee {i % 200 + 1}",
            "postal_code": f"{10000 + i % 89999:05d}",
            "city": "Berlin",
            "country": "DE",
        },
        "external_ref": f"K-{i:08d}",
    }


async def seed(
    ctx: VaultContext, n: int, *, purpose: str = "order.delivery", batch: int = 2000
) -> list[str]:
    ids: list[str] = []
    now = ctx.clock.now()
    for start in range(0, n, batch):
        rows, bases = [], []
        for i in range(start, min(n, start + batch)):
            sid = str(uuid.uuid4())
            dek, kek_version, wrapped = ctx.deks.new_dek(sid)
            fields = {k: v for k, v in normalise_contact(_person(i)).items() if v is not None}
            rows.append(
                {
                    "id": sid,
                    "status": "active",
                    "kek_version": kek_version,
                    "wrapped_dek": wrapped,
                    "dek_version": 1,
                    "contact_revision": 1,
                    "created_at": now,
                    "updated_at": now,
                    **sealed_columns(ctx, sid, dek, 1, fields, revision=1),
                }
            )
            basis_id = str(uuid.uuid4())
            bases.append(
                {
                    "id": basis_id,
                    "subject_id": sid,
                    "purpose": purpose,
                    "basis": "contract",
                    "status": "active",
                    **sealed_texts(dek, sid, 1, basis_id, reference=f"order {i}"),
                    "created_at": now,
                    "granted_at": now,
                }
            )
            ids.append(sid)
        async with ctx.transaction() as conn:
            await conn.execute(insert(subjects), rows)
            await conn.execute(insert(consents), bases)
    ctx.deks.forget_all() if hasattr(ctx.deks, "forget_all") else None
    return ids


def seed_sync(ctx_factory, n: int) -> list[str]:
    async def main() -> list[str]:
        ctx = ctx_factory()
        try:
            return await seed(ctx, n)
        finally:
            await ctx.close()

    return asyncio.run(main())
