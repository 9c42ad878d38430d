"""The basket: spending a customer's monthly contact points, one outbound contact at a time.

`reserve` runs in the caller's transaction (a lookup's, a batch chunk's, a recorded
contact's): it locks the subject's counter row for the basket month, checks the calamity
cool-down, the basket and the customer's own preferences, and either records the contact
and adds its points, or returns a `Deny`. The row lock (PostgreSQL) or the serialised
write transaction (SQLite, `BEGIN IMMEDIATE`) makes the check-and-add atomic, so
concurrent contacts never overspend. A contact that keeps an agreed follow-up is decided
by the follow-up's window instead and costs nothing (`use_followup`).

`ContactSpec` is a contact as a client announces it. It is what the subjects area's lookup
and batch take as an `OutboundContact` (`vault.subjects.outbound`): the lookup sits below
this area and reserves through that interface, never by importing it. Which types and
priorities a client may announce is granted by the rules, not claimed (`check_grant`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.access.lookup import LookupDenied, LookupNotFound, deny_message, judge_subject
from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.catalogue.contact_pressure import DEFAULT_GRANT_PURPOSES, PressureRules, fit_contact
from vault.catalogue.purposes import CommunicationType, Purpose
from vault.errors import InvariantViolation
from vault.outreach import bookings, preferences
from vault.outreach.followups import FollowupStatus, is_valid_id
from vault.storage.dialect import insert_ignoring_conflict
from vault.storage.outreach_tables import contact_budgets, contacts, followups
from vault.storage.ports import TransactionReads
from vault.storage.rows import canonical_id
from vault.subjects.decision import Allow, Deny, DenyReason, check_contact, check_request

if TYPE_CHECKING:
    from vault.context import VaultContext


#: The namespace of contact ids derived from a retry token (`contact_id_for`).
_RETRIED_CONTACTS = uuid.UUID("6f1d3c2a-8b4e-5a7f-9c01-2d3e4f5a6b7c")


def contact_id_for(retry_token: str, subject_id: str) -> str:
    """The id of the contact a request with this retry token reserves for this subject: the
    same on every retry, so a retried lookup finds its first reservation instead of paying
    again (a name-based UUID, not a secret: the token is already a digest bound to the
    client)."""
    return str(uuid.uuid5(_RETRIED_CONTACTS, f"{retry_token}:{subject_id}"))


@dataclass(frozen=True, slots=True)
class ContactSpec:
    """An outbound contact as a client names it; channel and type default to the
    purpose's (and must match it when given)."""

    brand: str
    channel: str | None = None
    type: str | None = None
    priority: str = "normal"
    touchpoint: str | None = None
    #: An agreed follow-up (vault.outreach.followups) this contact keeps: inside its
    #: window it is allowed without counting against the basket.
    followup: str | None = None
    #: A contact the customer started (an inbound call, a reply), only ever recorded
    #: (`record_contact`), never announced by a lookup: 0 points, no basket checks.
    inbound: bool = False
    #: The request's retry token (`vault.admin.idempotency.retry_token`, from its
    #: `Idempotency-Key`): a retried request reserves under the same contact ids, so it
    #: finds its first reservations instead of paying twice.
    retry_token: str | None = None
    #: A booked campaign (vault.campaigns) this contact is sent for: it uses the points the
    #: booking holds instead of reserving anew (`vault.outreach.bookings.use_booking`).
    campaign: str | None = None

    def resolve(self, ctx: VaultContext, purpose: Purpose | None) -> ContactSpec:
        """Fill channel and type from the purpose, check consistency and known values
        (`fit_contact`); raises `InvalidInput`."""
        channel, type = fit_contact(
            ctx.pressure_rules, ctx.touchpoints, purpose, brand=self.brand,
            channel=self.channel, type=self.type, priority=self.priority,
            touchpoint=self.touchpoint,
        )  # fmt: skip
        return ContactSpec(
            self.brand, channel, type, self.priority, self.touchpoint, self.followup,
            self.inbound, self.retry_token, self.campaign,
        )  # fmt: skip

    def check_grant(
        self,
        ctx: VaultContext,
        client: str,
        client_purposes: frozenset[str],
        checked: Deny | tuple[str, ...],
    ) -> Deny | tuple[str, ...]:
        """`check_grant` for this (resolved) contact."""
        return check_grant(ctx, client, client_purposes, self, checked)

    async def reserve(
        self,
        conn: AsyncConnection,
        ctx: VaultContext,
        *,
        subject_id: str,
        purpose_id: str,
        actor: Actor,
        now: datetime,
        with_followup: bool = True,
    ) -> Reservation | Deny:
        """`reserve` this (resolved) contact for one subject, made by `actor`, in the
        caller's transaction; the follow-up it names only `with_followup` (a batch never
        keeps one: a follow-up is for one customer). Always outbound: a lookup that
        reveals data for a contact reserves it, whatever `inbound` says."""
        if self.channel is None or self.type is None:
            raise InvariantViolation("self.channel or self.type is unset")
        return await reserve(
            conn, ctx, subject_id=subject_id, channel=self.channel, type=self.type,
            brand=self.brand, priority=self.priority, now=now, purpose=purpose_id,
            touchpoint=self.touchpoint, client=actor.id, request_id=actor.request_id,
            followup=self.followup if with_followup else None, campaign=self.campaign,
            contact_id=(
                contact_id_for(self.retry_token, subject_id)
                if self.retry_token is not None
                else None
            ),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Reservation:
    """Points reserved for one contact; `used`/`basket` are this month's totals after it,
    of the pool it drew from: the basket, or the service reserve for a service message."""

    contact_id: str
    subject_id: str
    month: str
    points: float
    used: float
    basket: float
    #: The customer's preferred channel for the contact's type, when the purpose allows
    #: several channels and the preferred one is among them (vault.outreach.preferences).
    preferred_channel: str | None = None
    #: The channel used and charged: the customer's preferred one when the purpose allows
    #: it, else the announced one (None for a follow-up or an inbound contact).
    channel: str | None = None


def grant_denial(
    rules: PressureRules,
    *,
    client: str,
    client_purposes: frozenset[str],
    type: str,
    priority: str,
) -> Deny | None:
    """Deny a contact whose type or priority the client was not granted (None: fine).
    Values must be valid (`PressureRules.validate_contact`); an unknown priority is
    denied, and an unlimited one (`critical`) needs a client allowed `incident.notice`
    besides its grant."""
    if type == CommunicationType.CALAMITY.value and not rules.calamity_grant.allows(
        client, client_purposes
    ):
        return Deny(DenyReason.CONTACT_TYPE_NOT_GRANTED)
    prio = rules.priorities.get(priority)
    if prio is None or not (prio.grant is None or prio.grant.allows(client, client_purposes)):
        return Deny(DenyReason.CONTACT_PRIORITY_NOT_GRANTED)
    if prio.unlimited and not DEFAULT_GRANT_PURPOSES <= client_purposes:
        # A priority that passes every basket and cool-down is for safety and recall
        # notices only: a grant by client name alone is not enough (issue 21).
        return Deny(DenyReason.CONTACT_PRIORITY_NOT_GRANTED)
    return None


def check_grant(
    ctx: VaultContext,
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
    if contact.type is None:
        raise InvariantViolation("contact.type is unset")
    denial = grant_denial(
        ctx.pressure_rules, client=client, client_purposes=client_purposes, type=contact.type,
        priority=contact.priority,
    )  # fmt: skip
    return denial or checked


# ---------------------------------------------------------------------------- reserving


def _insert_budget_row(conn: AsyncConnection) -> Any:
    return insert_ignoring_conflict(conn, contact_budgets, ["subject_id", "month"])


def _switchable(rules: PressureRules, purpose: Purpose | None, channel: str) -> tuple[str, ...]:
    """The purpose's channels a customer's preference may switch `channel` to: only those
    that reveal contact data exactly when it does, since the lookup has already chosen
    what to reveal (a switch to social media must not carry out an address, nor one from
    it need data the answer lacks)."""
    if purpose is None:
        return ()
    bare = rules.reveals_nothing(channel)
    return tuple(c for c in purpose.channels if rules.reveals_nothing(c) == bare)


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
    inbound: bool = False,
    campaign: str | None = None,
    contact_id: str | None = None,
) -> Reservation | Deny:
    """Atomically reserve the points of one outbound contact in the caller's transaction,
    or deny it (`contact_blocked_by_calamity`, `contact_budget_exhausted`).

    `contact_id` names the contact to record (a retried request's, derived from its
    idempotency key): when that contact was recorded already, it is returned as it was
    reserved, and nothing is checked or charged again.

    On success a `contacts` row is written and the month's counter raised; the caller's
    commit makes both durable (a rollback releases the points). Raises `InvalidInput` for
    unknown channel, type, brand or priority. An `inbound` contact (the customer started
    it) is recorded at 0 points without any check: nobody was contacted.
    """
    rules: PressureRules = ctx.pressure_rules
    rules.validate_contact(channel=channel, type=type, brand=brand, priority=priority)
    if contact_id is not None:
        earlier = await _reserved_before(
            conn, ctx, contact_id=contact_id, subject_id=subject_id, purpose=purpose,
            followup=followup is not None,
        )  # fmt: skip
        if earlier is not None:
            return earlier
    if followup is not None:
        # A contact the customer asked for: its own window decides (not the basket, the
        # cool-down or quiet hours), it costs no points, and it can be used once.
        return await use_followup(
            conn, ctx, followup_id=followup, subject_id=subject_id, channel=channel,
            type=type, brand=brand, priority=priority, now=now, purpose=purpose,
            touchpoint=touchpoint, client=client, request_id=request_id,
            contact_id=contact_id,
        )  # fmt: skip
    if campaign is not None and not inbound:
        # A campaign's contact spends the points its booking holds (issue 21).
        made = await bookings.use_booking(
            conn, ctx, campaign_id=campaign, subject_id=subject_id, brand=brand, now=now,
            purpose=purpose, touchpoint=touchpoint, client=client, request_id=request_id,
            contact_id=contact_id,
        )  # fmt: skip
        if isinstance(made, Deny):
            return made
        return Reservation(
            made.contact_id, made.subject_id, made.month, made.points, made.used,
            made.basket, channel=made.channel,
        )  # fmt: skip
    prio = rules.priorities[priority]
    month = rules.month_of(now)
    if inbound:
        return await _record_inbound(
            conn, rules, subject_id=subject_id, month=month, now=now,
            values={
                "brand": brand, "channel": channel, "type": type, "priority": priority,
                "touchpoint": touchpoint, "purpose": purpose, "client": client,
                "request_id": request_id,
            },
        )  # fmt: skip
    cost = rules.cost_tenths(type, channel)

    # Make sure the counter row exists, then lock it: every reservation for this subject
    # and month queues here, so the checks below see all committed contacts.
    await conn.execute(
        _insert_budget_row(conn),
        {"subject_id": subject_id, "month": month, "used_tenths": 0, "updated_at": now},
    )
    used, booked = (
        await conn.execute(
            select(contact_budgets.c.used_tenths, contact_budgets.c.booked_tenths)
            .where(contact_budgets.c.subject_id == subject_id, contact_budgets.c.month == month)
            .with_for_update()
        )
    ).one()

    if await bookings.in_calamity_cooldown(
        conn, rules, subject_id=subject_id, type=type, unlimited=prio.unlimited, now=now
    ):
        return Deny(DenyReason.CONTACT_BLOCKED_BY_CALAMITY)

    # The customer's preferred channel for this type, when the purpose allows it, is the
    # channel used and charged (issue 21): reporting it while charging another was a lie.
    prefs = await preferences.load(conn, subject_id)
    known = ctx.catalogue.get(purpose) if purpose is not None else None
    allowed = _switchable(rules, known, channel)
    preferred = prefs.preferred_for(type, allowed) if prefs is not None else None
    if preferred is not None and preferred != channel:
        channel = preferred
        cost = rules.cost_tenths(type, channel)

    # Service messages draw from a reserve of their own when the rules keep one: what
    # marketing spent of the basket never blocks them, and they never fill it.
    in_reserve = (
        type == CommunicationType.SERVICE.value and rules.service_reserve_tenths is not None
    )
    pool = await _service_used(conn, subject_id, month) if in_reserve else used
    # Outside a booking only points nobody booked may be spent (issue 21): what campaigns
    # booked for this month counts as used here.
    held = 0 if in_reserve else booked
    if not prio.unlimited and type not in rules.basket_exempt_types:
        if pool + held + cost > rules.limit_tenths(type) + prio.overdraft_tenths:
            return Deny(DenyReason.CONTACT_BUDGET_EXHAUSTED)

    # The customer's own preferences (quiet hours, own cap) on top of the company rules.
    verdict = preferences.check_contact(
        prefs,
        channel=channel,
        type=type,
        cap_exempt=prio.unlimited or type in rules.basket_exempt_types,
        used_tenths=pool + held,
        cost_tenths=cost,
        now=now,
        allowed_channels=allowed,
    )
    if verdict.deny is not None:
        return Deny(verdict.deny)

    if in_reserve:
        new_used = pool + cost
    else:
        new_used = (
            await conn.execute(
                update(contact_budgets)
                .where(contact_budgets.c.subject_id == subject_id, contact_budgets.c.month == month)
                .values(used_tenths=contact_budgets.c.used_tenths + cost, updated_at=now)
                .returning(contact_budgets.c.used_tenths)
            )
        ).scalar_one()
    contact_id = contact_id or str(uuid.uuid4())
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
        basket=rules.limit_tenths(type) / 10,
        preferred_channel=verdict.preferred_channel,
        channel=channel,
    )


async def _reserved_before(
    conn: AsyncConnection,
    ctx: Any,
    *,
    contact_id: str,
    subject_id: str,
    purpose: str | None,
    followup: bool,
) -> Reservation | None:
    """The reservation a first try of this request made (`reserve`'s `contact_id`), as that
    try answered it, with this month's totals as they are now; None if there is none."""
    row = (
        await conn.execute(
            select(contacts).where(contacts.c.id == contact_id, contacts.c.subject_id == subject_id)
        )
    ).one_or_none()
    if row is None:
        return None
    rules: PressureRules = ctx.pressure_rules
    in_reserve = (
        row.type == CommunicationType.SERVICE.value and rules.service_reserve_tenths is not None
    )
    if in_reserve and not followup:
        used = await _service_used(conn, subject_id, row.month)
    else:
        used = (
            await conn.execute(
                select(contact_budgets.c.used_tenths).where(
                    contact_budgets.c.subject_id == subject_id,
                    contact_budgets.c.month == row.month,
                )
            )
        ).scalar_one_or_none() or 0
    if followup:  # as `use_followup` answers: 0 points, no channel
        return Reservation(
            contact_id=contact_id, subject_id=subject_id, month=row.month, points=0.0,
            used=used / 10, basket=rules.basket_points,
        )  # fmt: skip
    prefs = await preferences.load(conn, subject_id)
    known = ctx.catalogue.get(purpose) if purpose is not None else None
    allowed = _switchable(rules, known, row.channel)
    return Reservation(
        contact_id=contact_id,
        subject_id=subject_id,
        month=row.month,
        points=row.points_tenths / 10,
        used=used / 10,
        basket=rules.limit_tenths(row.type) / 10,
        preferred_channel=prefs.preferred_for(row.type, allowed) if prefs is not None else None,
        channel=row.channel,
    )


async def _record_inbound(
    conn: AsyncConnection,
    rules: PressureRules,
    *,
    subject_id: str,
    month: str,
    now: datetime,
    values: dict[str, str | None],
) -> Reservation:
    """Record a contact the customer started: 0 points, the basket counter untouched."""
    contact_id = str(uuid.uuid4())
    await conn.execute(
        insert(contacts).values(
            id=contact_id, subject_id=subject_id, at=now, month=month, points_tenths=0,
            direction="inbound", **values,
        )
    )  # fmt: skip
    used = (
        await conn.execute(
            select(contact_budgets.c.used_tenths).where(
                contact_budgets.c.subject_id == subject_id, contact_budgets.c.month == month
            )
        )
    ).scalar_one_or_none()
    return Reservation(
        contact_id=contact_id,
        subject_id=subject_id,
        month=month,
        points=0.0,
        used=(used or 0) / 10,
        basket=rules.basket_points,
    )


async def _service_used(conn: AsyncConnection, subject_id: str, month: str) -> int:
    """Tenths of the service reserve used this month: the service contacts recorded. Read
    under the counter row's lock `reserve` holds, so concurrent service messages queue."""
    total = (
        await conn.execute(
            select(func.coalesce(func.sum(contacts.c.points_tenths), 0)).where(
                contacts.c.subject_id == subject_id,
                contacts.c.month == month,
                contacts.c.type == CommunicationType.SERVICE.value,
            )
        )
    ).scalar_one()
    return int(total)


# ---------------------------------------------------------------------------- using


async def use_followup(
    conn: AsyncConnection,
    ctx: Any,
    *,
    followup_id: str,
    subject_id: str,
    channel: str,
    type: str,
    brand: str,
    priority: str,
    now: datetime,
    purpose: str | None,
    touchpoint: str | None,
    client: str | None,
    request_id: str | None,
    contact_id: str | None = None,
) -> Reservation | Deny:
    """Use a follow-up (`vault.outreach.followups`) for one outbound contact, in the
    caller's transaction (called by `reserve`): a `Reservation` of 0 points that leaves the
    basket counter alone, or `Deny` (`followup_not_in_window`, `followup_not_usable`).
    Audited either way.

    The follow-up is used once: a guarded `UPDATE ... WHERE status = 'open'` turns it
    `kept`, so of two parallel lookups exactly one wins (PostgreSQL re-checks the row after
    the first commits; SQLite serialises writers)."""
    rules = ctx.pressure_rules
    month = rules.month_of(now)
    contact_id = contact_id or str(uuid.uuid4())
    actor = Actor("client", client or "unknown", request_id)
    kept = 0
    if is_valid_id(followup_id):
        result = await conn.execute(
            update(followups)
            .where(
                followups.c.id == followup_id,
                followups.c.subject_id == subject_id,
                followups.c.status == FollowupStatus.OPEN.value,
                followups.c.purpose == purpose,
                followups.c.channel == channel,
                followups.c.due_from <= now,
                followups.c.due_until > now,
            )
            .values(
                status=FollowupStatus.KEPT.value,
                closed_at=now,
                closed_by=actor.label,
                contact_id=contact_id,
            )
        )
        kept = result.rowcount
    safe_id = followup_id if is_valid_id(followup_id) else None
    if kept != 1:
        reason = await _why_not(conn, safe_id, subject_id, channel, purpose, now)
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.FOLLOWUP_USE,
            decision=Decision.DENY,
            subject_id=subject_id,
            purpose=purpose,
            reason=reason,
            detail={"followup": {"id": safe_id, "channel": channel, "type": type}},
        )
        return Deny(reason)
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
            points_tenths=0,
            touchpoint=touchpoint,
            purpose=purpose,
            client=client,
            request_id=request_id,
        )
    )
    used = (
        await conn.execute(
            select(contact_budgets.c.used_tenths).where(
                contact_budgets.c.subject_id == subject_id, contact_budgets.c.month == month
            )
        )
    ).scalar_one_or_none()
    await audit.record(
        conn,
        at=now,
        actor=actor,
        action=AuditAction.FOLLOWUP_USE,
        decision=Decision.ALLOW,
        subject_id=subject_id,
        purpose=purpose,
        detail={
            "followup": {"id": followup_id, "channel": channel, "type": type},
            "contact": {"id": contact_id, "points": 0},
        },
    )
    return Reservation(
        contact_id=contact_id,
        subject_id=subject_id,
        month=month,
        points=0.0,
        used=(used or 0) / 10,
        basket=rules.basket_points,
    )


async def _why_not(
    conn: AsyncConnection,
    followup_id: str | None,
    subject_id: str,
    channel: str,
    purpose: str | None,
    now: datetime,
) -> DenyReason:
    """Why a follow-up could not be used: outside its window, or not usable at all (unknown,
    someone else's, another purpose or channel, cancelled, closed by the CRM or already
    used). An unknown id and another subject's id give the same answer."""
    if followup_id is None:
        return DenyReason.FOLLOWUP_NOT_USABLE
    row = (await conn.execute(select(followups).where(followups.c.id == followup_id))).first()
    if (
        row is None
        or row.subject_id != subject_id
        or row.purpose != purpose
        or row.channel != channel
        or row.status in (FollowupStatus.KEPT, FollowupStatus.CANCELLED, FollowupStatus.CLOSED)
    ):
        return DenyReason.FOLLOWUP_NOT_USABLE
    return DenyReason.FOLLOWUP_NOT_IN_WINDOW


# ---------------------------------------------------------------------------- recording


async def record_contact(
    ctx: VaultContext,
    actor: Actor,
    client_purposes: frozenset[str],
    *,
    subject_id: str,
    spec: ContactSpec,
    purpose_id: str,
) -> Reservation:
    """Record a contact made without a lookup, under the checks a lookup makes: the purpose
    must be the client's (`check_request`), the contact must fit it, its type and priority
    must be granted to the client, and the subject's basis and status decide (the lookup's
    `judge_subject`); then its points are reserved (`reserve`). Every outcome is audited in the
    same transaction.

    Why all of that: a recorded contact spends the customer's basket and a calamity blocks
    every other client for the cool-down, so recording one is as consequential as the
    lookup it replaces. Raises `InvalidInput`, `LookupNotFound` (unknown subject, the
    lookup's 404) or `LookupDenied` with the reason; both after their event committed.
    """
    purpose = ctx.catalogue.get(purpose_id)
    checked = check_request(purpose, purpose_id, client_purposes, None)
    # Known values always (422 for garbage); the fit to the purpose only for a purpose
    # the client may use, so a refused purpose is a 403 on record rather than a hint.
    spec = spec.resolve(ctx, None if isinstance(checked, Deny) else purpose)
    if spec.channel is None or spec.type is None:
        raise InvariantViolation("spec.channel or spec.type is unset")
    checked = check_grant(ctx, actor.id, client_purposes, spec, checked)
    checked = check_contact(purpose, spec.brand, checked)
    now = ctx.clock.now()
    outcome: Reservation | Deny
    async with ctx.transaction() as conn:
        if isinstance(checked, Deny):
            outcome = checked
        else:
            if purpose is None:
                raise InvariantViolation("purpose is unset")
            # A brand-scoped consent limits what we send; a contact the customer started
            # (inbound) is recorded whatever brand they called.
            brand = None if spec.inbound else spec.brand
            verdict = await judge_subject(
                TransactionReads(conn), purpose, checked, subject_id, now, brand
            )
            outcome = verdict if not isinstance(verdict, Allow) else await reserve(
                conn, ctx, subject_id=subject_id, channel=spec.channel, type=spec.type,
                brand=spec.brand, priority=spec.priority, now=now, purpose=purpose_id,
                touchpoint=spec.touchpoint, client=actor.id, request_id=actor.request_id,
                followup=spec.followup, inbound=spec.inbound,
            )  # fmt: skip
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.CONTACT_RECORD,
            decision=Decision.ALLOW if isinstance(outcome, Reservation) else Decision.DENY,
            subject_id=canonical_id(subject_id),
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
        "direction": "inbound" if spec.inbound else "outbound",
    }
    if isinstance(outcome, Reservation):
        detail["id"] = outcome.contact_id
        detail["points"] = outcome.points
    return detail
