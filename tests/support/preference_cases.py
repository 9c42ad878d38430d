"""The policies, rules and helpers the contact-preference tests
(tests/vault/outreach/test_preferences*.py, test_purpose_channels.py) share."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from vault.audit.events import Actor
from vault.bases.consents import Evidence
from vault.catalogue.contact_pressure import parse_rules
from vault.outreach.preferences import Preferences, parse

POLICIES = Path(__file__).resolve().parents[2] / "policies"
RULES = parse_rules((POLICIES / "contact-pressure.toml").read_text(encoding="utf-8"))
LOOKUP = Actor("client", "shop")
EVIDENCE = Evidence(
    touchpoint="hotline.inbound",
    method="recorded_call",
    notice_version="prefs-2026-11",
    language="de",
)
ALL_PURPOSES = frozenset({"order.delivery", "incident.notice", "offers.sms"})


def utc_time(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def quiet_prefs(tz: str, channel: str = "phone", **spec) -> Preferences:
    return parse({"timezone": tz, "quiet": {channel: spec}}, RULES)


def quiet_at(prefs: Preferences, when: datetime, channel: str = "phone") -> bool:
    return prefs.quiet_now(channel, when)
