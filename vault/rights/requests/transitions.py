"""The request workflow's rule: statuses, actions and the `TRANSITIONS` table.

    received ──────────────┐   (no subject matched yet)
    identity_verification ─┴─verify─▶ in_review ─approve─▶ in_progress ─▶ completed
                                                                      └─▶ partially_completed
    any open status ─reject─▶ rejected;   in_review / in_progress ─complete─▶ completed

The sketch is a reading aid; `TRANSITIONS` below is the rule every operation consults
(`transition`), and docs/architecture.md shows it (`transition_table_markdown`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

from vault.errors import Conflict
from vault.rights.requests.kinds import RequestType

if TYPE_CHECKING:
    pass


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
REFUSALS: Mapping[RequestAction, str] = MappingProxyType(
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
        raise Conflict(REFUSALS[action].format(status=status))
    return new


def initial_status(*, has_subject: bool, verified: bool, type_: RequestType) -> RequestStatus:
    """The status a new request starts in.

    Unverified, it waits for its identity check (`received` while no subject is matched).
    Verified at receipt, it has passed `verify` already and, but for a rectification or an
    Art. 21(1) objection (which a DPO reviews: the corrected data, the compelling grounds),
    `approve` too: it is carried out at once.
    """
    if not verified:
        return RequestStatus.IDENTITY_VERIFICATION if has_subject else RequestStatus.RECEIVED
    reviewed = transition(RequestStatus.RECEIVED, RequestAction.VERIFY)
    if type_ in (RequestType.RECTIFICATION, RequestType.LEGITIMATE_INTEREST_OBJECTION):
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
