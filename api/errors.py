"""The one table from a domain error to its answer: status, problem type and page text.

The JSON API renders a row as problem+json (`api.problems`), the privacy centre and the DPO
console as a page (`api.web.errors`); both read the same row, so a refused, missing or
conflicting thing gets the same status on every surface. Rows are tried in order, so a
subclass comes before its base; an error no row matches is an internal error (500).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from litestar.exceptions import HTTPException

from api.i18n import N_
from vault.crypto import IntegrityCheckFailed, KeyringError
from vault.errors import (
    AccessDenied,
    Conflict,
    IntegrityFailure,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    QuotaExceeded,
    RateLimited,
    Unauthenticated,
    Unavailable,
    VaultError,
)

log = structlog.get_logger("tresor.errors")


@dataclass(frozen=True)
class ErrorRow:
    """How one kind of error is answered.

    `reason`: True passes the error's own `reason` into the problem, a string is the reason
    of every error of the row; `typed` appends it to the type as well
    (`urn:tresor:problem:denied:purpose_not_allowed`). `detail`: a fixed text replacing the
    error's message where that message is not meant for clients. `logged`: the event name
    of the log line the answer writes (server-side faults only). `title` and `text` are the
    catalogue ids of a page's heading and text.
    """

    status: int
    type: str
    text: str
    title: str = N_("error_title")
    reason: bool | str = False
    typed: bool = False
    detail: str | None = None
    logged: str | None = None


_UNAVAILABLE = ErrorRow(
    503,
    "urn:tresor:problem:unavailable",
    N_("unavailable_text"),
    title=N_("unavailable_title"),
    logged="unavailable",
)
_INTEGRITY = ErrorRow(
    500,
    "urn:tresor:problem:integrity-error",
    N_("error_integrity_text"),
    reason=IntegrityFailure.reason,
    detail=str(IntegrityFailure()),
    logged="integrity_error",
)

#: Domain error -> answer, most specific first.
ERRORS: tuple[tuple[type[Exception], ErrorRow], ...] = (
    (InvalidInput, ErrorRow(422, "urn:tresor:problem:invalid-input", N_("error_invalid_text"))),
    (
        AccessDenied,
        ErrorRow(
            403, "urn:tresor:problem:denied", N_("error_denied_text"), reason=True, typed=True
        ),
    ),
    (
        NotFound,
        ErrorRow(
            404,
            "urn:tresor:problem:not-found",
            N_("error_not_found_text"),
            title=N_("error_not_found_title"),
            reason=True,
        ),
    ),
    (
        PreconditionRequired,
        ErrorRow(
            428,
            "urn:tresor:problem:precondition-required",
            N_("error_conflict_text"),
            reason=PreconditionRequired.reason,
        ),
    ),
    (
        PreconditionFailed,
        ErrorRow(
            412,
            "urn:tresor:problem:precondition-failed",
            N_("error_conflict_text"),
            reason=PreconditionFailed.reason,
        ),
    ),
    (Conflict, ErrorRow(409, "urn:tresor:problem:conflict", N_("error_conflict_text"))),
    (RateLimited, ErrorRow(429, "urn:tresor:problem:rate-limited", N_("error_rate_limited_text"))),
    (
        Unauthenticated,
        ErrorRow(
            401,
            "urn:tresor:problem:unauthenticated",
            N_("error_unauthenticated_text"),
            reason=True,
            typed=True,
        ),
    ),
    (IntegrityFailure, _INTEGRITY),
    (IntegrityCheckFailed, _INTEGRITY),
    (Unavailable, _UNAVAILABLE),
    (
        KeyringError,
        ErrorRow(
            503,
            _UNAVAILABLE.type,
            _UNAVAILABLE.text,
            title=_UNAVAILABLE.title,
            detail="keyring is unavailable; nothing was changed or revealed",
            logged="unavailable",
        ),
    ),
    (VaultError, ErrorRow(400, "urn:tresor:problem:bad-request", N_("error_bad_request_text"))),
)

#: Anything else: a bug or an unexpected failure; the answer reveals nothing about it.
INTERNAL = ErrorRow(
    500,
    "urn:tresor:problem:internal",
    N_("error_internal_text"),
    detail="An internal error occurred; nothing was revealed.",
    logged="unhandled_error",
)

#: Pages for Litestar's own refusals, by status: the CSRF check's 403, an unknown path's
#: 404; any other 4xx is a bad request. (problem+json answers these in `api.problems`.)
HTTP_PAGES: dict[int, ErrorRow] = {
    403: ErrorRow(
        403,
        "urn:tresor:problem:form-expired",
        N_("error_form_expired_text"),
        title=N_("error_form_expired_title"),
    ),
    404: ErrorRow(
        404,
        "urn:tresor:problem:not-found",
        N_("error_not_found_text"),
        title=N_("error_not_found_title"),
    ),
}


#: The problem types of the framework's own refusals (routing, methods, media types, body
#: size, its auth guards), by status: the same `urn:tresor:problem:*` family as the domain
#: errors, so a client matches one prefix, never `about:blank`.
HTTP_TYPES: dict[int, str] = {
    400: "urn:tresor:problem:bad-request",
    401: "urn:tresor:problem:unauthenticated",
    403: "urn:tresor:problem:denied",
    404: "urn:tresor:problem:not-found",
    405: "urn:tresor:problem:method-not-allowed",
    406: "urn:tresor:problem:not-acceptable",
    409: "urn:tresor:problem:conflict",
    412: "urn:tresor:problem:precondition-failed",
    413: "urn:tresor:problem:too-large",
    415: "urn:tresor:problem:unsupported-media-type",
    428: "urn:tresor:problem:precondition-required",
    429: "urn:tresor:problem:rate-limited",
    500: "urn:tresor:problem:internal",
    503: "urn:tresor:problem:unavailable",
}


def http_type(status: int) -> str:
    """The problem type of a framework refusal with this status."""
    return HTTP_TYPES.get(status, f"urn:tresor:problem:http-{status}")


def row_for(exc: Exception) -> ErrorRow:
    """The row answering `exc`: the first whose error type it is, else `INTERNAL`."""
    for error, row in ERRORS:
        if isinstance(exc, error):
            return row
    return INTERNAL


def page_row(exc: Exception) -> ErrorRow:
    """The row of a page's answer: the table's for a domain error, `HTTP_PAGES` for a
    refusal by Litestar (a 4xx keeps its status), `INTERNAL` for anything else."""
    if isinstance(exc, HTTPException):
        if exc.status_code >= 500:
            return INTERNAL
        return HTTP_PAGES.get(exc.status_code) or ErrorRow(
            exc.status_code, http_type(exc.status_code), N_("error_bad_request_text")
        )
    return row_for(exc)


def reason_of(exc: Exception, row: ErrorRow) -> str | None:
    """The machine-readable reason the answer carries, if its row passes one on."""
    if isinstance(row.reason, str):
        return row.reason
    reason = getattr(exc, "reason", None) if row.reason else None
    return reason if isinstance(reason, str) else None


def problem_type(exc: Exception, row: ErrorRow) -> str:
    reason = reason_of(exc, row)
    return f"{row.type}:{reason}" if row.typed and reason else row.type


def detail_of(exc: Exception, row: ErrorRow) -> str:
    """The problem's detail: the domain error's own message (written for clients, never
    holding submitted values) or the row's fixed text."""
    return row.detail if row.detail is not None else str(exc)


def headers_for(exc: Exception, row: ErrorRow) -> dict[str, str] | None:
    """Retry hints and the challenge, the same on a page as in problem+json."""
    if isinstance(exc, QuotaExceeded):
        # draft-ietf-httpapi-ratelimit-headers: the policy, and what is left of it now.
        name = f'"{exc.policy}"'
        return {
            "Retry-After": str(exc.retry_after),
            "RateLimit-Policy": f"{name};q={exc.quota};w={exc.window}",
            "RateLimit": f"{name};r={exc.remaining};t={exc.retry_after}",
        }
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, Unauthenticated):
        return {"WWW-Authenticate": 'Bearer realm="tresor-self"'}
    if row.status == 503:
        return {"Retry-After": "1"}
    return None


def log_answer(exc: Exception, row: ErrorRow) -> None:
    """A server-side fault leaves one log line: the error's type (or its cause's), never its
    message, which may hold whatever the failing dependency put there."""
    if row.logged is None:
        return
    if row is _INTEGRITY:
        log.error(row.logged)
        return
    if isinstance(exc, Unavailable):
        cause = type(exc.__cause__).__name__ if exc.__cause__ else None
    else:
        cause = type(exc).__name__
    log.error(row.logged, error=cause)
