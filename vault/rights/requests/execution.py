"""Carrying an approved request out inside the caller's transaction, and closing it (or
leaving it awaiting the confirmations of the recipients told, Art. 19 GDPR)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, Decision, action_for
from vault.bases.ending import end_live_bases
from vault.catalogue.purposes import LawfulBasis
from vault.errors import Conflict
from vault.rights import request_recipients as recipients_of
from vault.rights.erasure import erase_in, partial_reason
from vault.rights.requests.kinds import RequestType
from vault.rights.requests.store import add_history, open_payload, update_request
from vault.rights.requests.transitions import RequestAction, RequestStatus, transition
from vault.rights.restriction import object_in, object_to_legitimate_interest_in, restrict_in
from vault.subjects.store import SubjectStatus

if TYPE_CHECKING:
    from vault.context import VaultContext


@dataclass(frozen=True, slots=True)
class Outcome:
    """How carrying a request out ended: `CARRIED_OUT` or `CARRIED_OUT_PARTIALLY`."""

    action: RequestAction
    reason: str
    erased: bool = False

    @property
    def status(self) -> RequestStatus:
        return transition(RequestStatus.IN_PROGRESS, self.action)


async def execute_in(
    ctx: VaultContext,
    conn: AsyncConnection,
    actor: Actor,
    req: Row[Any] | dict[str, Any],
    subject: Row[Any],
    now: datetime,
) -> Outcome:
    """Carry out every type but rectification inside the caller's transaction."""
    get: Callable[[str], Any] = req.get if isinstance(req, dict) else lambda k: getattr(req, k)
    type_ = RequestType(get("type"))
    if type_ in (RequestType.ACCESS, RequestType.PORTABILITY):
        article = "Art. 15" if type_ is RequestType.ACCESS else "Art. 20"
        return Outcome(
            RequestAction.CARRIED_OUT,
            f"the export ({article} GDPR) is available to the subject and the DPO",
        )
    if type_ is RequestType.RESTRICTION:
        changed = await restrict_in(conn, actor, subject, now)
        return Outcome(
            RequestAction.CARRIED_OUT,
            "processing restricted (Art. 18 GDPR)"
            if changed
            else "processing was already restricted (Art. 18 GDPR)",
        )
    if type_ is RequestType.OBJECTION:
        ended = await object_in(ctx, conn, actor, subject, now)
        return Outcome(
            RequestAction.CARRIED_OUT,
            f"objection to direct marketing recorded (Art. 21(3) GDPR); "
            f"{len(ended)} marketing basis record(s) ended",
        )
    if type_ is RequestType.LEGITIMATE_INTEREST_OBJECTION:
        wanted = req.get("payload") if isinstance(req, dict) else open_payload(ctx, subject, req)
        objected = list((wanted or {}).get("purposes") or [])
        if not objected:
            raise Conflict("the objection names no purpose")
        ended = await object_to_legitimate_interest_in(conn, actor, subject, objected, now)
        return Outcome(
            RequestAction.CARRIED_OUT,
            "objection upheld, no compelling legitimate grounds (Art. 21(1) GDPR); "
            f"{len(ended)} legitimate-interest basis record(s) ended",
        )
    if type_ is RequestType.ERASURE:
        result = await erase_in(ctx, conn, actor, subject, now)
        partial = partial_reason(result)
        if partial:
            return Outcome(RequestAction.CARRIED_OUT_PARTIALLY, partial, erased=True)
        return Outcome(
            RequestAction.CARRIED_OUT, "erased by crypto-shredding (Art. 17(1) GDPR)", erased=True
        )
    if type_ is RequestType.CONSENT_WITHDRAWAL:
        if subject.status == SubjectStatus.ERASED:
            raise Conflict("the subject was erased")
        if isinstance(req, dict):
            wanted = req.get("payload")
        else:
            wanted = open_payload(ctx, subject, req)
        ids = set((wanted or {}).get("consent_ids") or [])
        purposes = set((wanted or {}).get("purposes") or [])

        def chosen(row: Any) -> bool:
            if row.basis != LawfulBasis.CONSENT.value:
                return False  # a contract or legal obligation is not withdrawn by consent
            if ids and row.id not in ids:
                return False
            return not purposes or row.purpose in purposes

        ended = await end_live_bases(
            conn, actor=actor, subject_id=subject.id, now=now, event="withdrawn", which=chosen
        )
        for e in ended:
            await audit.record(
                conn,
                at=now,
                actor=actor,
                action=action_for(actor, "consent:withdraw"),
                decision=Decision.ALLOW,
                subject_id=subject.id,
                purpose=e.purpose,
                consent_id=e.id,
                detail={"status": e.status, "request_id": get("id")},
            )
        return Outcome(
            RequestAction.CARRIED_OUT, f"{len(ended)} consent(s) withdrawn (Art. 7(3) GDPR)"
        )
    raise Conflict(f"a {type_.value} request is carried out by a DPO")  # rectification


async def finish(
    ctx: VaultContext,
    conn: AsyncConnection,
    actor: Actor,
    req: Row[Any] | dict[str, Any],
    outcome: Outcome,
    now: datetime,
) -> RequestStatus:
    """Close the carried-out request, or, when recipients were told about the change
    (Art. 19 GDPR), leave it `awaiting_recipients` until they confirm. Returns the status."""
    get: Callable[[str], Any] = req.get if isinstance(req, dict) else lambda k: getattr(req, k)
    request_id, subject_id = get("id"), get("subject_id")
    notices = await recipients_of.notices_since(ctx, conn, subject_id, now) if subject_id else []
    if notices:
        status = transition(RequestStatus.IN_PROGRESS, RequestAction.RECIPIENTS_TOLD)
        await update_request(
            conn, request_id, now, status=str(status), outcome_reason=outcome.reason
        )
        # The outcome is kept as the event, so settling knows whether it was partial.
        await add_history(
            conn,
            request_id,
            at=now,
            event=str(outcome.action),
            status=status,
            actor=actor,
            note=outcome.reason,
        )
        await add_history(
            conn,
            request_id,
            at=now,
            event=str(RequestAction.RECIPIENTS_TOLD),
            status=status,
            actor=actor,
            note=recipients_of.told_note(notices),
        )
        return status
    await update_request(
        conn,
        request_id,
        now,
        status=str(outcome.status),
        completed_at=now,
        outcome_reason=outcome.reason,
    )
    await add_history(
        conn,
        request_id,
        at=now,
        event=str(outcome.status),
        status=outcome.status,
        actor=actor,
        note=outcome.reason,
    )
    return outcome.status
