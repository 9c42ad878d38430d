"""Validation and normalisation of contact data.

Normalised forms feed the blind indexes, so the same address typed differently still finds
the subject: e-mail trimmed and lower-cased, phone numbers in E.164. Errors name the field
and the rule broken, never the value.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import email_validator
import phonenumbers

from vault.catalogue.purposes import CONTACT_FIELDS
from vault.errors import InvalidInput

DEFAULT_PHONE_REGION = "DE"
#: The shape of a phone number as written: E.164 (`+` and the country code) or a national
#: form of the default region (a leading 0, perhaps in parentheses: `(030) 1234-5678`),
#: digits with spaces, hyphens, dots, slashes and parentheses between them. libphonenumber
#: alone reads numbers out of any text (it drops trailing letters and signs), so the shape
#: is checked first: the API documents this pattern, and a number outside it must be
#: refused, not read leniently.
PHONE_SHAPE = r"^(\+[1-9]|\(?0)[0-9 ()./-]{5,30}[0-9]$"
_PHONE_SHAPE = re.compile(PHONE_SHAPE)


class ContactValidationError(ValueError):
    """One or more fields are invalid; `errors` maps field name to a message without PII."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("invalid contact data: " + ", ".join(sorted(errors)))
        self.errors = errors


def normalise_email(value: str) -> str:
    """Syntax-checked, trimmed, lower-cased e-mail address (the blind-index form)."""
    try:
        info = email_validator.validate_email(
            value.strip(), check_deliverability=False, allow_smtputf8=True
        )
    except email_validator.EmailNotValidError:
        raise ContactValidationError({"email": "is not a valid e-mail address"}) from None
    return info.normalized.lower()


def normalise_phone(value: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """E.164 form of a phone number; national numbers are read as German by default."""
    if not _PHONE_SHAPE.match(value):
        raise ContactValidationError({"phone": "is not a phone number"})
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise ContactValidationError({"phone": "is not a phone number"}) from None
    if not phonenumbers.is_valid_number(number):
        raise ContactValidationError({"phone": "is not a valid phone number"})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _clean_text(field: str, value: str, max_len: int) -> str:
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise ContactValidationError({field: "must not be empty"})
    if len(text) > max_len:
        raise ContactValidationError({field: f"must be at most {max_len} characters"})
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in text):
        raise ContactValidationError({field: "contains control or unassigned characters"})
    return text


def normalise_name(value: str) -> str:
    return _clean_text("name", value, 200)


def normalise_external_ref(value: str) -> str:
    """Customer numbers compare exactly, after trimming."""
    return _clean_text("external_ref", value, 100)


@dataclass(frozen=True, slots=True)
class PostalAddress:
    street: str
    postal_code: str
    city: str
    country: str
    addition: str | None = None

    def to_dict(self) -> dict[str, str]:
        out = {
            "street": self.street,
            "postal_code": self.postal_code,
            "city": self.city,
            "country": self.country,
        }
        if self.addition:
            out["addition"] = self.addition
        return out


def normalise_postal_address(value: dict[str, object]) -> PostalAddress:
    errors: dict[str, str] = {}
    parts: dict[str, str] = {}
    for key, limit in (("street", 200), ("postal_code", 20), ("city", 100), ("country", 2)):
        raw = value.get(key)
        if not isinstance(raw, str):
            errors[f"postal_address.{key}"] = "is required"
            continue
        try:
            parts[key] = _clean_text(f"postal_address.{key}", raw, limit)
        except ContactValidationError as exc:
            errors.update(exc.errors)
    country = parts.get("country", "")
    if country and not (len(country) == 2 and country.isascii() and country.isalpha()):
        errors["postal_address.country"] = "must be an ISO 3166-1 alpha-2 code"
    addition = value.get("addition")
    if addition is not None and not isinstance(addition, str):
        errors["postal_address.addition"] = "must be text"
    if errors:
        raise ContactValidationError(errors)
    add = (
        _clean_text("postal_address.addition", addition, 200)
        if isinstance(addition, str) and addition
        else None
    )
    return PostalAddress(
        street=parts["street"],
        postal_code=parts["postal_code"],
        city=parts["city"],
        country=country.upper(),
        addition=add,
    )


def normalise_contact(values: Mapping[str, Any]) -> dict[str, str | None]:
    """Validate every given field; returns field -> canonical text (None clears a field)."""
    errors: dict[str, str] = {}
    out: dict[str, str | None] = {}
    for field, raw in values.items():
        if field not in CONTACT_FIELDS:
            errors[field] = "is not a contact field"
            continue
        if raw is None:
            out[field] = None
            continue
        try:
            if field == "postal_address":
                if not isinstance(raw, Mapping):
                    raise ContactValidationError({field: "must be an object"})
                addr = normalise_postal_address(dict(raw))
                out[field] = json.dumps(addr.to_dict(), ensure_ascii=False, sort_keys=True)
            elif not isinstance(raw, str):
                raise ContactValidationError({field: "must be text"})
            elif field == "email":
                out[field] = normalise_email(raw)
            elif field == "phone":
                out[field] = normalise_phone(raw)
            elif field == "name":
                out[field] = normalise_name(raw)
            else:
                out[field] = normalise_external_ref(raw)
        except ContactValidationError as exc:
            errors.update(exc.errors)
    if errors:
        raise InvalidInput("contact data is invalid", errors)
    return out
