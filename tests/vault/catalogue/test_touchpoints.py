"""The touchpoint register (issue 21 item 7): every shipped touchpoint states its
importance, status, owner, kind (direct/indirect) and intended experience in both
languages; a wrong value stops the start naming the line; an older file without the
register keys still loads, with the documented defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vault.catalogue.source import PolicyError
from vault.catalogue.touchpoints import IMPORTANCES, KINDS, STATUSES, parse_touchpoints

TEXT = (Path(__file__).resolve().parents[3] / "policies" / "touchpoints.toml").read_text(
    encoding="utf-8"
)


def test_every_shipped_touchpoint_is_a_complete_register_entry():
    """Importance, status, kind are known values; owner and both experience sentences are set."""
    cat = parse_touchpoints(TEXT)
    assert len(cat.touchpoints) >= 10
    for tp in cat.touchpoints.values():
        assert tp.importance in IMPORTANCES and tp.status in STATUSES and tp.kind in KINDS
        assert tp.owner and tp.experience("de") and tp.experience("en"), tp.id
    hotline = cat.get("hotline.inbound")
    assert hotline is not None
    assert (hotline.importance, hotline.owner) == ("high", "customer_service")
    assert hotline.experience("en").startswith("Callers quickly reach")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('status = "active"', 'status = "someday"', "status 'someday' is not one of"),
        ('kind = "direct"', 'kind = "rumour"', "kind 'rumour' is not one of"),
        ('importance = "high"', 'importance = "vital"', "importance 'vital' is not one of"),
        ('owner = "ecommerce"', 'owner = "Frau Müller"', "owner must be a team name"),
        ("experience = { de = ", "experience = { fr = ", "experience needs de and en"),
    ],
)
def test_a_wrong_register_value_names_the_touchpoints_line(old, new, message):
    """The first touchpoint's bad value is refused with its line and what is wrong."""
    bad = TEXT.replace(old, new, 1)
    line = next(n for n, ln in enumerate(bad.splitlines(), 1) if ln.startswith("id = "))
    with pytest.raises(PolicyError) as err:
        parse_touchpoints(bad, "touchpoints.toml")
    assert f"touchpoints.toml: line {line}:" in str(err.value) and message in str(err.value)


def test_an_older_file_without_register_keys_loads_with_defaults():
    """Without the register keys a touchpoint is active, direct, of medium importance."""
    old = re.sub(r"^(importance|status|owner|kind|experience) = .*\n", "", TEXT, flags=re.M)
    tp = parse_touchpoints(old).get("shop.counter")
    assert tp is not None
    assert (tp.status, tp.kind, tp.importance, tp.owner, tp.experience("de")) == (
        "active",
        "direct",
        "medium",
        None,
        None,
    )
