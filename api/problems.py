"""The one place that turns errors into RFC 9457 problem+json responses.

Details name fields and rules, never submitted values; unexpected errors are logged by
type only and answered with a generic 500, so no message can leak contact data.
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)

from api.logging import ensure_request_id
from vault.crypto import KeyringError
from vault.errors import (
    AccessDenied,
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
    Unavailable,
    VaultError,
)

PROBLEM = "application/problem+json"
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
    errors = []
    for item in exc.extra or []:
        if isinstance(item, dict):
            errors.append(
                {
                    "field": str(item.get("key") or item.get("source") or "body"),
                    "message": str(item.get("message", "is invalid")),
                }
            )
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
    headers = dict(exc.headers or {})
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="tresor"')
    detail = exc.detail if isinstance(exc.detail, str) and status < 500 else _TITLES.get(status, "Error")
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


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled_error", error=type(exc).__name__)
    return problem(request, 500, "An internal error occurred; nothing was revealed.")


exception_handlers: dict[Any, Any] = {
    HTTPException: _http,
    VaultError: _vault,
    KeyringError: _keyring,
    Exception: _unexpected,
}

__all__ = ["PROBLEM", "exception_handlers", "problem", "PermissionDeniedException"]
