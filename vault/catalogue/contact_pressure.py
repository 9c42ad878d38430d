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
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.subjects.decision import Deny, DenyReason
from vault.errors import InvalidInput
from vault.catalogue.purposes import Channel, CommunicationType, PolicyError, load_catalogue
from vault.storage.tables import contact_budgets, contacts

TYPES = tuple(t.value for t in CommunicationType)
CHANNELS = tuple(c.value for c in Channel)
_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


#: Who may claim a priority above `normal` or announce a calamity when the rules name
#: nobody: the clients allowed the purpose for safety and recall notices.
DEFAULT_GRANT_PURPOSES = frozenset({"incident.notice"})
#: Fewest distinct known subjects an audience dry run answers for (`vault.bulk.dry_run`).
DEFAULT_DRY_RUN_MIN_AUDIENCE = 10


@dataclass(frozen=True, slots=True)
class Grant:
    """Who may use something the basket does not stop: API clients by name, or every
    client allowed one of `purposes`. Priorities are granted, not claimed."""

    clients: frozenset[str]
    purposes: frozenset[str]

    def allows(self, client: str, client_purposes: frozenset[str]) -> bool:
        return client in self.clients or not self.purposes.isdisjoint(client_purposes)


@dataclass(frozen=True, slots=True)
class Priority:
    name: str
    overdraft_tenths: int
    unlimited: bool
    #: None: everyone may use it (only `normal`).
    grant: Grant | None = None


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
    #: Who may announce a contact of type `calamity` (it passes a full basket and starts
    #: the cool-down that blocks everybody else's contacts).
    calamity_grant: Grant = Grant(frozenset(), DEFAULT_GRANT_PURPOSES)
    #: An audience dry run needs this many distinct known subjects, and buckets with fewer
    #: members are not shown (`vault.bulk.dry_run`).
    dry_run_min_audience: int = DEFAULT_DRY_RUN_MIN_AUDIENCE

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

    def grant_denial(
        self, *, client: str, client_purposes: frozenset[str], type: str, priority: str
    ) -> Deny | None:
        """Deny a contact whose type or priority the client was not granted (None: fine).
        Values must be valid (`validate_contact`); an unknown priority is denied."""
        if type == CommunicationType.CALAMITY.value and not self.calamity_grant.allows(
            client, client_purposes
        ):
            return Deny(DenyReason.CONTACT_TYPE_NOT_GRANTED)
        prio = self.priorities.get(priority)
        if prio is None or not (prio.grant is None or prio.grant.allows(client, client_purposes)):
            return Deny(DenyReason.CONTACT_PRIORITY_NOT_GRANTED)
        return None


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


def check_grant(
    ctx: Any,
    client: str,
    client_purposes: frozenset[str],
    contact: ContactSpec | None,
    checked: Deny | tuple[str, ...],
) -> Deny | tuple[str, ...]:
    """`checked` (a purpose check's result), or a `Deny` when the resolved `contact`'s type
    or priority is not granted to the client: priorities are granted, not claimed (used by
    the lookup, the batch, the dry run and recorded contacts alike)."""
    if contact is None or isinstance(checked, Deny):
        return checked
    assert contact.type is not None
    rules: PressureRules = ctx.pressure_rules
    denial = rules.grant_denial(
        client=client, client_purposes=client_purposes, type=contact.type,
        priority=contact.priority,
    )  # fmt: skip
    return denial or checked


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


_CLIENT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")  # as vault.clients names them
_PURPOSE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_GRANT_KEYS = frozenset({"granted_clients", "granted_purposes"})


def _parse_grant(
    raw: dict[str, Any], where: str, known_purposes: Collection[str] | None
) -> Grant | str:
    """The grant of a [priority.<name>] or [calamity] table, or what is wrong with it.
    Without either key: the clients allowed `incident.notice` (DEFAULT_GRANT_PURPOSES)."""
    if not _GRANT_KEYS & set(raw):
        return Grant(frozenset(), DEFAULT_GRANT_PURPOSES)
    clients = raw.get("granted_clients", [])
    purposes = raw.get("granted_purposes", [])
    if not isinstance(clients, list) or not all(
        isinstance(c, str) and _CLIENT_RE.match(c) for c in clients
    ):
        return f"{where}: granted_clients must list API client names"
    if not isinstance(purposes, list) or not all(
        isinstance(p, str) and _PURPOSE_RE.match(p) for p in purposes
    ):
        return f"{where}: granted_purposes must list purpose ids"
    unknown = sorted(set(purposes) - set(known_purposes)) if known_purposes is not None else []
    if unknown:
        return f"{where}: granted_purposes names unknown purpose(s) {unknown}"
    return Grant(frozenset(clients), frozenset(purposes))


def parse_rules(
    text: str,
    source: str = "contact-pressure.toml",
    known_purposes: Collection[str] | None = None,
) -> PressureRules:
    """Parse and validate the rules; raises `PolicyError` naming source and line.
    `known_purposes` (the catalogue's ids), when given, must hold every granted purpose."""
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
        "brand", "priority", "calamity", "dry_run_min_audience",
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
        if set(raw) - {"overdraft_points", "unlimited", *_GRANT_KEYS}:
            raise fail(pattern, f"priority '{pname}': unknown key(s)")
        overdraft = raw.get("overdraft_points", 0)
        unlimited = raw.get("unlimited", False)
        if not _number(overdraft) or overdraft < 0:
            raise fail(pattern, f"priority '{pname}': overdraft_points must be >= 0")
        if not isinstance(unlimited, bool):
            raise fail(pattern, f"priority '{pname}': unlimited must be true or false")
        grant: Grant | str | None = None
        if pname == "normal":
            if _GRANT_KEYS & set(raw):
                raise fail(pattern, "priority 'normal' is every client's: no granted_* keys")
        else:
            grant = _parse_grant(raw, f"priority '{pname}'", known_purposes)
            if isinstance(grant, str):
                raise fail(pattern, grant)
        priorities[pname] = Priority(pname, round(overdraft * 10), unlimited, grant)

    raw_calamity = doc.get("calamity", {})
    calamity_pattern = r"^\s*\[calamity\]"
    if not isinstance(raw_calamity, dict) or set(raw_calamity) - _GRANT_KEYS:
        raise fail(calamity_pattern, "[calamity] takes only granted_clients and granted_purposes")
    calamity_grant = _parse_grant(raw_calamity, "calamity", known_purposes)
    if isinstance(calamity_grant, str):
        raise fail(calamity_pattern, calamity_grant)

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
        calamity_grant=calamity_grant,
        dry_run_min_audience=min_audience,
    )


def load_rules(policies_dir: Path) -> PressureRules:
    """The rules of `policies_dir`; granted purposes are checked against the purpose
    catalogue beside them (a typo would silently grant nobody)."""
    path = policies_dir / "contact-pressure.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read contact-pressure rules: {exc.strerror}") from exc
    return parse_rules(text, str(path), set(load_catalogue(policies_dir).purposes))


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
        from vault.outreach import followups

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
    from vault.outreach import preferences

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
    client_purposes: frozenset[str],
    *,
    subject_id: str,
    spec: ContactSpec,
    purpose_id: str,
) -> Reservation:
    """Record a contact made without a lookup, under the checks a lookup makes: the purpose
    must be the client's (`check_request`), the contact must fit it, its type and priority
    must be granted to the client, and the subject's basis and status decide (the lookup's
    `_judge`); then its points are reserved (`reserve`). Every outcome is audited in the
    same transaction.

    Why all of that: a recorded contact spends the customer's basket and a calamity blocks
    every other client for the cool-down, so recording one is as consequential as the
    lookup it replaces. Raises `InvalidInput`, `LookupNotFound` (unknown subject, the
    lookup's 404) or `LookupDenied` with the reason; both after their event committed.
    """
    from vault.audit import events as audit
    from vault.audit.events import AuditAction, Decision
    from vault.subjects.decision import Allow, check_request
    from vault.subjects.lookup import (
        LookupDenied,
        LookupNotFound,
        _judge,
        _safe_id,
        _subject_with_bases,
        deny_message,
    )

    purpose = ctx.catalogue.get(purpose_id)
    checked = check_request(purpose, purpose_id, client_purposes, None)
    # Known values always (422 for garbage); the fit to the purpose only for a purpose
    # the client may use, so a refused purpose is a 403 on record rather than a hint.
    spec = spec.resolve(ctx, None if isinstance(checked, Deny) else purpose)
    assert spec.channel is not None and spec.type is not None
    checked = check_grant(ctx, actor.id, client_purposes, spec, checked)
    now = ctx.clock.now()
    outcome: Reservation | Deny
    async with ctx.transaction() as conn:
        if isinstance(checked, Deny):
            outcome = checked
        else:
            rows = (
                await conn.execute(
                    _subject_with_bases("subject_id", ()),
                    {"purpose": purpose_id, "ident": subject_id},
                )
            ).mappings().all()
            verdict, _ = _judge(rows, purpose, checked, subject_id, now)
            outcome = verdict if not isinstance(verdict, Allow) else await reserve(
                conn, ctx, subject_id=subject_id, channel=spec.channel, type=spec.type,
                brand=spec.brand, priority=spec.priority, now=now, purpose=purpose_id,
                touchpoint=spec.touchpoint, client=actor.id, request_id=actor.request_id,
                followup=spec.followup,
            )  # fmt: skip
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.CONTACT_RECORD,
            decision=Decision.ALLOW if isinstance(outcome, Reservation) else Decision.DENY,
            subject_id=_safe_id(subject_id),
            # An unknown purpose string is client input and could carry anything.
            purpose=purpose_id if purpose is not None else "<unknown>",
            reason=outcome.reason if isinstance(outcome, Deny) else None,
            detail={"contact": _record_detail(spec, outcome)},
        )
    if isinstance(outcome, Reservation):
        return outcome
    if outcome.reason is DenyReason.SUBJECT_NOT_FOUND:
        raise LookupNotFound("no subject matches the identifier")
    raise LookupDenied(outcome.reason, deny_message(outcome.reason))


def _record_detail(spec: ContactSpec, outcome: Reservation | Deny) -> dict[str, object]:
    """The recorded contact as the audit trail keeps it (validated values only)."""
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
    return detail
