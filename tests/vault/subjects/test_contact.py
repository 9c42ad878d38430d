"""Validation and normalisation of contact data, and error messages that never echo the input."""

from __future__ import annotations

import pytest

from vault.subjects.contact import (
    ContactValidationError,
    PostalAddress,
    normalise_email,
    normalise_external_ref,
    normalise_name,
    normalise_phone,
    normalise_postal_address,
)

ADDRESS = {"street": "Hauptstraße 5", "postal_code": "10115", "city": "Berlin", "country": "de"}


def _no_echo(exc: ContactValidationError, value: str) -> None:
    """The error (message and every per-field text) does not contain the submitted value."""
    texts = [str(exc), *exc.errors.keys(), *exc.errors.values()]
    for text in texts:
        assert value not in text, text


# --- e-mail ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("max.mustermann@example.de", "max.mustermann@example.de"),
        ("  Max.Mustermann@Example.DE \n", "max.mustermann@example.de"),
        ("JÜRGEN.MÜLLER@BEISPIEL.DE", "jürgen.müller@beispiel.de"),
        ("info@münchen.de", "info@münchen.de"),
    ],
)
def test_email_is_trimmed_and_lower_cased(raw: str, expected: str):
    """E-mail addresses are trimmed and lower-cased, so any spelling finds the same subject."""
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "max.mustermann",
        "max@",
        "@example.de",
        "max@@example.de",
        "max mustermann@example.de",
        "max@localhost",
    ],
)
def test_invalid_email_is_rejected_without_echo(raw: str):
    """An invalid e-mail is rejected under the field name `email`, without repeating the value."""
    with pytest.raises(ContactValidationError) as info:
        normalise_email(raw)
    assert set(info.value.errors) == {"email"}
    if raw.strip():
        _no_echo(info.value, raw.strip())


# --- phone -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("030 12345678", "+493012345678"),
        ("(030) 1234-5678", "+493012345678"),
        ("0171 1234567", "+491711234567"),
        ("+49 171 1234567", "+491711234567"),
        ("0049 30 12345678", "+493012345678"),
        ("+1 650 253 0000", "+16502530000"),
    ],
)
def test_phone_is_normalised_to_e164_with_german_default(raw: str, expected: str):
    """Phone numbers become E.164; national numbers without a prefix are read as German."""
    assert normalise_phone(raw) == expected


def test_phone_region_can_be_given():
    """A national number is read in the given region when one is named."""
    assert normalise_phone("06 12 34 56 78", "FR") == "+33612345678"


@pytest.mark.parametrize("raw", ["", "abc", "12", "030 1", "+49 000 0000", "+999 123456789"])
def test_invalid_phone_is_rejected_without_echo(raw: str):
    """Non-numbers and numbers no network assigns are rejected under `phone`, without the value."""
    with pytest.raises(ContactValidationError) as info:
        normalise_phone(raw)
    assert set(info.value.errors) == {"phone"}
    if raw:
        _no_echo(info.value, raw)


# --- names and customer numbers --------------------------------------------------------


def test_name_is_trimmed_and_nfc_normalised():
    """Names are trimmed and NFC-normalised (a combining accent becomes one character)."""
    assert normalise_name("  Jose\u0301 Müller ") == "Jos\u00e9 Müller"


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("Erika\x00Mustermann", "control"),
        ("Erika\nMustermann", "control"),
        ("Erika\u200bMustermann", "control"),
        ("Erika\u202eMustermann", "control"),
        ("E" * 201, "at most 200"),
    ],
)
def test_bad_name_is_rejected_without_echo(raw: str, rule: str):
    """Empty names, control/format characters and names over 200 characters are rejected, without
    the value."""
    with pytest.raises(ContactValidationError) as info:
        normalise_name(raw)
    assert rule in info.value.errors["name"]
    if raw.strip():
        _no_echo(info.value, raw)


def test_name_of_exactly_200_characters_is_accepted():
    """The 200-character limit is inclusive."""
    assert normalise_name("E" * 200) == "E" * 200


def test_external_ref_is_trimmed_and_limited():
    """Customer numbers are trimmed, keep their case, and are limited to 100 characters."""
    assert normalise_external_ref(" K-0042a ") == "K-0042a"
    with pytest.raises(ContactValidationError) as info:
        normalise_external_ref("K" * 101)
    assert set(info.value.errors) == {"external_ref"}


# --- postal address --------------------------------------------------------------------


def test_postal_address_is_cleaned_and_country_upper_cased():
    """A valid address is trimmed, its country code upper-cased, and an addition kept."""
    addr = normalise_postal_address(
        {**ADDRESS, "street": " Hauptstraße 5 ", "addition": "c/o Meier"}
    )
    assert addr == PostalAddress("Hauptstraße 5", "10115", "Berlin", "DE", "c/o Meier")
    assert addr.to_dict()["addition"] == "c/o Meier"
    assert "addition" not in normalise_postal_address(ADDRESS).to_dict()


@pytest.mark.parametrize("country", ["DEU", "D1", "1", "Ä1", "Ö"])
def test_country_must_be_an_alpha2_code(country: str):
    """The country must be a two-letter ASCII code (ISO 3166-1 alpha-2)."""
    with pytest.raises(ContactValidationError) as info:
        normalise_postal_address({**ADDRESS, "country": country})
    assert set(info.value.errors) == {"postal_address.country"}


def test_every_bad_address_part_is_reported_at_once():
    """Missing, non-text, too long and control-character parts are all reported, by sub-field
    name."""
    with pytest.raises(ContactValidationError) as info:
        normalise_postal_address(
            {"street": "Geheimweg\r\n1", "postal_code": 10115, "city": "B" * 101, "country": "DE"}
        )
    errors = info.value.errors
    assert errors["postal_address.postal_code"] == "is required"
    assert "control" in errors["postal_address.street"]
    assert "at most 100" in errors["postal_address.city"]
    _no_echo(info.value, "Geheimweg")


@pytest.mark.parametrize(("addition", "rule"), [(5, "text"), ("c/o\x07Meier", "control")])
def test_bad_addition_is_rejected(addition: object, rule: str):
    """The optional addition must be text without control characters."""
    with pytest.raises(ContactValidationError) as info:
        normalise_postal_address({**ADDRESS, "addition": addition})
    assert rule in info.value.errors["postal_address.addition"]


def test_validation_error_message_names_fields_only():
    """The exception text lists the failing field names and nothing else."""
    with pytest.raises(ContactValidationError) as info:
        normalise_email("erika.mustermann(at)example.de")
    assert str(info.value) == "invalid contact data: email"
