"""Closing a request that waits for the recipients told about the change (Art. 19 GDPR)
once every one confirmed, or the DPO closed its notice with a reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from vault.audit import events as audit
from vault.audit.events import Actor
from vault.clock import as_utc
from vault.errors import Conflict
from vault.rights import request_recipients as recipients_of
from vault.rights.requests.queue import get_request
from vault.rights.requests.store import (
    RequestRecord,
    add_history,
    audit_request,
    load_request,
    update_request,
)
from vault.rights.requests.transitions import RequestAction, RequestStatus, transition
from vault.storage.rights_tables import dsar_request_history, dsar_requests

if TYPE_CHECKING:
    from vault.context import VaultContext


async def settle(ctx: VaultContext, actor: Actor, request_id: str) -> RequestRecord:
    """Close a request `awaiting_recipients` once every recipient told confirmed or the DPO
    closed its notice with a reason; `Conflict` naming how many are still open otherwise.
    The history records who confirmed how."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        req = await load_request(conn, request_id, for_update=True)
        transition(req.status, RequestAction.RECIPIENTS_CONFIRMED)
        told = (
            await conn.execute(
                select(dsar_request_history.c.at)
                .where(dsar_request_history.c.request_id == request_id)
                .where(dsar_request_history.c.event == str(RequestAction.RECIPIENTS_TOLD))
                .order_by(dsar_request_history.c.id.desc())
                .limit(1)
            )
        ).scalar_one()
        partial = (
            await conn.execute(
                select(dsar_request_history.c.id)
                .where(dsar_request_history.c.request_id == request_id)
                .where(dsar_request_history.c.event == str(RequestAction.CARRIED_OUT_PARTIALLY))
                .limit(1)
            )
        ).first() is not None
        notices = await recipients_of.notices_since(ctx, conn, req.subject_id, as_utc(told))
        waiting = recipients_of.unconfirmed(notices)
        if waiting:
            raise Conflict(
                f"{len(waiting)} recipient notice(s) are not confirmed yet; the DPO may close "
                "them with a reason"
            )
        action = (
            RequestAction.RECIPIENTS_CONFIRMED_PARTIALLY
            if partial
            else RequestAction.RECIPIENTS_CONFIRMED
        )
        status = transition(req.status, action)
        await update_request(conn, request_id, now, status=str(status), completed_at=now)
        await add_history(
            conn,
            request_id,
            at=now,
            event=str(action),
            status=status,
            actor=actor,
            note=recipients_of.confirmed_note(notices),
        )
        await audit_request(conn, actor, "complete", req, now, status)
    return await get_request(ctx, request_id)


async def settle_awaiting(ctx: VaultContext, actor: Actor = audit.SYSTEM) -> int:
    """Close every request whose recipients have all confirmed (run by the notify job);
    returns how many closed."""
    async with ctx.transaction() as conn:
        ids = (
            (
                await conn.execute(
                    select(dsar_requests.c.id).where(
                        dsar_requests.c.status == str(RequestStatus.AWAITING_RECIPIENTS)
                    )
                )
            )
            .scalars()
            .all()
        )
    closed = 0
    for request_id in ids:
        try:
            await settle(ctx, actor, request_id)
        except Conflict:
            continue
        closed += 1
    return closed
