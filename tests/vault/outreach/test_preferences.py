"""Customer contact preferences: quiet hours and days across time zones and daylight-saving
changes, the own cap that only ever lowers the basket, preferred-channel answers, calamity
exemptions, history and audit of every change, and bad input changing nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.support.factories import WRITER
from tests.support.privacy import audit_rows
from tests.support.self_service import seed_subject
from vault.access import lookup
from vault.access.lookup import LookupDenied
from vault.audit.events import Actor
from vault.bases import consents
from vault.bases.consents import Evidence
from vault.catalogue.channels import declared_channels
from vault.catalogue.contact_pressure import parse_rules
from vault.errors import InvalidInput
from vault.outreach import preference_changes
from vault.outreach.basket import ContactSpec, Reservation, reserve
from vault.outreach.preferences import Preferences, check_contact, parse
from vault.storage.outreach_tables import (
    contact_budgets,
    contacts,
)
from vault.subjects.decision import Deny, DenyReason

POLICIES = Path(__file__).resolve().parents[3] / "policies"
RULES = parse_rules((POLICIES / "contact-pressure.toml").read_text(encoding="utf-8"))
LOOKUP = Actor("client", "shop")
EVIDENCE = Evidence(
    touchpoint="hotline.inbound",
    method="recorded_call",
    notice_version="prefs-2026-11",
    language="de",
)
ALL_PURPOSES = frozenset({"order.delivery", "incident.notice", "offers.sms"})


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _quiet(tz: str, channel: str = "phone", **spec) -> Preferences:
    return parse({"timezone": tz, "quiet": {channel: spec}}, RULES)


def _at(prefs: Preferences, when: datetime, channel: str = "phone") -> bool:
    return prefs.quiet_now(channel, when)


# ---------------------------------------------------------------------------- pure: time


def test_quiet_hours_spanning_midnight_cover_both_sides_of_it():
    """A 22:00-07:00 window is quiet late in the evening and early in the morning, not by day."""
    p = _quiet("Europe/Berlin", start="22:00", end="07:00")
    # 2026-11-23 is winter time (CET = UTC+1).
    assert _at(p, _utc(2026, 11, 23, 21, 0))  # 22:00 local: start is inclusive
    assert _at(p, _utc(2026, 11, 23, 23, 30))  # 00:30 local
    assert _at(p, _utc(2026, 11, 24, 5, 59))  # 06:59 local
    assert not _at(p, _utc(2026, 11, 24, 6, 0))  # 07:00 local: end is exclusive
    assert not _at(p, _utc(2026, 11, 23, 20, 59))  # 21:59 local
    assert not _at(p, _utc(2026, 11, 23, 12, 0))


def test_berlin_march_change_moves_the_window_with_the_wall_clock():
    """On 29 March 2026 Berlin skips 02:00-03:00: the window follows local time, so the same
    UTC instant is quiet the day before and not after the change."""
    p = _quiet("Europe/Berlin", start="22:00", end="07:00")
    assert _at(p, _utc(2026, 3, 28, 5, 30))  # 06:30 CET
    assert not _at(p, _utc(2026, 3, 29, 5, 30))  # 07:30 CEST
    assert _at(p, _utc(2026, 3, 29, 4, 59))  # 06:59 CEST
    # A window inside the skipped hour's neighbourhood: 02:30-03:30 is quiet from 03:00 CEST.
    gap = _quiet("Europe/Berlin", start="02:30", end="03:30")
    assert not _at(gap, _utc(2026, 3, 29, 0, 59))  # 01:59 CET
    assert _at(gap, _utc(2026, 3, 29, 1, 0))  # 03:00 CEST (02:xx never happens)
    assert _at(gap, _utc(2026, 3, 29, 1, 29))  # 03:29 CEST
    assert not _at(gap, _utc(2026, 3, 29, 1, 30))  # 03:30 CEST


def test_berlin_october_change_keeps_both_repeated_hours_quiet():
    """On 25 October 2026 Berlin repeats 02:00-03:00: a 02:00-02:45 window is quiet in both."""
    p = _quiet("Europe/Berlin", start="02:00", end="02:45")
    assert _at(p, _utc(2026, 10, 25, 0, 15))  # 02:15 CEST, first pass
    assert _at(p, _utc(2026, 10, 25, 1, 15))  # 02:15 CET, second pass
    assert not _at(p, _utc(2026, 10, 25, 0, 50))  # 02:50 CEST
    assert not _at(p, _utc(2026, 10, 25, 1, 50))  # 02:50 CET
    night = _quiet("Europe/Berlin", start="22:00", end="07:00")
    assert _at(night, _utc(2026, 10, 25, 5, 30))  # 06:30 CET
    assert not _at(night, _utc(2026, 10, 24, 5, 30))  # 07:30 CEST the day before


def test_new_york_and_tokyo_use_their_own_clocks():
    """The same window means different UTC instants in New York (with its own DST dates) and
    in Tokyo (no DST)."""
    ny = _quiet("America/New_York", start="21:00", end="08:00")
    assert _at(ny, _utc(2026, 11, 23, 12, 30))  # 07:30 EST
    assert not _at(ny, _utc(2026, 11, 23, 13, 30))  # 08:30 EST
    assert not _at(ny, _utc(2026, 7, 1, 12, 30))  # 08:30 EDT
    # New York changes on 8 March, weeks before Berlin: 12:30 UTC is 07:30 EST / 08:30 EDT.
    assert _at(ny, _utc(2026, 3, 7, 12, 30))
    assert not _at(ny, _utc(2026, 3, 9, 12, 30))
    tokyo = _quiet("Asia/Tokyo", start="22:00", end="07:00")
    assert _at(tokyo, _utc(2026, 11, 23, 14, 0))  # 23:00 JST
    assert not _at(tokyo, _utc(2026, 11, 23, 23, 0))  # 08:00 JST
    assert _at(tokyo, _utc(2026, 7, 1, 14, 0))  # 23:00 JST in summer too


def test_quiet_days_are_calendar_days_in_the_customers_zone():
    """Sunday quiet in Berlin starts at local midnight, an hour before UTC's Sunday."""
    p = _quiet("Europe/Berlin", channel="email", days=["sun"])
    assert _at(p, _utc(2026, 11, 21, 23, 30), "email")  # Sun 00:30 Berlin, Sat in UTC
    assert not _at(p, _utc(2026, 11, 22, 23, 30), "email")  # Mon 00:30 Berlin, Sun in UTC
    assert _at(p, _utc(2026, 11, 22, 12, 0), "email")
    assert not _at(p, _utc(2026, 11, 22, 12, 0), "phone")  # other channels unaffected


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
    now = _utc(2026, 11, 23, 12, 0)
    kw = dict(channel="email", used_tenths=0, cost_tenths=200, now=now)
    assert check_contact(p, type="calamity", cap_exempt=True, **kw).deny is None
    assert check_contact(p, type="commercial", cap_exempt=False, **kw).deny is (
        DenyReason.CONTACT_QUIET_HOURS
    )
    off = _utc(2026, 11, 23, 23, 59, 30)
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
    now = _utc(2026, 11, 23, 12, 0)
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


# ---------------------------------------------------------------------------- storage


async def _subject(vault, seed: int = 7) -> str:
    sid, _ = await seed_subject(vault, seed)
    await consents.record_basis(vault, WRITER, sid, "incident.notice", reference="recall R-1")
    return sid


async def _set(vault, sid, raw, evidence=EVIDENCE, actor=WRITER, source="client"):
    return await preference_changes.set_preferences(
        vault, actor, sid, raw, source=source, evidence=evidence
    )


async def _lookup(vault, sid, purpose="order.delivery", **contact):
    spec = ContactSpec(brand="tresor", **contact)
    return await lookup.lookup(
        vault,
        LOOKUP,
        ALL_PURPOSES,
        purpose_id=purpose,
        identifier_kind="subject_id",
        identifier=sid,
        contact=spec,
    )


# ---------------------------------------------------------------------------- enforcement


async def test_lookup_inside_quiet_hours_is_denied_and_outside_allowed(vault, clock):
    """An SMS delivery notice at 23:00 Berlin is denied contact_quiet_hours (audited), at
    09:00 allowed; nothing is reserved for the denied one."""
    sid = await _subject(vault)
    await _set(
        vault,
        sid,
        {"timezone": "Europe/Berlin", "quiet": {"sms": {"start": "22:00", "end": "07:00"}}},
    )
    clock.set(_utc(2026, 11, 23, 22, 0))  # 23:00 CET
    with pytest.raises(LookupDenied) as err:
        await _lookup(vault, sid, channel="sms")
    assert err.value.reason == DenyReason.CONTACT_QUIET_HOURS
    last = (await audit_rows(vault))[-1]
    assert last["decision"] == "deny" and last["reason"] == "contact_quiet_hours"
    async with vault.engine.connect() as conn:
        used = (
            await conn.execute(select(func.coalesce(func.sum(contact_budgets.c.used_tenths), 0)))
        ).scalar_one()
    assert used == 0
    # The letter channel has no quiet hours; the same instant passes.
    assert (await _lookup(vault, sid, channel="letter")).contact is not None
    clock.set(_utc(2026, 11, 24, 8, 0))  # 09:00 CET
    assert (await _lookup(vault, sid, channel="sms")).contact is not None


async def test_calamity_notice_passes_quiet_hours_and_own_cap(vault, clock):
    """A recall warning reaches the customer inside quiet hours and with an own cap of 0."""
    sid = await _subject(vault)
    await _set(
        vault,
        sid,
        {
            "timezone": "UTC",
            "monthly_cap_points": 0,
            "quiet": {"email": {"start": "00:00", "end": "23:59"}},
        },
    )
    clock.set(_utc(2026, 11, 23, 12, 0))
    result = await _lookup(vault, sid, purpose="incident.notice")
    assert result.contact is not None and result.contact.points == 20
    # A service letter passes the company cool-down (exempt type) but not the own cap of 0.
    with pytest.raises(LookupDenied) as err:
        await _lookup(vault, sid, channel="letter")
    assert err.value.reason == DenyReason.CONTACT_CAP_REACHED


async def test_own_cap_denies_before_the_basket_would(vault):
    """With an own cap of 5 points, a second SMS notice (4 + 4) is denied contact_cap_reached
    although the company basket of 25 would still hold it."""
    sid = await _subject(vault)
    await _set(vault, sid, {"timezone": "Europe/Berlin", "monthly_cap_points": 5})
    first = await _lookup(vault, sid, channel="sms")
    assert first.contact is not None and first.contact.used == 4
    with pytest.raises(LookupDenied) as err:
        await _lookup(vault, sid, channel="sms")
    assert err.value.reason == DenyReason.CONTACT_CAP_REACHED
    # Without the cap, the same contact fits the basket.
    await _set(vault, sid, {"timezone": "Europe/Berlin"})
    assert (await _lookup(vault, sid, channel="sms")).contact.used == 8


async def test_own_cap_never_lets_a_contact_pass_that_the_basket_refuses(vault):
    """A full basket still denies contact_budget_exhausted, whatever the own cap."""
    sid = await _subject(vault)
    await _set(vault, sid, {"timezone": "UTC", "monthly_cap_points": 25})
    async with vault.transaction() as conn:
        for _ in range(2):
            assert isinstance(
                await reserve(
                    conn,
                    vault,
                    subject_id=sid,
                    channel="email",
                    type="commercial",
                    brand="tresor",
                    priority="normal",
                    now=vault.clock.now(),
                ),
                Reservation,
            )
        outcome = await reserve(
            conn,
            vault,
            subject_id=sid,
            channel="email",
            type="commercial",
            brand="tresor",
            priority="normal",
            now=vault.clock.now(),
        )
    assert isinstance(outcome, Deny) and outcome.reason is DenyReason.CONTACT_BUDGET_EXHAUSTED


async def test_preferred_channel_is_answered_when_the_purpose_allows_several(vault):
    """order.delivery allows letter, SMS and phone: the customer's preferred service channel
    comes back; a one-channel purpose and an unset type carry none."""
    sid = await _subject(vault)
    await _set(
        vault,
        sid,
        {
            "timezone": "Europe/Berlin",
            "preferred_channels": {"service": "sms", "commercial": "email"},
        },
    )
    result = await _lookup(vault, sid)
    assert result.contact.preferred_channel == "sms"
    sms = await _lookup(vault, sid, purpose="offers.sms")  # one channel only
    assert sms.contact.preferred_channel is None
    calamity = await _lookup(vault, sid, purpose="incident.notice")  # no calamity preference
    assert calamity.contact.preferred_channel is None


async def test_the_preferred_channel_is_the_channel_charged(vault):
    """A delivery notice announced by letter (3 points) to a customer preferring SMS is sent,
    charged and recorded as SMS (4 points), also when the client names the letter; a
    preference the purpose does not allow leaves the announced channel."""
    sid = await _subject(vault)
    prefs = {"service": "sms", "commercial": "email"}
    await _set(vault, sid, {"timezone": "Europe/Berlin", "preferred_channels": prefs})
    for announced in (None, "letter"):
        got = (await _lookup(vault, sid, channel=announced)).contact
        assert (got.channel, got.points, got.preferred_channel) == ("sms", 4, "sms")
    offer = (await _lookup(vault, sid, purpose="offers.sms")).contact  # SMS only
    assert (offer.channel, offer.points) == ("sms", 20)
    async with vault.engine.connect() as conn:
        stored = (
            await conn.execute(
                select(contacts.c.channel, contacts.c.points_tenths).order_by(contacts.c.at)
            )
        ).all()
    assert sorted(stored) == [("sms", 40), ("sms", 40), ("sms", 200)]


async def test_batch_lines_answer_the_preferred_channel_like_the_single_lookup(vault):
    """A batch with a contact names each customer's preferred channel on their line."""
    import json

    from vault.access import bulk

    sid, other = await _subject(vault, 7), await _subject(vault, 8)
    for s in (sid, other):
        await consents.record_basis(vault, WRITER, s, "order.delivery", reference="Auftrag")
    await _set(vault, sid, {"timezone": "Europe/Berlin", "preferred_channels": {"service": "sms"}})
    lines = []
    async for blob in bulk.resolve_batch(
        vault,
        LOOKUP,
        ALL_PURPOSES,
        purpose_id="order.delivery",
        identifier_kind="subject_id",
        identifiers=[sid, other],
        contact=ContactSpec(brand="tresor"),
    ):
        lines.extend(json.loads(x) for x in blob.decode().splitlines())
    assert lines[0]["preferred_channel"] == "sms" and "fields" in lines[0]
    assert "preferred_channel" not in lines[1] and "fields" in lines[1]


async def test_a_contact_may_name_any_channel_of_its_purpose_only(vault):
    """order.delivery accepts phone; e-mail is not among its channels and is rejected."""
    sid = await _subject(vault)
    assert (await _lookup(vault, sid, channel="phone")).contact.points == 5
    with pytest.raises(InvalidInput) as err:
        await _lookup(vault, sid, channel="email")
    assert "contact.channel" in err.value.errors


async def test_quiet_hours_follow_dst_at_lookup(vault, clock):
    """06:30 local is quiet under 22:00-07:00 both before and after the March change in
    Berlin, though the UTC instants differ by an hour."""
    sid = await _subject(vault)
    await _set(
        vault,
        sid,
        {"timezone": "Europe/Berlin", "quiet": {"phone": {"start": "22:00", "end": "07:00"}}},
    )
    for instant in (_utc(2026, 3, 28, 5, 30), _utc(2026, 3, 29, 4, 30)):
        clock.set(instant)
        with pytest.raises(LookupDenied) as err:
            await _lookup(vault, sid, channel="phone")
        assert err.value.reason == DenyReason.CONTACT_QUIET_HOURS
    clock.set(_utc(2026, 3, 29, 5, 30))  # 07:30 CEST
    assert (await _lookup(vault, sid, channel="phone")).contact is not None


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
