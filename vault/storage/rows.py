"""Ids as rows store them: the one check of an id that arrives as input.

(Rows themselves need no adapter: every storage `ReadPort` returns rows that index by
column name, `vault.storage.ports.Row`.)
"""

from __future__ import annotations

import re

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
