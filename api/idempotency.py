"""`Idempotency-Key` on the POSTs that create or change something (issue 17).

An operation opts in by its OpenAPI operation class: `operation_class=IdempotentOperation`
documents the header (and the 409 and 422 it may cause), and the middleware below acts on
exactly the handlers that carry it, so the document and the behaviour cannot drift apart.

Without the header a request runs as before (the header is optional, as the draft allows).
With it (1 to 255 visible ASCII characters; a quoted structured-field string is accepted
too), the key is claimed for the calling API client in the vault
(`vault.admin.idempotency`), before the handler runs:

- first use: the handler runs; a 2xx answer is stored (sealed; JSON and NDJSON are text)
  before it is sent, any other answer releases the key (a refused or failed request
  changed nothing, so doing it again is right);
- the same request again (method, path with query, body): the stored answer, status and
  body, with `Idempotent-Replayed: true`; while the first is still running the retry waits
  up to `WAIT_SECONDS`, then gets a 409;
- the same key with another request: 422, nothing done.

Lookups and batch lookups (`RepeatableOperation`) keep no answer: a retry with the same key
and request runs again, so the purpose check, the consents, a restriction or an erasure
decide anew (a stored answer would hand contact data out past a withdrawal, and outlive an
erasure). The key then protects what a lookup changes: its contact's basket points are
reserved once per key and subject (the handler passes `retry_token` to the reservation).
Their answers stream as without a key.

A stored answer is held back until it is stored. Its `ETag`, if it had one, is stored and
sent with the replay.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from litestar.connection import ASGIConnection
from litestar.enums import ParamType
from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    Reference,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType
from litestar.types import (
    ASGIApp,
    HTTPResponseStartEvent,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from api.auth import actor_of
from vault.admin import idempotency
from vault.admin.clients import ClientInfo
from vault.errors import Conflict, InvalidInput, Unavailable

log = structlog.get_logger("tresor.idempotency")

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
#: A visible-ASCII key; `"..."` (an sf-string, as the draft writes it) is unquoted first.
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
#: How long a retry waits for the first request with its key, and how often it looks.
WAIT_SECONDS = 10.0
POLL_SECONDS = 0.05

_DESCRIPTION = (
    "Optional (draft-ietf-httpapi-idempotency-key-header): a unique value, e.g. a UUID, "
    "1 to 255 visible ASCII characters. A retry with the same key and the same request "
    "(method, path, body) within 24 hours is answered with the first answer (header "
    "`Idempotent-Replayed: true`) and does nothing again; while the first is still "
    "running, 409. The same key with another request: 422. Keys are per API client; an "
    "answer other than 2xx is not kept, so a retry after it runs again."
)


#: What the header adds to an operation's answers.
_REPEAT_DESCRIPTION = (
    "Optional (draft-ietf-httpapi-idempotency-key-header): a unique value, e.g. a UUID, "
    "1 to 255 visible ASCII characters. A retry with the same key and the same request "
    "(method, path, body) within 24 hours runs again: access is decided anew (a consent "
    "withdrawn, an objection, a restriction or an erasure in between is honoured) and no "
    "answer is kept, but the contact's points are reserved only once per subject (the "
    "retry answers the same contact `id`). While the first is still running, 409. The same "
    "key with another request: 422. Keys are per API client."
)


_STATUS_NOTES = {
    "409": "A request with this `Idempotency-Key` is still running; retry later",
    "422": "A field breaks a domain rule, or the `Idempotency-Key` is malformed or was "
    "used for another request; nothing changed",
}


@dataclass
class IdempotentOperation(Operation):
    """An operation that takes `Idempotency-Key` (the middleware acts on its handlers)."""

    #: A stored answer is replayed (False: the operation runs again, `RepeatableOperation`).
    keeps_answer: ClassVar[bool] = True

    def __post_init__(self) -> None:
        header = Parameter(
            name=HEADER,
            param_in=ParamType.HEADER,
            required=False,
            description=_DESCRIPTION if self.keeps_answer else _REPEAT_DESCRIPTION,
            schema=Schema(
                type=OpenAPIType.STRING,
                min_length=1,
                max_length=257,
                pattern=r'^("[\x21\x23-\x7e]{1,255}"|[\x21-\x7e]{1,255})$',
                examples=["8e03978e-40d5-43e8-bc93-6894a57f9324"],
            ),
        )
        self.parameters = [*(self.parameters or []), header]
        for code, note in _STATUS_NOTES.items():
            if self.responses is not None and code not in self.responses:
                self.responses[code] = OpenAPIResponse(
                    description=note,
                    content={
                        "application/problem+json": OpenAPIMediaType(
                            schema=Reference(ref="#/components/schemas/Problem")
                        )
                    },
                )
        if not self.keeps_answer:
            return
        for status, response in (self.responses or {}).items():
            if status.startswith("2") and isinstance(response, OpenAPIResponse):
                headers = dict(response.headers or {})
                headers[REPLAYED] = OpenAPIHeader(
                    description="`true` when this is the stored answer to an earlier "
                    "request with the same `Idempotency-Key`",
                    schema=Schema(type=OpenAPIType.STRING, enum=["true"]),
                )
                response.headers = headers


@dataclass
class RepeatableOperation(IdempotentOperation):
    """A read that takes `Idempotency-Key` but keeps no answer: a retry runs again (see the
    module docstring); the handler passes `retry_token` on to the reservation."""

    keeps_answer: ClassVar[bool] = False


def parse_key(raw: str) -> str:
    """The key of a header value; `InvalidInput` if it is not one."""
    value = raw.strip()
    if len(value) > 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not _KEY.match(value):
        raise InvalidInput(
            "invalid idempotency key",
            {HEADER: "must be 1 to 255 visible ASCII characters, e.g. a UUID"},
        )
    return value


def _operation_class(scope: Scope) -> type[IdempotentOperation] | None:
    handler = scope.get("route_handler")
    cls = getattr(handler, "operation_class", None)
    if isinstance(cls, type) and issubclass(cls, IdempotentOperation):
        return cls
    return None


def _header_key(headers: Any) -> str | None:
    raw = next(
        (v.decode("latin-1") for k, v in headers if k.lower() == b"idempotency-key"),
        None,
    )
    return None if raw is None else parse_key(raw)


def retry_token(request: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The retry token of this request's `Idempotency-Key` (None without one): what a
    repeatable operation hands to the reservation so a retry reserves nothing twice."""
    key = _header_key(request.scope["headers"])
    if key is None:
        return None
    client: ClientInfo = request.user
    return idempotency.retry_token(client.id, key)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replaying(body: bytes) -> Receive:
    sent = False

    async def receive() -> ReceiveMessage:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _send_stored(send: Send, stored: idempotency.StoredResponse) -> None:
    headers = [
        (b"content-type", stored.media_type.encode()),
        (b"content-length", str(len(stored.body)).encode()),
        (REPLAYED.lower().encode(), b"true"),
    ]
    if stored.etag is not None:
        headers.append((b"etag", stored.etag.encode("latin-1")))
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body, "more_body": False})


class IdempotencyMiddleware:
    """ASGI middleware (after authentication): see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation = _operation_class(scope) if scope["type"] == "http" else None
        if operation is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        key = _header_key(scope["headers"])
        if key is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope)
        client: ClientInfo = connection.user
        vault = scope["app"].state.vault
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope["path"] + (f"?{query}" if query else "")
        request_fp = idempotency.fingerprint("POST", path, body)
        keeps = operation.keeps_answer
        outcome = await self._claim(vault, connection, client, key, request_fp, keeps)
        if isinstance(outcome, idempotency.Replay):
            await _send_stored(send, outcome.response)
        elif isinstance(outcome, idempotency.Repeat):
            await self.app(scope, _replaying(body), send)
        elif keeps:
            await self._run(vault, outcome.record_id, scope, body, send)
        else:
            await self._run_again_later(vault, outcome.record_id, scope, body, send)

    async def _claim(
        self,
        vault: Any,
        connection: ASGIConnection[Any, Any, Any, Any],
        client: ClientInfo,
        key: str,
        request_fp: str,
        keeps_answer: bool,
    ) -> idempotency.Claimed | idempotency.Replay | idempotency.Repeat:
        actor = actor_of(connection)
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while True:
            outcome = await idempotency.claim(
                vault, actor, client.id, key, request_fp, keeps_answer=keeps_answer
            )
            if isinstance(outcome, idempotency.Mismatch):
                raise InvalidInput(
                    "idempotency key reused",
                    {HEADER: "was used for another request; use a new key for it"},
                )
            if not isinstance(outcome, idempotency.Busy):
                return outcome
            if asyncio.get_running_loop().time() >= deadline:
                raise Conflict("a request with this idempotency key is still running; retry later")
            await asyncio.sleep(POLL_SECONDS)

    async def _run_again_later(
        self, vault: Any, record_id: str, scope: Scope, body: bytes, send: Send
    ) -> None:
        """A repeatable operation's first run: its answer streams through as it comes; the
        key is kept (without the answer) once a 2xx started, else forgotten."""
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, _replaying(body), watch)
        except BaseException:
            await idempotency.release(vault, record_id)
            raise
        if status and 200 <= status[0] < 300:
            await idempotency.complete(vault, record_id, None)
        else:
            await idempotency.release(vault, record_id)

    async def _run(self, vault: Any, record_id: str, scope: Scope, body: bytes, send: Send) -> None:
        started: list[HTTPResponseStartEvent] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.append(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, _replaying(body), capture)
        except BaseException:
            await idempotency.release(vault, record_id)
            raise
        if not started:  # the app sent nothing: nothing was answered, nothing to keep
            await idempotency.release(vault, record_id)
            return
        start = started[0]
        status = start["status"]
        headers = list(start.get("headers") or [])
        media_type = next((v.decode() for k, v in headers if k.lower() == b"content-type"), "")
        tag = next((v.decode() for k, v in headers if k.lower() == b"etag"), None)
        answer = b"".join(chunks)
        if 200 <= status < 300:
            try:
                await idempotency.complete(
                    vault, record_id, idempotency.StoredResponse(status, media_type, answer, tag)
                )
            except (Unavailable, UnicodeDecodeError) as exc:
                # The work is done: its answer goes out. A retry within the lease waits,
                # then gets a 409; only after the lease would it run again.
                log.warning("idempotency_store_failed", error=type(exc).__name__)
        else:
            await idempotency.release(vault, record_id)
        await send(start)
        await send({"type": "http.response.body", "body": answer, "more_body": False})
