"""The page cursor of the follow-up list and the contact history: a keyset position
(a time and a row id) as an opaque, fixed-length text.

The encoding is total: 24 bytes (8 for the time in microseconds since 0001-01-01 UTC, 16 for
the id as a UUID) written as exactly 32 base64url characters, so every text that matches
`CURSOR_PATTERN` decodes to some position (a time out of range is clamped). The OpenAPI
document states that pattern, and no cursor it allows is refused (issue 17). A forged
cursor can only move where a page starts: the queries filter by the caller's purposes and
the subject independently of it, so it never widens what the caller may see.
"""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime, timedelta

from vault.clock import as_utc
from vault.errors import InvalidInput

CURSOR_PATTERN = r"^[A-Za-z0-9_-]{32}$"
_CURSOR_RE = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)
#: The times a cursor can name: both databases store them, and every row lies between.
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def encode_cursor(at: datetime, row_id: str) -> str:
    """The cursor of the position just after (`at`, `row_id`)."""
    utc = as_utc(at)
    if utc is None:
        raise ValueError("a cursor's time needs a time zone")
    clamped = min(max(utc, _EARLIEST), _LATEST)
    raw = _micros(clamped).to_bytes(8, "big") + uuid.UUID(row_id).bytes
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; `InvalidInput` only for text outside the pattern."""
    if not _CURSOR_RE.fullmatch(cursor):
        raise InvalidInput("invalid cursor", {"cursor": "use the next_cursor of a previous page"})
    raw = base64.urlsafe_b64decode(cursor)
    micros = int.from_bytes(raw[:8], "big")
    micros = min(max(micros, _micros(_EARLIEST)), _micros(_LATEST))
    return _EPOCH + timedelta(microseconds=micros), str(uuid.UUID(bytes=raw[8:]))
