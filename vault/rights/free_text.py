"""A DPO's free text (reasons, notes) as the rights workflows store it and tell the subject.

Shared by the request workflow and the restriction, which must not import each other's
packages (`vault.rights.requests` carries out restrictions).
"""

from __future__ import annotations

import unicodedata
from typing import Literal, overload

from vault.errors import InvalidInput

MAX_TEXT = 1000

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
