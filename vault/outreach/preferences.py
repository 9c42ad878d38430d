"""The customer's own contact preferences: how, when and how often they may be contacted.

Three kinds of preference, all per customer and across all brands:

* a **preferred channel** per communication type (e.g. commercial: e-mail). It does not
  forbid other channels; a lookup whose purpose allows several channels tells the client
  the preferred one (`preferred_channel` in the answer).
* **quiet hours and quiet days** per channel, in the customer's IANA time zone: a daily
  window ``start``-``end`` (``start > end`` spans midnight, e.g. 22:00-07:00) and whole
  weekdays. Times are wall-clock times in that zone, so they follow daylight-saving
  changes: a window 02:30-03:30 in Europe/Berlin is quiet from 03:00 on the day the clocks
  skip 02:00-03:00, and quiet for both 02:30s on the day they repeat.
* an **own monthly cap** in points, measured like the company basket (same points, same
  basket month). It can only ever lower the basket: a cap above the basket is rejected when
  set (`InvalidInput`; clamping would record something the customer never said), and the
  check at reservation applies the cap *in addition to* the basket, so even a cap left above
  a later-lowered basket can never let a contact through that the basket refuses.

Enforcement (`check_contact`, on the preferences `load` read) runs inside
`vault.outreach.basket.reserve`, after the company checks, in the same transaction and under
the same row lock; the preferred channel, when the purpose allows it, is the one charged.
Exemptions follow the company rules: calamity notices ignore quiet hours; the own cap
exempts exactly the contacts the basket exempts (`basket_exempt_types`, e.g. calamity, and
`unlimited` priorities), so a recall warning still reaches the customer. Quiet hours hold
for every other contact, also for `unlimited` priorities: the company may override its own
basket, not the customer's night.

This module holds what a preference is and how it decides: the values, `parse` (the
validation of a document), the stored row read back (`load`), and `check_contact`. How the
customer or a client changes them, with evidence and history, is
`vault.outreach.preference_changes`; the monthly counts are in `vault.outreach.report`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from functools import lru_cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.catalogue.purposes import CommunicationType
from vault.clock import as_utc
from vault.errors import InvalidInput, InvariantViolation
from vault.storage.outreach_tables import contact_preferences
from vault.subjects.decision import DenyReason

if TYPE_CHECKING:
    from vault.context import VaultContext

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TYPES = tuple(t.value for t in CommunicationType)
_TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    """The zone names of the pinned `tzdata` package, not the host's: the OpenAPI document
    lists them as an enum, so every machine must accept (and document) the same set, and a
    host's `localtime` link or stray files under /usr/share/zoneinfo are no zone names."""
    return frozenset(files("tzdata").joinpath("zones").read_text(encoding="utf-8").split())


def all_zone_names() -> list[str]:
    """Every zone name `valid_zone` accepts, sorted (the document's enum)."""
    return sorted(_zones())


def valid_zone(name: object) -> bool:
    """An IANA zone name the system knows (not a path, not `localtime`)."""
    if not isinstance(name, str) or not name or len(name) > 64:
        return False
    return name in _zones()


def zone_names() -> list[str]:
    """All valid zone names, sorted (for the privacy-centre form)."""
    regional = {z for z in _zones() if "/" in z and not z.startswith(("Etc/", "posix", "right"))}
    return sorted(regional | ({"UTC"} & _zones()))


# ---------------------------------------------------------------------------- the values


@dataclass(frozen=True, slots=True)
class QuietRule:
    """Quiet times of one channel: a daily window (`start` < `end`, or spanning midnight
    when `start` > `end`) and whole weekdays (0 = Monday)."""

    start: time | None = None
    end: time | None = None
    days: frozenset[int] = frozenset()

    def quiet_at(self, local: datetime) -> bool:
        """Whether the wall-clock time `local` (already in the customer's zone) is quiet."""
        if local.weekday() in self.days:
            return True
        if self.start is None or self.end is None:
            return False
        t = local.time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.strftime("%H:%M") if self.start else None,
            "end": self.end.strftime("%H:%M") if self.end else None,
            "days": [DAYS[d] for d in sorted(self.days)],
        }


@dataclass(frozen=True, slots=True)
class Preferences:
    timezone: str
    preferred_channels: dict[str, str] = field(default_factory=dict)
    quiet: dict[str, QuietRule] = field(default_factory=dict)
    #: In tenths of a point, like the basket; None = no own cap.
    monthly_cap_tenths: int | None = None
    version: int = 0
    updated_at: datetime | None = None

    @property
    def monthly_cap_points(self) -> float | None:
        return None if self.monthly_cap_tenths is None else self.monthly_cap_tenths / 10

    @property
    def is_set(self) -> bool:
        """Whether the customer states any preference at all (for the reports)."""
        return bool(self.preferred_channels or self.quiet or self.monthly_cap_tenths is not None)

    def quiet_now(self, channel: str, now: datetime) -> bool:
        rule = self.quiet.get(channel)
        if rule is None:
            return False
        return rule.quiet_at(now.astimezone(ZoneInfo(self.timezone)))

    def preferred_for(self, type: str, allowed: tuple[str, ...]) -> str | None:
        """The preferred channel for a type, if the purpose allows several and it is one."""
        preferred = self.preferred_channels.get(type)
        if preferred is None or len(allowed) < 2 or preferred not in allowed:
            return None
        return preferred

    def to_json(self) -> dict[str, Any]:
        """The canonical document (API answers and history rows)."""
        return {
            "timezone": self.timezone,
            "preferred_channels": dict(sorted(self.preferred_channels.items())),
            "quiet": {c: r.to_json() for c, r in sorted(self.quiet.items())},
            "monthly_cap_points": self.monthly_cap_points,
        }


def _parse_time(value: object, key: str, errors: dict[str, str]) -> time | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _TIME_RE.match(value):
        errors[key] = "must be a time HH:MM (00:00 to 23:59)"
        return None
    return time(int(value[:2]), int(value[3:]))


def parse(raw: Mapping[str, Any], rules: Any) -> Preferences:
    """Validate a preferences document against the contact-pressure rules; raises
    `InvalidInput` naming every bad part. Error texts never echo the input."""
    errors: dict[str, str] = {}
    unknown = set(raw) - {"timezone", "preferred_channels", "quiet", "monthly_cap_points"}
    if unknown:
        errors["preferences"] = (
            "unknown key(s): only timezone, preferred_channels, quiet, monthly_cap_points"
        )
    tz = raw.get("timezone")
    if not valid_zone(tz):
        errors["timezone"] = "must be an IANA time zone, e.g. Europe/Berlin"
    types, channels = tuple(rules.points), tuple(rules.channel_factors)

    preferred: dict[str, str] = {}
    raw_pref = raw.get("preferred_channels") or {}
    if not isinstance(raw_pref, Mapping):
        errors["preferred_channels"] = "must map communication types to channels"
    else:
        for t, c in raw_pref.items():
            if t not in types:
                errors["preferred_channels"] = "keys must be one of " + ", ".join(types)
            elif c not in channels:
                errors[f"preferred_channels.{t}"] = "must be one of " + ", ".join(channels)
            else:
                preferred[t] = c

    quiet: dict[str, QuietRule] = {}
    raw_quiet = raw.get("quiet") or {}
    if not isinstance(raw_quiet, Mapping):
        errors["quiet"] = "must map channels to quiet times"
    else:
        for c, spec in raw_quiet.items():
            if c not in channels:
                errors["quiet"] = "keys must be one of " + ", ".join(channels)
                continue
            if not isinstance(spec, Mapping) or set(spec) - {"start", "end", "days"}:
                errors[f"quiet.{c}"] = "must be an object with start, end and days"
                continue
            start = _parse_time(spec.get("start"), f"quiet.{c}.start", errors)
            end = _parse_time(spec.get("end"), f"quiet.{c}.end", errors)
            if (spec.get("start") is None) != (spec.get("end") is None):
                errors[f"quiet.{c}"] = "give both start and end, or neither"
            elif start is not None and start == end:
                errors[f"quiet.{c}"] = "start and end must differ (use days for whole days)"
            days = spec.get("days") or []
            if not isinstance(days, list) or any(d not in DAYS for d in days):
                errors[f"quiet.{c}.days"] = "must list days of " + ", ".join(DAYS)
                days = []
            rule = QuietRule(start, end, frozenset(DAYS.index(d) for d in days))
            if rule.start is not None or rule.days:
                quiet[c] = rule

    cap_tenths: int | None = None
    cap = raw.get("monthly_cap_points")
    if cap is not None:
        if not isinstance(cap, int | float) or isinstance(cap, bool) or cap != cap:
            errors["monthly_cap_points"] = "must be a number of points or null"
        elif cap < 0:
            errors["monthly_cap_points"] = "must not be negative"
        elif abs(cap * 10 - round(cap * 10)) > 1e-6:
            errors["monthly_cap_points"] = "may have at most one decimal"
        elif round(cap * 10) > rules.basket_tenths:
            errors["monthly_cap_points"] = (
                f"must not exceed the company basket of {rules.basket_points:g} points a "
                "month: an own cap can only lower it"
            )
        else:
            cap_tenths = round(cap * 10)
    if errors:
        raise InvalidInput("the contact preferences are invalid", errors)
    if not isinstance(tz, str):
        raise InvariantViolation("expected isinstance(tz, str)")
    return Preferences(tz, preferred, quiet, cap_tenths)


def from_row(row: Any) -> Preferences:
    """A stored `contact_preferences` row as `Preferences` (campaign forecasts read many)."""
    doc = {
        "timezone": row.timezone,
        "preferred_channels": json.loads(row.channels),
        "quiet": json.loads(row.quiet),
    }
    quiet = {
        c: QuietRule(
            time.fromisoformat(r["start"]) if r.get("start") else None,
            time.fromisoformat(r["end"]) if r.get("end") else None,
            frozenset(DAYS.index(d) for d in r.get("days", [])),
        )
        for c, r in doc["quiet"].items()
    }
    return Preferences(
        timezone=doc["timezone"],
        preferred_channels=dict(doc["preferred_channels"]),
        quiet=quiet,
        monthly_cap_tenths=row.monthly_cap_tenths,
        version=row.version,
        updated_at=as_utc(row.updated_at),
    )


async def load(conn: AsyncConnection, subject_id: str) -> Preferences | None:
    row = (
        await conn.execute(
            select(contact_preferences).where(contact_preferences.c.subject_id == subject_id)
        )
    ).first()
    return None if row is None else from_row(row)


async def display_zone(ctx: VaultContext, subject_id: str) -> str | None:
    """The time zone the subject chose in their preferences (None when never set), for
    showing them times. Not audited: a zone is no contact data, and the page that shows it
    audits its own read of the data it shows."""
    async with ctx.transaction() as conn:
        zone = (
            await conn.execute(
                select(contact_preferences.c.timezone).where(
                    contact_preferences.c.subject_id == subject_id
                )
            )
        ).scalar()
    return zone if valid_zone(zone) else None


# ---------------------------------------------------------------------------- enforcement


@dataclass(frozen=True, slots=True)
class Verdict:
    """The preference check of one outbound contact: a deny reason, or none, and the
    preferred channel to report."""

    deny: DenyReason | None = None
    preferred_channel: str | None = None


def check_contact(
    prefs: Preferences | None,
    *,
    channel: str,
    type: str,
    cap_exempt: bool,
    used_tenths: int,
    cost_tenths: int,
    now: datetime,
    allowed_channels: tuple[str, ...] = (),
) -> Verdict:
    """The pure preference decision (no I/O). Quiet hours hold for every type but calamity;
    the own cap holds for what the basket holds (`cap_exempt` is the basket's exemption)."""
    if prefs is None:
        return Verdict()
    preferred = prefs.preferred_for(type, allowed_channels)
    if type != CommunicationType.CALAMITY.value and prefs.quiet_now(channel, now):
        return Verdict(DenyReason.CONTACT_QUIET_HOURS, preferred)
    if (
        not cap_exempt
        and prefs.monthly_cap_tenths is not None
        and used_tenths + cost_tenths > prefs.monthly_cap_tenths
    ):
        return Verdict(DenyReason.CONTACT_CAP_REACHED, preferred)
    return Verdict(None, preferred)
