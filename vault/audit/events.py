"""Audit events: who did what to which subject, for which purpose, with which outcome.

Events are written with the same connection and transaction as the change or read they
describe, so an access without its event cannot commit (fail closed). Events are
pseudonymous: subject ids, purpose ids and field *names*, never field values.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.storage.audit_tables import audit_events


class AuditAction(StrEnum):
    """`source:subject:action` tags, one per kind of event."""

    LOOKUP = "client:contact:lookup"
    #: An audience dry run: counts only, no contact data and no identifiers.
    AUDIENCE_DRY_RUN = "client:audience:dry_run"
    #: An outbound contact recorded without a lookup (contact pressure).
    CONTACT_RECORD = "client:contact:record"
    SUBJECT_CREATE = "client:subject:create"
    CONTACT_RECTIFY = "client:contact:rectify"
    CONSENT_GRANT = "client:consent:grant"
    BASIS_RECORD = "client:basis:record"
    CONSENT_WITHDRAW = "client:consent:withdraw"
    CONSENT_LIST = "client:consent:list"
    CONSENT_CONFIRM = "subject:consent:confirm"
    DOI_MAIL = "system:consent:confirmation_mail"
    KEYS_ROTATE = "admin:keys:rotate"
    KEYS_REWRAP = "admin:keys:rewrap"
    KEYS_RETIRE = "admin:keys:retire"
    #: A month of the audit trail written to the archive (`tresor audit archive`).
    AUDIT_ARCHIVE = "admin:audit:archive"
    #: An archived month of the audit trail deleted past its retention, by an admin at
    #: the CLI (`tresor audit prune`) or by the retention job.
    AUDIT_PRUNE = "admin:audit:prune"
    SYSTEM_AUDIT_PRUNE = "system:audit:prune"
    CLIENT_CREATE = "admin:client:create"
    CLIENT_REVOKE = "admin:client:revoke"
    #: A client's quotas changed (`tresor clients update`, admin API).
    CLIENT_UPDATE = "admin:client:update"
    #: A new key issued; the old one stays valid for the grace period in the detail.
    CLIENT_KEY_ROTATE = "admin:client:rotate_key"
    #: A client went over its request rate or daily lookups: once per quota window.
    CLIENT_QUOTA_EXCEEDED = "client:quota:exceeded"
    # Data-subject requests (Art. 12-22) and their effects; the source is who acted.
    DPO_REQUEST_CREATE = "dpo:request:create"
    SUBJECT_REQUEST_CREATE = "subject:request:create"
    DPO_REQUEST_VERIFY = "dpo:request:verify"
    DPO_REQUEST_APPROVE = "dpo:request:approve"
    DPO_REQUEST_REJECT = "dpo:request:reject"
    DPO_REQUEST_EXTEND = "dpo:request:extend"
    DPO_REQUEST_COMPLETE = "dpo:request:complete"
    REQUEST_EXTENSION_MAIL = "system:request:extension_mail"
    DPO_SUBJECT_ERASE = "dpo:subject:erase"
    SUBJECT_SUBJECT_ERASE = "subject:subject:erase"
    SYSTEM_SUBJECT_ERASE = "system:subject:erase"
    DPO_SUBJECT_RESTRICT = "dpo:subject:restrict"
    SUBJECT_SUBJECT_RESTRICT = "subject:subject:restrict"
    DPO_SUBJECT_LIFT_RESTRICTION = "dpo:subject:lift_restriction"
    #: The DPO listed the mail outbox's pending and failed mails (no address, no body).
    DPO_MAIL_LIST = "dpo:mail:list"
    #: The DPO sent a failed mail again, or discarded a pending or failed one (with a reason).
    DPO_MAIL_RETRY = "dpo:mail:retry"
    DPO_MAIL_DISCARD = "dpo:mail:discard"
    DPO_SUBJECT_OBJECT = "dpo:subject:object"
    SUBJECT_SUBJECT_OBJECT = "subject:subject:object"
    DPO_CONSENT_WITHDRAW = "dpo:consent:withdraw"
    SUBJECT_CONSENT_WITHDRAW = "subject:consent:withdraw"
    DPO_EXPORT_READ = "dpo:export:read"
    SUBJECT_EXPORT_READ = "subject:export:read"
    SYSTEM_CONSENT_EXPIRE = "system:consent:expire"
    SYSTEM_CONSENT_LAPSE = "system:consent:lapse"
    SYSTEM_RETAINED_SHRED = "system:retained:shred"
    SELF_SESSION_START = "subject:session:start"
    SELF_SESSION_VERIFY = "subject:session:verify"
    SELF_SESSION_END = "subject:session:end"
    SELF_CONTACT_READ = "subject:contact:read"
    # The data-protection officer's reads (API and console) are audited like any other.
    DPO_AUDIT_SEARCH = "dpo:audit:search"
    DPO_AUDIT_STATS = "dpo:audit:stats"
    DPO_AUDIT_CHAIN = "dpo:audit:chain"
    DPO_CONSENT_STATS = "dpo:consent:stats"
    DPO_CONSENT_PROOF = "dpo:consent:proof"
    DPO_ROPA_READ = "dpo:ropa:read"
    DPO_REQUEST_LIST = "dpo:request:list"
    #: The DPO opened one request with its history (console).
    DPO_REQUEST_READ = "dpo:request:read"
    #: The DPO looked a subject up by an identifier's blind index: the event names the kind
    #: of identifier and the subject found, never the value typed.
    DPO_SUBJECT_SEARCH = "dpo:subject:search"
    #: The DPO read a subject's overview (bases, requests, access history; no contact data).
    DPO_SUBJECT_READ = "dpo:subject:read"
    #: The DPO exported a filtered range of the audit trail (console, CSV or JSON Lines).
    DPO_AUDIT_EXPORT = "dpo:audit:export"
    #: The customer was told by mail that the restriction of their data ends (Art. 18(3)).
    RESTRICTION_LIFTED_MAIL = "system:subject:restriction_lifted_mail"
    DPO_SESSION_START = "dpo:session:start"
    DPO_SESSION_END = "dpo:session:end"
    # Contact preferences (vault.outreach.preferences): changes and reads, by the customer or a
    # writer client on the customer's instruction.
    SUBJECT_PREFERENCES_SET = "subject:preferences:set"
    CLIENT_PREFERENCES_SET = "client:preferences:set"
    SUBJECT_PREFERENCES_READ = "subject:preferences:read"
    CLIENT_PREFERENCES_READ = "client:preferences:read"
    # Agreed follow-ups (vault.outreach.followups): recorded by a client, used by a lookup or
    # contact, cancelled by the customer, missed when the window passed unused.
    FOLLOWUP_CREATE = "client:followup:create"
    FOLLOWUP_USE = "client:followup:use"
    FOLLOWUP_READ = "client:followup:read"
    FOLLOWUP_LIST = "client:followup:list"
    SUBJECT_FOLLOWUP_CANCEL = "subject:followup:cancel"
    SELF_FOLLOWUP_READ = "subject:followup:read"
    DPO_FOLLOWUP_LIST = "dpo:followup:list"
    SYSTEM_FOLLOWUP_MISS = "system:followup:miss"
    # The CRM moves a follow-up's window (or assignee), or closes it with an outcome
    # (vault.outreach.followup_changes).
    FOLLOWUP_RESCHEDULE = "client:followup:reschedule"
    FOLLOWUP_CLOSE = "client:followup:close"
    # A client reads a customer's contact history (vault.outreach.history).
    CONTACT_HISTORY_READ = "client:contact_history:read"
    SELF_CONTACT_HISTORY_READ = "subject:contact_history:read"
    # Identity-relevant: a change of an identifying address (e-mail, phone) and what
    # follows from it (vault.subjects.identity): the notice to the old address, its confirmation or
    # objection, a DPO's approval, and what a session through the new address was refused.
    IDENTITY_CHANGE = "client:identity:change"
    DPO_IDENTITY_CHANGE = "dpo:identity:change"
    IDENTITY_NOTICE_MAIL = "system:identity:notice_mail"
    SUBJECT_IDENTITY_CONFIRM = "subject:identity:confirm"
    SUBJECT_IDENTITY_OBJECT = "subject:identity:object"
    DPO_IDENTITY_APPROVE = "dpo:identity:approve"
    DPO_IDENTITY_LIST = "dpo:identity:list"
    SELF_IDENTITY_REFUSED = "subject:identity:refused"
    #: Too many wrong sign-in codes for one subject: its sign-in is locked for a while.
    SYSTEM_SESSION_LOCKOUT = "system:session:lockout"
    #: A retried POST answered with the stored first answer (`Idempotency-Key`,
    #: vault.admin.idempotency), or refused because the key was used for another request.
    IDEMPOTENT_REPLAY = "client:request:replay"
    #: A client refused by its role (api/auth.py): the attempt is on record even though
    #: nothing was considered; detail names the route template and operation.
    ACCESS_DENIED = "client:access:denied"
    #: The DPO read a contact-pressure report (API or console), like the other DPO views.
    DPO_CONTACT_REPORT = "dpo:contact_report:read"
    #: An admin bound a client certificate subject to an API client (or unbound it).
    CLIENT_CERTIFICATE = "admin:client:certificate"
    # Recipients and their notices (issue 16).
    RECIPIENT_CREATE = "admin:recipient:create"
    RECIPIENT_SUBSCRIBE = "admin:recipient:subscribe"
    RECIPIENT_PAUSE = "admin:recipient:pause"
    RECIPIENT_RESUME = "admin:recipient:resume"
    RECIPIENT_ROTATE = "admin:recipient:rotate_signing_key"
    RECIPIENT_REPLAY = "admin:recipient:replay"
    RECIPIENT_LIST = "admin:recipient:list"
    DELIVERY_CLOSE = "dpo:delivery:close"
    NOTIFICATION_ACK = "client:notification:ack"
    # Campaigns and their bookings (issue 21): counts and campaign ids, never a subject.
    CAMPAIGN_CREATE = "client:campaign:create"
    CAMPAIGN_AUDIENCE = "client:campaign:audience"
    CAMPAIGN_BOOK = "client:campaign:book"
    #: A booking of higher priority took points a campaign had booked (with the count).
    CAMPAIGN_DISPLACED = "client:campaign:displaced"
    CAMPAIGN_CANCEL = "client:campaign:cancel"
    CAMPAIGN_SENT = "client:campaign:sent"
    #: A campaign forecast or booking preview read (a report, audited like DPO reads).
    CAMPAIGN_REPORT = "client:campaign_report:read"


#: The DPO's own page views: reads of lists, statistics and the trail itself that name no
#: single subject's data. The console's audit search hides them unless asked
#: (`AuditFilter.hide_views`); reads of one subject's data stay visible.
PAGE_VIEWS = frozenset(
    {
        AuditAction.DPO_AUDIT_SEARCH,
        AuditAction.DPO_AUDIT_STATS,
        AuditAction.DPO_AUDIT_CHAIN,
        AuditAction.DPO_CONSENT_STATS,
        AuditAction.DPO_ROPA_READ,
        AuditAction.DPO_REQUEST_LIST,
        AuditAction.DPO_REQUEST_READ,
        AuditAction.DPO_FOLLOWUP_LIST,
        AuditAction.DPO_IDENTITY_LIST,
        AuditAction.DPO_CONTACT_REPORT,
        AuditAction.DPO_MAIL_LIST,
    }
)


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an API client, the subject itself, an admin at the CLI, or the system."""

    type: str
    id: str
    request_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.type}:{self.id}"


SYSTEM = Actor("system", "tresor")


def source_of(actor: Actor) -> str:
    """The audit source of an actor: the subject itself, the system, or staff (dpo)."""
    if actor.type in ("subject", "system"):
        return actor.type
    return "dpo"


def action_for(actor: Actor, what: str) -> AuditAction:
    """The `source:subject:action` member for `what` (e.g. "subject:erase") and this actor;
    staff's (or else the system's) member where the source has none of its own."""
    for source in (source_of(actor), "dpo", "system"):
        try:
            return AuditAction(f"{source}:{what}")
        except ValueError:
            continue
    raise ValueError(f"no audit action for {what}")


#: Built once: constructing `insert().values(...)` per call costs more CPU than the insert.
_INSERT = insert(audit_events)


def event_row(
    *,
    at: datetime,
    actor: Actor,
    action: AuditAction,
    decision: Decision,
    subject_id: str | None = None,
    purpose: str | None = None,
    fields: list[str] | tuple[str, ...] | None = None,
    reason: str | None = None,
    consent_id: str | None = None,
    detail: dict[str, object] | str | None = None,
) -> dict[str, object]:
    """One event as the column values `audit_events` stores (sealing columns stay empty)."""
    return dict(
        at=at,
        request_id=actor.request_id,
        actor_type=actor.type,
        actor_id=actor.id,
        action=str(action),
        subject_id=subject_id,
        purpose=purpose,
        fields=",".join(fields) if fields else None,
        decision=str(decision),
        reason=reason,
        consent_id=consent_id,
        # A caller may pass the detail pre-serialised (bulk lines share most of it).
        detail=None
        if not detail
        else detail
        if isinstance(detail, str)
        else json.dumps(detail, sort_keys=True),
    )


#: The columns an appended event fills, in `event_row` order.
EVENT_COLUMNS = (
    "at",
    "request_id",
    "actor_type",
    "actor_id",
    "action",
    "subject_id",
    "purpose",
    "fields",
    "decision",
    "reason",
    "consent_id",
    "detail",
)
#: An event as a tuple of its column values in `EVENT_COLUMNS` order: the shape binary COPY
#: takes, and what bulk resolution builds directly (a dict per event, converted later, was
#: a tenth of its CPU).
EventRecord = tuple[object, ...]


async def record(conn: AsyncConnection, **event: Any) -> None:
    """Append one event (see `event_row` for the arguments) in the caller's transaction.
    Raises if it cannot be written."""
    await conn.execute(_INSERT, event_row(**event))


async def record_row(conn: AsyncConnection, row: dict[str, object]) -> None:
    """Append an event built with `event_row` in the caller's transaction."""
    await conn.execute(_INSERT, row)


async def record_records(conn: AsyncConnection, records: Sequence[EventRecord]) -> None:
    """Append many events given as records (`EVENT_COLUMNS` order) in the caller's
    transaction."""
    await conn.execute(_INSERT, [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in records])
