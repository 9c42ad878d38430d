"""Agreed follow-ups: a writer records a contact the customer asked for; clients list what
is due for their purposes. A lookup or `POST /v1/contacts` naming the follow-up in
`contact.followup` keeps it (see vault.outreach.followups)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import JSONBody, Parameter

from api.auth import actor_of, roles
from api.deps import Vault
from api.idempotency import IdempotentOperation
from api.openapi_docs import AUTHED, problems
from api.outreach.schemas import (
    FollowupClose,
    FollowupCreate,
    FollowupOut,
    FollowupPageOut,
    FollowupReschedule,
)
from api.query_params import query, reject_unknown_query
from api.schemas import Uuid, uuid_path
from vault.admin.clients import ClientInfo, Role
from vault.errors import InvalidInput
from vault.outreach import followup_changes, followup_reads, followups
from vault.outreach.page_cursor import CURSOR_PATTERN

#: RFC 3339 date-time with a time zone; anything else is a 400 before any domain code runs.
AWARE_DATETIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|z|[+-]\d{2}:\d{2})$"


def _aware(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise InvalidInput("bad due_before", {"due_before": "not a date and time"}) from None


def followup_out(f: followups.Followup) -> FollowupOut:
    return FollowupOut(
        id=f.id,
        subject_id=f.subject_id,
        purpose=f.purpose,
        channel=f.channel,
        type=f.type,
        brand=f.brand,
        touchpoint=f.touchpoint,
        note=f.note,
        due_from=f.due_from,
        due_until=f.due_until,
        status=f.status,
        created_at=f.created_at,
        closed_at=f.closed_at,
        assignee=f.assignee,
        outcome=f.outcome,
    )


class FollowupController(Controller):
    path = "/v1/followups"
    tags = ["follow-ups"]
    before_request = staticmethod(reject_unknown_query)

    @post(
        "/",
        operation_id="createFollowup",
        operation_class=IdempotentOperation,
        summary="Record a contact the customer asked for, with its due window",
        description=(
            "The client must be allowed the purpose. The window (`due_from` < `due_until`, "
            "at most 31 days, ending in the future, starting within a year) is when a "
            "lookup or recorded contact naming the follow-up in `contact.followup` is "
            "allowed even with a full basket, without counting against it; once."
        ),
        status_code=201,
        opt={**query(), **roles(Role.WRITER)},
        responses=problems(*AUTHED, 404, 409, 413, 422),
    )
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[FollowupCreate], vault: Vault
    ) -> FollowupOut:
        client: ClientInfo = request.user
        created = await followups.create(
            vault,
            actor_of(request),
            client.purposes,
            subject_id=data.subject_id,
            purpose=data.purpose,
            brand=data.brand,
            touchpoint=data.touchpoint,
            due_from=data.due_from,
            due_until=data.due_until,
            channel=data.channel,
            type=data.type,
            note=data.note,
            assignee=data.assignee,
        )
        return followup_out(created)

    @get(
        "/",
        operation_id="listDueFollowups",
        summary="Open follow-ups for this client's purposes due before a time, earliest first",
        description=(
            "The reminder list: open follow-ups whose window starts before `due_before` "
            "(default: now) and has not ended; only for purposes this client may use; with "
            "`assignee`, only those assigned to that client or team. Paginated with `cursor`."
        ),
        opt={
            **query("due_before", "assignee", "limit", "cursor"),
            **roles(Role.WRITER, Role.LOOKUP),
        },
        responses=problems(*AUTHED, 422),
    )
    async def list_due(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        due_before: str | None = Parameter(
            required=False,
            pattern=AWARE_DATETIME,
            max_length=40,
            description="date and time with a time zone (RFC 3339), e.g. 2026-11-24T17:00:00Z",
            schema_extra={"format": "date-time"},
        ),
        assignee: str | None = Parameter(
            required=False,
            min_length=1,
            max_length=100,
            pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$",
            description="only follow-ups assigned to this client or team",
        ),
        limit: int = Parameter(default=50, ge=1, le=followups.MAX_PAGE),
        cursor: str | None = Parameter(
            required=False,
            min_length=32,
            max_length=32,
            pattern=CURSOR_PATTERN,
            description="`next_cursor` of the previous page (any text of this pattern is a "
            "position; a page shows only what the client may see)",
        ),
    ) -> FollowupPageOut:
        client: ClientInfo = request.user
        page = await followup_reads.list_due(
            vault,
            actor_of(request),
            client.purposes,
            due_before=_aware(due_before),
            limit=limit,
            cursor=cursor,
            assignee=assignee,
        )
        return FollowupPageOut(
            items=[followup_out(f) for f in page.items], next_cursor=page.next_cursor
        )

    @get(
        "/{followup_id:str}",
        operation_id="getFollowup",
        summary="One follow-up, for a purpose this client may use",
        opt={**query(), **roles(Role.WRITER, Role.LOOKUP)},
        responses=problems(*AUTHED, 404),
    )
    async def get_one(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        followup_id: Uuid = uuid_path("The follow-up's id"),
    ) -> FollowupOut:
        client: ClientInfo = request.user
        return followup_out(
            await followup_reads.get(vault, actor_of(request), client.purposes, followup_id)
        )

    @post(
        "/{followup_id:str}/reschedule",
        operation_id="rescheduleFollowup",
        summary="Move an open follow-up's window, optionally to another assignee",
        description=(
            "Only an open follow-up whose window has not passed, for a purpose this client "
            "may use (another purpose's is a 404); the new window follows the rules of a new "
            "one. A follow-up that is no longer open is a 409. Audited, refusals too."
        ),
        status_code=200,
        opt={**query(), **roles(Role.WRITER)},
        responses=problems(*AUTHED, 404, 409, 413, 422),
    )
    async def reschedule(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[FollowupReschedule],
        vault: Vault,
        followup_id: Uuid = uuid_path("The follow-up's id"),
    ) -> FollowupOut:
        client: ClientInfo = request.user
        changed = await followup_changes.reschedule(
            vault,
            actor_of(request),
            client.purposes,
            followup_id,
            due_from=data.due_from,
            due_until=data.due_until,
            assignee=data.assignee,
        )
        return followup_out(changed)

    @post(
        "/{followup_id:str}/close",
        operation_id="closeFollowup",
        summary="Close an open follow-up with an outcome",
        description=(
            "For a matter settled without the contact the follow-up promised (status "
            "`closed` with the `outcome`; it can no longer be kept and is not missed). Only "
            "an open follow-up whose window has not passed, for a purpose this client may "
            "use; else 404 or 409. Audited, refusals too."
        ),
        status_code=200,
        opt={**query(), **roles(Role.WRITER)},
        responses=problems(*AUTHED, 404, 409, 413, 422),
    )
    async def close(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[FollowupClose],
        vault: Vault,
        followup_id: Uuid = uuid_path("The follow-up's id"),
    ) -> FollowupOut:
        client: ClientInfo = request.user
        closed = await followup_changes.close(
            vault, actor_of(request), client.purposes, followup_id, outcome=data.outcome
        )
        return followup_out(closed)
