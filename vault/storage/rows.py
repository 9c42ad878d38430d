"""Rows read outside SQLAlchemy's ORM layer, seen alike.

The hot paths read rows as asyncpg records (`vault.storage.pg_direct`) or SQLAlchemy row
mappings; both index by column name. `RowView` gives them attribute access, so code that
reads a row (decrypting a subject, canonicalising an audit event) need not know which.
"""

from __future__ import annotations

import re
from typing import Any

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_id(value: object) -> str | None:
    """A row id (a UUID) in the one form the vault stores it, lowercase 8-4-4-4-12 hex, or
    None for anything else: the single check of ids that arrive as input, so that what
    reaches a query or the audit trail is an id and never arbitrary text. Callers that need
    the stored form exactly compare the result with their input."""
    if not isinstance(value, str) or len(value) != 36:
        return None
    lowered = value.lower()
    return lowered if _UUID.fullmatch(lowered) else None


class RowView:
    """Attribute access over a row that indexes by column name (an asyncpg record, a
    SQLAlchemy row mapping), so `decrypt_fields` reads both alike."""

    __slots__ = ("_row",)

    def __init__(self, row: Any) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        return self._row[name]
