"""A lean HTTP/1.1 keep-alive client for webhook POSTs: asyncio's Protocol, httptools'
response parser, one write per request.

Why not httpcore (which this replaced): a notice needs one thing of HTTP, to POST a few
hundred bytes and read the status. httpcore's per-request machinery (pool bookkeeping,
h11 events, anyio streams, a readability probe of every idle connection, and two socket
writes per request, headers then body) was most of the sender's CPU per delivery
(profiled with py-spy, docs/performance.md#recipient-notices). Here a request is one
`transport.write` and a future that the parser completes.

What it keeps: the TCP peer is the checked address (`pinned_dns.checked_address`, resolved
once per connection); TLS is verified against the URL's host name (`server_hostname`:
certificate and SNI), never the pinned address; connecting and each exchange have a
timeout; redirects are never followed (a 3xx is a status like any other non-2xx);
response bodies are parsed and dropped, never kept. A response without a length ends when
the server closes; its status counts once the headers are complete.

One `WebhookPool` per recipient and origin: at most `limit` connections, kept alive for
`keepalive_expiry` seconds while idle, reused newest first. The caller bounds the requests
in flight (`transports.WebhookTransport` holds a semaphore per recipient), so a request
finds an idle connection or opens one. A request on a reused connection that the server
had closed before answering (a keep-alive race) goes once more on a fresh connection: the
receiver de-duplicates by `webhook-id`, and at-least-once allows the repeat.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from functools import lru_cache
from typing import cast
from urllib.parse import urlsplit

import httptools

from vault.recipients.pinned_dns import Opener, Resolver, checked_address, open_tcp


class ConnectionClosed(Exception):
    """The server closed the connection (or sent what is not HTTP/1.1) before a complete
    response: `remote_protocol_error`."""


class UnusableURL(Exception):
    """Not an http(s) URL, or one that cannot be put in a request line as it is
    (registered URLs are validated; a guard all the same): `unsupported_protocol`."""


@dataclass(frozen=True, slots=True)
class Origin:
    """What a URL means to the client: where to connect and what to put in the request
    line and Host header."""

    scheme: str
    host: str
    port: int
    #: b"POST <path?query> HTTP/1.1\r\nhost: <host[:port]>\r\n"
    request_head: bytes


@lru_cache(maxsize=1024)
def origin(url: str) -> Origin:
    """The parsed URL, cached: a recipient's URL is parsed once, not per notice."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnusableURL("not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnusableURL("not an http(s) URL")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # The Host header as the URL wrote it (the name, with the port if one was given);
    # validated URLs carry no credentials, the partition is a guard.
    host_header = parts.netloc.rpartition("@")[2]
    if not all(32 < ord(c) < 127 for c in target + host_header):
        raise UnusableURL("not a plain ASCII request target")
    head = f"POST {target} HTTP/1.1\r\nhost: {host_header}\r\n".encode("ascii")
    return Origin(parts.scheme, parts.hostname, port, head)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, the response's status into a
    future, the body dropped."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[int] | None = None
        self._status = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (TLS or not; uvloop's need not subclass asyncio's).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._finish(ConnectionClosed("bad response"))
            self.close()

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._status and self._waiter is not None:
            # A response that ends when the server closes: its headers were complete.
            self.reusable = False
            self._finish(self._status)
        else:
            self._finish(ConnectionClosed("closed before a response"))

    # httptools callbacks

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._status = 0  # an interim response; the real one follows
            return
        self.reusable = self._parser.should_keep_alive() and status != 101
        self._finish(status)

    # the client's side

    def _finish(self, outcome: int | Exception) -> None:
        waiter, self._waiter, self._status = self._waiter, None, 0
        if waiter is None or waiter.done():
            return
        if isinstance(outcome, Exception):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)

    def _time_out(self) -> None:
        self._finish(TimeoutError())
        self.close()

    @property
    def answered(self) -> bool:
        """Whether any part of a response arrived for the request in flight."""
        return self._status != 0

    async def exchange(self, request: bytes, timeout: float) -> int:
        """Send `request` (one write) and wait for the response's status."""
        if self.transport is None or self.closed:
            raise ConnectionClosed("not connected")
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, self._time_out)
        try:
            self.transport.write(request)
            status: int = await waiter
            return status
        finally:
            timer.cancel()
            if not waiter.done():  # cancelled from outside: the connection is unusable
                self._waiter = None
                self.close()

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()


class WebhookPool:
    """The kept-alive connections to one recipient's origin (see the module docstring)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        limit: int,
        timeout: float,
        ssl_context: ssl.SSLContext,
        resolver: Resolver,
        opener: Opener = open_tcp,
        keepalive_expiry: float = 30.0,
    ) -> None:
        self._allow_private = allow_private
        self._limit = limit
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._resolver = resolver
        self._opener = opener
        self._keepalive_expiry = keepalive_expiry
        self._idle: list[_Connection] = []

    async def post(self, where: Origin, request_rest: bytes) -> int:
        """The status of `where.request_head + request_rest` (the remaining headers, the
        blank line and the body) POSTed over a kept-alive or a new connection."""
        request = where.request_head + request_rest
        conn = self._reuse()
        if conn is not None:
            try:
                return await self._exchange(conn, request)
            except ConnectionClosed:
                if conn.answered:
                    raise
                # Closed by the server while idle, before it read this request.
        conn = await self._connect(where)
        return await self._exchange(conn, request)

    async def _exchange(self, conn: _Connection, request: bytes) -> int:
        status = await conn.exchange(request, self._timeout)
        if conn.reusable and not conn.closed and len(self._idle) < self._limit:
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.append(conn)
        else:
            conn.close()
        return status

    def _reuse(self) -> _Connection | None:
        oldest = asyncio.get_running_loop().time() - self._keepalive_expiry
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and conn.idle_since >= oldest:
                return conn
            conn.close()
        return None

    async def _connect(self, where: Origin) -> _Connection:
        async with asyncio.timeout(self._timeout):
            address = await checked_address(
                where.host, where.port, allow_private=self._allow_private, resolver=self._resolver
            )
            tls = self._ssl_context if where.scheme == "https" else None
            protocol = await self._opener(
                _Connection, address, where.port, tls, where.host if tls else None
            )
        if not isinstance(protocol, _Connection):
            raise TypeError("the opener must return the protocol its factory made")
        return protocol

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
