"""Reading requests: one with its history, the filtered list (overdue first) and the DPO's
queue, whose listing is audited before it is shown."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, case, select

from vault.audit import events as audit
from vault.audit.events import Actor, Decision
from vault.clock import as_utc
from vault.errors import InvalidInput
from vault.rights.requests.kinds import RequestType
from vault.rights.requests.store import RequestRecord, load_request, open_payload, to_record
from vault.rights.requests.transitions import CLOSED, RequestStatus
from vault.rights.requests.validation import parse_enum
from vault.storage.rights_tables import dsar_request_history, dsar_requests
from vault.subjects.store import load_subject

if TYPE_CHECKING:
    from vault.context import VaultContext


async def get_request(ctx: VaultContext, request_id: str) -> RequestRecord:
    """One request with its history; `NotFound` for an unknown id."""
    async with ctx.transaction() as conn:
        row = await load_request(conn, request_id)
        history = (
            await conn.execute(
                select(dsar_request_history)
                .where(dsar_request_history.c.request_id == request_id)
                .order_by(dsar_request_history.c.id)
            )
        ).all()
    return to_record(row, list(history), ctx.clock.now())


async def read_request(ctx: VaultContext, actor: Actor, request_id: str) -> RequestRecord:
    """One request with its history as the DPO console shows it, recorded in the same
    transaction (`dpo:request:read`): if the event cannot be written, nothing is shown. An
    Art. 21(1) objection comes with its purposes and grounds opened (`objection`)."""
    record = await get_request(ctx, request_id)  # NotFound before anything is recorded
    async with ctx.transaction() as conn:
        if record.type == RequestType.LEGITIMATE_INTEREST_OBJECTION and record.subject_id:
            # The DPO decides on the purposes and the subject's grounds: opened for them.
            subject = await load_subject(conn, record.subject_id)
            row = await load_request(conn, request_id)
            record = replace(record, objection=open_payload(ctx, subject, row))
        await audit.record(
            conn,
            at=ctx.clock.now(),
            actor=actor,
            action=audit.AuditAction.DPO_REQUEST_READ,
            decision=Decision.ALLOW,
            subject_id=record.subject_id,
            detail={"request_id": request_id},
        )
    return record


async def list_requests(
    ctx: VaultContext,
    *,
    subject_id: str | None = None,
    type: str | None = None,  # noqa: A002 - the request's type, as in the API
    status: str | None = None,
    due_before: datetime | None = None,
    limit: int = 100,
) -> list[RequestRecord]:
    """Requests matching the filters: overdue ones first, then by due date ascending.

    Items carry no history (`get_request` has it).
    """
    if not isinstance(limit, int) or limit < 1 or limit > 1000:
        raise InvalidInput("limit out of range", {"limit": "must be 1 to 1000"})
    now = ctx.clock.now()
    stmt = select(dsar_requests)
    if subject_id is not None:
        stmt = stmt.where(dsar_requests.c.subject_id == subject_id)
    if type is not None:
        stmt = stmt.where(dsar_requests.c.type == parse_enum(RequestType, type, "type").value)
    if status is not None:
        stmt = stmt.where(
            dsar_requests.c.status == parse_enum(RequestStatus, status, "status").value
        )
    if due_before is not None:
        if due_before.tzinfo is None:
            raise InvalidInput("due_before needs a timezone", {"due_before": "add Z or an offset"})
        stmt = stmt.where(dsar_requests.c.due_at < as_utc(due_before))
    overdue = and_(
        dsar_requests.c.status.not_in([s.value for s in CLOSED]), dsar_requests.c.due_at < now
    )
    stmt = stmt.order_by(
        case((overdue, 0), else_=1), dsar_requests.c.due_at, dsar_requests.c.id
    ).limit(limit)
    async with ctx.transaction() as conn:
        rows = (await conn.execute(stmt)).all()
    return [to_record(r, [], now) for r in rows]


async def request_queue(ctx: VaultContext, actor: Actor, *, closed: bool) -> list[RequestRecord]:
    """The requests the DPO console lists (open ones only unless `closed`), recorded first:
    if the event cannot be written, the queue is not shown."""
    async with ctx.transaction() as conn:
        await audit.record(
            conn,
            at=ctx.clock.now(),
            actor=actor,
            action=audit.AuditAction.DPO_REQUEST_LIST,
            decision=Decision.ALLOW,
            detail={"closed": closed},
        )
    records = await list_requests(ctx, limit=1000)
    return records if closed else [r for r in records if not r.closed]
