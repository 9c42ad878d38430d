"""Contact pressure: one monthly basket of contact points per customer, across all brands.

Rules come from `policies/contact-pressure.toml`, validated at start like the purpose
catalogue (a bad file stops the start with a message naming the line). `reserve` runs in
the caller's transaction: it locks the subject's counter row for the basket month, checks
the calamity cool-down and the basket, and either records the contact and adds its points,
or returns a `Deny`. The row lock (PostgreSQL) or the serialised write transaction (SQLite,
`BEGIN IMMEDIATE`) makes the check-and-add atomic, so concurrent contacts never overspend.
"""

from __future__ import annotations

import re
import tomllib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.decision import Deny, DenyReason
from vault.errors import InvalidInput
from vault.policies import Channel, CommunicationType, PolicyError
from vault.storage.tables import contact_budgets, contacts

TYPES = tuple(t.value for t in CommunicationType)
CHANNELS = tuple(c.value for c in Channel)
_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class Priority:
    name: str
    overdraft_tenths: int
    unlimited: bool


@dataclass(frozen=True, slots=True)
class Brand:
    id: str
    name_de: str
    name_en: str


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

    @property
    def basket_points(self) -> float:
        return self.basket_tenths / 10

    def cost_tenths(self, type: str, channel: str) -> int:
        """Points of one contact, in tenths: points per type times channel factor."""
        return round(self.points[type] * self.channel_factors[channel] * 10)

    def month_of(self, now: datetime) -> str:
        """The basket month (YYYY-MM) of an instant, in the configured time zone."""
        return now.astimezone(ZoneInfo(self.timezone)).strftime("%Y-%m")

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


@dataclass(frozen=True, slots=True)
class ContactSpec:
    """An outbound contact as a client names it; channel and type default to the
    purpose's (and must match it when given)."""

    brand: str
    channel: str | None = None
    type: str | None = None
    priority: str = "normal"
    touchpoint: str | None = None
    #: An agreed follow-up (vault.followups) this contact keeps: inside its window it is
    #: allowed without counting against the basket.
    followup: str | None = None

    def resolve(self, ctx: Any, purpose: Any) -> ContactSpec:
        """Fill channel and type from the purpose, check consistency and known values;
        raises `InvalidInput`."""
        errors: dict[str, str] = {}
        channel, type = self.channel, self.type
        if purpose is not None:
            if channel is None:
                channel = purpose.channel.value
            elif channel not in {c.value for c in purpose.channels}:
                errors["contact.channel"] = "the purpose is for channel(s) " + ", ".join(
                    f"'{c.value}'" for c in purpose.channels
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
        if self.touchpoint is not None and self.touchpoint not in ctx.touchpoints:
            errors["contact.touchpoint"] = "is not in the touchpoint catalogue"
        if errors:
            raise InvalidInput("the contact does not fit", errors)
        assert channel is not None and type is not None
        rules: PressureRules = ctx.pressure_rules
        rules.validate_contact(channel=channel, type=type, brand=self.brand, priority=self.priority)
        return ContactSpec(
            self.brand, channel, type, self.priority, self.touchpoint, self.followup
        )


@dataclass(frozen=True, slots=True)
class Reservation:
    """Points reserved for one contact; `used`/`basket` are this month's totals after it."""

    contact_id: str
    subject_id: str
    month: str
    points: float
    used: float
    basket: float
    #: The customer's preferred channel for the contact's type, when the purpose allows
    #: several channels and the preferred one is among them (vault.preferences).
    preferred_channel: str | None = None


# ---------------------------------------------------------------------------- loading


def _line_of(text: str, pattern: str) -> int:
    rx = re.compile(pattern)
    for n, line in enumerate(text.splitlines(), 1):
        if rx.search(line):
            return n
    return 1


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_rules(text: str, source: str = "contact-pressure.toml") -> PressureRules:
    """Parse and validate the rules; raises `PolicyError` naming source and line."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from exc

    def fail(pattern: str, msg: str) -> PolicyError:
        return PolicyError(f"{source}: line {_line_of(text, pattern)}: {msg}")

    def key_line(key: str) -> str:
        return r"^\s*" + re.escape(key) + r"\s*="

    allowed = {
        "version", "timezone", "basket_points", "calamity_cooldown_hours",
        "cooldown_exempt_types", "basket_exempt_types", "points", "channel_factors",
        "brand", "priority",
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
    factors = doc.get("channel_factors")
    if not isinstance(factors, dict):
        raise PolicyError(f"{source}: a [channel_factors] table is required")
    for c in CHANNELS:
        if c not in factors:
            raise fail(r"^\s*\[channel_factors\]", f"channel_factors: missing channel '{c}'")
    for c, v in factors.items():
        if c not in CHANNELS:
            raise fail(key_line(c), f"channel_factors: unknown channel '{c}'")
        if not _number(v) or v <= 0:
            raise fail(key_line(c), f"channel_factors.{c} must be a positive number")

    type_sets: dict[str, frozenset[str]] = {}
    for key in ("cooldown_exempt_types", "basket_exempt_types"):
        value = doc.get(key, [])
        if not isinstance(value, list) or any(v not in TYPES for v in value):
            raise fail(key_line(key), f"{key} must list communication types of {TYPES}")
        type_sets[key] = frozenset(value)

    brands: dict[str, Brand] = {}
    raw_brands = doc.get("brand")
    if not isinstance(raw_brands, list) or not raw_brands:
        raise PolicyError(f"{source}: at least one [[brand]] table is required")
    for index, raw in enumerate(raw_brands):
        bid = raw.get("id") if isinstance(raw, dict) else None
        pattern = (
            r"^\s*id\s*=\s*[\"']" + re.escape(bid) + r"[\"']"
            if isinstance(bid, str)
            else r"^\s*\[\[brand\]\]"
        )
        if not isinstance(bid, str) or not _ID_RE.match(bid):
            raise fail(pattern, f"brand {index + 1}: id must be a lower-case word")
        if set(raw) - {"id", "name"}:
            raise fail(pattern, f"brand '{bid}': unknown key(s) {sorted(set(raw) - {'id', 'name'})}")
        name = raw.get("name")
        if not isinstance(name, dict) or not all(
            isinstance(name.get(lang), str) and name[lang].strip() for lang in ("de", "en")
        ):
            raise fail(pattern, f"brand '{bid}': name.de and name.en are required")
        if bid in brands:
            raise fail(pattern, f"brand '{bid}': duplicate id")
        brands[bid] = Brand(bid, name["de"].strip(), name["en"].strip())

    priorities: dict[str, Priority] = {}
    raw_prios = doc.get("priority")
    if not isinstance(raw_prios, dict) or "normal" not in raw_prios:
        raise PolicyError(f"{source}: a [priority.normal] table is required")
    for pname, raw in raw_prios.items():
        pattern = r"^\s*\[priority\." + re.escape(pname) + r"\]"
        if not isinstance(raw, dict) or not _ID_RE.match(pname):
            raise fail(pattern, f"priority '{pname}' must be a [priority.<word>] table")
        if set(raw) - {"overdraft_points", "unlimited"}:
            raise fail(pattern, f"priority '{pname}': unknown key(s)")
        overdraft = raw.get("overdraft_points", 0)
        unlimited = raw.get("unlimited", False)
        if not _number(overdraft) or overdraft < 0:
            raise fail(pattern, f"priority '{pname}': overdraft_points must be >= 0")
        if not isinstance(unlimited, bool):
            raise fail(pattern, f"priority '{pname}': unlimited must be true or false")
        priorities[pname] = Priority(pname, round(overdraft * 10), unlimited)

    return PressureRules(
        version=version,
        timezone=tz,
        basket_tenths=round(basket * 10),
        cooldown=timedelta(hours=hours),
        cooldown_exempt_types=type_sets["cooldown_exempt_types"],
        basket_exempt_types=type_sets["basket_exempt_types"],
        points={t: points[t] for t in TYPES},
        channel_factors={c: float(factors[c]) for c in CHANNELS},
        brands=brands,
        priorities=priorities,
    )


def load_rules(policies_dir: Path) -> PressureRules:
    path = policies_dir / "contact-pressure.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read contact-pressure rules: {exc.strerror}") from exc
    return parse_rules(text, str(path))


# ---------------------------------------------------------------------------- reserving


def _insert_budget_row(dialect: str) -> Any:
    table = contact_budgets
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(
            index_elements=["subject_id", "month"]
        )
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=["subject_id", "month"])


async def reserve(
    conn: AsyncConnection,
    ctx: Any,
    *,
    subject_id: str,
    channel: str,
    type: str,
    brand: str,
    priority: str,
    now: datetime,
    purpose: str | None = None,
    touchpoint: str | None = None,
    client: str | None = None,
    request_id: str | None = None,
    followup: str | None = None,
) -> Reservation | Deny:
    """Atomically reserve the points of one outbound contact in the caller's transaction,
    or deny it (`contact_blocked_by_calamity`, `contact_budget_exhausted`).

    On success a `contacts` row is written and the month's counter raised; the caller's
    commit makes both durable (a rollback releases the points). Raises `InvalidInput` for
    unknown channel, type, brand or priority.
    """
    rules: PressureRules = ctx.pressure_rules
    rules.validate_contact(channel=channel, type=type, brand=brand, priority=priority)
    if followup is not None:
        # A contact the customer asked for: its own window decides (not the basket, the
        # cool-down or quiet hours), it costs no points, and it can be used once.
        from vault import followups

        return await followups.use(
            conn, ctx, followup_id=followup, subject_id=subject_id, channel=channel,
            type=type, brand=brand, priority=priority, now=now, purpose=purpose,
            touchpoint=touchpoint, client=client, request_id=request_id,
        )  # fmt: skip
    prio = rules.priorities[priority]
    month = rules.month_of(now)
    cost = rules.cost_tenths(type, channel)

    # Make sure the counter row exists, then lock it: every reservation for this subject
    # and month queues here, so the checks below see all committed contacts.
    await conn.execute(
        _insert_budget_row(conn.dialect.name),
        {"subject_id": subject_id, "month": month, "used_tenths": 0, "updated_at": now},
    )
    used = (
        await conn.execute(
            select(contact_budgets.c.used_tenths)
            .where(contact_budgets.c.subject_id == subject_id, contact_budgets.c.month == month)
            .with_for_update()
        )
    ).scalar_one()

    if (
        rules.cooldown
        and not prio.unlimited
        and type not in rules.cooldown_exempt_types
    ):
        last_calamity = (
            await conn.execute(
                select(func.count())
                .select_from(contacts)
                .where(
                    contacts.c.subject_id == subject_id,
                    contacts.c.type == CommunicationType.CALAMITY.value,
                    contacts.c.at > now - rules.cooldown,
                    contacts.c.at <= now,
                )
            )
        ).scalar_one()
        if last_calamity:
            return Deny(DenyReason.CONTACT_BLOCKED_BY_CALAMITY)

    if not prio.unlimited and type not in rules.basket_exempt_types:
        if used + cost > rules.basket_tenths + prio.overdraft_tenths:
            return Deny(DenyReason.CONTACT_BUDGET_EXHAUSTED)

    # The customer's own preferences (quiet hours, own cap) on top of the company rules.
    from vault import preferences

    verdict = await preferences.check_reservation(
        conn,
        ctx,
        subject_id=subject_id,
        channel=channel,
        type=type,
        purpose=purpose,
        cap_exempt=prio.unlimited or type in rules.basket_exempt_types,
        used_tenths=used,
        cost_tenths=cost,
        now=now,
    )
    if verdict.deny is not None:
        return Deny(verdict.deny)

    new_used = (
        await conn.execute(
            update(contact_budgets)
            .where(contact_budgets.c.subject_id == subject_id, contact_budgets.c.month == month)
            .values(used_tenths=contact_budgets.c.used_tenths + cost, updated_at=now)
            .returning(contact_budgets.c.used_tenths)
        )
    ).scalar_one()
    contact_id = str(uuid.uuid4())
    await conn.execute(
        insert(contacts).values(
            id=contact_id,
            subject_id=subject_id,
            at=now,
            month=month,
            brand=brand,
            channel=channel,
            type=type,
            priority=priority,
            points_tenths=cost,
            touchpoint=touchpoint,
            purpose=purpose,
            client=client,
            request_id=request_id,
        )
    )
    return Reservation(
        contact_id=contact_id,
        subject_id=subject_id,
        month=month,
        points=cost / 10,
        used=new_used / 10,
        basket=rules.basket_points,
        preferred_channel=verdict.preferred_channel,
    )


# ---------------------------------------------------------------------------- recording


async def record_contact(
    ctx: Any,
    actor: Any,
    *,
    subject_id: str,
    spec: ContactSpec,
    purpose: str | None = None,
) -> Reservation:
    """Record a contact made without a lookup: reserve its points like a lookup would, and
    audit the outcome in the same transaction. Raises `NotFound`, `InvalidInput`, or
    `AccessDenied` (committed denial event) with the reason."""
    from vault import audit
    from vault.audit import AuditAction, Decision
    from vault.errors import AccessDenied, NotFound
    from vault.storage.tables import subjects

    if purpose is not None and purpose not in ctx.catalogue:
        raise InvalidInput("unknown purpose", {"purpose": "is not in the purpose catalogue"})
    spec = spec.resolve(ctx, None)
    assert spec.channel is not None and spec.type is not None
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        status = (
            await conn.execute(select(subjects.c.status).where(subjects.c.id == subject_id))
        ).scalar_one_or_none()
        if status is None:
            raise NotFound("no such subject")
        outcome: Reservation | Deny
        if status == "erased":
            outcome = Deny(DenyReason.SUBJECT_ERASED)
        else:
            outcome = await reserve(
                conn,
                ctx,
                subject_id=subject_id,
                channel=spec.channel,
                type=spec.type,
                brand=spec.brand,
                priority=spec.priority,
                now=now,
                purpose=purpose,
                touchpoint=spec.touchpoint,
                client=actor.id,
                request_id=actor.request_id,
                followup=spec.followup,
            )
        detail: dict[str, object] = {
            "brand": spec.brand,
            "channel": spec.channel,
            "type": spec.type,
            "priority": spec.priority,
            "touchpoint": spec.touchpoint,
        }
        if isinstance(outcome, Reservation):
            detail["id"] = outcome.contact_id
            detail["points"] = outcome.points
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.CONTACT_RECORD,
            decision=Decision.ALLOW if isinstance(outcome, Reservation) else Decision.DENY,
            subject_id=subject_id,
            purpose=purpose,
            reason=outcome.reason if isinstance(outcome, Deny) else None,
            detail={"contact": detail},
        )
    if isinstance(outcome, Deny):
        from vault.lookup import deny_message

        raise AccessDenied(outcome.reason, deny_message(outcome.reason))
    return outcome
