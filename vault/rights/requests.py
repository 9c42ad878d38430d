"""Data-subject requests (GDPR Art. 12-22): the workflow against the legal deadlines.

A request is received (from self-service, or by letter, phone, e-mail or in person on the
subject's behalf), its identity verified, reviewed, approved — which carries it out — and
closed as completed, partially completed (an erasure that had to keep data under Art.
17(3)(b), with the reason) or rejected (with the reason).

    received ──────────────┐   (no subject matched yet)
    identity_verification ─┴─verify─▶ in_review ─approve─▶ in_progress ─▶ completed
                                                                      └─▶ partially_completed
    any open status ─reject─▶ rejected;   in_review / in_progress ─complete─▶ completed

The sketch is a reading aid; `TRANSITIONS` below is the rule every operation consults.

A request created with `verified=True` (identity already proven, e.g. by the self-service
one-time code) is carried out at once, except a rectification, which waits in review for a
DPO. The deadline is one calendar month from receipt (`vault.rights.deadlines`), extendable once,
within the first month, by up to two months, with notice to the subject.

Every change writes an append-only `dsar_request_history` row and an audit event in the
same transaction. What the subject asked for (the payload: corrected contact data, which
consents to withdraw) may be personal data: it is sealed under the subject's DEK and never
written to history or audit.
"""

from __future__ import annotations

import json
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, overload

from sqlalchemy import and_, case, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit import events as audit
from vault.audit.events import Actor, Decision, action_for
from vault.bases.ending import end_live_bases
from vault.catalogue.purposes import LawfulBasis
from vault.clock import as_utc
from vault.crypto import open_field, seal_field
from vault.errors import Conflict, InvalidInput, InvariantViolation, NotFound
from vault.rights import request_recipients as recipients_of
from vault.rights.deadlines import due_date, extended_due, extension_refusal, is_overdue
from vault.rights.erasure import erase_in, partial_reason
from vault.rights.restriction import object_in, restrict_in
from vault.storage.rows import canonical_id
from vault.storage.tables import dsar_request_history, dsar_requests
from vault.subjects import store as subjects
from vault.subjects.store import SubjectStatus, decrypt_fields, load_subject

if TYPE_CHECKING:
    from vault.context import VaultContext


class RequestType(StrEnum):
    ACCESS = "access"
    PORTABILITY = "portability"
    RECTIFICATION = "rectification"
    RESTRICTION = "restriction"
    OBJECTION = "objection"
    ERASURE = "erasure"
    CONSENT_WITHDRAWAL = "consent_withdrawal"


class RequestStatus(StrEnum):
    RECEIVED = "received"
    IDENTITY_VERIFICATION = "identity_verification"
    IN_REVIEW = "in_review"
    IN_PROGRESS = "in_progress"
    #: Carried out; the recipients told about the change have not all confirmed yet.
    AWAITING_RECIPIENTS = "awaiting_recipients"
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially_completed"
    REJECTED = "rejected"


class RequestChannel(StrEnum):
    SELF_SERVICE = "self_service"
    LETTER = "letter"
    PHONE = "phone"
    EMAIL = "email"
    IN_PERSON = "in_person"


CLOSED = frozenset(
    {RequestStatus.COMPLETED, RequestStatus.PARTIALLY_COMPLETED, RequestStatus.REJECTED}
)
OPEN = frozenset(RequestStatus) - CLOSED


class RequestAction(StrEnum):
    """What moves a request: a DPO's decision, or the outcome of carrying it out."""

    VERIFY = "verify"
    APPROVE = "approve"
    CARRIED_OUT = "carried_out"
    CARRIED_OUT_PARTIALLY = "carried_out_partially"
    #: Carried out, and recipients were told: the request waits for their confirmations.
    RECIPIENTS_TOLD = "recipients_told"
    #: Every recipient told confirmed (or the DPO closed the rest with a reason).
    RECIPIENTS_CONFIRMED = "recipients_confirmed"
    RECIPIENTS_CONFIRMED_PARTIALLY = "recipients_confirmed_partially"
    COMPLETE = "complete"
    REJECT = "reject"
    EXTEND = "extend"


_S = RequestStatus
_A = RequestAction

#: The workflow: (status, action) → the status after it. A pair not listed is refused with
#: `Conflict`. Every transition consults this table (`transition`), and
#: docs/architecture.md shows it (`transition_table_markdown`; a test keeps the two equal).
#: Guards on the subject (a request without one cannot be verified, approved, or completed
#: unless it is still `received`) are checked beside it, in the operation.
TRANSITIONS: Mapping[tuple[RequestStatus, RequestAction], RequestStatus] = MappingProxyType(
    {
        (_S.RECEIVED, _A.VERIFY): _S.IN_REVIEW,
        (_S.IDENTITY_VERIFICATION, _A.VERIFY): _S.IN_REVIEW,
        (_S.IN_REVIEW, _A.APPROVE): _S.IN_PROGRESS,
        # A request left in progress (a failed rectification) may be approved again.
        (_S.IN_PROGRESS, _A.APPROVE): _S.IN_PROGRESS,
        (_S.IN_PROGRESS, _A.CARRIED_OUT): _S.COMPLETED,
        (_S.IN_PROGRESS, _A.CARRIED_OUT_PARTIALLY): _S.PARTIALLY_COMPLETED,
        (_S.IN_PROGRESS, _A.RECIPIENTS_TOLD): _S.AWAITING_RECIPIENTS,
        (_S.AWAITING_RECIPIENTS, _A.RECIPIENTS_CONFIRMED): _S.COMPLETED,
        (_S.AWAITING_RECIPIENTS, _A.RECIPIENTS_CONFIRMED_PARTIALLY): _S.PARTIALLY_COMPLETED,
        # Carried out by other means (e.g. answered by letter); `received` only without a
        # subject (nothing about the requester is stored).
        (_S.RECEIVED, _A.COMPLETE): _S.COMPLETED,
        (_S.IN_REVIEW, _A.COMPLETE): _S.COMPLETED,
        (_S.IN_PROGRESS, _A.COMPLETE): _S.COMPLETED,
        **{(status, _A.REJECT): _S.REJECTED for status in _S if status not in CLOSED},
        # The deadline moves; the status stays.
        **{(status, _A.EXTEND): status for status in _S if status not in CLOSED},
    }
)

#: The `Conflict` message of a refused action; `{status}` is the request's status.
_REFUSALS: Mapping[RequestAction, str] = MappingProxyType(
    {
        _A.VERIFY: "the request is {status}; only a new request can be verified",
        _A.APPROVE: "the request is {status}; only a verified request in review can be approved",
        _A.CARRIED_OUT: "the request is {status}; only a request in progress is carried out",
        _A.CARRIED_OUT_PARTIALLY: (
            "the request is {status}; only a request in progress is carried out"
        ),
        _A.RECIPIENTS_TOLD: "the request is {status}; only a request in progress is carried out",
        _A.RECIPIENTS_CONFIRMED: "the request is {status}; it waits for no recipient",
        _A.RECIPIENTS_CONFIRMED_PARTIALLY: "the request is {status}; it waits for no recipient",
        _A.COMPLETE: "the request is {status}; only a verified open request can be completed",
        _A.REJECT: "the request is already {status}",
        _A.EXTEND: "the request is already {status}",
    }
)


def transition(status: str, action: RequestAction) -> RequestStatus:
    """The status `action` leads to from `status`, or `Conflict` if the table has no such
    move: the one place that decides which moves the workflow allows."""
    new = TRANSITIONS.get((RequestStatus(status), action))
    if new is None:
        raise Conflict(_REFUSALS[action].format(status=status))
    return new


def initial_status(*, has_subject: bool, verified: bool, type_: RequestType) -> RequestStatus:
    """The status a new request starts in.

    Unverified, it waits for its identity check (`received` while no subject is matched).
    Verified at receipt, it has passed `verify` already and, but for a rectification (which
    a DPO reviews), `approve` too: it is carried out at once.
    """
    if not verified:
        return RequestStatus.IDENTITY_VERIFICATION if has_subject else RequestStatus.RECEIVED
    reviewed = transition(RequestStatus.RECEIVED, RequestAction.VERIFY)
    if type_ is RequestType.RECTIFICATION:
        return reviewed
    return transition(reviewed, RequestAction.APPROVE)


def transition_table_markdown() -> str:
    """The workflow table as Markdown, one row per status, one column per action."""
    actions = list(RequestAction)
    lines = [
        "| status | " + " | ".join(f"`{a}`" for a in actions) + " |",
        "|---" * (len(actions) + 1) + "|",
    ]
    for status in RequestStatus:
        cells = [_cell(TRANSITIONS.get((status, a))) for a in actions]
        lines.append(f"| `{status}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(status: RequestStatus | None) -> str:
    return "–" if status is None else f"`{status}`"


#: Titles of the request types for the subject (German, English).
TYPE_TITLES: dict[str, tuple[str, str]] = {
    RequestType.ACCESS: ("Auskunft (Art. 15 DSGVO)", "access (Art. 15 GDPR)"),
    RequestType.PORTABILITY: (
        "Datenübertragbarkeit (Art. 20 DSGVO)",
        "data portability (Art. 20 GDPR)",
    ),
    RequestType.RECTIFICATION: ("Berichtigung (Art. 16 DSGVO)", "rectification (Art. 16 GDPR)"),
    RequestType.RESTRICTION: (
        "Einschränkung der Verarbeitung (Art. 18 DSGVO)",
        "restriction of processing (Art. 18 GDPR)",
    ),
    RequestType.OBJECTION: (
        "Widerspruch gegen Direktwerbung (Art. 21 DSGVO)",
        "objection to direct marketing (Art. 21 GDPR)",
    ),
    RequestType.ERASURE: ("Löschung (Art. 17 DSGVO)", "erasure (Art. 17 GDPR)"),
    RequestType.CONSENT_WITHDRAWAL: (
        "Widerruf einer Einwilligung (Art. 7 Abs. 3 DSGVO)",
        "withdrawal of consent (Art. 7(3) GDPR)",
    ),
}

MAX_TEXT = 1000
MAX_PAYLOAD_BYTES = 16 * 1024


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

    @property
    def closed(self) -> bool:
        return self.status in CLOSED


# -- validation -------------------------------------------------------------------------


def _enum(kind: type[StrEnum], value: object, name: str) -> Any:
    if isinstance(value, str):  # the members' values are text: nothing else can match
        try:
            return kind(value)
        except ValueError:
            pass
    raise InvalidInput(
        f"unknown {name}", {name: "must be one of " + ", ".join(m.value for m in kind)}
    )


@overload
def _text(value: object, name: str, *, required: Literal[True] = True) -> str: ...
@overload
def _text(value: object, name: str, *, required: bool) -> str | None: ...


def _text(value: object, name: str, *, required: bool = True) -> str | None:
    """Free text of a DPO (reasons, notes): 1 to 1000 characters, no control characters."""
    if not required and (value is None or (isinstance(value, str) and not value.strip())):
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} is required", {name: "must not be empty"})
    text = unicodedata.normalize("NFC", value).strip()
    if len(text) > MAX_TEXT:
        raise InvalidInput(f"{name} is too long", {name: f"must be at most {MAX_TEXT} characters"})
    if any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\n\t" for ch in text):
        raise InvalidInput(f"{name} is invalid", {name: "contains control characters"})
    return text


def _validate_payload(
    ctx: VaultContext, type_: RequestType, payload: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The payload a request type takes, checked; None when it takes none."""
    if payload is not None and not isinstance(payload, dict):
        raise InvalidInput("payload must be an object", {"payload": "must be an object"})
    if type_ is RequestType.RECTIFICATION:
        changes = (payload or {}).get("changes")
        if set(payload or {}) - {"changes"} or not isinstance(changes, dict) or not changes:
            raise InvalidInput(
                "a rectification names the corrected data",
                {"payload.changes": "must map at least one contact field to its new value"},
            )
        try:
            subjects.normalise_contact(changes)  # same rules as PATCH /contact; raises InvalidInput
        except InvalidInput as exc:
            raise InvalidInput(
                "the corrected data is invalid",
                {f"payload.changes.{k}": v for k, v in exc.errors.items()},
            ) from None
        out: dict[str, Any] = {"changes": changes}
    elif type_ is RequestType.CONSENT_WITHDRAWAL:
        out = {}
        for key, check in (("consent_ids", _is_id), ("purposes", ctx.catalogue.__contains__)):
            value = (payload or {}).get(key)
            if value is None:
                continue
            if (
                not isinstance(value, list)
                or not value
                or len(value) > 100
                or not all(isinstance(v, str) and check(v) for v in value)
            ):
                what = "consent ids" if key == "consent_ids" else "purpose ids of the catalogue"
                raise InvalidInput(
                    "the consents to withdraw are invalid",
                    {f"payload.{key}": f"must be a list of 1 to 100 {what}"},
                )
            out[key] = sorted(set(value))
        if set(payload or {}) - {"consent_ids", "purposes"}:
            raise InvalidInput(
                "unknown payload member",
                {"payload": "takes only consent_ids and purposes (none: every consent)"},
            )
    else:
        if payload:
            raise InvalidInput(
                f"a {type_.value} request takes no payload", {"payload": "must be empty"}
            )
        return None
    if len(json.dumps(out, ensure_ascii=False).encode()) > MAX_PAYLOAD_BYTES:
        raise InvalidInput("payload is too large", {"payload": "must be at most 16 KiB"})
    return out or None


def _is_id(value: str) -> bool:
    """A consent id as stored: the withdrawal matches the rows by it unchanged."""
    return canonical_id(value) == value


def _payload_field(request_id: str) -> str:
    return f"dsar_payload:{request_id}"


def _seal_payload(
    ctx: VaultContext, subject: Row[Any], request_id: str, payload: dict[str, Any]
) -> bytes:
    dek = ctx.deks.dek(subject.id, subject.kek_version, subject.wrapped_dek)
    return seal_field(
        dek, subject.id, _payload_field(request_id), subject.dek_version, json.dumps(payload)
    )


def _open_payload(ctx: VaultContext, subject: Row[Any], req: Row[Any]) -> dict[str, Any] | None:
    if req.payload_ct is None or subject.wrapped_dek is None:
        return None
    dek = ctx.deks.dek(subject.id, subject.kek_version, subject.wrapped_dek)
    text = open_field(dek, subject.id, _payload_field(req.id), subject.dek_version, req.payload_ct)
    return dict(json.loads(text))


# -- storage helpers --------------------------------------------------------------------


async def _load(conn: AsyncConnection, request_id: str, *, for_update: bool = False) -> Row[Any]:
    if not isinstance(request_id, str) or len(request_id) > 36:
        raise NotFound("no such request")
    stmt = select(dsar_requests).where(dsar_requests.c.id == request_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound("no such request")
    return row


async def _history(
    conn: AsyncConnection,
    request_id: str,
    *,
    at: datetime,
    event: str,
    status: str,
    actor: Actor,
    note: str | None = None,
) -> None:
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


async def _set(conn: AsyncConnection, request_id: str, now: datetime, **values: Any) -> None:
    await conn.execute(
        update(dsar_requests)
        .where(dsar_requests.c.id == request_id)
        .values(updated_at=now, **values)
    )


async def _audit(
    conn: AsyncConnection,
    actor: Actor,
    what: str,
    req: Row[Any] | dict[str, Any],
    now: datetime,
    status: str,
    **detail: Any,
) -> None:
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


def _record(row: Row[Any], history: list[Row[Any]], now: datetime) -> RequestRecord:
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


# -- carrying a request out -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How carrying a request out ended: `CARRIED_OUT` or `CARRIED_OUT_PARTIALLY`."""

    action: RequestAction
    reason: str
    erased: bool = False

    @property
    def status(self) -> RequestStatus:
        return transition(RequestStatus.IN_PROGRESS, self.action)


async def _execute_in(
    ctx: VaultContext,
    conn: AsyncConnection,
    actor: Actor,
    req: Row[Any] | dict[str, Any],
    subject: Row[Any],
    now: datetime,
) -> _Outcome:
    """Carry out every type but rectification inside the caller's transaction."""
    get: Callable[[str], Any] = req.get if isinstance(req, dict) else lambda k: getattr(req, k)
    type_ = RequestType(get("type"))
    if type_ in (RequestType.ACCESS, RequestType.PORTABILITY):
        article = "Art. 15" if type_ is RequestType.ACCESS else "Art. 20"
        return _Outcome(
            RequestAction.CARRIED_OUT,
            f"the export ({article} GDPR) is available to the subject and the DPO",
        )
    if type_ is RequestType.RESTRICTION:
        changed = await restrict_in(conn, actor, subject, now)
        return _Outcome(
            RequestAction.CARRIED_OUT,
            "processing restricted (Art. 18 GDPR)"
            if changed
            else "processing was already restricted (Art. 18 GDPR)",
        )
    if type_ is RequestType.OBJECTION:
        ended = await object_in(ctx, conn, actor, subject, now)
        return _Outcome(
            RequestAction.CARRIED_OUT,
            f"objection to direct marketing recorded (Art. 21(3) GDPR); "
            f"{len(ended)} marketing basis record(s) ended",
        )
    if type_ is RequestType.ERASURE:
        result = await erase_in(ctx, conn, actor, subject, now)
        partial = partial_reason(result)
        if partial:
            return _Outcome(RequestAction.CARRIED_OUT_PARTIALLY, partial, erased=True)
        return _Outcome(
            RequestAction.CARRIED_OUT, "erased by crypto-shredding (Art. 17(1) GDPR)", erased=True
        )
    if type_ is RequestType.CONSENT_WITHDRAWAL:
        if subject.status == SubjectStatus.ERASED:
            raise Conflict("the subject was erased")
        if isinstance(req, dict):
            wanted = req.get("payload")
        else:
            wanted = _open_payload(ctx, subject, req)
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
        return _Outcome(
            RequestAction.CARRIED_OUT, f"{len(ended)} consent(s) withdrawn (Art. 7(3) GDPR)"
        )
    raise Conflict(f"a {type_.value} request is carried out by a DPO")  # rectification


async def _finish(
    ctx: VaultContext,
    conn: AsyncConnection,
    actor: Actor,
    req: Row[Any] | dict[str, Any],
    outcome: _Outcome,
    now: datetime,
) -> RequestStatus:
    """Close the carried-out request, or, when recipients were told about the change
    (Art. 19 GDPR), leave it `awaiting_recipients` until they confirm. Returns the status."""
    get: Callable[[str], Any] = req.get if isinstance(req, dict) else lambda k: getattr(req, k)
    request_id, subject_id = get("id"), get("subject_id")
    notices = await recipients_of.notices_since(ctx, conn, subject_id, now) if subject_id else []
    if notices:
        status = transition(RequestStatus.IN_PROGRESS, RequestAction.RECIPIENTS_TOLD)
        await _set(conn, request_id, now, status=str(status), outcome_reason=outcome.reason)
        # The outcome is kept as the event, so settling knows whether it was partial.
        await _history(
            conn,
            request_id,
            at=now,
            event=str(outcome.action),
            status=status,
            actor=actor,
            note=outcome.reason,
        )
        await _history(
            conn,
            request_id,
            at=now,
            event=str(RequestAction.RECIPIENTS_TOLD),
            status=status,
            actor=actor,
            note=recipients_of.told_note(notices),
        )
        return status
    await _set(
        conn,
        request_id,
        now,
        status=str(outcome.status),
        completed_at=now,
        outcome_reason=outcome.reason,
    )
    await _history(
        conn,
        request_id,
        at=now,
        event=str(outcome.status),
        status=outcome.status,
        actor=actor,
        note=outcome.reason,
    )
    return outcome.status


# -- public API -------------------------------------------------------------------------


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
    type_ = _enum(RequestType, type, "type")
    channel_ = _enum(RequestChannel, channel, "channel")
    clean = _validate_payload(ctx, type_, payload)
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
                _seal_payload(ctx, subject, request_id, clean) if clean and subject else None
            ),
            "created_by": actor.label,
            "updated_at": now,
        }
        await conn.execute(insert(dsar_requests).values(**values))
        await _history(
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
            await _history(
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
                outcome = await _execute_in(
                    ctx, conn, actor, {**values, "payload": clean}, subject, now
                )
                final = await _finish(ctx, conn, actor, values, outcome, now)
                erased = outcome.erased
        await _audit(conn, actor, "create", values, now, final, channel=channel_.value)
    if erased and subject_id:
        ctx.deks.forget(subject_id)
    return await get_request(ctx, request_id)


async def get_request(ctx: VaultContext, request_id: str) -> RequestRecord:
    """One request with its history; `NotFound` for an unknown id."""
    async with ctx.transaction() as conn:
        row = await _load(conn, request_id)
        history = (
            await conn.execute(
                select(dsar_request_history)
                .where(dsar_request_history.c.request_id == request_id)
                .order_by(dsar_request_history.c.id)
            )
        ).all()
    return _record(row, list(history), ctx.clock.now())


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
        stmt = stmt.where(dsar_requests.c.type == _enum(RequestType, type, "type").value)
    if status is not None:
        stmt = stmt.where(dsar_requests.c.status == _enum(RequestStatus, status, "status").value)
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
    return [_record(r, [], now) for r in rows]


async def verify(ctx: VaultContext, actor: Actor, request_id: str) -> RequestRecord:
    """The subject's identity is verified: the request moves to review."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        req = await _load(conn, request_id, for_update=True)
        status = transition(req.status, RequestAction.VERIFY)
        if req.subject_id is None:
            raise Conflict("the request is not linked to a subject whose identity to verify")
        await _set(conn, request_id, now, status=status.value, verified_at=now)
        await _history(conn, request_id, at=now, event="verified", status=status, actor=actor)
        await _audit(conn, actor, "verify", req, now, status)
    return await get_request(ctx, request_id)


async def approve(ctx: VaultContext, actor: Actor, request_id: str) -> RequestRecord:
    """Approve a reviewed request and carry it out; it closes as completed or partially
    completed. A request left in progress (e.g. by a failed rectification) may be retried."""
    now = ctx.clock.now()
    changes: dict[str, Any] | None = None
    async with ctx.transaction() as conn:
        req = await _load(conn, request_id, for_update=True)
        status = transition(req.status, RequestAction.APPROVE)
        if req.subject_id is None:
            raise Conflict("the request is not linked to a subject")
        subject = await load_subject(conn, req.subject_id, for_update=True)
        if req.type == RequestType.RECTIFICATION:
            if subject.status == SubjectStatus.ERASED:
                raise Conflict("the subject was erased")
            payload = _open_payload(ctx, subject, req)
            if not payload or not payload.get("changes"):
                raise Conflict("the request holds no corrected data")
            changes = payload["changes"]
        else:
            await _history(conn, request_id, at=now, event="approved", status=status, actor=actor)
            outcome = await _execute_in(ctx, conn, actor, req, subject, now)
            final = await _finish(ctx, conn, actor, req, outcome, now)
            await _audit(conn, actor, "approve", req, now, final)
    if changes is not None:
        # Applied through the subjects API in its own (audited) transaction, then closed.
        # Should closing fail, the request stays open and approving again is idempotent.
        changed = await subjects.rectify_contact(ctx, actor, req.subject_id, changes)
        outcome = _Outcome(
            RequestAction.CARRIED_OUT, "rectified (Art. 16 GDPR): " + ", ".join(changed)
        )
        async with ctx.transaction() as conn:
            req = await _load(conn, request_id, for_update=True)
            if req.status in OPEN:
                status = transition(req.status, RequestAction.APPROVE)
                await _history(
                    conn, request_id, at=now, event="approved", status=status, actor=actor
                )
                final = await _finish(ctx, conn, actor, req, outcome, now)
                await _audit(conn, actor, "approve", req, now, final)
    elif req.type == RequestType.ERASURE:
        ctx.deks.forget(req.subject_id)
    return await get_request(ctx, request_id)


async def reject(ctx: VaultContext, actor: Actor, request_id: str, reason: str) -> RequestRecord:
    """Reject an open request, with the reason the subject is told."""
    text = _text(reason, "reason")
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        req = await _load(conn, request_id, for_update=True)
        status = transition(req.status, RequestAction.REJECT)
        await _set(
            conn, request_id, now, status=status.value, completed_at=now, outcome_reason=text
        )
        await _history(
            conn, request_id, at=now, event="rejected", status=status, actor=actor, note=text
        )
        await _audit(conn, actor, "reject", req, now, status)
    return await get_request(ctx, request_id)


async def extend(
    ctx: VaultContext, actor: Actor, request_id: str, reason: str, *, months: int = 2
) -> RequestRecord:
    """Extend the deadline once, within the first month, by up to two months (Art. 12(3)).

    The subject is told by mail (German and English, the new date and the reason) when an
    e-mail address is stored; the mail goes out before the change commits, so a failing
    mailer extends nothing. Without an address the history says the notice is still due.
    """
    text = _text(reason, "reason")
    if not isinstance(months, int) or isinstance(months, bool):
        raise InvalidInput("months must be 1 or 2", {"months": "must be 1 or 2"})
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        req = await _load(conn, request_id, for_update=True)
        transition(req.status, RequestAction.EXTEND)
        received = as_utc(req.received_at)
        if received is None:
            raise InvariantViolation("received is unset")
        refusal = extension_refusal(received, as_utc(req.extended_at), now, months)
        if refusal and months in (1, 2):
            raise Conflict(refusal)
        if refusal:
            raise InvalidInput("months must be 1 or 2", {"months": refusal})
        new_due = extended_due(received, months)
        await _set(
            conn,
            request_id,
            now,
            due_at=new_due,
            extended_at=now,
            extension_reason=text,
        )
        await _history(
            conn,
            request_id,
            at=now,
            event="extended",
            status=req.status,
            actor=actor,
            note=f"due {new_due.isoformat()}: {text}",
        )
        await _audit(conn, actor, "extend", req, now, req.status, due_at=new_due.isoformat())
        address = None
        if req.subject_id is not None:
            subject = await load_subject(conn, req.subject_id)
            if subject.wrapped_dek is not None:
                address = decrypt_fields(ctx, subject, ("email",)).get("email")
        if address:
            await audit.record(
                conn,
                at=now,
                actor=audit.SYSTEM,
                action=audit.AuditAction.REQUEST_EXTENSION_MAIL,
                decision=Decision.ALLOW,
                subject_id=req.subject_id,
                fields=["email"],
                detail={"request_id": request_id},
            )
            await _history(
                conn,
                request_id,
                at=now,
                event="notice_mailed",
                status=req.status,
                actor=audit.SYSTEM,
                note="the subject was told the new date and the reason by e-mail",
            )
            await ctx.mailer.send(
                extension_mail(ctx, address, request_id, req.type, received, new_due, text)
            )
        else:
            await _history(
                conn,
                request_id,
                at=now,
                event="notice_pending",
                status=req.status,
                actor=audit.SYSTEM,
                note="no e-mail address stored: tell the subject by letter within the first month",
            )
    return await get_request(ctx, request_id)


async def complete(
    ctx: VaultContext, actor: Actor, request_id: str, note: str | None = None
) -> RequestRecord:
    """Close a request a DPO carried out by other means (e.g. answered by letter)."""
    text = _text(note, "note", required=False)
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        req = await _load(conn, request_id, for_update=True)
        status = transition(req.status, RequestAction.COMPLETE)
        if req.status == RequestStatus.RECEIVED and req.subject_id is not None:
            # Matched to a subject but unverified: the identity check comes first.
            raise Conflict(_REFUSALS[RequestAction.COMPLETE].format(status=req.status))
        await _set(
            conn,
            request_id,
            now,
            status=status.value,
            completed_at=now,
            outcome_reason=text or req.outcome_reason,
        )
        await _history(
            conn, request_id, at=now, event="completed", status=status, actor=actor, note=text
        )
        await _audit(conn, actor, "complete", req, now, status)
    return await get_request(ctx, request_id)


async def settle(ctx: VaultContext, actor: Actor, request_id: str) -> RequestRecord:
    """Close a request `awaiting_recipients` once every recipient told confirmed or the DPO
    closed its notice with a reason; `Conflict` naming how many are still open otherwise.
    The history records who confirmed how."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        req = await _load(conn, request_id, for_update=True)
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
        await _set(conn, request_id, now, status=str(status), completed_at=now)
        await _history(
            conn,
            request_id,
            at=now,
            event=str(action),
            status=status,
            actor=actor,
            note=recipients_of.confirmed_note(notices),
        )
        await _audit(conn, actor, "complete", req, now, status)
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


# -- the extension notice ---------------------------------------------------------------

_EXTENSION_SUBJECT = (
    "Ihre Datenschutz-Anfrage: Frist verlängert / Your privacy request: deadline extended"
)
_EXTENSION_BODY = """(English below)

Guten Tag,

Ihre Anfrage – {type_de} – vom {received_de} können wir nicht innerhalb eines Monats
abschließen. Nach Art. 12 Abs. 3 DSGVO verlängern wir die Frist: Sie erhalten unsere
Antwort spätestens am {due_de}.

Grund: {reason}

Ihre Vorgangsnummer: {request_id}

----------------------------------------------------------------------

Hello,

we cannot complete your request – {type_en} – of {received_en} within one month. Under
Art. 12(3) GDPR we extend the deadline: you will receive our answer by {due_en} at the
latest.

Reason: {reason}

Your reference: {request_id}
"""


def extension_mail(
    ctx: VaultContext,
    address: str,
    request_id: str,
    type_: str,
    received_at: datetime,
    due_at: datetime,
    reason: str,
) -> EmailMessage:
    """The notice of an extension, in German and English, with the new date and reason."""
    type_de, type_en = TYPE_TITLES.get(type_, (type_, type_))
    msg = EmailMessage()
    msg["From"] = ctx.settings.mail_from
    msg["To"] = address
    msg["Subject"] = _EXTENSION_SUBJECT
    msg.set_content(
        _EXTENSION_BODY.format(
            type_de=type_de,
            type_en=type_en,
            received_de=received_at.strftime("%d.%m.%Y"),
            received_en=received_at.strftime("%Y-%m-%d"),
            due_de=due_at.strftime("%d.%m.%Y"),
            due_en=due_at.strftime("%Y-%m-%d"),
            reason=reason,
            request_id=request_id,
        )
    )
    # After set_content, which clears the Content-* headers set before it.
    msg["Content-Language"] = "de, en"
    return msg


# -- the DPO's queue ---------------------------------------------------------------------------


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
