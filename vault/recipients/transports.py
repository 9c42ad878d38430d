"""The two ways a notice leaves: a Standard Webhooks POST and a NATS JetStream publish.

Both answer with an error kind (`http_503`, `timeout`, `nats_timeout`, ...) or None for
success, never a response body or message text (it could quote anything). A webhook counts
as delivered on a 2xx answer; a JetStream publish when the server's publish
acknowledgement arrives (the message is stored). The `Nats-Msg-Id` header is the delivery
id, so JetStream drops a repeat within its duplicate window, and a receiver keys on it
beyond that, like on `webhook-id`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import nats
from nats.js.errors import NotFoundError

from vault.recipients import signing
from vault.recipients.pinned_dns import (
    PrivateAddressError,
    Resolver,
    pinned_pool,
    system_resolver,
)

#: Seconds a receiver (or JetStream) has to answer by default (TRESOR_NOTIFY_TIMEOUT);
#: the delivery lease is three times as long.
TIMEOUT = 10.0
#: Requests in flight (and kept-alive connections) per webhook recipient. Small on
#: purpose: httpcore checks every idle connection of a pool on each request, and a few
#: kept-alive connections already keep a loopback receiver busy (measured: 4 per recipient
#: cost a third less CPU per request than 16; docs/performance.md).
PER_RECIPIENT = 4


class WebhookTransport:
    """One keep-alive connection pool per recipient (httpcore, pinned), reused by every
    delivery to it: a slow or failing receiver holds only its own connections, and at most
    `per_recipient` requests go to one receiver at once. Connections go to the address the
    private-range check saw (`pinned_dns`)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout: float = TIMEOUT,
        per_recipient: int = PER_RECIPIENT,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._allow_private = allow_private
        #: The CAs webhook certificates are verified against (None: the system's).
        self._ssl_context = ssl_context
        self._timeout = timeout
        self._per_recipient = per_recipient
        self._resolver = resolver
        self._inner = inner
        self._pools: dict[str, httpcore.AsyncConnectionPool] = {}
        #: Requests wait here rather than in httpcore's pool, whose queue is scanned on
        #: every request and connection change (profiled: the largest cost of a send).
        self._gates: dict[str, asyncio.Semaphore] = {}
        self._timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}

    def _pool(self, recipient: str) -> httpcore.AsyncConnectionPool:
        pool = self._pools.get(recipient)
        if pool is None:
            # No redirects (httpcore follows none): a 3xx could point the notice somewhere
            # the URL check refused; it counts as a failed attempt.
            pool = pinned_pool(
                allow_private=self._allow_private,
                max_connections=self._per_recipient,
                resolver=self._resolver,
                inner=self._inner,
                ssl_context=self._ssl_context,
            )
            self._pools[recipient] = pool
            self._gates[recipient] = asyncio.Semaphore(self._per_recipient)
        return pool

    async def send(
        self,
        url: str,
        msg_id: str,
        body: bytes,
        keys: list[bytes],
        now: int,
        *,
        recipient: str = "",
    ) -> str | None:
        if not keys:
            return "no_secret"
        headers = [
            (name.encode(), value.encode())
            for name, value in signing.headers(keys, msg_id, now, body).items()
        ]
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        pool = self._pool(recipient)
        try:
            async with self._gates[recipient]:
                response = await pool.request(
                    "POST",
                    url,
                    headers=headers,
                    content=body,
                    extensions={"timeout": self._timeouts},
                )
        except httpcore.TimeoutException:
            return "timeout"
        except PrivateAddressError:
            return "private_address"
        except httpcore.ConnectError:
            return "connect_error"
        except _HTTP_ERRORS as exc:
            return _kind(type(exc).__name__)
        if 200 <= response.status < 300:
            return None
        return f"http_{response.status}"

    async def close(self) -> None:
        pools, self._pools, self._gates = list(self._pools.values()), {}, {}
        for pool in pools:
            await pool.aclose()


#: What else a request can fail with (its class name is the error kind kept).
_HTTP_ERRORS = (
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ConnectionNotAvailable,
)


def _kind(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()[:60]


def _nats_kind(exc: BaseException) -> str:
    return "nats_" + _kind(type(exc).__name__)


@dataclass(frozen=True, slots=True)
class NatsNotice:
    """One JetStream publish: the recipient's subject prefix, the event type (the last
    subject token), the delivery id (`Nats-Msg-Id`) and the body."""

    prefix: str
    event_type: str
    msg_id: str
    body: bytes


def stream_name(prefix: str) -> str:
    return "TRESOR_" + re.sub(r"[^A-Za-z0-9_-]", "_", prefix).upper()


class NatsTransport:
    """One connection to the NATS server per process; a stream per subject prefix, made
    when first needed (`<prefix>.>`; one subject per event type under it)."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self._url = url
        self._timeout = timeout
        self._nc: Any = None
        self._js: Any = None
        self._streams: set[str] = set()
        self._lock = asyncio.Lock()

    async def _jetstream(self) -> Any:
        async with self._lock:
            if self._nc is None or self._nc.is_closed:
                self._nc = await nats.connect(
                    self._url, connect_timeout=5, max_reconnect_attempts=3
                )
                self._js = self._nc.jetstream(timeout=self._timeout)
                self._streams.clear()
            return self._js

    async def _ensure_stream(self, js: Any, prefix: str) -> None:
        if prefix in self._streams:
            return
        name = stream_name(prefix)
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(name=name, subjects=[f"{prefix}.>"])
        self._streams.add(prefix)

    async def send(self, prefix: str, event_type: str, msg_id: str, body: bytes) -> str | None:
        return (await self.send_batch([NatsNotice(prefix, event_type, msg_id, body)]))[0]

    async def send_batch(self, notices: Sequence[NatsNotice]) -> list[str | None]:
        """Publish every notice without waiting in between, then await all publish
        acknowledgements together (one timeout for the batch): a batch costs about one
        round trip instead of one per notice. Each notice still counts only with its own
        acknowledgement; one that has none in time answers `nats_timeout`."""
        if not notices:
            return []
        results: list[str | None] = [None] * len(notices)
        futures: list[asyncio.Future[Any] | None] = [None] * len(notices)
        try:
            js = await self._jetstream()
            for prefix in sorted({n.prefix for n in notices}):
                await self._ensure_stream(js, prefix)
            for i, n in enumerate(notices):
                futures[i] = await js.publish_async(
                    f"{n.prefix}.{n.event_type}",
                    n.body,
                    wait_stall=self._timeout,
                    headers={"Nats-Msg-Id": n.msg_id},
                )
        except Exception as exc:  # noqa: BLE001 - any failure is retried; its kind is kept
            kind = "nats_timeout" if isinstance(exc, TimeoutError) else _nats_kind(exc)
            for i, future in enumerate(futures):
                if future is None:
                    results[i] = kind
        pending = [f for f in futures if f is not None]
        if pending:
            await asyncio.wait(pending, timeout=self._timeout)
        for i, future in enumerate(futures):
            if future is None:
                continue
            if not future.done():
                future.cancel()
                results[i] = "nats_timeout"
            elif future.cancelled():
                results[i] = "nats_timeout"
            elif (failure := future.exception()) is not None:
                results[i] = _nats_kind(failure)
        return results

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()
        self._nc = None
