"""The contact-pressure rules and the touchpoint catalogue: points and months, and bad files
that stop the start naming file and line; and the one loader for every policy file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vault.catalogue.contact_pressure import load_rules, parse_rules
from vault.catalogue.loader import load_policies
from vault.catalogue.source import PolicyError
from vault.catalogue.touchpoints import parse_touchpoints

POLICIES = Path(__file__).resolve().parents[3] / "policies"
RULES_TEXT = (POLICIES / "contact-pressure.toml").read_text(encoding="utf-8")
TOUCHPOINTS_TEXT = (POLICIES / "touchpoints.toml").read_text(encoding="utf-8")


def test_points_are_type_times_channel_in_tenths():
    """commercial e-mail 10, letter 15, SMS 20, phone 25; service by letter 3; basket 25."""
    rules = parse_rules(RULES_TEXT)
    assert rules.basket_points == 25
    assert [rules.cost_tenths("commercial", c) for c in ("email", "letter", "sms", "phone")] == [
        100,
        150,
        200,
        250,
    ]
    assert rules.cost_tenths("service", "letter") == 30
    assert rules.cost_tenths("calamity", "email") == 200
    assert rules.cost_tenths("editorial", "email") == 50
    assert rules.month_of(datetime(2026, 11, 30, 23, 59, tzinfo=UTC)) == "2026-11"


def test_month_follows_the_configured_time_zone():
    """With Europe/Berlin, 30 Nov 23:30 UTC is already December."""
    rules = parse_rules(RULES_TEXT.replace('timezone = "UTC"', 'timezone = "Europe/Berlin"'))
    assert rules.month_of(datetime(2026, 11, 30, 23, 30, tzinfo=UTC)) == "2026-12"


def test_month_bounds_are_the_months_instants_in_utc():
    """A Berlin basket month runs from its first midnight in Berlin to the next month's, in UTC."""
    rules = parse_rules(RULES_TEXT.replace('timezone = "UTC"', 'timezone = "Europe/Berlin"'))
    assert rules.month_bounds("2026-12") == (
        datetime(2026, 11, 30, 23, tzinfo=UTC),
        datetime(2026, 12, 31, 23, tzinfo=UTC),
    )


@pytest.mark.parametrize("month", ["0000-01", "0001-01", "9999-12"])
def test_a_month_outside_the_calendar_has_no_bounds(month):
    """A month whose bounds UTC cannot hold (year 0, January of year 1 in Berlin, December
    9999) has none, for every report alike, instead of crashing one of them."""
    rules = parse_rules(RULES_TEXT.replace('timezone = "UTC"', 'timezone = "Europe/Berlin"'))
    assert rules.month_bounds(month) is None


@pytest.mark.parametrize(
    ("old", "new", "message", "marker"),
    [
        ("letter = 1.5", "letter = -1", "channel_factors.letter must be a positive", "letter = -1"),
        (
            "commercial = 10",
            'commercial = "ten"',
            "points.commercial must be a number",
            "commercial =",
        ),
        (
            "basket_points = 25",
            "basket_points = 0",
            "basket_points must be a positive",
            "basket_points =",
        ),
        (
            "overdraft_points = 10",
            "overdraft_points = -3",
            "overdraft_points must be >= 0",
            "[priority.high]",
        ),
        ('timezone = "UTC"', 'timezone = "Mars/Olympus"', "timezone must be an IANA", "timezone ="),
        (
            'id = "tresor_outlet"',
            'id = "Tresor Outlet"',
            "id must be a lower-case word",
            'id = "Tresor Outlet"',
        ),
        ("sms = 2\n", "sms = 2\npager = 9\n", "unknown channel 'pager'", "pager = 9"),
    ],
)
def test_bad_rules_stop_the_start_naming_the_line(old, new, message, marker):
    text = RULES_TEXT.replace(old, new, 1)
    assert text != RULES_TEXT
    with pytest.raises(PolicyError) as err:
        parse_rules(text, "contact-pressure.toml")
    line = next(n for n, ln in enumerate(text.splitlines(), 1) if ln.startswith(marker))
    assert message in str(err.value)
    assert f"contact-pressure.toml: line {line}:" in str(err.value)


def test_touchpoints_load_and_bad_entries_name_the_line():
    cat = parse_touchpoints(TOUCHPOINTS_TEXT)
    counter = cat.get("shop.counter")
    assert counter is not None and counter.mode == "offline" and counter.phase == "sales"
    assert "web.newsletter_form" in cat and "hotline.inbound" in cat
    bad = TOUCHPOINTS_TEXT.replace('phase = "sales"', 'phase = "someday"', 1)
    line = next(n for n, ln in enumerate(bad.splitlines(), 1) if 'id = "web.checkout"' in ln)
    with pytest.raises(PolicyError, match=rf"touchpoints.toml: line {line}: .*phase 'someday'"):
        parse_touchpoints(bad, "touchpoints.toml")


def test_init_stops_on_broken_contact_pressure_rules_naming_the_line(tmp_path):
    """A bad contact-pressure.toml stops `tresor init` (and serve) with the file and line."""
    bad = tmp_path / "policies"
    shutil.copytree(POLICIES, bad)
    text = RULES_TEXT.replace("sms = 2\n", "sms = 0\n", 1)
    (bad / "contact-pressure.toml").write_text(text, encoding="utf-8")
    line = text.splitlines().index("sms = 0") + 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_")}
    env.update(TRESOR_DATA_DIR=str(tmp_path / "data"), TRESOR_POLICIES=str(bad))
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "init"],
        cwd=POLICIES.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "invalid contact-pressure rules" in result.stderr
    assert f"contact-pressure.toml: line {line}: channel_factors.sms" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "data").exists()


def test_one_loader_reads_every_policy_file_and_checks_grants_against_its_catalogue():
    """`load_policies` gives the purposes, the rules and the touchpoints of one directory;
    the rules' granted purposes are checked against that directory's purpose catalogue."""
    policies = load_policies(POLICIES)
    assert "incident.notice" in policies.purposes
    assert policies.pressure_rules.basket_points == 25
    assert "shop.counter" in policies.touchpoints
    assert "incident.notice" in policies.pressure_rules.calamity_grant.purposes


@pytest.mark.parametrize(
    ("name", "old", "new", "what"),
    [
        ("purposes.toml", 'id = "incident.notice"', 'id = "incident.notise"', "unknown purpose"),
        ("touchpoints.toml", 'phase = "sales"', 'phase = "someday"', "phase 'someday'"),
        ("contact-pressure.toml", "basket_points = 25", "basket_points = -1", "basket_points"),
    ],
)
def test_the_loader_stops_at_the_first_bad_file_naming_file_and_line(
    tmp_path, name, old, new, what
):
    """Whichever file is wrong, `load_policies` raises one `PolicyError` that starts with
    the file's path and names a line (a renamed purpose breaks the rules' grant of it)."""
    bad = tmp_path / "policies"
    shutil.copytree(POLICIES, bad)
    text = (POLICIES / name).read_text(encoding="utf-8")
    assert old in text
    (bad / name).write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_policies(bad)
    message = str(err.value)
    file = "contact-pressure.toml" if name == "purposes.toml" else name
    assert message.startswith(f"{bad / file}: line "), message
    assert what in message


def test_a_missing_policy_file_is_a_policy_error_naming_it(tmp_path):
    """A directory without touchpoints.toml stops the start naming the missing file."""
    bad = tmp_path / "policies"
    shutil.copytree(POLICIES, bad)
    (bad / "touchpoints.toml").unlink()
    with pytest.raises(PolicyError, match="touchpoints.toml: cannot read touchpoint catalogue"):
        load_policies(bad)


def test_rules_under_which_a_purpose_never_passes_stop_the_start(tmp_path):
    """With phone at factor 3 a commercial call costs 30 of a 25-point basket: offers.phone
    could never be used, so loading refuses the rules naming the phone factor's line; a
    service reserve too small for a service message is refused the same way."""
    shutil.copytree(POLICIES, tmp_path / "policies")
    path = tmp_path / "policies" / "contact-pressure.toml"
    text = RULES_TEXT.replace("phone = 2.5\n", "phone = 3\n", 1)
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("phone = 3") + 1
    with pytest.raises(PolicyError) as err:
        load_rules(tmp_path / "policies")
    assert f"contact-pressure.toml: line {line}: purpose 'offers.phone' can never pass" in str(
        err.value
    )
    text = RULES_TEXT.replace("service_reserve_points = 10", "service_reserve_points = 4", 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match="purpose 'order.delivery' can never pass"):
        load_rules(tmp_path / "policies")
    assert load_rules(POLICIES).service_reserve_tenths == 100


def test_a_purpose_scoped_to_an_unknown_brand_stops_the_start(tmp_path):
    """`brands` on a purpose must name brands of the rules: a typo would cover nobody."""
    shutil.copytree(POLICIES, tmp_path / "policies")
    path = tmp_path / "policies" / "purposes.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace('id = "offers.sms"\n', 'id = "offers.sms"\nbrands = ["tresor_fianance"]\n'),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match=r"purpose 'offers.sms' names brand\(s\) \['tresor_fian"):
        load_rules(tmp_path / "policies")
