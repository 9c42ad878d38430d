"""A request's rows: loading and updating one, its append-only history, its audit event,
the record callers see, and the payload sealed under the subject's DEK (it may be personal
data, so it never reaches history or audit)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, Decision, action_for
from vault.clock import as_utc
from vault.crypto import open_field, seal_field
from vault.errors import InvariantViolation, NotFound
from vault.rights.deadlines import is_overdue
from vault.rights.requests.transitions import CLOSED
from vault.storage.rights_tables import dsar_request_history, dsar_requests

if TYPE_CHECKING:
    from vault.context import VaultContext


@dataclass(frozen=True, slots=True)
class RequestRecord:
    id: str
    subject_id: str | None
    type: str
    status: str
    channel: str
    received_at: datetime
    due_at: datetime
    extended_at: datetime | None
    extension_reason: str | None
    verified_at: datetime | None
    completed_at: datetime | None
    outcome_reason: str | None
    overdue: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    #: What the DPO decides on, opened for the console's request page only (`read_request`):
    #: an Art. 21(1) objection's purposes and grounds. None elsewhere.
    objection: dict[str, Any] | None = None

    @property
    def closed(self) -> bool:
        return self.status in CLOSED


def _payload_field(request_id: str) -> str:
    return f"dsar_payload:{request_id}"


def seal_payload(
    ctx: VaultContext, subject: Row[Any], request_id: str, payload: dict[str, Any]
) -> bytes:
    """The request's payload sealed under the subject's DEK, bound to the request id."""
    dek = ctx.deks.dek(subject.id, subject.kek_version, subject.wrapped_dek)
    return seal_field(
        dek, subject.id, _payload_field(request_id), subject.dek_version, json.dumps(payload)
    )


def open_payload(ctx: VaultContext, subject: Row[Any], req: Row[Any]) -> dict[str, Any] | None:
    """The request's payload, opened; None when it has none or the subject was erased."""
    if req.payload_ct is None or subject.wrapped_dek is None:
        return None
    dek = ctx.deks.dek(subject.id, subject.kek_version, subject.wrapped_dek)
    text = open_field(dek, subject.id, _payload_field(req.id), subject.dek_version, req.payload_ct)
    return dict(json.loads(text))


async def load_request(
    conn: AsyncConnection, request_id: str, *, for_update: bool = False
) -> Row[Any]:
    """The request's row (locked for update if asked); `NotFound` for an unknown id."""
    if not isinstance(request_id, str) or len(request_id) > 36:
        raise NotFound("no such request")
    stmt = select(dsar_requests).where(dsar_requests.c.id == request_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound("no such request")
    return row


async def add_history(
    conn: AsyncConnection,
    request_id: str,
    *,
    at: datetime,
    event: str,
    status: str,
    actor: Actor,
    note: str | None = None,
) -> None:
    """One append-only history row: the request's history is never rewritten."""
    await conn.execute(
        insert(dsar_request_history).values(
            request_id=request_id,
            at=at,
            event=event,
            status=str(status),
            actor=actor.label,
            note=note,
        )
    )


async def update_request(
    conn: AsyncConnection, request_id: str, now: datetime, **values: Any
) -> None:
    """Set columns of the request, stamping `updated_at`."""
    await conn.execute(
        update(dsar_requests)
        .where(dsar_requests.c.id == request_id)
        .values(updated_at=now, **values)
    )


async def audit_request(
    conn: AsyncConnection,
    actor: Actor,
    what: str,
    req: Row[Any] | dict[str, Any],
    now: datetime,
    status: str,
    **detail: Any,
) -> None:
    """The audit event of a request operation: ids, type and status, never the payload."""
    get: Callable[[str], Any] = req.get if isinstance(req, dict) else lambda k: getattr(req, k)
    await audit.record(
        conn,
        at=now,
        actor=actor,
        action=action_for(actor, f"request:{what}"),
        decision=Decision.ALLOW,
        subject_id=get("subject_id"),
        detail={"request_id": get("id"), "type": get("type"), "status": str(status), **detail},
    )


def to_record(row: Row[Any], history: list[Row[Any]], now: datetime) -> RequestRecord:
    """The record callers see, with `overdue` computed against `now`."""
    due = as_utc(row.due_at)
    if due is None:
        raise InvariantViolation("due is unset")
    return RequestRecord(
        id=row.id,
        subject_id=row.subject_id,
        type=row.type,
        status=row.status,
        channel=row.channel,
        received_at=as_utc(row.received_at),
        due_at=due,
        extended_at=as_utc(row.extended_at),
        extension_reason=row.extension_reason,
        verified_at=as_utc(row.verified_at),
        completed_at=as_utc(row.completed_at),
        outcome_reason=row.outcome_reason,
        overdue=is_overdue(due, row.status in CLOSED, now),
        history=[
            {
                "at": as_utc(h.at),
                "event": h.event,
                "status": h.status,
                "actor": h.actor,
                "note": h.note,
            }
            for h in history
        ],
    )
