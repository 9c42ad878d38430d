"""A reference receiver of Tresor notices: the pattern for downstream teams.

What it does for every POST to `/tresor/notices`:

1. **Verify** the Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
   `webhook-signature`: `v1,` base64 HMAC-SHA256 of `id.timestamp.body` under the secret
   Tresor showed once, `whsec_...`) on the raw body, and refuse a timestamp more than five
   minutes off (replay). Several secrets may be configured while Tresor rotates.
2. **De-duplicate** by `webhook-id`: Tresor delivers at least once and repeats the same id
   on every retry, so a notice already handled is answered 200 and not handled again.
3. **Act** on its own copy: `subject.erased` deletes what it holds about the subject;
   other notices mark the copy to be refreshed through a new lookup.
4. **Answer 2xx quickly**, then **acknowledge** to Tresor (`POST ack_url` with
   `deleted` / `updated` / `not_held`) with its API key, through one kept-alive client.

Standalone on purpose (Litestar, httpx and the standard library): a downstream team copies
it without installing Tresor. Its one endpoint is a Litestar ASGI route (`@asgi`): Litestar
routes the request and runs the lifespan, but the handler takes the raw body itself, so the
work per notice is the check, the de-duplication and the action, not parameter parsing or
response serialisation (a parsed `@post` route cost about ten times the whole check; see
README.md). Production code keeps `seen` and `copies` in its database, marks a notice seen
in the same transaction as the deletion, and retries acks.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar import Litestar
from litestar.handlers import asgi
from litestar.types import Receive, Scope, Send
from msgspec.json import decode as parse_json  # Litestar's own JSON library, 5x json.loads

TOLERANCE_SECONDS = 300
PATH = "/tresor/notices"
#: A notice is a few hundred bytes; anything far larger is refused unread (413).
MAX_BODY_BYTES = 1 << 20


class BadSignature(Exception):
    """The notice is not from Tresor, was altered or is stale (never says which)."""


def decode_secret(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    return base64.b64decode(raw, validate=True)


def signatures(header: str) -> list[bytes]:
    """The `v1,` signatures of a `webhook-signature` header, decoded (others skipped)."""
    decoded = []
    for given in header.split(" "):
        if given.startswith("v1,"):
            try:
                decoded.append(base64.b64decode(given[3:], validate=True))
            except ValueError:  # binascii.Error: not base64, matches no key anyway
                continue
    return decoded


def verify(keys: list[bytes], headers: Any, body: bytes, now: float | None = None) -> str:
    """The webhook-id of a notice one of `keys` signed within the tolerance, else
    `BadSignature`. The given signatures are decoded once and each key's HMAC compared to
    them in constant time."""
    try:
        msg_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        given = signatures(headers["webhook-signature"])
    except (KeyError, ValueError):
        raise BadSignature from None
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        raise BadSignature
    content = f"{msg_id}.{timestamp}.".encode() + body
    for key in keys:
        expected = hmac.digest(key, content, "sha256")
        if any(hmac.compare_digest(expected, g) for g in given):
            return msg_id
    raise BadSignature


@dataclass
class ReceiverState:
    """What a downstream system holds: its copies of subjects' data (by subject id), the
    notice ids it handled, and the acks it still owes."""

    keys: list[bytes]
    copies: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    handled: list[dict[str, Any]] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)


def handle(state: ReceiverState, notice: dict[str, Any]) -> str:
    """Act on one notice; returns the ack outcome."""
    data = notice["data"]
    subject_id = data["subject_id"]
    held = subject_id in state.copies
    if notice["type"] == "subject.erased":
        state.copies.pop(subject_id, None)
        return "deleted" if held else "not_held"
    if held:
        state.copies[subject_id]["stale"] = True
        return "updated"
    return "not_held"


async def answer(send: Send, status: int, body: bytes) -> None:
    """A complete JSON response in two ASGI messages."""
    length = b"%d" % len(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", length)]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def read_body(receive: Receive) -> bytes | None:
    """The request body, or None once it grows past MAX_BODY_BYTES (or the client went
    away, when the answer goes nowhere)."""
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            return None
        if not message.get("more_body", False):
            return body


def create_receiver(
    state: ReceiverState,
    *,
    api_key: str | None = None,
    ack_client: Callable[[], httpx.AsyncClient] | None = None,
    clock: Callable[[], float] = time.time,
) -> Litestar:
    """The receiver, a Litestar app. With `api_key`, each handled notice is acknowledged to
    its `ack_url` after the answer, through one client made on the first ack by
    `ack_client` (by default a plain httpx client) and closed at shutdown."""
    clients: list[httpx.AsyncClient] = []
    tasks: set[asyncio.Task[None]] = set()

    async def acknowledge(url: str, notice_id: str, outcome: str) -> None:
        if not clients:
            clients.append(ack_client() if ack_client else httpx.AsyncClient(timeout=10))
        for delay in (0, 1, 5):
            await asyncio.sleep(delay)
            try:
                r = await clients[0].post(
                    url, json={"outcome": outcome}, headers={"Authorization": f"Bearer {api_key}"}
                )
            except httpx.HTTPError:
                continue
            if r.status_code < 500:
                if r.status_code < 300:
                    state.acked.add(notice_id)
                return

    async def notices(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        if body is None:
            return await answer(send, 413, b'{"error":"too large"}')
        # ASGI servers give header names in lower case, as bytes.
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k.startswith(b"webhook-")
        }
        try:
            msg_id = verify(state.keys, headers, body, clock())
        except BadSignature:
            return await answer(send, 401, b'{"error":"bad signature"}')
        if msg_id in state.seen:
            return await answer(send, 200, b'{"status":"duplicate"}')
        notice = parse_json(body)
        outcome = handle(state, notice)
        state.seen.add(msg_id)
        state.handled.append(notice)
        if api_key:  # runs once this handler awaits, i.e. while the answer is sent
            data = notice["data"]
            task = asyncio.get_running_loop().create_task(
                acknowledge(data["ack_url"], data["notification_id"], outcome)
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await answer(send, 200, b'{"status":"ok"}')

    @asgi(PATH, is_mount=False, copy_scope=False)
    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "POST":  # an ASGI route takes every method
            return await answer(send, 405, b'{"error":"method not allowed"}')
        return await notices(scope, receive, send)

    async def close_clients() -> None:
        for client in clients:
            await client.aclose()

    return Litestar(route_handlers=[endpoint], on_shutdown=[close_clients], openapi_config=None)
