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
   `deleted` / `updated` / `not_held`) with its API key.

Standalone on purpose (Litestar, httpx and the standard library): a downstream team copies
it without installing Tresor. Production code keeps `seen` and `copies` in its database,
marks a notice seen in the same transaction as the deletion, and retries acks.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar import Litestar, Request, Response, post

TOLERANCE_SECONDS = 300


class BadSignature(Exception):
    """The notice is not from Tresor, was altered or is stale (never says which)."""


def decode_secret(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    return base64.b64decode(raw, validate=True)


def verify(keys: list[bytes], headers: Any, body: bytes, now: float | None = None) -> str:
    """The webhook-id of a notice one of `keys` signed within the tolerance, else
    `BadSignature`."""
    try:
        msg_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        given = headers["webhook-signature"].split(" ")
    except (KeyError, ValueError):
        raise BadSignature from None
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        raise BadSignature
    content = f"{msg_id}.{timestamp}.".encode() + body
    for key in keys:
        expected = "v1," + base64.b64encode(hmac.digest(key, content, "sha256")).decode()
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


def create_receiver(
    state: ReceiverState,
    *,
    api_key: str | None = None,
    ack_client: Callable[[], httpx.AsyncClient] | None = None,
    clock: Callable[[], float] = time.time,
) -> Litestar:
    """The receiver app. With `api_key`, each handled notice is acknowledged to its
    `ack_url` (through `ack_client`, by default a plain httpx client) after the answer."""

    async def acknowledge(url: str, notice_id: str, outcome: str) -> None:
        client = ack_client() if ack_client else httpx.AsyncClient(timeout=10)
        async with client:
            for delay in (0, 1, 5):
                await asyncio.sleep(delay)
                try:
                    r = await client.post(
                        url,
                        json={"outcome": outcome},
                        headers={"Authorization": f"Bearer {api_key}"},
                    )
                except httpx.HTTPError:
                    continue
                if r.status_code < 500:
                    if r.status_code < 300:
                        state.acked.add(notice_id)
                    return

    @post("/tresor/notices", status_code=200)
    async def notices(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
        body = await request.body()
        try:
            msg_id = verify(state.keys, request.headers, body, clock())
        except BadSignature:
            return Response({"error": "bad signature"}, status_code=401)
        if msg_id in state.seen:
            return Response({"status": "duplicate"}, status_code=200)
        notice = json.loads(body)
        outcome = handle(state, notice)
        state.seen.add(msg_id)
        state.handled.append(notice)
        if api_key:
            data = notice["data"]
            task = asyncio.get_running_loop().create_task(
                acknowledge(data["ack_url"], data["notification_id"], outcome)
            )
            _tasks.add(task)
            task.add_done_callback(_tasks.discard)
        return Response({"status": "ok"}, status_code=200)

    _tasks: set[asyncio.Task[None]] = set()
    return Litestar(route_handlers=[notices], openapi_config=None)
