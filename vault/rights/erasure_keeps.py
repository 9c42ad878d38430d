"""What an erasure keeps: the fields of legal-obligation purposes, sealed under keys of
their own (Art. 17(3)(b)), and the result both erasure paths return."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Row

from vault.catalogue.purposes import Purpose
from vault.crypto import retained_key_id, seal_field
from vault.subjects.store import decrypt_fields

if TYPE_CHECKING:
    from vault.context import VaultContext


@dataclass(frozen=True, slots=True)
class ErasureResult:
    kept_purposes: list[str]
    retained_until: datetime | None


def retained_field_name(row_id: str, purpose_id: str) -> str:
    return f"retained:{row_id}:{purpose_id}"


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
