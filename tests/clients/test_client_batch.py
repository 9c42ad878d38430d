"""The batch iterator on a scripted HTTP stream (httpx.MockTransport): a line is yielded as
soon as it arrives, a keyed batch cut off mid-stream is retried without yielding a line
twice, an unkeyed one is not retried, and a refusal before the first line raises."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tresor_client import BatchLookupRequest, Denied, TransportError, Tresor
from tresor_client._core import Retry

REQUEST = BatchLookupRequest(purpose="offers.sms", subject_ids=["a", "b", "c"])


def _tresor(handler: httpx.MockTransport) -> Tresor:
    http = httpx.Client(base_url="http://tresor.test", transport=handler)
    return Tresor("http://tresor.test", "key", http=http, retry=Retry(), sleep=lambda _: None)


def test_each_line_is_yielded_before_the_next_is_sent():
    """The consumer sees line i while the server has not yet produced line i+1."""
    events: list[str] = []

    def body() -> Iterator[bytes]:
        for i in range(3):
            events.append(f"sent {i}")
            yield b'{"i": %d, "subject_id": "s%d"}\n' % (i, i)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body(), headers={"content-type": "application/x-ndjson"})

    for line in _tresor(httpx.MockTransport(handler)).lookup_batch(REQUEST, idempotent=False):
        events.append(f"got {line.i}")
    assert events == ["sent 0", "got 0", "sent 1", "got 1", "sent 2", "got 2"]


def _cut_after_first_line(requests: list[httpx.Request]) -> httpx.MockTransport:
    """The first answer breaks after one line; later ones are the whole (replayed) answer."""

    def body(cut: bool) -> Iterator[bytes]:
        yield b'{"i": 0, "subject_id": "s0"}\n'
        if cut:
            raise httpx.RemoteProtocolError("peer closed connection")
        yield b'{"i": 1, "subject_id": "s1"}\n{"i": 2, "subject_id": "s2"}\n'

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=body(cut=len(requests) == 1))

    return httpx.MockTransport(handler)


def test_a_keyed_batch_cut_off_is_resumed_without_repeating_lines():
    """The retry carries the same key; the lines already yielded are skipped."""
    requests: list[httpx.Request] = []
    lines = list(_tresor(_cut_after_first_line(requests)).lookup_batch(REQUEST))
    assert [line.i for line in lines] == [0, 1, 2]
    assert len(requests) == 2
    assert requests[0].headers["Idempotency-Key"] == requests[1].headers["Idempotency-Key"]


def test_an_unkeyed_batch_cut_off_raises_after_the_lines_it_got():
    """Without a key a retry could reserve twice: the lines so far, then TransportError."""
    requests: list[httpx.Request] = []
    got: list[int | None] = []
    with pytest.raises(TransportError):
        for line in _tresor(_cut_after_first_line(requests)).lookup_batch(
            REQUEST, idempotent=False
        ):
            got.append(line.i)
    assert got == [0] and len(requests) == 1
    assert "Idempotency-Key" not in requests[0].headers


def test_a_refused_batch_raises_the_problem():
    """A 403 problem before any line is a Denied with its reason, on the first next()."""
    problem = {
        "type": "urn:tresor:problem:denied:purpose_not_allowed",
        "title": "Denied",
        "status": 403,
        "detail": "not allowed",
        "reason": "purpose_not_allowed",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403, json=problem, headers={"content-type": "application/problem+json"}
        )

    with pytest.raises(Denied) as denied:
        next(_tresor(httpx.MockTransport(handler)).lookup_batch(REQUEST))
    assert (denied.value.status, denied.value.reason) == (403, "purpose_not_allowed")
