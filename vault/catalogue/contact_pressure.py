"""The contact-pressure rules: one monthly basket of contact points per customer, across
all brands, and who may pass it.

Rules come from `policies/contact-pressure.toml`, validated at start like the purpose
catalogue (a bad file stops the start with a `PolicyError` naming the line): basket size
and time zone, points per communication type, channel factors, brands, priorities and the
calamity cool-down, and who is granted the priorities and calamities that pass a full
basket. `fit_contact` checks one announced contact against them and its purpose. Spending
the basket is the outreach area's (`vault.outreach.basket`).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeGuard
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vault.catalogue.brands import Brand as Brand
from vault.catalogue.brands import parse_brands
from vault.catalogue.channels import ChannelSpec, parse_channels
from vault.catalogue.grants import DEFAULT_GRANT_PURPOSES as DEFAULT_GRANT_PURPOSES
from vault.catalogue.grants import GRANT_KEYS, parse_grant
from vault.catalogue.grants import Grant as Grant
from vault.catalogue.purposes import (
    CommunicationType,
    Purpose,
    PurposeCatalogue,
    load_catalogue,
)
from vault.catalogue.source import PolicyError, line_of, parse_toml, read_file
from vault.catalogue.touchpoints import TouchpointCatalogue
from vault.errors import InvalidInput, InvariantViolation

TYPES = tuple(t.value for t in CommunicationType)
_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


#: Fewest distinct known subjects an audience dry run answers for (`vault.access.dry_run.dry_run`).
DEFAULT_DRY_RUN_MIN_AUDIENCE = 10
#: Smallest count the `marketing` role's campaign reports show as a number (k); fewer is
#: shown as "< k", so no report singles out a customer (issue 21).
DEFAULT_REPORT_MIN_COUNT = 10


@dataclass(frozen=True, slots=True)
class Priority:
    name: str
    overdraft_tenths: int
    unlimited: bool
    #: None: everyone may use it (only `normal`).
    grant: Grant | None = None


@dataclass(frozen=True, slots=True)
class PressureRules:
    version: str
    timezone: str
    basket_tenths: int
    cooldown: timedelta
    cooldown_exempt_types: frozenset[str]
    basket_exempt_types: frozenset[str]
    points: dict[str, int]
    channel_factors: dict[str, float]
    brands: dict[str, Brand]
    priorities: dict[str, Priority]
    #: Who may announce a contact of type `calamity` (it passes a full basket and starts
    #: the cool-down that blocks everybody else's contacts).
    calamity_grant: Grant = Grant(frozenset(), DEFAULT_GRANT_PURPOSES)
    #: An audience dry run needs this many distinct known subjects, and buckets with fewer
    #: members are not shown (`vault.access.dry_run.dry_run`).
    dry_run_min_audience: int = DEFAULT_DRY_RUN_MIN_AUDIENCE
    #: Tenths of a point per month that service messages draw from instead of the basket,
    #: so marketing's use of the basket never blocks a delivery notice; None: service
    #: messages share the basket.
    service_reserve_tenths: int | None = None
    #: k: counts below it are shown as "< k" in marketing reports (`vault.campaigns.masking`).
    report_min_count: int = DEFAULT_REPORT_MIN_COUNT
    #: Every channel (the built-in four, then the declared ones) with its factor, fields
    #: and names (`vault.catalogue.channels`); `channel_factors` holds the same factors.
    channels: dict[str, ChannelSpec] = field(default_factory=dict)

    def channel_name(self, channel: str, language: str) -> str:
        """A declared channel's name in `language`; "" for a built-in or unknown one."""
        spec = self.channels.get(channel)
        return spec.name(language) if spec is not None else ""

    def reveals_nothing(self, channel: str | None) -> bool:
        """Whether a contact on `channel` needs no stored contact field (social media):
        a lookup announcing one then reveals none."""
        spec = self.channels.get(channel) if channel is not None else None
        return spec is not None and not spec.reveals

    def precedence(self, priority: str) -> int:
        """Arbitration level of a priority: 0 is served first. Unlimited priorities come
        first, then by overdraft (more overdraft, more important), then by name."""
        ordered = sorted(
            self.priorities.values(), key=lambda p: (not p.unlimited, -p.overdraft_tenths, p.name)
        )
        return [p.name for p in ordered].index(priority)

    def limit_tenths(self, type: str) -> int:
        """What a contact of `type` may use per month at normal priority: the service
        reserve for service messages (when configured), else the basket."""
        if type == CommunicationType.SERVICE.value and self.service_reserve_tenths is not None:
            return self.service_reserve_tenths
        return self.basket_tenths

    @property
    def basket_points(self) -> float:
        return self.basket_tenths / 10

    def cost_tenths(self, type: str, channel: str) -> int:
        """Points of one contact, in tenths: points per type times channel factor."""
        return round(self.points[type] * self.channel_factors[channel] * 10)

    def month_of(self, now: datetime) -> str:
        """The basket month (YYYY-MM) of an instant, in the configured time zone."""
        return now.astimezone(ZoneInfo(self.timezone)).strftime("%Y-%m")

    def month_bounds(self, month: str) -> tuple[datetime, datetime] | None:
        """The instants [start, end) of a basket month (YYYY-MM) in UTC, as stored instants
        are compared (SQLite compares text); None for a month the calendar cannot hold in
        UTC (year 0, January of year 1 east of UTC, December 9999), in which nothing falls.
        """
        year, mon = int(month[:4]), int(month[5:7])
        zone = ZoneInfo(self.timezone)
        try:
            start = datetime(year, mon, 1, tzinfo=zone)
            end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=zone)
            return start.astimezone(UTC), end.astimezone(UTC)
        except (ValueError, OverflowError):
            return None

    def validate_contact(self, *, channel: str, type: str, brand: str, priority: str) -> None:
        """Raise `InvalidInput` naming each unknown value."""
        errors: dict[str, str] = {}
        if channel not in self.channel_factors:
            errors["contact.channel"] = "must be one of " + ", ".join(self.channel_factors)
        if type not in self.points:
            errors["contact.type"] = "must be one of " + ", ".join(self.points)
        if brand not in self.brands:
            errors["contact.brand"] = "must be one of " + ", ".join(self.brands)
        if priority not in self.priorities:
            errors["contact.priority"] = "must be one of " + ", ".join(self.priorities)
        if errors:
            raise InvalidInput("the contact names unknown values", errors)


def fit_contact(
    rules: PressureRules,
    touchpoints: TouchpointCatalogue,
    purpose: Purpose | None,
    *,
    brand: str,
    channel: str | None,
    type: str | None,
    priority: str,
    touchpoint: str | None,
) -> tuple[str, str]:
    """The channel and type of an announced contact: from the purpose where not given, and
    checked against it (given ones must be the purpose's), the touchpoint catalogue and the
    rules' known values. Raises `InvalidInput` naming each `contact.*` that does not fit."""
    errors: dict[str, str] = {}
    if purpose is not None:
        if channel is None:
            channel = purpose.channel
        elif channel not in purpose.channels:
            errors["contact.channel"] = "the purpose is for channel(s) " + ", ".join(
                f"'{c}'" for c in purpose.channels
            )
        if type is None:
            type = purpose.communication_type.value
        elif type != purpose.communication_type.value:
            errors["contact.type"] = (
                f"the purpose is for communication type '{purpose.communication_type.value}'"
            )
    if channel is None:
        errors.setdefault("contact.channel", "is required")
    if type is None:
        errors.setdefault("contact.type", "is required")
    if touchpoint is not None and touchpoint not in touchpoints:
        errors["contact.touchpoint"] = "is not in the touchpoint catalogue"
    if errors:
        raise InvalidInput("the contact does not fit", errors)
    if channel is None or type is None:
        raise InvariantViolation("channel or type is unset")
    rules.validate_contact(channel=channel, type=type, brand=brand, priority=priority)
    return channel, type


# ---------------------------------------------------------------------------- loading


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_rules(
    text: str,
    source: str = "contact-pressure.toml",
    known_purposes: Collection[str] | None = None,
    catalogue: PurposeCatalogue | None = None,
) -> PressureRules:
    """Parse and validate the rules; raises `PolicyError` naming source and line.
    `known_purposes` (the catalogue's ids), when given, must hold every granted purpose;
    with `catalogue`, every channel of every purpose must be usable at normal priority in
    an empty month (`never_passing`), the line named being the channel's factor."""
    doc = parse_toml(text, source)

    def fail(pattern: str, msg: str) -> PolicyError:
        return PolicyError(f"{source}: line {line_of(text, pattern) or 1}: {msg}")

    def key_line(key: str) -> str:
        return r"^\s*" + re.escape(key) + r"\s*="

    allowed = {
        "version", "timezone", "basket_points", "calamity_cooldown_hours",
        "cooldown_exempt_types", "basket_exempt_types", "points", "channel_factors",
        "brand", "priority", "calamity", "dry_run_min_audience", "service_reserve_points",
        "channel",
        "report_min_count",
    }  # fmt: skip
    extra = set(doc) - allowed
    if extra:
        name = sorted(extra)[0]
        raise fail(key_line(name) + r"|\[+" + re.escape(name), f"unknown key '{name}'")
    version = doc.get("version")
    if not isinstance(version, str) or not version:
        raise PolicyError(f"{source}: line 1: top-level 'version' (a string) is required")
    tz = doc.get("timezone", "UTC")
    try:
        ZoneInfo(tz) if isinstance(tz, str) else None
    except (ZoneInfoNotFoundError, ValueError):
        tz = None
    if not isinstance(tz, str):
        raise fail(key_line("timezone"), "timezone must be an IANA time zone, e.g. 'UTC'")
    basket = doc.get("basket_points")
    if not _number(basket) or basket <= 0:
        raise fail(key_line("basket_points"), "basket_points must be a positive number")
    hours = doc.get("calamity_cooldown_hours", 0)
    if not _number(hours) or hours < 0:
        raise fail(key_line("calamity_cooldown_hours"), "calamity_cooldown_hours must be >= 0")
    min_audience = doc.get("dry_run_min_audience", DEFAULT_DRY_RUN_MIN_AUDIENCE)
    if not isinstance(min_audience, int) or isinstance(min_audience, bool) or min_audience < 2:
        # 1 would answer for one person again (security finding 3).
        raise fail(key_line("dry_run_min_audience"), "dry_run_min_audience must be an integer >= 2")
    min_count = doc.get("report_min_count", DEFAULT_REPORT_MIN_COUNT)
    if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 2:
        raise fail(key_line("report_min_count"), "report_min_count must be an integer >= 2")

    reserve = doc.get("service_reserve_points")
    if reserve is not None and (not _number(reserve) or reserve <= 0):
        raise fail(
            key_line("service_reserve_points"), "service_reserve_points must be a positive number"
        )

    points = doc.get("points")
    if not isinstance(points, dict):
        raise PolicyError(f"{source}: a [points] table is required")
    for t in TYPES:
        if t not in points:
            raise fail(r"^\s*\[points\]", f"points: missing communication type '{t}'")
    for t, v in points.items():
        if t not in TYPES:
            raise fail(key_line(t), f"points: unknown communication type '{t}'")
        if not _number(v) or v < 0:
            raise fail(key_line(t), f"points.{t} must be a number >= 0")
    channels = parse_channels(doc, text, source)

    type_sets: dict[str, frozenset[str]] = {}
    for key in ("cooldown_exempt_types", "basket_exempt_types"):
        value = doc.get(key, [])
        if not isinstance(value, list) or any(v not in TYPES for v in value):
            raise fail(key_line(key), f"{key} must list communication types of {TYPES}")
        type_sets[key] = frozenset(value)

    brands = parse_brands(doc, text, source)

    priorities: dict[str, Priority] = {}
    raw_prios = doc.get("priority")
    if not isinstance(raw_prios, dict) or "normal" not in raw_prios:
        raise PolicyError(f"{source}: a [priority.normal] table is required")
    for pname, raw in raw_prios.items():
        pattern = r"^\s*\[priority\." + re.escape(pname) + r"\]"
        if not isinstance(raw, dict) or not _ID_RE.match(pname):
            raise fail(pattern, f"priority '{pname}' must be a [priority.<word>] table")
        if set(raw) - {"overdraft_points", "unlimited", *GRANT_KEYS}:
            raise fail(pattern, f"priority '{pname}': unknown key(s)")
        overdraft = raw.get("overdraft_points", 0)
        unlimited = raw.get("unlimited", False)
        if not _number(overdraft) or overdraft < 0:
            raise fail(pattern, f"priority '{pname}': overdraft_points must be >= 0")
        if not isinstance(unlimited, bool):
            raise fail(pattern, f"priority '{pname}': unlimited must be true or false")
        grant: Grant | None = None
        if pname == "normal":
            if GRANT_KEYS & set(raw):
                raise fail(pattern, "priority 'normal' is every client's: no granted_* keys")
        else:
            parsed = parse_grant(raw, f"priority '{pname}'", known_purposes)
            if isinstance(parsed, str):
                raise fail(pattern, parsed)
            grant = parsed
        priorities[pname] = Priority(pname, round(overdraft * 10), unlimited, grant)

    raw_calamity = doc.get("calamity", {})
    calamity_pattern = r"^\s*\[calamity\]"
    if not isinstance(raw_calamity, dict) or set(raw_calamity) - GRANT_KEYS:
        raise fail(calamity_pattern, "[calamity] takes only granted_clients and granted_purposes")
    calamity_grant = parse_grant(raw_calamity, "calamity", known_purposes)
    if isinstance(calamity_grant, str):
        raise fail(calamity_pattern, calamity_grant)

    rules = PressureRules(
        version=version,
        timezone=tz,
        basket_tenths=round(basket * 10),
        cooldown=timedelta(hours=hours),
        cooldown_exempt_types=type_sets["cooldown_exempt_types"],
        basket_exempt_types=type_sets["basket_exempt_types"],
        points={t: points[t] for t in TYPES},
        channel_factors={c: spec.factor for c, spec in channels.items()},
        brands=brands,
        priorities=priorities,
        calamity_grant=calamity_grant,
        channels=channels,
        dry_run_min_audience=min_audience,
        report_min_count=min_count,
        service_reserve_tenths=round(reserve * 10) if reserve is not None else None,
    )
    if catalogue is not None:
        for scoped in catalogue.purposes.values():
            undeclared = [c for c in scoped.channels if c not in channels]
            if undeclared:
                raise fail(
                    r"^\s*\[channel_factors\]",
                    f"purpose '{scoped.id}' names channel '{undeclared[0]}', which is not "
                    "declared here (add a [channel.<id>] table)",
                )
            unknown_brands = sorted(set(scoped.brands) - set(brands))
            if unknown_brands:
                raise fail(
                    r"^\s*\[\[brand\]\]",
                    f"purpose '{scoped.id}' names brand(s) {unknown_brands} not declared here",
                )
        unusable = never_passing(rules, catalogue)
        if unusable:
            purpose, channel, cost = unusable[0]
            ctype = catalogue.purposes[purpose].communication_type.value
            raise fail(
                key_line(channel) + r"|^\s*\[channel\." + re.escape(channel) + r"\]",
                f"purpose '{purpose}' can never pass at normal priority: {ctype} by "
                f"{channel} costs {cost / 10:g} points, more than the "
                f"{rules.limit_tenths(ctype) / 10:g} a month allows",
            )
    return rules


def never_passing(rules: PressureRules, catalogue: PurposeCatalogue) -> list[tuple[str, str, int]]:
    """(purpose, channel, cost in tenths) for every channel of a catalogue purpose whose one
    contact costs more than its type may use in a month at normal priority: such a purpose
    could never be used, so the rules are refused at start (issue 21). Types that pass a
    full basket (`basket_exempt_types`) are never stopped by it."""
    out: list[tuple[str, str, int]] = []
    for purpose in catalogue.purposes.values():
        ctype = purpose.communication_type.value
        if ctype in rules.basket_exempt_types:
            continue
        for channel in purpose.channels:
            cost = rules.cost_tenths(ctype, channel)
            if cost > rules.limit_tenths(ctype):
                out.append((purpose.id, channel, cost))
    return out


def load_rules(policies_dir: Path, catalogue: PurposeCatalogue | None = None) -> PressureRules:
    """The rules of `policies_dir`; granted purposes are checked against the purpose
    catalogue beside them (`catalogue`, when already loaded), since a typo would silently
    grant nobody."""
    text, path = read_file(policies_dir, "contact-pressure.toml", "contact-pressure rules")
    purposes = catalogue if catalogue is not None else load_catalogue(policies_dir)
    return parse_rules(text, path, set(purposes.purposes), purposes)
