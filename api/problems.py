"""The one place that turns errors into RFC 9457 problem+json responses.

Details name fields and rules, never submitted values; unexpected errors are logged by
type only and answered with a generic 500, so no message can leak contact data.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    SerializationException,
    ValidationException,
)

from api import errors, metrics
from api.logging import ensure_request_id
from api.request_body import BodyTooDeep, empty_body
from api.validation_errors import body_field, describe, json_syntax, takes_body
from vault.crypto import IntegrityCheckFailed, KeyringError
from vault.errors import InvalidInput, QuotaExceeded, VaultError

PROBLEM = "application/problem+json"
#: A detail from an HTTP exception is shown only in this shape: words, no quoted anything.
_SAFE_DETAIL = re.compile(r"^[A-Za-z][^'\"`]{0,200}$")

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def problem(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    type_: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": type_,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": ensure_request_id(request.scope),
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """422 listing every failing field (body fields by JSON Pointer) and its rule;
    `describe` drops every submitted value (enum values, unknown field and parameter names)
    from the messages."""
    errors = describe(request, list(exc.extra or [])) if isinstance(exc.extra, list) else []
    return problem(
        request,
        422,
        "The request is invalid; nothing was changed.",
        type_="urn:tresor:problem:validation",
        errors=errors or None,
    )


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ValidationException) and takes_body(request) and empty_body(request):
        return problem(  # no JSON at all: like malformed JSON, not a validation failure
            request,
            400,
            "The request body is empty; nothing was changed.",
            type_="urn:tresor:problem:malformed-json",
            errors=[{"field": "body", "message": "is empty"}],
        )
    if isinstance(exc, ValidationException):
        return _validation(request, exc)
    if isinstance(exc, BodyTooDeep):  # refused before decoding, like malformed JSON
        return problem(
            request,
            400,
            str(exc.detail),
            type_="urn:tresor:problem:malformed-json",
            errors=list(exc.extra) if isinstance(exc.extra, list) else None,
        )
    status = exc.status_code
    if status == 400 and isinstance(exc.__cause__, SerializationException):
        return problem(  # the body is not JSON: where, never what
            request,
            400,
            "The request body is not valid JSON; nothing was changed.",
            type_="urn:tresor:problem:malformed-json",
            errors=[{"field": "body", "message": json_syntax(str(exc.__cause__))}],
        )
    headers = dict(exc.headers or {})
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="tresor"')
    detail = exc.detail if isinstance(exc.detail, str) and status < 500 else ""
    if not _SAFE_DETAIL.match(detail):  # e.g. Litestar's "Invalid content-length: '…'"
        detail = _TITLES.get(status, "Error")
    return problem(request, status, detail, type_=errors.http_type(status), headers=headers or None)


def _domain(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A domain error (or a keyring or integrity failure) answered by its row of the one
    error table, `api.errors.ERRORS`; `InvalidInput` lists the fields and rules."""
    row = errors.row_for(exc)
    errors.log_answer(exc, row)
    if isinstance(exc, QuotaExceeded):
        metrics.observe_quota_exceeded(exc.client, exc.policy)
    fields = None
    if isinstance(exc, InvalidInput):
        fields = [
            {"field": body_field(request, k), "message": v} for k, v in sorted(exc.errors.items())
        ]
    return problem(
        request,
        row.status,
        errors.detail_of(exc, row),
        type_=errors.problem_type(exc, row),
        headers=errors.headers_for(exc, row),
        errors=fields,
        reason=errors.reason_of(exc, row),
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    errors.log_answer(exc, errors.INTERNAL)
    return problem(request, 500, errors.detail_of(exc, errors.INTERNAL), type_=errors.INTERNAL.type)


exception_handlers: dict[Any, Any] = {
    HTTPException: _http,
    VaultError: _domain,
    KeyringError: _domain,
    IntegrityCheckFailed: _domain,
    Exception: _unexpected,
}


__all__ = ["PROBLEM", "exception_handlers", "problem", "PermissionDeniedException"]
