"""Purposes listing several channels in the catalogue: backwards compatible, bad channel
lists stop the start, double opt-in purposes stay on e-mail."""

from __future__ import annotations

import pytest

from tests.support.preference_cases import POLICIES
from vault.catalogue.channels import declared_channels

# ---------------------------------------------------------------------------- catalogue


CATALOGUE_TEXT = (POLICIES / "purposes.toml").read_text(encoding="utf-8")
#: The channels the shipped rules declare (visit, print, social besides the four).
CHANNELS = declared_channels(POLICIES)


def test_purposes_list_several_channels_backwards_compatibly():
    """Without `channels` a purpose has just its `channel`; with it, every listed one."""
    from vault.catalogue.purposes import parse_catalogue

    cat = parse_catalogue(CATALOGUE_TEXT, "purposes.toml", CHANNELS)
    assert list(cat.get("offers.sms").channels) == ["sms"]
    assert list(cat.get("order.delivery").channels) == ["letter", "sms", "phone"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'channels = ["letter", "sms", "phone"]',
            'channels = ["letter", "email"]',
            "channels: 'email' needs the field 'email'",
        ),
        (
            'channels = ["letter", "sms", "phone"]',
            'channels = ["sms", "phone"]',
            "channels must include the purpose's channel 'letter'",
        ),
        (
            'channels = ["letter", "sms", "phone"]',
            'channels = ["letter", "pigeon"]',
            "channels: 'pigeon' is not one of",
        ),
    ],
)
def test_bad_channel_lists_stop_the_start(old, new, message):
    """A channel the purpose cannot reach, or a list without the default, is refused."""
    from vault.catalogue.purposes import PolicyError, parse_catalogue

    text = CATALOGUE_TEXT.replace(old, new, 1)
    assert text != CATALOGUE_TEXT
    with pytest.raises(PolicyError) as err:
        parse_catalogue(text, "purposes.toml", CHANNELS)
    assert message in str(err.value) and "order.delivery" in str(err.value)


def test_double_opt_in_purposes_stay_on_email_only():
    """A double opt-in purpose may not list further channels (its proof is for e-mail)."""
    from vault.catalogue.purposes import PolicyError, parse_catalogue

    old = 'fields = ["email", "name"]\nchannel = "email"\ncommunication_type = "editorial"'
    assert old in CATALOGUE_TEXT
    text = CATALOGUE_TEXT.replace(
        old,
        'fields = ["email", "name", "phone"]\nchannel = "email"\n'
        'channels = ["email", "sms"]\ncommunication_type = "editorial"',
        1,
    )
    with pytest.raises(PolicyError, match="double_opt_in purposes may only use the email"):
        parse_catalogue(text, "purposes.toml", CHANNELS)
