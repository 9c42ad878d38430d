"""The document's pattern for a DPO's free text says exactly what `clean_text` accepts."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.errors import InvalidInput
from vault.rights.free_text import FREE_TEXT_PATTERN, MAX_TEXT, clean_text

#: Letters, every kind of white space (control ones included), control and format
#: characters: the characters on which the rule turns, so short strings reach each branch.
_EDGE = "ab \t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000\x00\x7f\u200b\ufeff\u00e9"


def _accepted(text: str) -> bool:
    try:
        clean_text(text, "reason")
    except InvalidInput:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(_EDGE) | st.characters(), max_size=12))
def test_pattern_matches_exactly_what_clean_text_accepts(text: str) -> None:
    """A text matches the pattern if and only if `clean_text` accepts it (within the
    length bound, for texts NFC leaves alone): the document neither promises a text the
    server refuses nor forbids one it takes."""
    if unicodedata.normalize("NFC", text) != text:
        return
    assert (re.fullmatch(FREE_TEXT_PATTERN, text) is not None) == _accepted(text)


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("Bitte erneut prüfen", True),
        ("\x0b reason \r\n", True),  # control white space around the text is stripped
        ("a\x0bb", False),  # ... but refused inside it
        (" \u3000\n\t", False),  # only white space
        ("a\u200bb", False),  # a format character
        ("x" * MAX_TEXT, True),
    ],
)
def test_pattern_on_chosen_texts(text: str, accepted: bool) -> None:
    """The pattern and `clean_text` agree on the cases the pattern's branches are for."""
    assert (re.fullmatch(FREE_TEXT_PATTERN, text) is not None) is accepted
    assert _accepted(text) is accepted
