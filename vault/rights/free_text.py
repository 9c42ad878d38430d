"""A DPO's free text (reasons, notes) as the rights workflows store it and tell the subject.

Shared by the request workflow and the restriction, which must not import each other's
packages (`vault.rights.requests` carries out restrictions).
"""

from __future__ import annotations

import unicodedata
from typing import Literal, overload

from vault.errors import InvalidInput

MAX_TEXT = 1000


def _ranges(codes: list[int]) -> str:
    """Code points as the ranges of a regular-expression class (the characters themselves:
    none of the control, format or white-space characters is special inside a class)."""
    ranges: list[tuple[int, int]] = []
    for c in codes:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1] = (ranges[-1][0], c)
        else:
            ranges.append((c, c))
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)


def _refused(ch: str) -> bool:
    """A control or format character (Unicode categories Cc and Cf) other than line feed
    and tab: what `clean_text` refuses."""
    return unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\n\t"


def _free_text_pattern() -> str:
    """White space (any kind: `str.strip` removes it before the check), one character that
    is neither white space nor refused, optionally anything not refused up to a last such
    character, then white space again. The same language as "after stripping, something
    and nothing refused", but without a look-ahead: a generator (schemathesis) draws
    matches of it directly, where a look-ahead over up to 1000 characters made it filter
    for minutes while building its cases."""
    refused = [c for c in range(0x110000) if _refused(chr(c))]
    blank = [c for c in range(0x110000) if chr(c).isspace()]
    solid = _ranges(sorted({*refused, *blank}))
    blanks = _ranges(blank)
    return rf"^[{blanks}]*[^{solid}](?:[^{_ranges(refused)}]*[^{solid}])?[{blanks}]*$"


#: A DPO's free text as `clean_text` accepts it, for the API's schema: something besides
#: white space, and (once stripped) no control or format character other than line feed
#: and tab. (The length bound is the schema's `maxLength`.) Explicit classes rather than
#: `\s`, whose meaning differs between Python and the document's ECMA-262 expressions.
FREE_TEXT_PATTERN = _free_text_pattern()

__all__ = ["MAX_TEXT", "clean_text"]


@overload
def clean_text(value: object, name: str, *, required: Literal[True] = True) -> str: ...
@overload
def clean_text(value: object, name: str, *, required: bool) -> str | None: ...


def clean_text(value: object, name: str, *, required: bool = True) -> str | None:
    """Free text of a DPO (reasons, notes): 1 to 1000 characters, no control characters."""
    if not required and (value is None or (isinstance(value, str) and not value.strip())):
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} is required", {name: "must not be empty"})
    text = unicodedata.normalize("NFC", value).strip()
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"{name} is too long", {name: f"must be at most {MAX_TEXT} characters"})
    if any(_refused(ch) for ch in text):
        raise InvalidInput(f"{name} is invalid", {name: "contains control characters"})
    return text
