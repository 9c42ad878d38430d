"""The one place that turns errors into RFC 9457 problem+json responses.

Details name fields and rules, never submitted values; unexpected errors are logged by
type only and answered with a generic 500, so no message can leak contact data.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    SerializationException,
    ValidationException,
)

from api.logging import ensure_request_id
from api.validation_errors import describe, json_syntax
from vault.crypto import IntegrityCheckFailed, KeyringError
from vault.errors import (
    AccessDenied,
    Conflict,
    IntegrityFailure,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
    Unavailable,
    VaultError,
)

PROBLEM = "application/problem+json"
#: A detail from an HTTP exception is shown only in this shape: words, no quoted anything.
_SAFE_DETAIL = re.compile(r"^[A-Za-z][^'\"`]{0,200}$")
log = structlog.get_logger("tresor.errors")

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def problem(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    type_: str = "about:blank",
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
    """400 naming the fields and rules; `describe` drops every submitted value (enum
    values, unknown field and parameter names) from the messages."""
    errors = describe(request, list(exc.extra or [])) if isinstance(exc.extra, list) else []
    return problem(
        request,
        400,
        "The request is malformed; nothing was changed.",
        type_="urn:tresor:problem:validation",
        errors=errors or None,
    )


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ValidationException):
        return _validation(request, exc)
    status = exc.status_code
    if status == 400 and isinstance(exc.__cause__, SerializationException):
        return problem(  # the body is not JSON: where, never what
            request,
            400,
            "The request body is not valid JSON; nothing was changed.",
            type_="urn:tresor:problem:validation",
            errors=[{"field": "body", "message": json_syntax(str(exc.__cause__))}],
        )
    headers = dict(exc.headers or {})
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="tresor"')
    detail = exc.detail if isinstance(exc.detail, str) and status < 500 else ""
    if not _SAFE_DETAIL.match(detail):  # e.g. Litestar's "Invalid content-length: '…'"
        detail = _TITLES.get(status, "Error")
    return problem(request, status, detail, headers=headers or None)


def _vault(request: Request[Any, Any, Any], exc: VaultError) -> Response[Any]:
    reason = getattr(exc, "reason", None)
    if isinstance(exc, InvalidInput):
        errors = [{"field": k, "message": v} for k, v in sorted(exc.errors.items())]
        return problem(
            request, 422, str(exc), type_="urn:tresor:problem:invalid-input", errors=errors
        )
    if isinstance(exc, AccessDenied):
        return problem(
            request, 403, str(exc), type_=f"urn:tresor:problem:denied:{reason}", reason=reason
        )
    if isinstance(exc, NotFound):
        return problem(request, 404, str(exc), type_="urn:tresor:problem:not-found", reason=reason)
    if isinstance(exc, Conflict):
        return problem(request, 409, str(exc), type_="urn:tresor:problem:conflict")
    if isinstance(exc, RateLimited):
        return problem(
            request,
            429,
            str(exc),
            type_="urn:tresor:problem:rate-limited",
            headers={"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, Unauthenticated):
        return problem(
            request,
            401,
            str(exc),
            type_=f"urn:tresor:problem:unauthenticated:{exc.reason}",
            headers={"WWW-Authenticate": 'Bearer realm="tresor-self"'},
            reason=exc.reason,
        )
    if isinstance(exc, IntegrityFailure):
        return _integrity(request)
    if isinstance(exc, Unavailable):
        log.error("unavailable", error=type(exc.__cause__).__name__ if exc.__cause__ else None)
        return problem(
            request,
            503,
            str(exc),
            type_="urn:tresor:problem:unavailable",
            headers={"Retry-After": "1"},
        )
    return problem(request, 400, str(exc))


def _keyring(request: Request[Any, Any, Any], exc: KeyringError) -> Response[Any]:
    """The keyring could not be read outside a transaction (e.g. wrapping a new subject's
    key): the same 503 as any other unavailable dependency; nothing was stored."""
    error = Unavailable("keyring is unavailable; nothing was changed or revealed")
    error.__cause__ = exc
    return _vault(request, error)


def _integrity(request: Request[Any, Any, Any], *_: Any) -> Response[Any]:
    """Stored data failed an integrity check (`vault.subjects.integrity`): a 500, because the
    database holds what the vault did not write and no retry or other input helps; the
    answer names no value and not which check failed. Operators find it in the log line and
    the audit trail (reason `integrity_error`). A check failing outside the audited reads
    (e.g. while re-sealing for a write) gets the same answer; nothing was changed."""
    log.error("integrity_error")
    return problem(
        request,
        500,
        str(IntegrityFailure()),
        type_="urn:tresor:problem:integrity-error",
        reason=IntegrityFailure.reason,
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled_error", error=type(exc).__name__)
    return problem(request, 500, "An internal error occurred; nothing was revealed.")


exception_handlers: dict[Any, Any] = {
    HTTPException: _http,
    VaultError: _vault,
    KeyringError: _keyring,
    IntegrityCheckFailed: _integrity,
    Exception: _unexpected,
}

__all__ = ["PROBLEM", "exception_handlers", "problem", "PermissionDeniedException"]
