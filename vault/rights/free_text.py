"""A DPO's free text (reasons, notes) as the rights workflows store it and tell the subject.

Shared by the request workflow and the restriction, which must not import each other's
packages (`vault.rights.requests` carries out restrictions).
"""

from __future__ import annotations

import unicodedata
from typing import Literal, overload

from vault.errors import InvalidInput

MAX_TEXT = 1000


def _control_ranges() -> str:
    """The control and format characters (Unicode categories Cc and Cf) apart from line
    feed and tab, as the ranges of a regular-expression class (the characters themselves:
    none of them is special inside a class)."""
    codes = [
        c
        for c in range(0x110000)
        if unicodedata.category(chr(c)) in ("Cc", "Cf") and chr(c) not in "\n\t"
    ]
    ranges: list[tuple[int, int]] = []
    for c in codes:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1] = (ranges[-1][0], c)
        else:
            ranges.append((c, c))
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)


#: A DPO's free text as `clean_text` accepts it, for the API's schema: something besides
#: white space, and no control or format character other than line feed and tab. (The
#: length bound is the schema's `maxLength`.)
FREE_TEXT_PATTERN = rf"^(?=[\s\S]*\S)[^{_control_ranges()}]*$"

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
    if any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\n\t" for ch in text):
        raise InvalidInput(f"{name} is invalid", {name: "contains control characters"})
    return text
