"""The contact channels: the four the vault resolves data for, and those the rules declare.

The vault itself knows four channels and the contact field each one needs: e-mail (the
e-mail address), letter (the postal address), SMS and phone (the phone number). Their
factors sit in `[channel_factors]` of `policies/contact-pressure.toml`. A company contacts
its customers in other ways too (a field-sales visit, a print mailing, social media), and
the contact-pressure method counts those contacts in the same basket. So further channels
are declared in the same file, each with its factor, the contact fields it needs and its
name in German and English (issue 21):

    [channel.visit]
    factor = 2.5
    reveals = ["postal_address"]
    name = { de = "Besuch im Außendienst", en = "Field-sales visit" }

`reveals` lists the fields a contact on the channel needs: a purpose may only list a
channel whose fields it reveals, and an audience dry run counts as reachable only the
customers who have them. An empty list (social media: the platform finds the customer, the
vault hands out nothing) means a lookup announcing a contact on the channel reveals no
contact field at all: its answer carries the decision and the reservation only.

The purposes are read before the rest of the rules, so `declared_channels` reads just this
part of `contact-pressure.toml` for them; `parse_rules` reads it again with the factors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeGuard

from vault.catalogue.source import PolicyError, line_of, parse_toml, read_file

#: The contact fields a subject can have and a purpose can reveal (`vault.subjects.store`
#: seals each one into its own column).
CONTACT_FIELDS = ("email", "phone", "name", "postal_address", "external_ref")

#: The channels the vault resolves data for itself, and the field each one needs.
BUILTIN_CHANNELS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "email": ("email",),
        "letter": ("postal_address",),
        "sms": ("phone",),
        "phone": ("phone",),
    }
)

#: A channel id: a lower-case word of at most 16 characters (the width of the `channel`
#: columns of contacts, follow-ups and campaigns).
CHANNEL_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
_DECLARED_KEYS = frozenset({"factor", "reveals", "name"})


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """One channel of the rules: its factor, the fields a contact on it needs, and (for a
    declared channel) its names; a built-in channel's names are the UI catalogue's."""

    id: str
    factor: float
    reveals: tuple[str, ...]
    name_de: str = ""
    name_en: str = ""

    @property
    def builtin(self) -> bool:
        return self.id in BUILTIN_CHANNELS

    def name(self, language: str) -> str:
        """The declared name in `language` ("" for a built-in channel)."""
        return self.name_de if language == "de" else self.name_en


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_channels(doc: Mapping[str, Any], text: str, source: str) -> dict[str, ChannelSpec]:
    """The built-in channels with their `[channel_factors]` and every `[channel.<id>]`
    table, in that order; raises `PolicyError` naming the line."""

    def fail(pattern: str, msg: str) -> PolicyError:
        return PolicyError(f"{source}: line {line_of(text, pattern) or 1}: {msg}")

    def key_line(key: str) -> str:
        return r"^\s*" + re.escape(key) + r"\s*="

    factors = doc.get("channel_factors")
    if not isinstance(factors, dict):
        raise PolicyError(f"{source}: a [channel_factors] table is required")
    for c in BUILTIN_CHANNELS:
        if c not in factors:
            raise fail(r"^\s*\[channel_factors\]", f"channel_factors: missing channel '{c}'")
    for c, v in factors.items():
        if c not in BUILTIN_CHANNELS:
            raise fail(
                key_line(c),
                f"channel_factors: unknown channel '{c}' (declare it as a [channel.{c}] table)",
            )
        if not _number(v) or v <= 0:
            raise fail(key_line(c), f"channel_factors.{c} must be a positive number")
    channels = {c: ChannelSpec(c, float(factors[c]), BUILTIN_CHANNELS[c]) for c in BUILTIN_CHANNELS}
    declared = doc.get("channel", {})
    if not isinstance(declared, dict):
        raise fail(key_line("channel"), "channel must be [channel.<id>] tables")
    for cid, raw in declared.items():
        pattern = r"^\s*\[channel\." + re.escape(cid) + r"\]"
        if not isinstance(raw, dict) or not CHANNEL_ID_RE.match(cid):
            raise fail(
                pattern, f"channel '{cid}' must be a [channel.<word>] table (16 characters at most)"
            )
        if cid in BUILTIN_CHANNELS:
            raise fail(pattern, f"channel '{cid}' is built in: its factor is in [channel_factors]")
        unknown = sorted(set(raw) - _DECLARED_KEYS)
        if unknown:
            raise fail(pattern, f"channel '{cid}': unknown key(s) {unknown}")
        factor = raw.get("factor")
        if not _number(factor) or factor <= 0:
            raise fail(pattern, f"channel '{cid}': factor must be a positive number")
        reveals = raw.get("reveals")
        if not isinstance(reveals, list) or not all(f in CONTACT_FIELDS for f in reveals):
            raise fail(
                pattern,
                f"channel '{cid}': reveals must list contact fields of "
                f"{', '.join(CONTACT_FIELDS)} (or be empty)",
            )
        name = raw.get("name")
        if not isinstance(name, dict) or not all(
            isinstance(name.get(lang), str) and name[lang].strip() for lang in ("de", "en")
        ):
            raise fail(pattern, f"channel '{cid}': name.de and name.en are required")
        channels[cid] = ChannelSpec(
            cid,
            float(factor),
            tuple(dict.fromkeys(reveals)),
            name["de"].strip(),
            name["en"].strip(),
        )
    return channels


def declared_channels(policies_dir: Path) -> Mapping[str, tuple[str, ...]]:
    """Every channel of `policies_dir/contact-pressure.toml` and the fields it needs, for
    checking the purposes before the rest of the rules; the built-in four when the file is
    absent (reading the rules then stops the start)."""
    if not (policies_dir / "contact-pressure.toml").exists():
        return BUILTIN_CHANNELS
    text, path = read_file(policies_dir, "contact-pressure.toml", "contact-pressure rules")
    specs = parse_channels(parse_toml(text, path), text, path)
    return {c: spec.reveals for c, spec in specs.items()}
