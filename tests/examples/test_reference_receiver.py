"""The reference receiver (examples/receiver) as an ASGI app on its own: what it answers to
signed, duplicate, forged, stale, misrouted and oversized requests, and how it acks."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from examples.receiver.app import MAX_BODY_BYTES, ReceiverState, create_receiver
from vault.recipients import signing

URL = "http://receiver/tresor/notices"
ACK_URL = "http://tresor.test/v1/notifications/n1/ack"


def _notice(msg_id: str, subject_id: str, kind: str = "subject.erased") -> bytes:
    data = {"notification_id": msg_id, "subject_id": subject_id, "ack_url": ACK_URL}
    return json.dumps({"type": kind, "data": data}).encode()


async def _post(app: Any, body: bytes, headers: dict[str, str], url: str = URL) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport) as client:
        return await client.post(url, content=body, headers=headers)


async def test_a_signed_notice_is_handled_once_and_its_repeat_answered_duplicate():
    """A notice signed with the second of two configured secrets deletes the copy and is
    answered ok; the same webhook-id again is answered 200 duplicate, not handled again."""
    old, new = signing.new_key(), signing.new_key()
    state = ReceiverState(keys=[old, new], copies={"s1": {"email": "held"}})
    app = create_receiver(state)
    body = _notice("msg_1", "s1")
    headers = signing.headers([new], "msg_1", int(time.time()), body)
    first = await _post(app, body, headers)
    again = await _post(app, body, headers)
    assert (first.status_code, first.json()) == (200, {"status": "ok"})
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert state.copies == {} and state.seen == {"msg_1"} and len(state.handled) == 1


async def test_forged_stale_or_garbled_signatures_are_refused_and_nothing_handled():
    """Another key, a timestamp six minutes old, a signature that is not base64, a v2
    signature or no signature header: 401 each, and the copy stays."""
    key = signing.new_key()
    state = ReceiverState(keys=[key], copies={"s1": {}})
    app = create_receiver(state)
    body = _notice("msg_2", "s1")
    now = int(time.time())
    cases = [
        signing.headers([signing.new_key()], "msg_2", now, body),
        signing.headers([key], "msg_2", now - 360, body),
        {**signing.headers([key], "msg_2", now, body), "webhook-signature": "v1,%%%"},
        {**signing.headers([key], "msg_2", now, body), "webhook-signature": "v2,AAAA"},
        {"webhook-id": "msg_2", "webhook-timestamp": str(now)},
    ]
    for headers in cases:
        response = await _post(app, body, headers)
        assert (response.status_code, response.json()) == (401, {"error": "bad signature"})
    assert state.copies == {"s1": {}} and not state.seen and not state.handled


async def test_other_paths_methods_and_oversized_bodies_are_refused():
    """Another path is 404, a GET 405, and a body over MAX_BODY_BYTES 413 before any
    signature check."""
    key = signing.new_key()
    state = ReceiverState(keys=[key])
    app = create_receiver(state)
    body = _notice("msg_3", "s1")
    headers = signing.headers([key], "msg_3", int(time.time()), body)
    assert (await _post(app, body, headers, "http://receiver/other")).status_code == 404
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get(URL)).status_code == 405
    big = b" " * (MAX_BODY_BYTES + 1)
    assert (await _post(app, big, headers)).status_code == 413
    assert not state.handled


async def test_acks_go_through_one_client_with_the_api_key_which_shutdown_closes():
    """With an API key, each handled notice is acknowledged to its ack_url with its
    outcome and the key, all through one client made once; lifespan shutdown closes it."""
    key = signing.new_key()
    state = ReceiverState(keys=[key], copies={"s1": {}, "s2": {}})
    acks: list[tuple[str, str, Any]] = []

    def tresor(request: httpx.Request) -> httpx.Response:
        acks.append(
            (str(request.url), request.headers["authorization"], json.loads(request.content))
        )
        return httpx.Response(204)

    made: list[httpx.AsyncClient] = []

    def ack_client() -> httpx.AsyncClient:
        made.append(httpx.AsyncClient(transport=httpx.MockTransport(tresor)))
        return made[-1]

    app = create_receiver(state, api_key="tk_test", ack_client=ack_client)
    now = int(time.time())
    for msg_id, subject, kind in (("a1", "s1", "subject.erased"), ("a2", "s2", "x.changed")):
        body = _notice(msg_id, subject, kind)
        response = await _post(app, body, signing.headers([key], msg_id, now, body))
        assert response.status_code == 200
    for _ in range(200):
        if len(state.acked) == 2:
            break
        await asyncio.sleep(0.01)
    assert state.acked == {"a1", "a2"} and len(made) == 1
    assert sorted(a[2]["outcome"] for a in acks) == ["deleted", "updated"]
    assert {(a[0], a[1]) for a in acks} == {(ACK_URL, "Bearer tk_test")}
    sent: list[dict[str, Any]] = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert made[0].is_closed
