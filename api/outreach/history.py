"""The contact history through HTTP: `GET /v1/subjects/{id}/contacts` lets the CRM read
the contacts made with one customer (see vault.outreach.history)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import Parameter

from api.auth import actor_of, roles
from api.deps import Vault
from api.openapi_docs import AUTHED, problems
from api.outreach.schemas import ContactHistoryEntryOut, ContactHistoryPageOut
from api.query_params import query, reject_unknown_query
from api.schemas import Uuid, uuid_path
from vault.admin.clients import ClientInfo, Role
from vault.outreach import history
from vault.outreach.followups import MAX_PAGE
from vault.outreach.page_cursor import CURSOR_PATTERN


def entry_out(c: history.ContactEntry) -> ContactHistoryEntryOut:
    return ContactHistoryEntryOut(
        id=c.id, at=c.at, direction=c.direction, brand=c.brand, channel=c.channel,
        type=c.type, priority=c.priority, points=c.points, purpose=c.purpose,
        touchpoint=c.touchpoint, client=c.client,
    )  # fmt: skip


class ContactHistoryController(Controller):
    path = "/v1/subjects/{subject_id:str}/contacts"
    tags = ["contact pressure"]
    before_request = staticmethod(reject_unknown_query)

    @get(
        "/",
        operation_id="listSubjectContacts",
        summary="The contacts made with one customer (outbound and inbound), newest first",
        description=(
            "The contact history (Kontaktverlauf): every contact recorded by a lookup with "
            "`contact` or by `POST /v1/contacts`, for the purposes this client may use "
            "(contacts for other purposes are not shown). Paginated with `cursor`. An "
            "unknown subject is a 404 `subject_not_found`. Every read is audited."
        ),
        opt={**query("limit", "cursor"), **roles(Role.WRITER)},
        responses=problems(*AUTHED, 404, 422, reasons={404: ("subject_not_found",)}),
    )
    async def list_contacts(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        subject_id: Uuid = uuid_path("The subject's id"),
        limit: int = Parameter(default=50, ge=1, le=MAX_PAGE),
        cursor: str | None = Parameter(
            required=False,
            min_length=32,
            max_length=32,
            pattern=CURSOR_PATTERN,
            description="`next_cursor` of the previous page (any text of this pattern is a "
            "position; a page shows only what the client may see)",
        ),
    ) -> ContactHistoryPageOut:
        client: ClientInfo = request.user
        page = await history.client_page(
            vault, actor_of(request), client.purposes, subject_id, limit=limit, cursor=cursor
        )
        return ContactHistoryPageOut(
            items=[entry_out(c) for c in page.items], next_cursor=page.next_cursor
        )
