"""The brands of the company (`[[brand]]` in `policies/contact-pressure.toml`): all share
the one basket, and consents and purposes may be scoped to some of them (issue 21)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vault.catalogue.source import PolicyError, line_of

_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class Brand:
    id: str
    name_de: str
    name_en: str


def parse_brands(doc: Mapping[str, Any], text: str, source: str) -> dict[str, Brand]:
    """Every `[[brand]]` table, in order; raises `PolicyError` naming the line."""

    def fail(pattern: str, msg: str) -> PolicyError:
        return PolicyError(f"{source}: line {line_of(text, pattern) or 1}: {msg}")

    brands: dict[str, Brand] = {}
    raw_brands = doc.get("brand")
    if not isinstance(raw_brands, list) or not raw_brands:
        raise PolicyError(f"{source}: at least one [[brand]] table is required")
    for index, raw in enumerate(raw_brands):
        bid = raw.get("id") if isinstance(raw, dict) else None
        pattern = (
            r"^\s*id\s*=\s*[\"']" + re.escape(bid) + r"[\"']"
            if isinstance(bid, str)
            else r"^\s*\[\[brand\]\]"
        )
        if not isinstance(bid, str) or not _ID_RE.match(bid):
            raise fail(pattern, f"brand {index + 1}: id must be a lower-case word")
        if set(raw) - {"id", "name"}:
            raise fail(
                pattern, f"brand '{bid}': unknown key(s) {sorted(set(raw) - {'id', 'name'})}"
            )
        name = raw.get("name")
        if not isinstance(name, dict) or not all(
            isinstance(name.get(lang), str) and name[lang].strip() for lang in ("de", "en")
        ):
            raise fail(pattern, f"brand '{bid}': name.de and name.en are required")
        if bid in brands:
            raise fail(pattern, f"brand '{bid}': duplicate id")
        brands[bid] = Brand(bid, name["de"].strip(), name["en"].strip())
    return brands
