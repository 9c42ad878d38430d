"""Contact pressure: the basket arithmetic, shared brands, priorities, the calamity
cool-down and month roll-over, on both databases; and the rules files' validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.support.factories import WRITER, person
from vault.subjects.decision import Deny, DenyReason
from vault.errors import InvalidInput
from vault.catalogue.purposes import PolicyError
from vault.catalogue.contact_pressure import parse_rules
from vault.outreach.basket import Reservation, reserve
from vault.storage.tables import contact_budgets, contacts
from vault.subjects.store import create_subject
from vault.catalogue.touchpoints import parse_touchpoints

POLICIES = Path(__file__).resolve().parents[2] / "policies"
RULES_TEXT = (POLICIES / "contact-pressure.toml").read_text(encoding="utf-8")
TOUCHPOINTS_TEXT = (POLICIES / "touchpoints.toml").read_text(encoding="utf-8")


async def _reserve(vault, sid, type="commercial", channel="email", brand="tresor",
                   priority="normal", at=None):
    async with vault.transaction() as conn:
        return await reserve(
            conn, vault, subject_id=sid, channel=channel, type=type, brand=brand,
            priority=priority, now=at or vault.clock.now(),
        )


def _ok(outcome) -> Reservation:
    assert isinstance(outcome, Reservation), outcome
    return outcome


def _denied(outcome, reason: DenyReason) -> None:
    assert isinstance(outcome, Deny) and outcome.reason is reason, outcome


def test_points_are_type_times_channel_in_tenths():
    """commercial e-mail 10, letter 15, SMS 20, phone 30; service by letter 3; basket 25."""
    rules = parse_rules(RULES_TEXT)
    assert rules.basket_points == 25
    assert [rules.cost_tenths("commercial", c) for c in ("email", "letter", "sms", "phone")] == [
        100, 150, 200, 300,
    ]
    assert rules.cost_tenths("service", "letter") == 30
    assert rules.cost_tenths("calamity", "email") == 200
    assert rules.cost_tenths("editorial", "email") == 50
    assert rules.month_of(datetime(2026, 11, 30, 23, 59, tzinfo=UTC)) == "2026-11"


def test_month_follows_the_configured_time_zone():
    """With Europe/Berlin, 30 Nov 23:30 UTC is already December."""
    rules = parse_rules(RULES_TEXT.replace('timezone = "UTC"', 'timezone = "Europe/Berlin"'))
    assert rules.month_of(datetime(2026, 11, 30, 23, 30, tzinfo=UTC)) == "2026-12"


@pytest.mark.parametrize(
    ("old", "new", "message", "marker"),
    [
        ("letter = 1.5", "letter = -1", "channel_factors.letter must be a positive", "letter = -1"),
        ("commercial = 10", 'commercial = "ten"', "points.commercial must be a number", "commercial ="),
        ("basket_points = 25", "basket_points = 0", "basket_points must be a positive", "basket_points ="),
        ("overdraft_points = 10", "overdraft_points = -3", "overdraft_points must be >= 0", "[priority.high]"),
        ('timezone = "UTC"', 'timezone = "Mars/Olympus"', "timezone must be an IANA", "timezone ="),
        ('id = "tresor_outlet"', 'id = "Tresor Outlet"', "id must be a lower-case word", 'id = "Tresor Outlet"'),
        ("sms = 2\n", "sms = 2\npager = 9\n", "unknown channel 'pager'", "pager = 9"),
    ],
)
def test_bad_rules_stop_the_start_naming_the_line(old, new, message, marker):
    text = RULES_TEXT.replace(old, new, 1)
    assert text != RULES_TEXT
    with pytest.raises(PolicyError) as err:
        parse_rules(text, "contact-pressure.toml")
    line = next(n for n, l in enumerate(text.splitlines(), 1) if l.startswith(marker))
    assert message in str(err.value)
    assert f"contact-pressure.toml: line {line}:" in str(err.value)


def test_touchpoints_load_and_bad_entries_name_the_line():
    cat = parse_touchpoints(TOUCHPOINTS_TEXT)
    counter = cat.get("shop.counter")
    assert counter is not None and counter.mode == "offline" and counter.phase == "sales"
    assert "web.newsletter_form" in cat and "hotline.inbound" in cat
    bad = TOUCHPOINTS_TEXT.replace('phase = "sales"', 'phase = "someday"', 1)
    line = next(n for n, l in enumerate(bad.splitlines(), 1) if 'id = "web.checkout"' in l)
    with pytest.raises(PolicyError, match=rf"touchpoints.toml: line {line}: .*phase 'someday'"):
        parse_touchpoints(bad, "touchpoints.toml")


async def test_basket_arithmetic_and_brands_share_one_basket(vault):
    """25 points: two commercial e-mails (20) from two brands, then a third brand's is
    refused; a service e-mail (2) fits, an editorial one (5) not, a service letter (3) fills
    the basket exactly; then nothing."""
    sid = await create_subject(vault, WRITER, person(11))
    first = _ok(await _reserve(vault, sid, brand="tresor"))
    assert (first.points, first.used, first.basket, first.month) == (10, 10, 25, "2026-11")
    assert _ok(await _reserve(vault, sid, brand="tresor_outlet")).used == 20
    _denied(await _reserve(vault, sid, brand="tresor_finance"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    assert _ok(await _reserve(vault, sid, type="service")).used == 22
    _denied(await _reserve(vault, sid, type="editorial"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    last = _ok(await _reserve(vault, sid, type="service", channel="letter", brand="tresor_finance"))
    assert (last.points, last.used) == (3, 25)
    _denied(await _reserve(vault, sid, type="service"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    async with vault.engine.connect() as conn:
        used = (await conn.execute(select(contact_budgets.c.used_tenths))).scalar_one()
        rows = (await conn.execute(select(func.sum(contacts.c.points_tenths)))).scalar_one()
    assert used == rows == 250
    other = await create_subject(vault, WRITER, person(12))
    assert _ok(await _reserve(vault, other)).used == 10  # each customer has a basket


async def test_priorities_high_may_overdraw_and_critical_always_passes(vault):
    sid = await create_subject(vault, WRITER, person(13))
    _ok(await _reserve(vault, sid))
    _ok(await _reserve(vault, sid))
    _denied(await _reserve(vault, sid), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    assert _ok(await _reserve(vault, sid, priority="high")).used == 30  # margin of 10
    _denied(await _reserve(vault, sid, priority="high"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    assert _ok(await _reserve(vault, sid, priority="critical", channel="phone")).used == 60
    with pytest.raises(InvalidInput) as err:
        await _reserve(vault, sid, priority="urgent", brand="acme", channel="fax")
    assert set(err.value.errors) == {"contact.priority", "contact.brand", "contact.channel"}


async def test_calamity_passes_a_full_basket_and_blocks_others_for_the_cool_down(vault, clock):
    sid = await create_subject(vault, WRITER, person(14))
    _ok(await _reserve(vault, sid))
    _ok(await _reserve(vault, sid))
    alarm = _ok(await _reserve(vault, sid, type="calamity"))  # 20 points over a full basket
    assert alarm.used == 40
    clock.advance(timedelta(hours=1))
    _denied(await _reserve(vault, sid, type="editorial"), DenyReason.CONTACT_BLOCKED_BY_CALAMITY)
    _denied(await _reserve(vault, sid, priority="high"), DenyReason.CONTACT_BLOCKED_BY_CALAMITY)
    _ok(await _reserve(vault, sid, type="calamity"))  # follow-ups pass
    _ok(await _reserve(vault, sid, type="service", priority="critical"))
    # service counts against the basket like anything else: the basket is full
    _denied(await _reserve(vault, sid, type="service"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    other = await create_subject(vault, WRITER, person(15))
    _ok(await _reserve(vault, other, type="service"))  # service passes the cool-down
    _ok(await _reserve(vault, other, type="calamity"))
    _denied(await _reserve(vault, other, priority="high"), DenyReason.CONTACT_BLOCKED_BY_CALAMITY)
    clock.advance(timedelta(hours=72))  # the cool-down ended; still November, basket full
    _denied(await _reserve(vault, sid), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    _denied(await _reserve(vault, other), DenyReason.CONTACT_BUDGET_EXHAUSTED)  # 22 + 10
    assert _ok(await _reserve(vault, other, priority="high")).used == 32


async def test_the_month_rolls_over_by_the_clock(vault, clock):
    sid = await create_subject(vault, WRITER, person(16))
    _ok(await _reserve(vault, sid, channel="sms"))
    _denied(await _reserve(vault, sid, channel="letter"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    clock.advance(datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC) - clock.now())
    _denied(await _reserve(vault, sid, channel="letter"), DenyReason.CONTACT_BUDGET_EXHAUSTED)
    clock.advance(timedelta(seconds=1))
    december = _ok(await _reserve(vault, sid, channel="letter"))
    assert (december.month, december.used) == ("2026-12", 15)
    async with vault.engine.connect() as conn:
        rows = (await conn.execute(
            select(contact_budgets.c.month, contact_budgets.c.used_tenths)
            .order_by(contact_budgets.c.month)
        )).all()
    assert [tuple(r) for r in rows] == [("2026-11", 200), ("2026-12", 150)]


def test_init_stops_on_broken_contact_pressure_rules_naming_the_line(tmp_path):
    """A bad contact-pressure.toml stops `tresor init` (and serve) with the file and line."""
    import os
    import shutil
    import subprocess
    import sys

    bad = tmp_path / "policies"
    shutil.copytree(POLICIES, bad)
    text = RULES_TEXT.replace("sms = 2\n", "sms = 0\n", 1)
    (bad / "contact-pressure.toml").write_text(text, encoding="utf-8")
    line = text.splitlines().index("sms = 0") + 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_")}
    env.update(TRESOR_DATA_DIR=str(tmp_path / "data"), TRESOR_POLICIES=str(bad))
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "init"], cwd=POLICIES.parent, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "invalid contact-pressure rules" in result.stderr
    assert f"contact-pressure.toml: line {line}: channel_factors.sms" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "data").exists()
