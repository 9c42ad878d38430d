"""The controller settings: who is responsible for the processing (GDPR Art. 4(7)), its
data protection officer, and the transfers of each purpose's data to third countries.

Loaded from `policies/controller.toml` at start and validated like the other catalogues (a
mistake stops the start with a `PolicyError` naming file and line); the transfers must
name purposes of the catalogue just read. The record of processing activities
(Art. 30(1)(a) and (e)), the customer's export (Art. 15(1)(c), 15(2)) and the footer of the
vault's mails read it, so the name a customer sees is the one the DPO's record states.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault.catalogue.purposes import PurposeCatalogue
from vault.catalogue.source import PolicyError, line_of, parse_toml, read_file, table_line

SAFEGUARDS = (
    "adequacy_decision",
    "standard_contractual_clauses",
    "binding_corporate_rules",
    "derogation",
)
#: The member states of the EEA: a transfer names a country outside it.
EEA = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE"
    " IS LI NO".split()
)
#: Three years: the regular limitation period (§ 195 BGB) for claims an audit event proves.
DEFAULT_AUDIT_RETENTION_MONTHS = 36
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTROLLER_KEYS = ({"name", "address", "email"}, {"representative"})
_DPO_KEYS = ({"name", "email"}, {"address"})
_TRANSFER_KEYS = ({"purpose", "country", "recipient", "safeguard"}, {"safeguard_reference"})


@dataclass(frozen=True, slots=True)
class Party:
    """A named party and how to reach it (the controller, its DPO)."""

    name: str
    email: str
    address: str | None = None
    representative: str | None = None


@dataclass(frozen=True, slots=True)
class Transfer:
    """Data of a purpose going to a recipient in a third country (Art. 30(1)(e))."""

    purpose: str
    country: str
    recipient: str
    safeguard: str
    safeguard_reference: str | None = None


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    version: str
    controller: Party
    dpo: Party
    transfers: tuple[Transfer, ...]
    #: Months the audit trail keeps its events in the database (`tresor audit prune`
    #: deletes archived months older than this).
    audit_retention_months: int = DEFAULT_AUDIT_RETENTION_MONTHS

    def transfers_of(self, purpose: str) -> list[Transfer]:
        return [t for t in self.transfers if t.purpose == purpose]

    def mail_footer(self, language: str) -> str:
        """The lines every mail ends with: who sends it and how to reach the DPO."""
        dpo = "Datenschutzbeauftragte(r)" if language == "de" else "Data protection officer"
        return (
            f"{self.controller.name}, {self.controller.address}\n"
            f"{dpo}: {self.dpo.name}, {self.dpo.email}"
        )


def _text(raw: dict[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
    value = raw.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def _checked_keys(raw: Any, keys: tuple[set[str], set[str]], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: must be a table")
    required, optional = keys
    missing = required - set(raw)
    if missing:
        raise PolicyError(f"{where}: missing required key '{sorted(missing)[0]}'")
    unknown = set(raw) - required - optional
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return raw


def _party(text: str, source: str, doc: dict[str, Any], table: str) -> Party:
    line = line_of(text, rf"^\s*\[{table}\]\s*$") or 1
    where = f"{source}: line {line}: [{table}]"
    if table not in doc:
        raise PolicyError(f"{source}: line 1: the [{table}] table is required")
    keys = _CONTROLLER_KEYS if table == "controller" else _DPO_KEYS
    raw = _checked_keys(doc[table], keys, where)
    email_line = line_of(text, r"^\s*email\s*=", line, _table_end(text, line)) or line
    email = _text(raw, "email", f"{source}: line {email_line}: [{table}]")
    if email is None or not _EMAIL.match(email):
        raise PolicyError(
            f"{source}: line {email_line}: [{table}]: 'email' must be an e-mail address"
        )
    return Party(
        name=_text(raw, "name", where) or "",
        email=email,
        address=_text(raw, "address", where, optional=table == "dpo"),
        representative=_text(raw, "representative", where, optional=True),
    )


def _table_end(text: str, start: int) -> int:
    """The line after a table that begins at `start`: the next table header, or the end."""
    lines = text.splitlines()
    for n in range(start + 1, len(lines) + 1):
        if lines[n - 1].lstrip().startswith("["):
            return n
    return len(lines) + 1


def parse_controller(
    text: str, catalogue: PurposeCatalogue, source: str = "controller.toml"
) -> ControllerSettings:
    """Parse and validate; raises `PolicyError` naming source and line."""
    doc = parse_toml(text, source)
    version = doc.get("version")
    if not isinstance(version, str) or not version:
        raise PolicyError(f"{source}: line 1: top-level 'version' (a string) is required")
    extra = set(doc) - {"version", "controller", "dpo", "transfer", "audit_retention_months"}
    if extra:
        raise PolicyError(f"{source}: unknown top-level key(s) {', '.join(sorted(extra))}")
    controller = _party(text, source, doc, "controller")
    dpo = _party(text, source, doc, "dpo")
    transfers: list[Transfer] = []
    entries = doc.get("transfer", [])
    if not isinstance(entries, list):
        raise PolicyError(f"{source}: 'transfer' must be [[transfer]] tables")
    for index, raw in enumerate(entries):
        start = table_line(text, "transfer", index, None)

        def where(key: str | None = None, start: int = start, index: int = index) -> str:
            """`<file>: line <n>: transfer <i>`, the line of `key` when it is given."""
            line = (
                line_of(text, rf"^\s*{key}\s*=", start, _table_end(text, start)) if key else None
            ) or start
            return f"{source}: line {line}: transfer {index + 1}"

        raw = _checked_keys(raw, _TRANSFER_KEYS, where())
        purpose = _text(raw, "purpose", where("purpose")) or ""
        if catalogue.get(purpose) is None:
            raise PolicyError(f"{where('purpose')}: unknown purpose '{purpose}'")
        country = _text(raw, "country", where("country")) or ""
        if not _COUNTRY.match(country):
            raise PolicyError(f"{where('country')}: country must be an ISO 3166-1 code like 'US'")
        if country in EEA:
            raise PolicyError(f"{where('country')}: {country} is in the EEA, not a third country")
        safeguard = _text(raw, "safeguard", where("safeguard")) or ""
        if safeguard not in SAFEGUARDS:
            raise PolicyError(
                f"{where('safeguard')}: safeguard '{safeguard}' is not one of "
                + ", ".join(SAFEGUARDS)
            )
        transfers.append(
            Transfer(
                purpose=purpose,
                country=country,
                recipient=_text(raw, "recipient", where("recipient")) or "",
                safeguard=safeguard,
                safeguard_reference=_text(
                    raw, "safeguard_reference", where("safeguard_reference"), optional=True
                ),
            )
        )
    return ControllerSettings(
        version, controller, dpo, tuple(transfers), _retention_months(text, source, doc)
    )


def _retention_months(text: str, source: str, doc: dict[str, Any]) -> int:
    """`audit_retention_months`: a whole number of months, 1 to 1200."""
    months = doc.get("audit_retention_months", DEFAULT_AUDIT_RETENTION_MONTHS)
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= 1200:
        line = line_of(text, r"^\s*audit_retention_months\s*=") or 1
        raise PolicyError(
            f"{source}: line {line}: 'audit_retention_months' must be a whole number of "
            "months from 1 to 1200"
        )
    return months


def load_controller(policies_dir: Path, catalogue: PurposeCatalogue) -> ControllerSettings:
    """`policies_dir/controller.toml`, parsed and validated; raises `PolicyError`."""
    text, source = read_file(policies_dir, "controller.toml", "controller settings")
    return parse_controller(text, catalogue, source)
