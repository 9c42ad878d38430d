"""The controller settings (policies/controller.toml): the shipped file loads, and every
mistake stops the start with a `PolicyError` naming the file's line."""

from __future__ import annotations

import pytest

from tests.conftest import POLICIES
from vault.catalogue.controller import load_controller, parse_controller
from vault.catalogue.purposes import load_catalogue
from vault.catalogue.source import PolicyError

CATALOGUE = load_catalogue(POLICIES)

GOOD = """version = "1"

[controller]
name = "Beispiel GmbH"
address = "Weg 1, 10115 Berlin"
email = "datenschutz@beispiel.example"

[dpo]
name = "Dana DPO"
email = "dpo@beispiel.example"

[[transfer]]
purpose = "newsletter.email"
country = "US"
recipient = "Versanddienst"
safeguard = "standard_contractual_clauses"
"""


def test_the_shipped_controller_file_loads_with_its_transfer():
    """The default policies name a controller, a DPO and the newsletter's transfer."""
    settings = load_controller(POLICIES, CATALOGUE)
    assert settings.controller.name and "@" in settings.dpo.email
    (transfer,) = settings.transfers_of("newsletter.email")
    assert transfer.country == "US" and settings.transfers_of("order.delivery") == []
    assert settings.dpo.name in settings.mail_footer("de")


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ('purpose = "newsletter.email"', 'purpose = "nope"', 13, "unknown purpose 'nope'"),
        ('country = "US"', 'country = "FR"', 14, "FR is in the EEA"),
        ('country = "US"', 'country = "usa"', 14, "ISO 3166-1"),
        ('"standard_contractual_clauses"', '"trust_me"', 16, "safeguard 'trust_me'"),
        ('email = "dpo@beispiel.example"', 'email = "nobody"', 10, "'email' must be an e-mail"),
        ('name = "Dana DPO"', 'nme = "Dana DPO"', 8, "missing required key 'name'"),
        ('address = "Weg 1, 10115 Berlin"', 'adress = "x"', 3, "missing required key"),
    ],
)
def test_a_mistake_names_its_line(old: str, new: str, line: int, message: str):
    """Unknown purposes, EEA or malformed countries, unknown safeguards and addresses that
    are not e-mail addresses name the key's line; a missing key names the table's."""
    text = GOOD.replace(old, new)
    assert text != GOOD
    with pytest.raises(PolicyError, match=f"line {line}: .*{message}"):
        parse_controller(text, CATALOGUE)


def test_the_dpo_table_is_required():
    """Without a [dpo] table the start stops: Art. 30(1)(a) names the DPO."""
    text = GOOD.split("[dpo]")[0]
    with pytest.raises(PolicyError, match=r"\[dpo\] table is required"):
        parse_controller(text, CATALOGUE)


def test_audit_retention_months_defaults_to_36_and_is_read():
    """Without the key the audit trail keeps 36 months; the shipped file and a given value
    are read as they stand."""
    assert parse_controller(GOOD, CATALOGUE).audit_retention_months == 36
    assert load_controller(POLICIES, CATALOGUE).audit_retention_months == 36
    text = GOOD.replace('version = "1"\n', 'version = "1"\naudit_retention_months = 120\n')
    assert parse_controller(text, CATALOGUE).audit_retention_months == 120


@pytest.mark.parametrize("value", ["0", "-3", "1201", "true", '"36"', "3.5"])
def test_a_bad_audit_retention_names_its_line(value: str):
    """Zero, negative, absurdly long, boolean, string and fractional retentions stop the
    start naming line 2."""
    text = GOOD.replace('version = "1"\n', f'version = "1"\naudit_retention_months = {value}\n')
    with pytest.raises(PolicyError, match="line 2: 'audit_retention_months' must be"):
        parse_controller(text, CATALOGUE)
