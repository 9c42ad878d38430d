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

import nats
from nats.js.errors import NotFoundError

from vault.recipients import signing
from vault.recipients.pinned_dns import (
    ConnectFailed,
    Opener,
    PrivateAddressError,
    Resolver,
    default_ssl_context,
    open_tcp,
    system_resolver,
)
from vault.recipients.webhook_http import (
    ConnectionClosed,
    UnusableURL,
    WebhookPool,
    origin,
)

#: Seconds a receiver (or JetStream) has to answer by default (TRESOR_NOTIFY_TIMEOUT);
#: the delivery lease is three times as long.
TIMEOUT = 10.0
#: Requests in flight (and kept-alive connections) per webhook recipient. Small on
#: purpose: a few kept-alive connections already keep a loopback receiver busy, and a slow
#: or failing receiver holds no more than these.
PER_RECIPIENT = 4


class WebhookTransport:
    """One keep-alive connection pool per recipient (`webhook_http.WebhookPool`, pinned),
    reused by every delivery to it: a slow or failing receiver holds only its own
    connections, and at most `per_recipient` requests go to one receiver at once.
    Connections go to the address the private-range check saw (`pinned_dns`)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout: float = TIMEOUT,
        per_recipient: int = PER_RECIPIENT,
        resolver: Resolver = system_resolver,
        opener: Opener = open_tcp,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._allow_private = allow_private
        #: The CAs webhook certificates are verified against (None: the system's).
        self._ssl_context = ssl_context
        self._timeout = timeout
        self._per_recipient = per_recipient
        self._resolver = resolver
        self._opener = opener
        #: Per (recipient, URL): a recipient whose URL changes gets a pool for the new one.
        self._pools: dict[tuple[str, str], WebhookPool] = {}
        self._gates: dict[str, asyncio.Semaphore] = {}

    @property
    def per_recipient(self) -> int:
        """Requests in flight to one recipient at most."""
        return self._per_recipient

    def _pool(self, recipient: str, url: str) -> WebhookPool:
        pool = self._pools.get((recipient, url))
        if pool is None:
            if self._ssl_context is None:
                self._ssl_context = default_ssl_context()
            # No redirects (the client follows none): a 3xx could point the notice
            # somewhere the URL check refused; it counts as a failed attempt.
            pool = WebhookPool(
                allow_private=self._allow_private,
                limit=self._per_recipient,
                timeout=self._timeout,
                ssl_context=self._ssl_context,
                resolver=self._resolver,
                opener=self._opener,
            )
            self._pools[(recipient, url)] = pool
        return pool

    def _gate(self, recipient: str) -> asyncio.Semaphore:
        gate = self._gates.get(recipient)
        if gate is None:
            gate = self._gates[recipient] = asyncio.Semaphore(self._per_recipient)
        return gate

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
        try:
            # One write per request: the signed headers, the blank line and the body.
            rest = signing.header_block(keys, msg_id, now, body) + body
        except ValueError:
            return "bad_id"
        try:
            where = origin(url)
            async with self._gate(recipient):
                status = await self._pool(recipient, url).post(where, rest)
        except TimeoutError:
            return "timeout"
        except PrivateAddressError:
            return "private_address"
        except ConnectionClosed:
            return "remote_protocol_error"
        except UnusableURL:
            return "unsupported_protocol"
        except (ConnectFailed, OSError):  # refused, unreachable, TLS handshake or certificate
            return "connect_error"
        if 200 <= status < 300:
            return None
        return f"http_{status}"

    async def close(self) -> None:
        pools, self._pools, self._gates = list(self._pools.values()), {}, {}
        for pool in pools:
            pool.close()


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
