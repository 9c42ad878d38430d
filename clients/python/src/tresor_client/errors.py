"""The exceptions the client raises.

Every refusal of the server is an `application/problem+json` answer; it becomes an
`ApiError` (or the subclass for its status) carrying `status`, the problem `type` and the
machine-readable `reason` (e.g. `no_consent`, `precondition_failed`), so callers branch on
those rather than on texts. The message holds only what the problem says (the server keeps
contact data out of problems), never the request body, so logging an error leaks nothing.
"""

from __future__ import annotations

import msgspec

from tresor_client.models import Problem, ProblemError

__all__ = [
    "ApiError",
    "Conflict",
    "Denied",
    "InvalidRequest",
    "NotFound",
    "PreconditionFailed",
    "PreconditionRequired",
    "RateLimited",
    "TresorError",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "error_for",
]


class TresorError(Exception):
    """Anything the client raises."""


class TransportError(TresorError):
    """No answer from the server (connection refused, timeout) after the allowed retries."""


class ApiError(TresorError):
    """The server refused the request with a problem+json answer."""

    def __init__(self, problem: Problem, etag: str | None = None) -> None:
        self.problem = problem
        self.status = problem.status
        self.type = problem.type
        self.reason = problem.reason
        self.title = problem.title
        self.detail = problem.detail
        self.errors: list[ProblemError] = list(problem.errors or [])
        #: The current `ETag` when the server sent one (a 412 may carry it).
        self.etag = etag
        reason = f" ({self.reason})" if self.reason else ""
        super().__init__(f"{self.status} {self.type}{reason}: {self.detail}")


class InvalidRequest(ApiError):
    """400 or 422: the body or a parameter was refused; `errors` names the fields."""


class Unauthorized(ApiError):
    """401: no or an unknown API key."""


class Denied(ApiError):
    """403: the role, purpose or consent check denied it; `reason` says which."""


class NotFound(ApiError):
    """404."""


class Conflict(ApiError):
    """409: the state does not allow it (e.g. already withdrawn), or a request with the same
    idempotency key is still running."""


class PreconditionFailed(ApiError):
    """412: the `If-Match` ETag is stale; read again, then decide."""


class PreconditionRequired(ApiError):
    """428: the operation needs `If-Match`."""


class RateLimited(ApiError):
    """429: a limit or quota; `retry_after` seconds when the server said."""

    retry_after: float | None = None


class Unavailable(ApiError):
    """503 (or another 5xx): the server cannot answer now."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Denied,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    422: InvalidRequest,
    428: PreconditionRequired,
    429: RateLimited,
}


def error_for(
    status: int, body: bytes, etag: str | None = None, retry_after: float | None = None
) -> ApiError:
    """The exception for a refused answer; a body that is no problem still gives one (with
    the status), so a proxy's HTML error page does not turn into a decoding error."""
    try:
        problem = msgspec.json.decode(body, type=Problem)
    except (msgspec.DecodeError, msgspec.ValidationError):
        problem = Problem(
            type="about:blank", title="HTTP error", status=status, detail=f"HTTP {status}"
        )
    if problem.status != status:
        problem = msgspec.structs.replace(problem, status=status)
    cls = _BY_STATUS.get(status, Unavailable if status >= 500 else ApiError)
    error = cls(problem, etag)
    if isinstance(error, RateLimited):
        error.retry_after = retry_after
    return error
