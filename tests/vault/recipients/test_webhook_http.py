"""The webhook HTTP/1.1 client against scripted loopback servers: kept-alive connections
are reused, a connection the receiver dropped is replaced, redirects are not followed,
a silent receiver times out, and what is not HTTP fails as a protocol error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from vault.recipients.signing import new_key, verify
from vault.recipients.transports import WebhookTransport

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter


@dataclass
class Seen:
    """What a scripted server saw: connections opened, requests read (head, body)."""

    connections: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)


async def read_request(reader: Reader, seen: Seen) -> bool:
    """One request off the connection (False at end of stream)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return False
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    seen.requests.append((head, await reader.readexactly(length)))
    return True


Script = Callable[[Reader, Writer, Seen], Awaitable[None]]


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[str, Seen]]:
    """A loopback server running `script` per connection; yields its base URL."""
    seen = Seen()

    async def handle(reader: Reader, writer: Writer) -> None:
        seen.connections += 1
        try:
            await script(reader, writer, seen)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()


async def answering(reader: Reader, writer: Writer, seen: Seen) -> None:
    """Answers every request 204, keeping the connection alive."""
    while await read_request(reader, seen):
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()


def transport(timeout: float = 5.0) -> WebhookTransport:
    return WebhookTransport(allow_private=False, timeout=timeout)


async def test_notices_go_signed_over_one_kept_alive_connection():
    """Three notices in a row use one connection; each arrives whole (request line, Host,
    JSON body) with a signature that verifies."""
    key = new_key()
    async with scripted(answering) as (base, seen):
        t = transport()
        try:
            for i in range(3):
                sent = await t.send(f"{base}/hook?x=1", f"msg_{i}", b'{"n":%d}' % i, [key], 100)
                assert sent is None
        finally:
            await t.close()
    assert seen.connections == 1
    assert [body for _, body in seen.requests] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    head, body = seen.requests[2]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /hook?x=1 HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    assert headers["host"] == base.removeprefix("http://")
    assert headers["content-type"] == "application/json"
    assert verify(key, headers, body, 100) == "msg_2"


async def test_a_redirect_is_not_followed():
    """A 307 pointing elsewhere is a failed attempt (`http_307`); the other address gets
    nothing."""
    async with scripted(answering) as (elsewhere, other):

        async def redirecting(reader: Reader, writer: Writer, seen: Seen) -> None:
            while await read_request(reader, seen):
                writer.write(
                    b"HTTP/1.1 307 Temporary Redirect\r\nlocation: "
                    + elsewhere.encode()
                    + b"/hook\r\ncontent-length: 0\r\n\r\n"
                )

        async with scripted(redirecting) as (base, seen):
            t = transport()
            try:
                assert await t.send(f"{base}/hook", "msg_r", b"{}", [new_key()], 0) == "http_307"
            finally:
                await t.close()
    assert len(seen.requests) == 1
    assert other.connections == 0


async def test_a_silent_receiver_times_out_and_loses_the_connection():
    """A receiver that reads the notice and never answers: `timeout` after the configured
    seconds, and the connection is closed rather than reused."""
    closed = asyncio.Event()

    async def silent(reader: Reader, writer: Writer, seen: Seen) -> None:
        await read_request(reader, seen)
        await reader.read()  # until the client gives up and closes
        closed.set()

    async with scripted(silent) as (base, seen):
        t = transport(timeout=0.3)
        try:
            assert await t.send(f"{base}/hook", "msg_t", b"{}", [new_key()], 0) == "timeout"
            await asyncio.wait_for(closed.wait(), 5)
        finally:
            await t.close()
    assert len(seen.requests) == 1


async def test_a_kept_alive_connection_dropped_by_the_receiver_is_replaced():
    """The receiver answers one notice, then drops the connection on reading the next
    without answering (a keep-alive race): the notice goes again on a new connection and
    is delivered (the receiver de-duplicates by webhook-id)."""

    async def one_then_drop(reader: Reader, writer: Writer, seen: Seen) -> None:
        if seen.connections == 1:
            await read_request(reader, seen)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            await read_request(reader, seen)  # then closed without an answer
            return
        await answering(reader, writer, seen)

    async with scripted(one_then_drop) as (base, seen):
        t = transport()
        try:
            assert await t.send(f"{base}/h", "msg_1", b"{}", [new_key()], 0) is None
            assert await t.send(f"{base}/h", "msg_2", b"{}", [new_key()], 0) is None
        finally:
            await t.close()
    assert seen.connections == 2
    ids = [h.split(b"webhook-id: ")[1].split(b"\r\n")[0] for h, _ in seen.requests]
    assert ids == [b"msg_1", b"msg_2", b"msg_2"]


async def test_a_response_ending_at_close_and_an_interim_response_count():
    """A 100 Continue before the real answer is skipped; an answer without a length ends
    when the receiver closes, and its status counts; the next notice connects anew."""

    async def close_delimited(reader: Reader, writer: Writer, seen: Seen) -> None:
        await read_request(reader, seen)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\n\r\nqueued")
        await writer.drain()

    async with scripted(close_delimited) as (base, seen):
        t = transport()
        try:
            assert await t.send(f"{base}/h", "msg_1", b"{}", [new_key()], 0) is None
            assert await t.send(f"{base}/h", "msg_2", b"{}", [new_key()], 0) is None
        finally:
            await t.close()
    assert seen.connections == 2


async def test_an_answer_that_is_not_http_is_a_protocol_error():
    """Bytes that are not an HTTP/1.1 response fail the attempt as
    `remote_protocol_error`; so does a receiver closing before any answer, twice."""

    async def garbage(reader: Reader, writer: Writer, seen: Seen) -> None:
        await read_request(reader, seen)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        await reader.read()

    async def hang_up(reader: Reader, writer: Writer, seen: Seen) -> None:
        await read_request(reader, seen)

    for script in (garbage, hang_up):
        async with scripted(script) as (base, _):
            t = transport()
            try:
                sent = await t.send(f"{base}/h", "msg_g", b"{}", [new_key()], 0)
            finally:
                await t.close()
        assert sent == "remote_protocol_error"
