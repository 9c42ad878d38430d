"""Customer contact preferences, the pure rules: quiet hours and days across time zones and
daylight-saving changes, bad input rejected naming the part, and the own cap that only ever
lowers the basket."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.support.preference_cases import RULES, quiet_at, quiet_prefs, utc_time
from vault.errors import InvalidInput
from vault.outreach.preferences import Preferences, check_contact, parse
from vault.subjects.decision import DenyReason

# ---------------------------------------------------------------------------- pure: time


def test_quiet_hours_spanning_midnight_cover_both_sides_of_it():
    """A 22:00-07:00 window is quiet late in the evening and early in the morning, not by day."""
    p = quiet_prefs("Europe/Berlin", start="22:00", end="07:00")
    # 2026-11-23 is winter time (CET = UTC+1).
    assert quiet_at(p, utc_time(2026, 11, 23, 21, 0))  # 22:00 local: start is inclusive
    assert quiet_at(p, utc_time(2026, 11, 23, 23, 30))  # 00:30 local
    assert quiet_at(p, utc_time(2026, 11, 24, 5, 59))  # 06:59 local
    assert not quiet_at(p, utc_time(2026, 11, 24, 6, 0))  # 07:00 local: end is exclusive
    assert not quiet_at(p, utc_time(2026, 11, 23, 20, 59))  # 21:59 local
    assert not quiet_at(p, utc_time(2026, 11, 23, 12, 0))


def test_berlin_march_change_moves_the_window_with_the_wall_clock():
    """On 29 March 2026 Berlin skips 02:00-03:00: the window follows local time, so the same
    UTC instant is quiet the day before and not after the change."""
    p = quiet_prefs("Europe/Berlin", start="22:00", end="07:00")
    assert quiet_at(p, utc_time(2026, 3, 28, 5, 30))  # 06:30 CET
    assert not quiet_at(p, utc_time(2026, 3, 29, 5, 30))  # 07:30 CEST
    assert quiet_at(p, utc_time(2026, 3, 29, 4, 59))  # 06:59 CEST
    # A window inside the skipped hour's neighbourhood: 02:30-03:30 is quiet from 03:00 CEST.
    gap = quiet_prefs("Europe/Berlin", start="02:30", end="03:30")
    assert not quiet_at(gap, utc_time(2026, 3, 29, 0, 59))  # 01:59 CET
    assert quiet_at(gap, utc_time(2026, 3, 29, 1, 0))  # 03:00 CEST (02:xx never happens)
    assert quiet_at(gap, utc_time(2026, 3, 29, 1, 29))  # 03:29 CEST
    assert not quiet_at(gap, utc_time(2026, 3, 29, 1, 30))  # 03:30 CEST


def test_berlin_october_change_keeps_both_repeated_hours_quiet():
    """On 25 October 2026 Berlin repeats 02:00-03:00: a 02:00-02:45 window is quiet in both."""
    p = quiet_prefs("Europe/Berlin", start="02:00", end="02:45")
    assert quiet_at(p, utc_time(2026, 10, 25, 0, 15))  # 02:15 CEST, first pass
    assert quiet_at(p, utc_time(2026, 10, 25, 1, 15))  # 02:15 CET, second pass
    assert not quiet_at(p, utc_time(2026, 10, 25, 0, 50))  # 02:50 CEST
    assert not quiet_at(p, utc_time(2026, 10, 25, 1, 50))  # 02:50 CET
    night = quiet_prefs("Europe/Berlin", start="22:00", end="07:00")
    assert quiet_at(night, utc_time(2026, 10, 25, 5, 30))  # 06:30 CET
    assert not quiet_at(night, utc_time(2026, 10, 24, 5, 30))  # 07:30 CEST the day before


def test_new_york_and_tokyo_use_their_own_clocks():
    """The same window means different UTC instants in New York (with its own DST dates) and
    in Tokyo (no DST)."""
    ny = quiet_prefs("America/New_York", start="21:00", end="08:00")
    assert quiet_at(ny, utc_time(2026, 11, 23, 12, 30))  # 07:30 EST
    assert not quiet_at(ny, utc_time(2026, 11, 23, 13, 30))  # 08:30 EST
    assert not quiet_at(ny, utc_time(2026, 7, 1, 12, 30))  # 08:30 EDT
    # New York changes on 8 March, weeks before Berlin: 12:30 UTC is 07:30 EST / 08:30 EDT.
    assert quiet_at(ny, utc_time(2026, 3, 7, 12, 30))
    assert not quiet_at(ny, utc_time(2026, 3, 9, 12, 30))
    tokyo = quiet_prefs("Asia/Tokyo", start="22:00", end="07:00")
    assert quiet_at(tokyo, utc_time(2026, 11, 23, 14, 0))  # 23:00 JST
    assert not quiet_at(tokyo, utc_time(2026, 11, 23, 23, 0))  # 08:00 JST
    assert quiet_at(tokyo, utc_time(2026, 7, 1, 14, 0))  # 23:00 JST in summer too


def test_quiet_days_are_calendar_days_in_the_customers_zone():
    """Sunday quiet in Berlin starts at local midnight, an hour before UTC's Sunday."""
    p = quiet_prefs("Europe/Berlin", channel="email", days=["sun"])
    assert quiet_at(p, utc_time(2026, 11, 21, 23, 30), "email")  # Sun 00:30 Berlin, Sat in UTC
    assert not quiet_at(p, utc_time(2026, 11, 22, 23, 30), "email")  # Mon 00:30 Berlin, Sun in UTC
    assert quiet_at(p, utc_time(2026, 11, 22, 12, 0), "email")
    assert not quiet_at(p, utc_time(2026, 11, 22, 12, 0), "phone")  # other channels unaffected


def test_calamity_ignores_quiet_hours_and_the_own_cap_follows_the_basket_exemption():
    """A calamity notice passes inside quiet hours; a commercial contact does not."""
    p = parse(
        {
            "timezone": "UTC",
            "quiet": {"email": {"start": "00:00", "end": "23:59"}},
            "monthly_cap_points": 0,
        },
        RULES,
    )
    now = utc_time(2026, 11, 23, 12, 0)
    kw = dict(channel="email", used_tenths=0, cost_tenths=200, now=now)
    assert check_contact(p, type="calamity", cap_exempt=True, **kw).deny is None
    assert check_contact(p, type="commercial", cap_exempt=False, **kw).deny is (
        DenyReason.CONTACT_QUIET_HOURS
    )
    off = utc_time(2026, 11, 23, 23, 59, 30)
    assert check_contact(p, type="commercial", cap_exempt=False, **{**kw, "now": off}).deny is (
        DenyReason.CONTACT_CAP_REACHED
    )


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": "Europe/Berlin", "quiet": {"pager": {"days": ["sun"]}}}, "quiet"),
        (
            {"timezone": "Europe/Berlin", "quiet": {"sms": {"start": "25:00", "end": "07:00"}}},
            "quiet.sms.start",
        ),
        ({"timezone": "Europe/Berlin", "quiet": {"sms": {"start": "22:00"}}}, "quiet.sms"),
        (
            {"timezone": "Europe/Berlin", "quiet": {"sms": {"start": "22:00", "end": "22:00"}}},
            "quiet.sms",
        ),
        ({"timezone": "Europe/Berlin", "quiet": {"sms": {"days": ["someday"]}}}, "quiet.sms.days"),
        (
            {"timezone": "Europe/Berlin", "preferred_channels": {"spam": "email"}},
            "preferred_channels",
        ),
        (
            {"timezone": "Europe/Berlin", "preferred_channels": {"service": "pigeon"}},
            "preferred_channels.service",
        ),
        ({"timezone": "Europe/Berlin", "monthly_cap_points": 25.1}, "monthly_cap_points"),
        ({"timezone": "Europe/Berlin", "monthly_cap_points": -1}, "monthly_cap_points"),
        ({"timezone": "Europe/Berlin", "monthly_cap_points": 1.25}, "monthly_cap_points"),
    ],
)
def test_bad_preferences_are_rejected_naming_the_part(raw, key):
    """Each malformed part is named in the error, without echoing the value."""
    with pytest.raises(InvalidInput) as err:
        parse(raw, RULES)
    assert key in err.value.errors
    assert "passwd" not in json.dumps(err.value.errors)


# ---------------------------------------------------------------------------- pure: the cap


@hsettings(max_examples=300, deadline=None)
@given(cap=st.integers(min_value=0, max_value=400).map(lambda n: n / 10))
def test_a_cap_is_accepted_exactly_when_it_does_not_exceed_the_basket(cap):
    """Any own cap up to the basket is stored as given; any cap above it is refused."""
    raw = {"timezone": "Europe/Berlin", "monthly_cap_points": cap}
    if round(cap * 10) <= RULES.basket_tenths:
        assert parse(raw, RULES).monthly_cap_tenths == round(cap * 10)
    else:
        with pytest.raises(InvalidInput):
            parse(raw, RULES)


@hsettings(max_examples=300, deadline=None)
@given(
    cap_tenths=st.integers(min_value=0, max_value=1000),
    basket_tenths=st.integers(min_value=10, max_value=500),
    overdraft=st.sampled_from([0, 100]),
    costs=st.lists(st.sampled_from([20, 30, 40, 50, 60, 100, 150, 200, 300]), max_size=30),
)
def test_the_own_cap_only_ever_lowers_what_a_month_can_hold(
    cap_tenths, basket_tenths, overdraft, costs
):
    """Whatever the cap (even one above a later-lowered basket), a month with it spends no
    more than the basket allows and accepts no contact the basket alone would refuse."""
    prefs = Preferences("UTC", monthly_cap_tenths=cap_tenths)
    now = utc_time(2026, 11, 23, 12, 0)
    used_with = used_without = 0
    for cost in costs:
        basket_ok = used_with + cost <= basket_tenths + overdraft
        verdict = check_contact(
            prefs,
            channel="email",
            type="commercial",
            cap_exempt=False,
            used_tenths=used_with,
            cost_tenths=cost,
            now=now,
        )
        if basket_ok and verdict.deny is None:
            used_with += cost
        if used_without + cost <= basket_tenths + overdraft:
            used_without += cost
    assert used_with <= min(cap_tenths, basket_tenths + overdraft)
    assert used_with <= used_without or used_with <= cap_tenths
