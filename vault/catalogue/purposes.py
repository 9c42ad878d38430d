"""The purpose catalogue: which purposes exist, on which lawful basis, revealing which fields.

Loaded once from `policies/purposes.toml` at start and validated strictly; a bad file stops
the start with a message naming the purpose, the key and the line (`source.PolicyError`).
Anything not in the catalogue is denied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from vault.catalogue.channels import BUILTIN_CHANNELS, declared_channels
from vault.catalogue.channels import CONTACT_FIELDS as CONTACT_FIELDS
from vault.catalogue.source import PolicyError, parse_toml, read_file, table_line


class LawfulBasis(StrEnum):
    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    LEGITIMATE_INTEREST = "legitimate_interest"


class Channel(StrEnum):
    """The four channels the vault resolves data for itself; the rules may declare more
    (`vault.catalogue.channels`), so a purpose's channel is a plain channel id."""

    EMAIL = "email"
    LETTER = "letter"
    SMS = "sms"
    PHONE = "phone"


class CommunicationType(StrEnum):
    SERVICE = "service"
    EDITORIAL = "editorial"
    COMMERCIAL = "commercial"
    CALAMITY = "calamity"


@dataclass(frozen=True, slots=True)
class Purpose:
    id: str
    title_de: str
    title_en: str
    description_de: str
    description_en: str
    lawful_basis: LawfulBasis
    fields: tuple[str, ...]
    channel: str
    communication_type: CommunicationType
    default_duration: timedelta | None
    double_opt_in: bool
    explicit_consent: bool
    retention_after_end: timedelta
    data_use: str
    #: Every channel a contact for this purpose may use, `channel` (the default) first;
    #: from the optional `channels` key, else just `channel`.
    channels: tuple[str, ...] = ()
    #: Marked in the catalogue: a lookup must announce its contact even for a service type.
    contact_required: bool = False
    #: The brands (contact-pressure rules' ids) whose contacts the purpose covers; empty:
    #: every brand. A consent for one brand does not cover another (issue 21).
    brands: tuple[str, ...] = ()

    @property
    def needs_contact(self) -> bool:
        """Whether a lookup must announce its contact (and so always reserve): every
        editorial and commercial purpose, and any marked `contact_required`."""
        return self.contact_required or self.communication_type in MARKETING_TYPES

    def __post_init__(self) -> None:
        if not self.channels:
            object.__setattr__(self, "channels", (self.channel,))

    def title(self, language: str) -> str:
        return self.title_de if language == "de" else self.title_en


#: Communication types that are direct marketing (Art. 21(2)): editorial and commercial.
MARKETING_TYPES = frozenset({CommunicationType.COMMERCIAL, CommunicationType.EDITORIAL})


def is_direct_marketing(purpose: Purpose) -> bool:
    """Whether an objection to direct marketing (Art. 21(2)-(3)) ends this purpose's bases."""
    return purpose.communication_type in MARKETING_TYPES


@dataclass(frozen=True, slots=True)
class PurposeCatalogue:
    version: str
    purposes: dict[str, Purpose]

    def get(self, purpose_id: str) -> Purpose | None:
        return self.purposes.get(purpose_id)

    def __contains__(self, purpose_id: object) -> bool:
        return purpose_id in self.purposes


_ID_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_BRAND_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DATA_USE_RE = re.compile(r"^[a-z_]+(\.[a-z_]+)*$")
_REQUIRED = {
    "id": str,
    "title": dict,
    "lawful_basis": str,
    "fields": list,
    "channel": str,
    "communication_type": str,
    "double_opt_in": bool,
    "retention_after_end_days": int,
    "data_use": str,
}
_OPTIONAL = {
    "description": dict,
    "default_duration_days": int,
    "explicit_consent": bool,
    "channels": list,
    "contact_required": bool,
    "brands": list,
}


def _parse_purpose(
    raw: dict[str, Any], where: str, known: Mapping[str, tuple[str, ...]]
) -> Purpose:
    def fail(msg: str) -> PolicyError:
        return PolicyError(f"{where}: {msg}")

    for key, typ in _REQUIRED.items():
        if key not in raw:
            raise fail(f"missing required key '{key}'")
        if not isinstance(raw[key], typ) or (typ is int and isinstance(raw[key], bool)):
            raise fail(f"'{key}' must be of type {typ.__name__}")
    for key, typ in _OPTIONAL.items():
        if key in raw and (
            not isinstance(raw[key], typ) or (typ is int and isinstance(raw[key], bool))
        ):
            raise fail(f"'{key}' must be of type {typ.__name__}")
    unknown = set(raw) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise fail(f"unknown key(s) {', '.join(sorted(unknown))}")
    pid = raw["id"]
    if not _ID_RE.match(pid):
        raise fail(f"id '{pid}' must be dotted lower-case words, e.g. 'newsletter.email'")
    for lang in ("de", "en"):
        if not isinstance(raw["title"].get(lang), str) or not raw["title"][lang].strip():
            raise fail(f"title.{lang} is required")
    desc = raw.get("description", {})
    try:
        basis = LawfulBasis(raw["lawful_basis"])
    except ValueError:
        raise fail(
            f"lawful_basis '{raw['lawful_basis']}' is not one of "
            + ", ".join(b.value for b in LawfulBasis)
        ) from None
    channel = raw["channel"]
    if channel not in known:
        raise fail(
            f"channel '{channel}' is not one of {', '.join(known)} "
            "(further channels are declared as [channel.<id>] in the rules)"
        )
    try:
        ctype = CommunicationType(raw["communication_type"])
    except ValueError:
        raise fail(
            f"communication_type '{raw['communication_type']}' is not one of "
            + ", ".join(c.value for c in CommunicationType)
        ) from None
    fields = raw["fields"]
    if not fields or not all(isinstance(f, str) for f in fields):
        raise fail("fields must be a non-empty list of field names")
    bad = [f for f in fields if f not in CONTACT_FIELDS]
    if bad:
        raise fail(f"unknown field(s) {', '.join(bad)}; known: {', '.join(CONTACT_FIELDS)}")
    channels = [channel]
    for extra in raw.get("channels", [channel]):
        if not isinstance(extra, str) or extra not in known:
            raise fail(
                f"channels: '{extra}' is not one of {', '.join(known)} "
                "(further channels are declared as [channel.<id>] in the rules)"
            )
        if extra not in channels:
            channels.append(extra)
    for used in channels:
        # The built-in default channel predates this check; every other one must be reachable.
        missing = [f for f in known[used] if f not in fields]
        if missing and (used != channel or used not in BUILTIN_CHANNELS):
            raise fail(f"channels: '{used}' needs the field '{missing[0]}'")
    if "channels" in raw and channel not in raw["channels"]:
        raise fail(f"channels must include the purpose's channel '{channel}'")
    duration = raw.get("default_duration_days")
    if duration is not None and duration <= 0:
        raise fail("default_duration_days must be positive")
    if basis is LawfulBasis.CONSENT and duration is None:
        raise fail("consent purposes need default_duration_days")
    if raw["double_opt_in"] and (basis is not LawfulBasis.CONSENT or channel != Channel.EMAIL):
        raise fail("double_opt_in only applies to consent purposes on the email channel")
    if raw["double_opt_in"] and len(channels) > 1:
        raise fail("double_opt_in purposes may only use the email channel")
    if raw["double_opt_in"] and "email" not in fields:
        raise fail("double_opt_in purposes must reveal the email field")
    if raw["retention_after_end_days"] < 0:
        raise fail("retention_after_end_days must not be negative")
    brands = raw.get("brands", [])
    if not brands and "brands" in raw:
        raise fail("brands must name at least one brand (leave it out for every brand)")
    if not all(isinstance(b, str) and _BRAND_RE.match(b) for b in brands):
        raise fail("brands must list brand ids of contact-pressure.toml")
    if not _DATA_USE_RE.match(raw["data_use"]):
        raise fail(f"data_use '{raw['data_use']}' is not a fideslang data-use key")
    return Purpose(
        id=pid,
        title_de=raw["title"]["de"].strip(),
        title_en=raw["title"]["en"].strip(),
        description_de=str(desc.get("de", "")).strip(),
        description_en=str(desc.get("en", "")).strip(),
        lawful_basis=basis,
        fields=tuple(dict.fromkeys(fields)),
        channel=channel,
        communication_type=ctype,
        default_duration=timedelta(days=duration) if duration else None,
        double_opt_in=raw["double_opt_in"],
        explicit_consent=raw.get("explicit_consent", False),
        retention_after_end=timedelta(days=raw["retention_after_end_days"]),
        data_use=raw["data_use"],
        channels=tuple(channels),
        contact_required=raw.get("contact_required", False),
        brands=tuple(brands),
    )


def parse_catalogue(
    text: str,
    source: str = "purposes.toml",
    channels: Mapping[str, tuple[str, ...]] = BUILTIN_CHANNELS,
) -> PurposeCatalogue:
    """Parse and validate catalogue text; raises `PolicyError` naming source and line.
    `channels`: the channels a purpose may name and the fields each needs (the rules'
    declared ones, `vault.catalogue.channels.declared_channels`; the built-in four)."""
    doc = parse_toml(text, source)
    version = doc.get("version")
    if not isinstance(version, str) or not version:
        raise PolicyError(f"{source}: line 1: top-level 'version' (a string) is required")
    entries = doc.get("purpose")
    if not isinstance(entries, list) or not entries:
        raise PolicyError(f"{source}: no [[purpose]] tables found")
    extra = set(doc) - {"version", "purpose"}
    if extra:
        raise PolicyError(f"{source}: unknown top-level key(s) {', '.join(sorted(extra))}")
    purposes: dict[str, Purpose] = {}
    for index, raw in enumerate(entries):
        if not isinstance(raw, dict):
            raise PolicyError(f"{source}: purpose {index + 1} must be a [[purpose]] table")
        pid = raw.get("id") if isinstance(raw.get("id"), str) else None
        line = table_line(text, "purpose", index, pid)
        where = f"{source}: line {line}: purpose '{pid or index + 1}'"
        purpose = _parse_purpose(raw, where, channels)
        if purpose.id in purposes:
            raise PolicyError(f"{where}: duplicate id")
        purposes[purpose.id] = purpose
    return PurposeCatalogue(version=version, purposes=purposes)


def load_catalogue(policies_dir: Path) -> PurposeCatalogue:
    """`policies_dir/purposes.toml`, parsed and validated against the channels the rules
    beside it declare; raises `PolicyError`."""
    text, path = read_file(policies_dir, "purposes.toml", "purpose catalogue")
    return parse_catalogue(text, path, declared_channels(policies_dir))
