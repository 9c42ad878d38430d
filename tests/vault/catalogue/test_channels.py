"""Channels declared in the contact-pressure rules (issue 21): the shipped ones load with
their factors, fields and names; a purpose naming an undeclared channel, or one whose
fields it does not reveal, and malformed declarations stop the start naming the line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vault.catalogue.channels import BUILTIN_CHANNELS, declared_channels
from vault.catalogue.contact_pressure import parse_rules
from vault.catalogue.loader import load_policies
from vault.catalogue.purposes import load_catalogue, parse_catalogue
from vault.catalogue.source import PolicyError

POLICIES = Path(__file__).resolve().parents[3] / "policies"
RULES_TEXT = (POLICIES / "contact-pressure.toml").read_text(encoding="utf-8")
PURPOSES_TEXT = (POLICIES / "purposes.toml").read_text(encoding="utf-8")


def _policies(tmp_path: Path, rules: str = RULES_TEXT, purposes: str = PURPOSES_TEXT) -> Path:
    for name in ("touchpoints.toml", "controller.toml"):
        if (POLICIES / name).exists():
            shutil.copy(POLICIES / name, tmp_path / name)
    (tmp_path / "contact-pressure.toml").write_text(rules, encoding="utf-8")
    (tmp_path / "purposes.toml").write_text(purposes, encoding="utf-8")
    return tmp_path


def _line(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_shipped_rules_declare_visit_print_and_social():
    """Besides the built-in four, visit and print need the postal address, social needs no
    field; each has its factor and a German and English name, and shipped purposes use them."""
    policies = load_policies(POLICIES)
    rules = policies.pressure_rules
    assert list(rules.channels) == [*BUILTIN_CHANNELS, "visit", "print", "social"]
    assert {c: rules.channel_factors[c] for c in ("visit", "print", "social")} == {
        "visit": 2.5,
        "print": 1.0,
        "social": 0.5,
    }
    assert rules.channels["visit"].reveals == ("postal_address",)
    assert rules.channels["social"].reveals == () and rules.reveals_nothing("social")
    assert not rules.reveals_nothing("email")
    assert rules.channel_name("print", "de") == "Werbedrucksache"
    assert rules.channel_name("print", "en") == "Print mailing"
    assert rules.channel_name("email", "en") == ""
    used = {c for p in policies.purposes.purposes.values() for c in p.channels}
    assert {"visit", "print", "social"} <= used
    assert rules.cost_tenths("commercial", "visit") == 250


def test_a_purpose_naming_an_undeclared_channel_stops_the_start(tmp_path):
    """Without [channel.visit] in the rules, offers.visit is refused at its line."""
    start = RULES_TEXT.index("[channel.visit]")
    end = RULES_TEXT.index("[channel.print]")
    rules = RULES_TEXT[:start] + RULES_TEXT[end:]
    with pytest.raises(PolicyError) as info:
        load_policies(_policies(tmp_path, rules=rules))
    message = str(info.value)
    line = _line(PURPOSES_TEXT, 'id = "offers.visit"')
    assert "purposes.toml" in message and f"line {line}" in message
    assert "channel 'visit' is not one of" in message


def test_the_rules_refuse_a_catalogue_naming_a_channel_they_do_not_declare():
    """parse_rules checks a catalogue read elsewhere too: the purpose and channel are named."""
    catalogue = load_catalogue(POLICIES)
    start = RULES_TEXT.index("[channel.social]")
    end = RULES_TEXT.index("[[brand]]", start)
    with pytest.raises(PolicyError, match="purpose 'offers.social' names channel 'social'"):
        parse_rules(RULES_TEXT[:start] + RULES_TEXT[end:], catalogue=catalogue)


def test_a_purpose_must_reveal_the_fields_its_declared_channel_needs():
    """A visit needs the postal address: a purpose revealing only the name is refused."""
    text = PURPOSES_TEXT.replace(
        'fields = ["name", "postal_address"]\nchannel = "visit"',
        'fields = ["name"]\nchannel = "visit"',
    )
    assert text != PURPOSES_TEXT
    with pytest.raises(PolicyError, match="'visit' needs the field 'postal_address'"):
        parse_catalogue(text, "purposes.toml", declared_channels(POLICIES))


def test_a_catalogue_read_without_rules_knows_only_the_built_in_channels():
    """parse_catalogue without declared channels refuses print, naming the built-in four."""
    with pytest.raises(
        PolicyError, match="'offers.post': channel 'print' is not one of email, letter, sms, phone"
    ):
        parse_catalogue(PURPOSES_TEXT)


def test_a_declared_factor_that_no_month_can_hold_names_the_channel_table():
    """visit at factor 3 makes a commercial visit cost 30 > 25: the start names [channel.visit]."""
    rules = RULES_TEXT.replace("[channel.visit]\nfactor = 2.5", "[channel.visit]\nfactor = 3")
    with pytest.raises(PolicyError) as info:
        parse_rules(rules, catalogue=load_catalogue(POLICIES))
    assert f"line {_line(rules, '[channel.visit]')}" in str(info.value)
    assert "'offers.visit' can never pass" in str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "words", "at"),
    [
        pytest.param(
            "[channel.visit]", "[channel.email]", "is built in", "[channel.email]", id="builtin"
        ),
        pytest.param(
            "[channel.visit]\nfactor = 2.5", "[channel.visit]\nfactor = 0", "factor must be",
            "[channel.visit]", id="zero-factor",
        ),
        pytest.param(
            'reveals = ["postal_address"]', 'reveals = ["iban"]', "reveals must list",
            "[channel.visit]", id="unknown-field",
        ),
        pytest.param(
            'name = { de = "Werbedrucksache", en = "Print mailing" }', 'name = { de = "Druck" }',
            "name.de and name.en", "[channel.print]", id="one-language",
        ),
        pytest.param(
            "[channel.social]", "[channel.social_media_campaigns]", "16 characters",
            "[channel.social_media_campaigns]", id="too-long",
        ),
        pytest.param(
            "[channel.social]\nfactor = 0.5", "[channel.social]\nfactor = 0.5\ncolour = 1",
            "unknown key", "[channel.social]", id="unknown-key",
        ),
        pytest.param(
            "visit = 1", "visit = 1", "unknown channel", "visit = 1", id="factor-table",
        ),
    ],
)  # fmt: skip
def test_malformed_channel_declarations_name_their_line(old, new, words, at):
    """Each bad declaration is refused with the line of its table (or key)."""
    rules = (
        RULES_TEXT.replace("phone = 2.5\n", "phone = 2.5\nvisit = 1\n", 1)
        if old == "visit = 1"
        else RULES_TEXT.replace(old, new, 1)
    )
    assert rules != RULES_TEXT
    with pytest.raises(PolicyError) as info:
        parse_rules(rules)
    assert words in str(info.value)
    assert f"line {_line(rules, at)}:" in str(info.value)
