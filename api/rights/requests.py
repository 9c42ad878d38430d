"""Data-subject requests for DPOs: create on a customer's behalf, list against the
deadlines, and move a request on (verify, approve, reject, extend, complete); plus the
subject's Art. 15 / Art. 20 export as JSON or readable HTML."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.enums import MediaType
from litestar.exceptions import ValidationException
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
)
from litestar.params import JSONBody, Parameter, QueryParameter

from api.auth import actor_of, roles
from api.conditional import etag_header, tagged_json
from api.deps import Vault
from api.export_view import render_export_html
from api.i18n import pick_language
from api.idempotency import IdempotentOperation
from api.openapi_docs import AUTHED, problems
from api.query_params import query, reject_unknown_query
from api.rights.schemas import (
    RequestComplete,
    RequestCreate,
    RequestExtend,
    RequestHistoryOut,
    RequestList,
    RequestOut,
    RequestReason,
    RequestStatusName,
    RequestTypeName,
)
from api.schemas import uuid_path
from vault.admin.clients import Role
from vault.rights import export
from vault.rights import requests as dsar
from vault.rights.requests import RequestRecord

RequestId = uuid_path("The request's id")


def request_out(record: RequestRecord) -> RequestOut:
    return RequestOut(
        request_id=record.id,
        subject_id=record.subject_id,
        type=record.type,
        status=record.status,
        channel=record.channel,
        received_at=record.received_at,
        due_at=record.due_at,
        overdue=record.overdue,
        extended_at=record.extended_at,
        extension_reason=record.extension_reason,
        verified_at=record.verified_at,
        completed_at=record.completed_at,
        outcome_reason=record.outcome_reason,
        history=[RequestHistoryOut(**h) for h in record.history],
    )


class RequestController(Controller):
    path = "/v1/requests"
    tags = ["requests"]
    opt = roles(Role.DPO)
    before_request = staticmethod(reject_unknown_query)

    @post(
        "/",
        operation_id="createRequest",
        operation_class=IdempotentOperation,
        summary="Record a data-subject request received on the customer's behalf",
        description=(
            "Due one calendar month after receipt (Art. 12(3) GDPR). The request starts in "
            "`identity_verification`; verify, then approve to carry it out."
        ),
        status_code=201,
        responses=problems(*AUTHED, 404, 409, 413, 422),
    )
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[RequestCreate], vault: Vault
    ) -> RequestOut:
        payload = msgspec.to_builtins(data.payload) if data.payload is not None else None
        record = await dsar.create_request(
            vault,
            actor_of(request),
            subject_id=data.subject_id,
            type=data.type,
            channel=data.channel,
            payload=payload or None,
        )
        return request_out(record)

    @get(
        "/",
        operation_id="listRequests",
        summary="Requests against their deadlines: overdue first, then by due date",
        responses=problems(*AUTHED, 422),
        opt=query("type", "status", "due_before", "subject_id", "limit"),
    )
    async def list_(
        self,
        vault: Vault,
        type_: Annotated[
            RequestTypeName | None, QueryParameter(name="type", required=False)
        ] = None,
        status: RequestStatusName | None = Parameter(required=False, default=None),
        due_before: Annotated[
            str | None,
            QueryParameter(
                required=False,
                format="date-time",
                max_length=64,
                description="Only requests due before this time (RFC 3339, with offset)",
            ),
        ] = None,
        subject_id: str | None = Parameter(
            required=False, default=None, min_length=36, max_length=36, pattern=r"^[0-9a-f-]{36}$"
        ),
        limit: int = Parameter(default=100, ge=1, le=1000),
    ) -> RequestList:
        records = await dsar.list_requests(
            vault,
            subject_id=subject_id,
            type=type_,
            status=status,
            due_before=_rfc3339(due_before),
            limit=limit,
        )
        return RequestList(items=[request_out(r) for r in records])

    @get(
        "/{request_id:str}",
        operation_id="getRequest",
        response_headers=etag_header("Of this request: changes with its status and history"),
        summary="One request with its history",
        responses=problems(*AUTHED, 404),
    )
    async def get_(self, vault: Vault, request_id: str = RequestId) -> Response[RequestOut]:
        return tagged_json(request_out(await dsar.get_request(vault, request_id)))

    @post(
        "/{request_id:str}/verify",
        operation_id="verifyRequest",
        operation_class=IdempotentOperation,
        summary="The requester's identity is verified: the request moves to review",
        status_code=200,
        responses=problems(*AUTHED, 404, 409),
    )
    async def verify(
        self, request: Request[Any, Any, Any], vault: Vault, request_id: str = RequestId
    ) -> RequestOut:
        return request_out(await dsar.verify(vault, actor_of(request), request_id))

    @post(
        "/{request_id:str}/approve",
        operation_id="approveRequest",
        operation_class=IdempotentOperation,
        summary="Approve and carry out the request (erasure, restriction, objection, ...)",
        description=(
            "Closes as `completed`, or `partially_completed` when an erasure had to keep data "
            "under Art. 17(3)(b) GDPR (the reason names the purpose)."
        ),
        status_code=200,
        responses=problems(*AUTHED, 404, 409, 422),
    )
    async def approve(
        self, request: Request[Any, Any, Any], vault: Vault, request_id: str = RequestId
    ) -> RequestOut:
        return request_out(await dsar.approve(vault, actor_of(request), request_id))

    @post(
        "/{request_id:str}/reject",
        operation_id="rejectRequest",
        operation_class=IdempotentOperation,
        summary="Reject an open request, with the reason",
        status_code=200,
        responses=problems(*AUTHED, 404, 409, 413, 422),
    )
    async def reject(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RequestReason],
        vault: Vault,
        request_id: str = RequestId,
    ) -> RequestOut:
        return request_out(await dsar.reject(vault, actor_of(request), request_id, data.reason))

    @post(
        "/{request_id:str}/extend",
        operation_id="extendRequest",
        operation_class=IdempotentOperation,
        summary="Extend the deadline by up to two months, within the first month, once",
        description=(
            "The subject is told the new date and the reason by e-mail (German and English) "
            "when an address is stored; otherwise the history records that notice is due."
        ),
        status_code=200,
        responses=problems(*AUTHED, 404, 409, 413, 422),
    )
    async def extend(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RequestExtend],
        vault: Vault,
        request_id: str = RequestId,
    ) -> RequestOut:
        record = await dsar.extend(
            vault, actor_of(request), request_id, data.reason, months=data.months
        )
        return request_out(record)

    @post(
        "/{request_id:str}/complete",
        operation_id="completeRequest",
        operation_class=IdempotentOperation,
        summary="Close a verified request carried out by other means, with an optional note",
        status_code=200,
        responses=problems(*AUTHED, 404, 409, 413, 422),
    )
    async def complete(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        request_id: str = RequestId,
        data: JSONBody[RequestComplete | None] = None,
    ) -> RequestOut:
        note = data.note if data is not None else None
        return request_out(await dsar.complete(vault, actor_of(request), request_id, note))


def _rfc3339(value: str | None) -> datetime | None:
    """A strict RFC 3339 date-time (Litestar would also take numbers as timestamps)."""
    if value is None:
        return None
    try:
        parsed = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        raise ValidationException(
            "due_before must be an RFC 3339 date-time",
            extra=[{"key": "due_before", "message": "must be an RFC 3339 date-time"}],
        ) from None
    if parsed.tzinfo is None:
        raise ValidationException(
            "due_before needs a timezone",
            extra=[{"key": "due_before", "message": "add Z or an offset"}],
        )
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValidationException(
            "due_before is out of range",
            extra=[{"key": "due_before", "message": "is out of range"}],
        ) from None


@dataclass
class _JsonOrHtmlOperation(Operation):
    """Documents the export's 200 response as JSON and as HTML."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            ok.content["text/html"] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))


class ExportController(Controller):
    path = "/v1/subjects/{subject_id:str}/export"
    tags = ["requests"]
    opt = roles(Role.DPO)
    before_request = staticmethod(reject_unknown_query)

    @get(
        "/",
        operation_id="exportSubject",
        summary="The subject's Art. 15 / Art. 20 export (JSON, or HTML)",
        description=(
            "Contact data, every consent with evidence and history, purposes with lawful "
            "basis and retention, recipients (which systems read the data, for which purpose, "
            "when), sources, rights and requests. HTML (German or English, `lang` or "
            "Accept-Language) with `Accept: text/html` or `?format=html`. The read is audited."
        ),
        responses=problems(*AUTHED, 404, 500),
        operation_class=_JsonOrHtmlOperation,
        opt=query("format", "lang"),
    )
    async def export(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        subject_id: str = uuid_path("The subject's pseudonymous id"),
        format_: Annotated[
            Literal["json", "html"] | None,
            QueryParameter(name="format", required=False),
        ] = None,
        lang: Literal["de", "en"] | None = Parameter(required=False, default=None),
    ) -> Response[dict[str, Any]]:
        wants_html = format_ == "html" or (
            format_ is None
            and request.accept.best_match([MediaType.JSON, MediaType.HTML], MediaType.JSON)
            == MediaType.HTML
        )
        doc = await export.build_export(vault, actor_of(request), subject_id)
        if wants_html:
            html = render_export_html(doc, lang or pick_language(request), vault.pressure_rules)
            # Why the ignore below: the HTML variant has a text body; the return annotation
            # describes the JSON body for the OpenAPI document.
            return Response(html, media_type=MediaType.HTML)  # type: ignore[arg-type]
        return Response(doc, media_type=MediaType.JSON)
