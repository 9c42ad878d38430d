"""Data-subject requests (GDPR Art. 12-22): the workflow against the legal deadlines.

A request is received (from self-service, or by letter, phone, e-mail or in person on the
subject's behalf), its identity verified, reviewed, approved — which carries it out — and
closed as completed, partially completed (an erasure that had to keep data under Art.
17(3)(b), with the reason) or rejected (with the reason). Which moves are allowed is
`TRANSITIONS` (`vault.rights.requests.transitions`); every operation here consults it.

A request created with `verified=True` (identity already proven, e.g. by the self-service
one-time code) is carried out at once, except a rectification, which waits in review for a
DPO. The deadline is one calendar month from receipt (`vault.rights.deadlines`), extendable
once (`vault.rights.requests.extension`).

Every change writes an append-only `dsar_request_history` row and an audit event in the
same transaction. What the subject asked for (the payload: corrected contact data, which
consents to withdraw) may be personal data: it is sealed under the subject's DEK and never
written to history or audit.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.events import Actor
from vault.errors import Conflict, InvalidInput, InvariantViolation
from vault.rights.deadlines import due_date
from vault.rights.free_text import clean_text
from vault.rights.requests import objection
from vault.rights.requests.execution import Outcome, execute_in, finish
from vault.rights.requests.kinds import RequestChannel, RequestType
from vault.rights.requests.queue import get_request
from vault.rights.requests.store import (
    RequestRecord,
    add_history,
    audit_request,
    load_request,
    open_payload,
    seal_payload,
    update_request,
)
from vault.rights.requests.transitions import (
    OPEN,
    REFUSALS,
    RequestAction,
    RequestStatus,
    initial_status,
    transition,
)
from vault.rights.requests.validation import parse_enum, validate_payload
from vault.storage.rights_tables import dsar_requests
from vault.subjects import store as subjects
from vault.subjects.store import SubjectStatus, load_subject

if TYPE_CHECKING:
    from vault.context import VaultContext


async def create_request(
    ctx: VaultContext,
    actor: Actor,
    *,
    subject_id: str | None,
    type: str,  # noqa: A002 - the request's type, as in the API
    channel: str,
    payload: dict[str, Any] | None = None,
    verified: bool = False,
) -> RequestRecord:
    """Record a request received now, due one calendar month later.

    `verified=True` means the subject's identity is already proven (self-service one-time
    code): the request is carried out at once and closes as completed or partially
    completed; a rectification instead waits in review for a DPO.
    """
    type_ = parse_enum(RequestType, type, "type")
    channel_ = parse_enum(RequestChannel, channel, "channel")
    clean = validate_payload(ctx, type_, payload)
    if subject_id is None and (verified or clean):
        raise InvalidInput(
            "the request must name its subject",
            {"subject_id": "is required for a verified request or one with a payload"},
        )
    now = ctx.clock.now()
    request_id = str(uuid.uuid4())
    erased = False
    async with ctx.transaction() as conn:
        subject = None
        if subject_id is not None:
            subject = await load_subject(conn, subject_id, for_update=True)
            if subject.status == SubjectStatus.ERASED and type_ not in (
                RequestType.ACCESS,
                RequestType.PORTABILITY,
            ):
                raise Conflict("the subject was erased")
        status = initial_status(has_subject=subject_id is not None, verified=verified, type_=type_)
        values = {
            "id": request_id,
            "subject_id": subject_id,
            "type": type_.value,
            "status": status.value,
            "channel": channel_.value,
            "received_at": now,
            "due_at": due_date(now),
            "verified_at": now if verified else None,
            "payload_ct": (
                seal_payload(ctx, subject, request_id, clean) if clean and subject else None
            ),
            "created_by": actor.label,
            "updated_at": now,
        }
        await conn.execute(insert(dsar_requests).values(**values))
        await add_history(
            conn,
            request_id,
            at=now,
            event="received",
            status=RequestStatus.RECEIVED if verified else status,
            actor=actor,
            note=f"channel {channel_.value}",
        )
        final: RequestStatus = status
        if verified:
            await add_history(
                conn,
                request_id,
                at=now,
                event="verified",
                status=status,
                actor=actor,
                note="identity proven at receipt",
            )
            if status is RequestStatus.IN_PROGRESS:
                if subject is None:
                    raise InvariantViolation("subject is unset")
                outcome = await execute_in(
                    ctx, conn, actor, {**values, "payload": clean}, subject, now
                )
                final = await finish(ctx, conn, actor, values, outcome, now)
                erased = outcome.erased
        await audit_request(conn, actor, "create", values, now, final, channel=channel_.value)
        if type_ is RequestType.LEGITIMATE_INTEREST_OBJECTION and subject_id is not None:
            await objection.settle_in(ctx, conn, subject_id, now)  # restricted meanwhile
    if erased and subject_id:
        ctx.deks.forget(subject_id)
    return await get_request(ctx, request_id)


async def verify(ctx: VaultContext, actor: Actor, request_id: str) -> RequestRecord:
    """The subject's identity is verified: the request moves to review."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        req = await load_request(conn, request_id, for_update=True)
        status = transition(req.status, RequestAction.VERIFY)
        if req.subject_id is None:
            raise Conflict("the request is not linked to a subject whose identity to verify")
        await update_request(conn, request_id, now, status=status.value, verified_at=now)
        await add_history(conn, request_id, at=now, event="verified", status=status, actor=actor)
        await audit_request(conn, actor, "verify", req, now, status)
    return await get_request(ctx, request_id)


async def approve(ctx: VaultContext, actor: Actor, request_id: str) -> RequestRecord:
    """Approve a reviewed request and carry it out; it closes as completed or partially
    completed. A request left in progress (e.g. by a failed rectification) may be retried."""
    now = ctx.clock.now()
    changes: dict[str, Any] | None = None
    async with ctx.transaction() as conn:
        req = await load_request(conn, request_id, for_update=True)
        status = transition(req.status, RequestAction.APPROVE)
        if req.subject_id is None:
            raise Conflict("the request is not linked to a subject")
        subject = await load_subject(conn, req.subject_id, for_update=True)
        if req.type == RequestType.RECTIFICATION:
            if subject.status == SubjectStatus.ERASED:
                raise Conflict("the subject was erased")
            payload = open_payload(ctx, subject, req)
            if not payload or not payload.get("changes"):
                raise Conflict("the request holds no corrected data")
            changes = payload["changes"]
        else:
            await add_history(
                conn, request_id, at=now, event="approved", status=status, actor=actor
            )
            outcome = await execute_in(ctx, conn, actor, req, subject, now)
            final = await finish(ctx, conn, actor, req, outcome, now)
            await audit_request(conn, actor, "approve", req, now, final)
            await _settle_objection(ctx, conn, req, now)
    if changes is not None:
        # Applied through the subjects API in its own (audited) transaction, then closed.
        # Should closing fail, the request stays open and approving again is idempotent.
        changed = await subjects.rectify_contact(ctx, actor, req.subject_id, changes)
        outcome = Outcome(
            RequestAction.CARRIED_OUT, "rectified (Art. 16 GDPR): " + ", ".join(changed)
        )
        async with ctx.transaction() as conn:
            req = await load_request(conn, request_id, for_update=True)
            if req.status in OPEN:
                status = transition(req.status, RequestAction.APPROVE)
                await add_history(
                    conn, request_id, at=now, event="approved", status=status, actor=actor
                )
                final = await finish(ctx, conn, actor, req, outcome, now)
                await audit_request(conn, actor, "approve", req, now, final)
    elif req.type == RequestType.ERASURE:
        ctx.deks.forget(req.subject_id)
    return await get_request(ctx, request_id)


async def reject(ctx: VaultContext, actor: Actor, request_id: str, reason: str) -> RequestRecord:
    """Reject an open request, with the reason the subject is told."""
    text = clean_text(reason, "reason")
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        req = await load_request(conn, request_id, for_update=True)
        status = transition(req.status, RequestAction.REJECT)
        await update_request(
            conn, request_id, now, status=status.value, completed_at=now, outcome_reason=text
        )
        await add_history(
            conn, request_id, at=now, event="rejected", status=status, actor=actor, note=text
        )
        await audit_request(conn, actor, "reject", req, now, status)
        await _settle_objection(ctx, conn, req, now)
    return await get_request(ctx, request_id)


async def complete(
    ctx: VaultContext, actor: Actor, request_id: str, note: str | None = None
) -> RequestRecord:
    """Close a request a DPO carried out by other means (e.g. answered by letter)."""
    text = clean_text(note, "note", required=False)
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        req = await load_request(conn, request_id, for_update=True)
        status = transition(req.status, RequestAction.COMPLETE)
        if req.status == RequestStatus.RECEIVED and req.subject_id is not None:
            # Matched to a subject but unverified: the identity check comes first.
            raise Conflict(REFUSALS[RequestAction.COMPLETE].format(status=req.status))
        await update_request(
            conn,
            request_id,
            now,
            status=status.value,
            completed_at=now,
            outcome_reason=text or req.outcome_reason,
        )
        await add_history(
            conn, request_id, at=now, event="completed", status=status, actor=actor, note=text
        )
        await audit_request(conn, actor, "complete", req, now, status)
        await _settle_objection(ctx, conn, req, now)
    return await get_request(ctx, request_id)


async def _settle_objection(
    ctx: VaultContext, conn: AsyncConnection, req: Any, now: datetime
) -> None:
    """A decided Art. 21(1) objection no longer restricts (`objection.settle_in`)."""
    if req.type == RequestType.LEGITIMATE_INTEREST_OBJECTION and req.subject_id is not None:
        await objection.settle_in(ctx, conn, req.subject_id, now)
