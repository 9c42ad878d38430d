"""Rows read outside SQLAlchemy's ORM layer, seen alike.

The hot paths read rows as asyncpg records (`vault.storage.pg_direct`) or SQLAlchemy row
mappings; both index by column name. `RowView` gives them attribute access, so code that
reads a row (decrypting a subject, canonicalising an audit event) need not know which.
"""

from __future__ import annotations

from typing import Any


class RowView:
    """Attribute access over a row that indexes by column name (an asyncpg record, a
    SQLAlchemy row mapping), so `decrypt_fields` reads both alike."""

    __slots__ = ("_row",)

    def __init__(self, row: Any) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        return self._row[name]
