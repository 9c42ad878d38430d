"""The one check of ids that arrive as input."""

from __future__ import annotations

import uuid

import pytest

from vault.storage.rows import canonical_id

ID = str(uuid.UUID(int=0x1234_5678_9ABC_4DEF_8123_456789ABCDEF))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ID, ID),
        (ID.upper(), ID),
        ("{" + ID[:34] + "}", None),  # braces: 36 characters, not an id
        (ID.replace("-", "")[:32] + "----", None),  # hyphens where uuid.UUID() ignores them
        (ID[:-1] + "g", None),
        (ID + "0", None),
        ("-" * 36, None),
        (ID[:-1] + "\n", None),
        (None, None),
        (12345, None),
    ],
)
def test_only_a_hyphenated_hex_uuid_passes_in_its_lowercase_form(value, expected):
    """An id in 8-4-4-4-12 hex passes, lowercased; any other text or type is None."""
    assert canonical_id(value) == expected
