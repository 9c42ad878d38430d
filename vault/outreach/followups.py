"""Agreed follow-ups: a contact the customer asked for ("call me back on Tuesday after
17:00 about my contract"), recorded by a writer client with its channel, purpose, due
window and the touchpoint where it was agreed.

Inside its window, a lookup or recorded contact that names the follow-up is allowed even
when the customer's basket is full, and does not count against it: the contact is recorded
with 0 points and the basket counter is not touched (`vault.outreach.basket.use_followup`,
which spends it). The follow-up is used once: a guarded `UPDATE ... WHERE status = 'open'`
in the caller's transaction turns it `kept`, so of two parallel lookups exactly one wins
(PostgreSQL re-checks the row after the first commits; SQLite serialises writers). Outside
its window, or when cancelled, already used, or for another subject, purpose or channel,
the contact is denied with a reason.

Statuses: `open`, `kept`, `cancelled` (by the customer), `missed` (the window passed
unused: derived at read time, and stored by the retention sweep), `closed` (by the CRM with
an outcome); the changes after creation are `vault.outreach.followup_changes`, the reads
`vault.outreach.followup_reads`. This module holds what a follow-up is and records one
(`create`). A follow-up
may name its `assignee` (a client or team name) so the reminder listing can be filtered.
There is no free text anywhere: `note` is a kind from `NOTE_KINDS`, because free text could
carry contact data. Every create, use (allowed or denied), cancel and miss is audited in the
transaction that makes it; reads by clients, the DPO and the customer are audited too.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import and_, insert, or_, select

from vault.audit import events as audit
from vault.audit.events import Actor, AuditAction, Decision
from vault.catalogue.contact_pressure import fit_contact
from vault.clock import as_utc
from vault.errors import AccessDenied, Conflict, InvalidInput, InvariantViolation, NotFound
from vault.storage.outreach_tables import followups
from vault.storage.rows import canonical_id
from vault.storage.tables import subjects
from vault.subjects.decision import DenyReason
from vault.subjects.integrity import audited_attempt


class FollowupStatus(StrEnum):
    OPEN = "open"
    KEPT = "kept"
    MISSED = "missed"
    CANCELLED = "cancelled"
    CLOSED = "closed"


#: What the contact is about, as a kind (never free text). Labels: api/i18n.py `fu_note_*`.
NOTE_KINDS = (
    "callback_requested",
    "contract_question",
    "order_question",
    "billing_question",
    "offer_requested",
    "complaint",
    "appointment",
)
#: How far ahead a follow-up may be agreed, and how long its window may be.
MAX_HORIZON = timedelta(days=366)
MAX_WINDOW = timedelta(days=31)
#: A window may start this much before "now" (clocks of clients differ a little).
CLOCK_SKEW = timedelta(minutes=5)
MAX_PAGE = 200
#: A client or team name (the shape of a client name): never free text.
ASSIGNEE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


@dataclass(frozen=True, slots=True)
class Followup:
    id: str
    subject_id: str
    purpose: str
    channel: str
    type: str
    brand: str
    touchpoint: str
    note: str | None
    due_from: datetime
    due_until: datetime
    #: The status in force now: an open follow-up past its window is `missed`.
    status: str
    created_at: datetime
    created_by: str
    closed_at: datetime | None
    contact_id: str | None
    assignee: str | None = None
    outcome: str | None = None

    @property
    def cancellable(self) -> bool:
        return self.status == FollowupStatus.OPEN


def effective_status(status: str, due_until: datetime, now: datetime) -> str:
    """An open follow-up whose window has passed is missed, whether or not the sweep ran."""
    if status == FollowupStatus.OPEN and now >= due_until:
        return FollowupStatus.MISSED.value
    return status


def missed_at(now: datetime) -> Any:
    """`effective_status` as SQL: the follow-ups that are missed at `now`, swept or not."""
    return or_(
        followups.c.status == FollowupStatus.MISSED.value,
        and_(followups.c.status == FollowupStatus.OPEN.value, followups.c.due_until <= now),
    )


def is_valid_id(value: str | None) -> bool:
    """A follow-up id exactly as stored (the rows are looked up by it unchanged)."""
    return value is not None and canonical_id(value) == value


def from_row(row: Any, now: datetime) -> Followup:
    due_until = as_utc(row.due_until)
    if due_until is None:
        raise InvariantViolation("due_until is unset")
    return Followup(
        id=row.id,
        subject_id=row.subject_id,
        purpose=row.purpose,
        channel=row.channel,
        type=row.type,
        brand=row.brand,
        touchpoint=row.touchpoint,
        note=row.note,
        due_from=as_utc(row.due_from),
        due_until=due_until,
        status=effective_status(row.status, due_until, now),
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        closed_at=as_utc(row.closed_at),
        contact_id=row.contact_id,
        assignee=row.assignee,
        outcome=row.outcome,
    )


# ---------------------------------------------------------------------------- creating


class _Contact(NamedTuple):
    """The contact a follow-up promises, fitted to its purpose (`fit_contact`)."""

    brand: str
    channel: str
    type: str


def validate_window(
    due_from: datetime | None, due_until: datetime | None, now: datetime, errors: dict[str, str]
) -> tuple[datetime, datetime] | None:
    if due_from is None or due_from.tzinfo is None:
        errors["due_from"] = "must be a date and time with a time zone"
    if due_until is None or due_until.tzinfo is None:
        errors["due_until"] = "must be a date and time with a time zone"
    if "due_from" in errors or "due_until" in errors:
        return None
    start, end = as_utc(due_from), as_utc(due_until)
    if start is None or end is None:
        raise InvariantViolation("start or end is unset")
    if end <= start:
        errors["due_until"] = "must be after due_from"
    elif end - start > MAX_WINDOW:
        errors["due_until"] = f"the window may be at most {MAX_WINDOW.days} days long"
    if end <= now:
        errors["due_until"] = "must be in the future"
    if start < now - CLOCK_SKEW:
        errors["due_from"] = "must not be in the past"
    if start > now + MAX_HORIZON:
        errors["due_from"] = f"must be within {MAX_HORIZON.days} days"
    return start, end


async def create(
    ctx: Any,
    actor: Actor,
    client_purposes: frozenset[str],
    *,
    subject_id: str,
    purpose: str,
    brand: str,
    touchpoint: str,
    due_from: datetime,
    due_until: datetime,
    channel: str | None = None,
    type: str | None = None,
    note: str | None = None,
    assignee: str | None = None,
) -> Followup:
    """Record a follow-up the customer asked for. Raises `InvalidInput` (nothing stored),
    `AccessDenied` (`purpose_not_allowed`: the client may not use the purpose), `NotFound`
    (no such subject) or `Conflict` (the subject is erased or restricted)."""
    now = ctx.clock.now()
    errors: dict[str, str] = {}
    purpose_ = ctx.catalogue.get(purpose)
    if purpose_ is None:
        errors["purpose"] = "is not in the purpose catalogue"
    if note is not None and note not in NOTE_KINDS:
        errors["note"] = "must be one of " + ", ".join(NOTE_KINDS)
    if touchpoint not in ctx.touchpoints:
        errors["touchpoint"] = "is not in the touchpoint catalogue"
    if assignee is not None and not ASSIGNEE_RE.match(assignee):
        errors["assignee"] = "must be a client or team name (a-z, 0-9, . _ -)"
    window = validate_window(due_from, due_until, now, errors)
    spec: _Contact | None = None
    if purpose_ is not None:
        try:
            spec = _Contact(brand, *fit_contact(
                ctx.pressure_rules, ctx.touchpoints, purpose_, brand=brand, channel=channel,
                type=type, priority="normal", touchpoint=None,
            ))  # fmt: skip
        except InvalidInput as exc:
            errors.update({k.removeprefix("contact."): v for k, v in exc.errors.items()})
    if errors or window is None or spec is None:
        raise InvalidInput("the follow-up does not fit", errors)
    if spec.channel is None or spec.type is None:
        raise InvariantViolation("spec.channel or spec.type is unset")
    start, end = window
    followup_id = str(uuid.uuid4())
    # A refusal from here on is the client's attempt on the subject: audited (finding 6).
    async with audited_attempt(
        ctx,
        actor,
        AuditAction.FOLLOWUP_CREATE,
        at=now,
        subject_id=subject_id,
        purpose=purpose,
        not_found=DenyReason.SUBJECT_NOT_FOUND.value,
    ) as attempt:
        if purpose not in client_purposes:
            raise AccessDenied(
                DenyReason.PURPOSE_NOT_ALLOWED, "this client may not use this purpose"
            )
        conn = attempt.conn
        status = (
            # Locked (PostgreSQL), so an erasure running now cannot delete the subject's
            # follow-ups before this one is written and leave it behind.
            await conn.execute(
                select(subjects.c.status).where(subjects.c.id == subject_id).with_for_update()
            )
        ).scalar_one_or_none()
        if status is None:
            raise NotFound("no such subject")
        if status != "active":
            attempt.reason = (
                DenyReason.SUBJECT_ERASED if status == "erased" else DenyReason.SUBJECT_RESTRICTED
            ).value
            raise Conflict("the subject is erased or its processing is restricted")
        values = dict(
            id=followup_id,
            subject_id=subject_id,
            purpose=purpose,
            channel=spec.channel,
            type=spec.type,
            brand=spec.brand,
            touchpoint=touchpoint,
            note=note,
            due_from=start,
            due_until=end,
            status=FollowupStatus.OPEN.value,
            created_at=now,
            created_by=actor.id,
            closed_at=None,
            closed_by=None,
            contact_id=None,
            assignee=assignee,
            outcome=None,
        )
        await conn.execute(insert(followups).values(**values))
        await audit.record(
            conn,
            at=now,
            actor=actor,
            action=AuditAction.FOLLOWUP_CREATE,
            decision=Decision.ALLOW,
            subject_id=subject_id,
            purpose=purpose,
            detail={
                "followup": {
                    "id": followup_id,
                    "channel": spec.channel,
                    "type": spec.type,
                    "brand": spec.brand,
                    "touchpoint": touchpoint,
                    "note": note,
                    "due_from": start.isoformat(),
                    "due_until": end.isoformat(),
                    "assignee": assignee,
                }
            },
        )
    return from_row(_Row(values), now)


class _Row:
    """Attribute access over the values just inserted (the shape of a result row)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
