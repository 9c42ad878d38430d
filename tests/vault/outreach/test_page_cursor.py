"""The follow-up list's and contact history's page cursor: total over its pattern."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault.errors import InvalidInput
from vault.outreach.page_cursor import CURSOR_PATTERN, decode_cursor, encode_cursor


def test_a_cursor_decodes_to_the_position_it_was_written_for():
    """Encoding then decoding gives back the same time (to the microsecond) and row id."""
    at = datetime(2026, 12, 5, 3, 14, 15, 926535, tzinfo=UTC)
    row = str(uuid.uuid4())
    cursor = encode_cursor(at, row)
    assert re.fullmatch(CURSOR_PATTERN, cursor)
    assert decode_cursor(cursor) == (at, row)


@given(st.from_regex(CURSOR_PATTERN, fullmatch=True))
def test_every_text_of_the_pattern_decodes_to_a_position(cursor):
    """Any text the document's pattern allows is a position (a canonical id and an aware
    time within the storable range), never a refusal."""
    at, row = decode_cursor(cursor)
    assert at.tzinfo is not None and 1900 <= at.year <= 9000
    assert str(uuid.UUID(row)) == row


@pytest.mark.parametrize("cursor", ["", "bm90LWEtY3Vyc29y", "A" * 31, "A" * 33, "!" * 32])
def test_text_outside_the_pattern_is_refused(cursor):
    """A cursor of another length or alphabet is refused as invalid input."""
    with pytest.raises(InvalidInput):
        decode_cursor(cursor)
