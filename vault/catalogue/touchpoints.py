"""The touchpoint catalogue: where consents are given and contacts happen.

Loaded from `policies/touchpoints.toml` at start and validated strictly; a bad file stops
the start with a message naming the line (`source.PolicyError`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vault.catalogue.source import PolicyError, parse_toml, read_file, table_line

MODES = ("online", "offline")
PHASES = ("pre_sales", "sales", "after_sales")
TOUCHPOINT_CHANNELS = ("email", "letter", "sms", "phone", "web", "in_person")
_ID_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_KEYS = {"id", "name", "mode", "phase", "channel"}


@dataclass(frozen=True, slots=True)
class Touchpoint:
    id: str
    name_de: str
    name_en: str
    mode: str
    phase: str
    channel: str

    def name(self, language: str) -> str:
        return self.name_de if language == "de" else self.name_en


@dataclass(frozen=True, slots=True)
class TouchpointCatalogue:
    version: str
    touchpoints: dict[str, Touchpoint]

    def get(self, touchpoint_id: str) -> Touchpoint | None:
        return self.touchpoints.get(touchpoint_id)

    def __contains__(self, touchpoint_id: object) -> bool:
        return touchpoint_id in self.touchpoints


def parse_touchpoints(text: str, source: str = "touchpoints.toml") -> TouchpointCatalogue:
    """Parse and validate; raises `PolicyError` naming source and line."""
    doc = parse_toml(text, source)
    version = doc.get("version")
    if not isinstance(version, str) or not version:
        raise PolicyError(f"{source}: line 1: top-level 'version' (a string) is required")
    extra = set(doc) - {"version", "touchpoint"}
    if extra:
        raise PolicyError(f"{source}: unknown top-level key(s) {', '.join(sorted(extra))}")
    entries = doc.get("touchpoint")
    if not isinstance(entries, list) or not entries:
        raise PolicyError(f"{source}: no [[touchpoint]] tables found")
    out: dict[str, Touchpoint] = {}
    for index, raw in enumerate(entries):
        tid = raw.get("id") if isinstance(raw.get("id"), str) else None
        line = table_line(text, "touchpoint", index, tid)
        where = f"{source}: line {line}: touchpoint '{tid or index + 1}'"
        missing = _KEYS - set(raw)
        if missing:
            raise PolicyError(f"{where}: missing required key '{sorted(missing)[0]}'")
        unknown = set(raw) - _KEYS
        if unknown:
            raise PolicyError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if tid is None or not _ID_RE.match(tid):
            raise PolicyError(f"{where}: id must be dotted lower-case words, e.g. 'web.form'")
        name = raw["name"]
        if not isinstance(name, dict) or not all(
            isinstance(name.get(lang), str) and name[lang].strip() for lang in ("de", "en")
        ):
            raise PolicyError(f"{where}: name.de and name.en are required")
        for key, allowed in (
            ("mode", MODES),
            ("phase", PHASES),
            ("channel", TOUCHPOINT_CHANNELS),
        ):
            if raw[key] not in allowed:
                raise PolicyError(
                    f"{where}: {key} '{raw[key]}' is not one of " + ", ".join(allowed)
                )
        if tid in out:
            raise PolicyError(f"{where}: duplicate id")
        out[tid] = Touchpoint(
            tid, name["de"].strip(), name["en"].strip(), raw["mode"], raw["phase"], raw["channel"]
        )
    return TouchpointCatalogue(version=version, touchpoints=out)


def load_touchpoints(policies_dir: Path) -> TouchpointCatalogue:
    """`policies_dir/touchpoints.toml`, parsed and validated; raises `PolicyError`."""
    return parse_touchpoints(*read_file(policies_dir, "touchpoints.toml", "touchpoint catalogue"))
