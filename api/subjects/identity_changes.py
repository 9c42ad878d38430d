"""Changes of identifying addresses, for the DPO: list them (objected ones are the DPO's to
resolve) and approve one, which lifts the restriction it puts on privacy-centre sessions
through the new address (`vault.subjects.identity`)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import Parameter

from api.auth import actor_of, roles
from api.deps import Vault
from api.openapi_docs import AUTHED, problems
from api.query_params import query, reject_unknown_query
from api.schemas import UUID_PATTERN, uuid_path
from api.subjects.schemas import IdentityChangeList, IdentityChangeOut, IdentityChangeStatusName
from vault.admin.clients import Role
from vault.subjects import identity_review
from vault.subjects.identity import ChangeRecord


def change_out(record: ChangeRecord) -> IdentityChangeOut:
    return IdentityChangeOut(
        change_id=record.id,
        subject_id=record.subject_id,
        kind=record.kind,
        status=record.status,
        changed_at=record.changed_at,
        changed_by=record.changed_by,
        cooling_off_until=record.cooling_off_until,
        resolved_at=record.resolved_at,
        resolved_by=record.resolved_by,
        request_id=record.request_id,
    )


class IdentityChangeController(Controller):
    path = "/v1/identity-changes"
    tags = ["requests"]
    opt = roles(Role.DPO)
    before_request = staticmethod(reject_unknown_query)

    @get(
        "/",
        operation_id="listIdentityChanges",
        summary="Changes of customers' e-mail addresses and phone numbers, newest first",
        description=(
            "`objected`: the previous address said it was not them; sessions through the "
            "new address stay restricted until a DPO approves the change. The read is audited."
        ),
        responses=problems(*AUTHED, 422),
        opt=query("subject_id", "status", "limit"),
    )
    async def list_(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        subject_id: str | None = Parameter(
            required=False, default=None, min_length=36, max_length=36, pattern=UUID_PATTERN
        ),
        status: IdentityChangeStatusName | None = Parameter(required=False, default=None),
        limit: int = Parameter(default=100, ge=1, le=1000),
    ) -> IdentityChangeList:
        records = await identity_review.list_changes(
            vault, actor_of(request), subject_id=subject_id, status=status, limit=limit
        )
        return IdentityChangeList(items=[change_out(r) for r in records])

    @post(
        "/{change_id:str}/approve",
        operation_id="approveIdentityChange",
        summary="Approve a change: sessions through the address it set are trusted",
        description=(
            "For a pending change (its cooling-off running), one in force without an answer, "
            "or one objected to after looking into it. Approve the open changes of an "
            "address in order: the earliest open one names the trusted address."
        ),
        status_code=200,
        responses=problems(*AUTHED, 404, 409),
    )
    async def approve(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        change_id: str = uuid_path("The identity change's id"),
    ) -> IdentityChangeOut:
        return change_out(await identity_review.approve(vault, actor_of(request), change_id))
