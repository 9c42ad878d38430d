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
from typing import Any

import httpx
import nats
from nats.js.errors import NotFoundError

from vault.recipients import signing
from vault.recipients.urls import needs_resolution, resolve_allowed

#: Seconds a receiver (or JetStream) has to answer by default (TRESOR_NOTIFY_TIMEOUT);
#: the delivery lease is three times as long.
TIMEOUT = 10.0


class WebhookTransport:
    """One HTTP client (connection pool) per process, used by every delivery."""

    def __init__(self, *, allow_private: bool, timeout: float = TIMEOUT) -> None:
        self._allow_private = allow_private
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # No redirects: a 3xx could point the notice somewhere the URL check refused.
            self._client = httpx.AsyncClient(
                timeout=self._timeout,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
                trust_env=False,
            )
        return self._client

    async def send(
        self, url: str, msg_id: str, body: bytes, keys: list[bytes], now: int
    ) -> str | None:
        if not keys:
            return "no_secret"
        # A host name is resolved off the event loop; an address literal needs no lookup.
        if needs_resolution(url, allow_private=self._allow_private) and not (
            await asyncio.to_thread(resolve_allowed, url, allow_private=self._allow_private)
        ):
            return "private_address"
        headers = signing.headers(keys, msg_id, now, body)
        headers["content-type"] = "application/json"
        try:
            response = await self._http().post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return "timeout"
        except httpx.HTTPError as exc:
            return _kind(type(exc).__name__)
        if 200 <= response.status_code < 300:
            return None
        return f"http_{response.status_code}"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _kind(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()[:60]


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
        try:
            js = await self._jetstream()
            await self._ensure_stream(js, prefix)
            await js.publish(
                f"{prefix}.{event_type}",
                body,
                timeout=self._timeout,
                headers={"Nats-Msg-Id": msg_id},
            )
        except TimeoutError:
            return "nats_timeout"
        except Exception as exc:  # noqa: BLE001 - any failure is retried; its kind is kept
            return "nats_" + _kind(type(exc).__name__)
        return None

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()
        self._nc = None
