"""The touchpoint catalogue: where consents are given and contacts happen.

Loaded from `policies/touchpoints.toml` at start and validated strictly; a bad file stops
the start with a message naming the line (`source.PolicyError`).

Each touchpoint is also an entry of the managed register the touchpoint method describes
(issue 21 item 7): how important it is, whether it is active, planned or retired, which
team owns it, whether the company makes the contact there (direct) or others do (indirect:
reviews, recommendations, press), and the experience it is meant to give, in a sentence.
These keys are optional so that older files still load; the shipped file sets them all.
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
IMPORTANCES = ("high", "medium", "low")
STATUSES = ("active", "planned", "retired")
KINDS = ("direct", "indirect")
_KEYS = {"id", "name", "mode", "phase", "channel"}
_REGISTER_KEYS = {"importance", "status", "owner", "kind", "experience"}
_OWNER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Touchpoint:
    id: str
    name_de: str
    name_en: str
    mode: str
    phase: str
    channel: str
    importance: str = "medium"
    status: str = "active"
    owner: str | None = None
    kind: str = "direct"
    experience_de: str | None = None
    experience_en: str | None = None

    def name(self, language: str) -> str:
        return self.name_de if language == "de" else self.name_en

    def experience(self, language: str) -> str | None:
        return self.experience_de if language == "de" else self.experience_en


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
        unknown = set(raw) - _KEYS - _REGISTER_KEYS
        if unknown:
            raise PolicyError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if tid is None or not _ID_RE.match(tid):
            raise PolicyError(f"{where}: id must be dotted lower-case words, e.g. 'web.form'")
        name = raw["name"]
        if not isinstance(name, dict) or not all(
            isinstance(name.get(lang), str) and name[lang].strip() for lang in ("de", "en")
        ):
            raise PolicyError(f"{where}: name.de and name.en are required")
        register = {"importance": "medium", "status": "active", "kind": "direct", **raw}
        for key, allowed in (
            ("mode", MODES),
            ("phase", PHASES),
            ("channel", TOUCHPOINT_CHANNELS),
            ("importance", IMPORTANCES),
            ("status", STATUSES),
            ("kind", KINDS),
        ):
            if register[key] not in allowed:
                raise PolicyError(
                    f"{where}: {key} '{register[key]}' is not one of " + ", ".join(allowed)
                )
        owner = raw.get("owner")
        if owner is not None and (not isinstance(owner, str) or not _OWNER_RE.match(owner)):
            raise PolicyError(f"{where}: owner must be a team name (a-z, 0-9, _ -)")
        experience = raw.get("experience")
        if experience is not None and not (
            isinstance(experience, dict)
            and set(experience) == {"de", "en"}
            and all(isinstance(v, str) and v.strip() for v in experience.values())
        ):
            raise PolicyError(f"{where}: experience needs de and en, one sentence each")
        if tid in out:
            raise PolicyError(f"{where}: duplicate id")
        out[tid] = Touchpoint(
            tid,
            name["de"].strip(),
            name["en"].strip(),
            raw["mode"],
            raw["phase"],
            raw["channel"],
            importance=register["importance"],
            status=register["status"],
            owner=owner,
            kind=register["kind"],
            experience_de=experience["de"].strip() if experience else None,
            experience_en=experience["en"].strip() if experience else None,
        )
    return TouchpointCatalogue(version=version, touchpoints=out)


def load_touchpoints(policies_dir: Path) -> TouchpointCatalogue:
    """`policies_dir/touchpoints.toml`, parsed and validated; raises `PolicyError`."""
    return parse_touchpoints(*read_file(policies_dir, "touchpoints.toml", "touchpoint catalogue"))
