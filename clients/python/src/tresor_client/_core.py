"""What the sync and the async client share: the operations, how a call is prepared, when
it is retried, and how an answer is read. The two clients only do the I/O.

Retries are safe by construction: a call is retried only when doing it twice cannot do
twice what it does: a `GET`, or a `POST` the server marks idempotent, sent with one
`Idempotency-Key` (generated per call unless the caller gives one) on every attempt, so
the server answers a retry with the first answer. A conditional `PATCH`/`PUT` (`If-Match`)
and a batch sent without a key are never retried: after a timeout their outcome is unknown
and the caller has to read again and decide.
"""

from __future__ import annotations

import random
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from tresor_client import models as m
from tresor_client.errors import ApiError, error_for

__all__ = ["OPERATIONS", "Call", "DeprecatedOperation", "Operation", "Result", "Retry"]

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp")
T = TypeVar("T")

VERSION = "0.1.0"
USER_AGENT = f"tresor-client/{VERSION}"
IDEMPOTENCY_KEY = "Idempotency-Key"


@dataclass(frozen=True)
class Operation(Generic[Req, Resp]):
    """One operation of the document: its method, path template and bodies, and whether
    the server marks it idempotent (`Idempotency-Key`) or conditional (`If-Match`)."""

    operation_id: str
    method: str
    path: str
    request: type[Req] | None
    response: type[Resp] | None
    idempotent: bool = False
    conditional: bool = False


def _op(
    operation_id: str,
    method: str,
    path: str,
    request: type[Any] | None,
    response: type[Any] | None,
    **flags: bool,
) -> Operation[Any, Any]:
    return Operation(operation_id, method, path, request, response, **flags)


#: The operations the client covers, by operation id (tests/clients/test_contract.py
#: compares each with the committed document).
OPERATIONS: dict[str, Operation[Any, Any]] = {
    op.operation_id: op
    for op in (
        _op(
            "createSubject",
            "POST",
            "/v1/subjects",
            m.SubjectCreate,
            m.SubjectCreated,
            idempotent=True,
        ),
        _op(
            "recordConsent",
            "POST",
            "/v1/subjects/{subject_id}/consents",
            m.ConsentCreate,
            m.ConsentCreated,
            idempotent=True,
        ),
        _op("listConsents", "GET", "/v1/subjects/{subject_id}/consents", None, m.ConsentList),
        _op(
            "withdrawConsent",
            "POST",
            "/v1/subjects/{subject_id}/consents/{consent_id}/withdraw",
            None,
            m.ConsentOut,
            idempotent=True,
        ),
        _op("lookup", "POST", "/v1/lookup", m.LookupRequest, m.LookupResponse, idempotent=True),
        _op(
            "lookupBatch",
            "POST",
            "/v1/lookup/batch",
            m.BatchLookupRequest,
            m.BatchLine,
            idempotent=True,
        ),
        _op(
            "rectifyContact",
            "PATCH",
            "/v1/subjects/{subject_id}/contact",
            m.ContactPatch,
            m.ContactPatched,
            conditional=True,
        ),
        _op(
            "getPreferences", "GET", "/v1/subjects/{subject_id}/preferences", None, m.PreferencesOut
        ),
        _op(
            "setPreferences",
            "PUT",
            "/v1/subjects/{subject_id}/preferences",
            m.PreferencesUpdate,
            m.PreferencesOut,
            conditional=True,
        ),
    )
}


@dataclass(frozen=True)
class Result(Generic[T]):
    """An answer: its body, its `ETag` (the state to send back in `If-Match`), and whether
    it is the stored answer to an earlier attempt with the same idempotency key."""

    body: T
    etag: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class Retry:
    """How often and how long to retry a call that may be retried (see the module text).

    `attempts` counts every try, the first included; the pause doubles from `backoff` up to
    `max_backoff` with jitter, or is the server's `Retry-After` when it sent one (a
    `Retry-After` above `max_retry_after` is not waited for: the error is raised)."""

    attempts: int = 4
    backoff: float = 0.2
    max_backoff: float = 5.0
    max_retry_after: float = 30.0
    statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 502, 503, 504}))

    def pause(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try number `attempt + 1`."""
        if retry_after is not None:
            return retry_after
        base = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return base / 2 + random.uniform(0, base / 2)  # noqa: S311 (jitter, not a secret)


NO_RETRY = Retry(attempts=1)


@dataclass
class Call:
    """One prepared call and what happened to its tries so far."""

    operation: Operation[Any, Any]
    url: str
    content: bytes | None
    headers: dict[str, str]
    retryable: bool
    attempt: int = 0
    #: A try ended without an answer: the server may have done it (or may still be on it).
    unanswered: bool = False

    @property
    def keyed(self) -> bool:
        return IDEMPOTENCY_KEY in self.headers


def prepare(
    operation: Operation[Any, Any],
    body: msgspec.Struct | None = None,
    *,
    idempotency_key: str | None = None,
    if_match: str | Result[Any] | None = None,
    keyed: bool = True,
    **path: str,
) -> Call:
    """The URL path, JSON and headers of a call; an idempotent operation gets a key."""
    if isinstance(if_match, Result):
        if_match = if_match.etag
    if operation.conditional and not if_match:
        raise ValueError(f"{operation.operation_id} needs if_match (the ETag of a read)")
    headers = {"Accept": "application/json, application/problem+json"}
    content = None
    if body is not None:
        content = msgspec.json.encode(body)
        headers["Content-Type"] = "application/json"
    if operation.idempotent and keyed:
        headers[IDEMPOTENCY_KEY] = idempotency_key or str(uuid.uuid4())
    if if_match:
        headers["If-Match"] = if_match
    url = operation.path.format(**{k: _segment(v) for k, v in path.items()})
    retryable = operation.method == "GET" or IDEMPOTENCY_KEY in headers
    return Call(operation, url, content, headers, retryable)


def _segment(value: str) -> str:
    """A path parameter, refused when it could change the path (the ids are UUIDs)."""
    if not value or any(c in value for c in "/?#%") or value in (".", ".."):
        raise ValueError("a path parameter must be a plain identifier")
    return value


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The `Retry-After` seconds of an answer, when given as a number."""
    raw = headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def pause_after_status(
    call: Call, policy: Retry, status: int, headers: Mapping[str, str]
) -> float | None:
    """Seconds to wait before retrying after a refusal, or None to raise it.

    A `409` is retried only for a keyed call whose earlier try got no answer: then it means
    that try is still running on the server (any other 409 is the caller's to handle)."""
    if not call.retryable or call.attempt >= policy.attempts:
        return None
    if status == 409 and call.keyed and call.unanswered:
        return policy.pause(call.attempt)
    if status not in policy.statuses:
        return None
    wait = retry_after(headers)
    if wait is not None and wait > policy.max_retry_after:
        return None
    return policy.pause(call.attempt, wait)


def pause_after_transport_error(call: Call, policy: Retry) -> float | None:
    """Seconds to wait before retrying a try that got no answer, or None to give up."""
    call.unanswered = True
    if not call.retryable or call.attempt >= policy.attempts:
        return None
    return policy.pause(call.attempt)


def refusal(status: int, headers: Mapping[str, str], content: bytes) -> ApiError:
    return error_for(status, content, headers.get("etag"), retry_after(headers))


class DeprecatedOperation(UserWarning):
    """The server marked the operation deprecated (`Deprecation`, RFC 9745), usually with the
    day it goes (`Sunset`, RFC 8594) and its successor (`Link: <...>; rel="successor-version"`).
    A `UserWarning`, so it shows by default: the integrator has until the sunset to move."""


def warn_if_deprecated(operation: Operation[Any, Any], headers: Mapping[str, str]) -> None:
    """Warn once per answer that carries `Deprecation`; the text names only the operation
    and the headers' values (dates and the successor's link)."""
    deprecation = headers.get("deprecation")
    if deprecation is None:
        return
    parts = [f"Deprecation: {deprecation}"]
    parts += [f"{name}: {headers[name]}" for name in ("Sunset", "Link") if name in headers]
    warnings.warn(
        f"{operation.operation_id} is deprecated by the server ({'; '.join(parts)})",
        DeprecatedOperation,
        stacklevel=4,
    )


def result(
    operation: Operation[Any, Resp], headers: Mapping[str, str], content: bytes
) -> Result[Resp]:
    """The decoded answer of a successful call."""
    warn_if_deprecated(operation, headers)
    body: Any = None
    if operation.response is not None and content:
        body = msgspec.json.decode(content, type=operation.response)
    replayed = headers.get("idempotent-replayed", "").lower() == "true"
    return Result(body, headers.get("etag"), replayed)


def batch_line(line: str | bytes) -> m.BatchLine:
    return msgspec.json.decode(line, type=m.BatchLine)
