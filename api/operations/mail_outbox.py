"""The mail outbox for the data-protection officer (role `dpo`): the mails that wait for
the mail server and those given up, and sending a failed one again or discarding one
(`vault.mail_outbox_review`). No address and no body ever appear in an answer: kinds,
subject ids, times, attempts and the class of the last failure only. Every call is audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.params import JSONBody, Parameter
from msgspec import Meta, Struct

from api.auth import actor_of, roles
from api.deps import Vault
from api.idempotency import IdempotentOperation
from api.openapi_docs import AUTHED, problems
from api.query_params import query, reject_unknown_query
from api.rights.schemas import ReasonText
from api.schemas import uuid_path
from vault.admin.clients import Role
from vault.mail_outbox_review import OutboxMail, discard, list_mails, retry

MailStatus = Literal["pending", "failed"]


class MailAction(Struct, forbid_unknown_fields=True):
    """Why the DPO sends the mail again or discards it (kept with the mail, audited)."""

    reason: ReasonText


class MailOut(Struct):
    """One mail of the outbox: what it is and how sending it went, never its address or body."""

    id: Annotated[str, Meta(description="The mail's id (a UUID).")]
    kind: Annotated[
        str,
        Meta(
            description="What the mail is: `signin` (a sign-in code), `doi_confirmation` "
            "(a double opt-in confirmation), `request_extension`, `restriction_lifted` or "
            "`identity_notice` (notices to the customer)."
        ),
    ]
    subject_id: Annotated[
        str | None, Meta(description="The subject the mail is about (null: none).")
    ]
    status: Annotated[
        str,
        Meta(
            description="`pending` (waiting for an attempt), `failed` (given up), `sent`, "
            "or `discarded` (by a DPO)."
        ),
    ]
    created_at: Annotated[datetime, Meta(description="When the mail was queued.")]
    attempts: Annotated[int, Meta(description="How many attempts to send it were made.")]
    next_attempt_at: Annotated[
        datetime | None, Meta(description="When the next attempt is due (pending mails only).")
    ]
    last_error: Annotated[
        str | None,
        Meta(description="The class of the last failure (e.g. `ConnectionRefusedError`)."),
    ]
    valid_until: Annotated[
        datetime | None,
        Meta(
            description="Until when the content means something (a code's expiry, a "
            "confirmation deadline); null when it does not go stale."
        ),
    ]
    retriable: Annotated[
        bool, Meta(description="Whether `POST /v1/mail/{mail_id}/retry` may send it again now.")
    ]
    dpo_note: Annotated[
        str | None, Meta(description="The reason the DPO gave for the last retry or discard.")
    ]


class MailListOut(Struct):
    """Pending and failed mails, newest first (at most 500)."""

    mails: Annotated[list[MailOut], Meta(description="The mails, newest first.")]


def mail_out(m: OutboxMail) -> MailOut:
    return MailOut(
        id=m.id,
        kind=m.kind,
        subject_id=m.subject_id,
        status=m.status,
        created_at=m.created_at,
        attempts=m.attempts,
        next_attempt_at=m.next_attempt_at,
        last_error=m.last_error,
        valid_until=m.valid_until,
        retriable=m.retriable,
        dpo_note=m.dpo_note,
    )


class MailOutboxController(Controller):
    path = "/v1/mail"
    tags = ["operations"]
    opt = roles(Role.DPO)
    before_request = staticmethod(reject_unknown_query)

    @get(
        "/",
        operation_id="listMail",
        opt=query("status"),
        summary="Mails waiting for the mail server or given up (no address, no body)",
        description=(
            "The outbox's pending and failed mails, or those of one `status`, newest first "
            "(at most 500). A failed mail with `retriable` true can be sent again. Audited "
            "(`dpo:mail:list`)."
        ),
        responses=problems(*AUTHED, 422),
    )
    async def list_(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        status: MailStatus | None = Parameter(
            required=False, description="Only mails of this status (default: both)."
        ),
    ) -> MailListOut:
        mails = await list_mails(vault, actor_of(request), status)
        return MailListOut(mails=[mail_out(m) for m in mails])

    @post(
        "/{mail_id:str}/retry",
        operation_id="retryMail",
        operation_class=IdempotentOperation,
        summary="Send a failed mail again",
        description=(
            "The mail is pending again and tried at once, then retried with back-off for "
            "up to `TRESOR_MAIL_RETRY_HOURS` (never past `valid_until`); the answer shows "
            "where it stands after the first attempt (`sent`, or `pending`). 409 for a mail "
            "that is not failed, a sign-in code (never sent late), one past its confirmation "
            "deadline, or one whose message is no longer kept. Audited (`dpo:mail:retry`)."
        ),
        status_code=200,
        responses=problems(*AUTHED, 404, 409, 413, 422, 503),
    )
    async def retry(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[MailAction],
        vault: Vault,
        mail_id: str = uuid_path("The mail's id"),
    ) -> MailOut:
        return mail_out(await retry(vault, actor_of(request), mail_id, data.reason))

    @post(
        "/{mail_id:str}/discard",
        operation_id="discardMail",
        operation_class=IdempotentOperation,
        summary="Never send a pending or failed mail",
        description=(
            "The mail's sealed message is wiped at once; it is not sent any more (an "
            "attempt under way at this moment may still deliver it). 409 for a mail sent or "
            "discarded already. Audited (`dpo:mail:discard`)."
        ),
        status_code=200,
        responses=problems(*AUTHED, 404, 409, 413, 422, 503),
    )
    async def discard(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[MailAction],
        vault: Vault,
        mail_id: str = uuid_path("The mail's id"),
    ) -> MailOut:
        return mail_out(await discard(vault, actor_of(request), mail_id, data.reason))
