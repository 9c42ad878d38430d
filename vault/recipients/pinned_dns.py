"""Connect to the address that was checked (closing DNS rebinding for webhooks).

A webhook URL's host name is resolved when a connection is opened, the answers are
checked against the private-range rule (`urls.address_allowed`), and the TCP connection
goes to the first allowed answer itself, not to the name: a resolver that answers a public
address for a check and a private one a moment later (DNS rebinding) cannot steer the
notice inside the network, because there is no second lookup. TLS still verifies the
certificate and sends SNI for the host name (httpcore takes both from the request URL, and
the Host header too), so only the TCP peer is pinned.

The pin lives in an httpcore network backend under httpcore's own pool (`pinned_pool`), so
connection reuse, keep-alive and timeouts are httpcore's. A kept-alive connection is not
resolved again: its peer is the address checked when it was opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from vault.recipients.urls import address_allowed

#: Resolves a host name and port to IP address strings (getaddrinfo by default).
Resolver = Callable[[str, int], Awaitable[list[str]]]


class PrivateAddressError(httpcore.ConnectError):
    """The host name resolved to an address the webhook rules refuse; no connection was
    made. Its message names no host or address (error kinds are what is kept)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answers, looked up off the event loop."""
    infos = await asyncio.to_thread(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolve once, check every answer, connect to the checked address."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if _is_literal(host):
            # Literals were checked when the URL was registered; nothing to rebind.
            address = host.strip("[]")
        else:
            try:
                answers = await self._resolver(host, port)
            except OSError:
                raise httpcore.ConnectError("name resolution failed") from None
            if not answers:
                raise httpcore.ConnectError("name resolution failed")
            # One refused answer refuses the name: a round-robin set mixing a public and
            # a private address is as dangerous as a private one.
            if not all(address_allowed(a, allow_private=self._allow_private) for a in answers):
                raise PrivateAddressError("resolved to a refused address")
            address = answers[0]
        return await self._inner.connect_tcp(
            address,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not a webhook target")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def pinned_pool(
    *,
    allow_private: bool,
    max_connections: int,
    keepalive_expiry: float = 30.0,
    resolver: Resolver = system_resolver,
    inner: httpcore.AsyncNetworkBackend | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> httpcore.AsyncConnectionPool:
    """An HTTP/1.1 keep-alive pool whose connections go through `PinnedBackend`.

    httpcore directly, without httpx on top: httpx built its own request and response
    models, headers and hooks per request, which a notice does not need (no redirects,
    cookies, auth or proxies); dropping it saved about a tenth of the sender's CPU per
    notice (bench/notify.py, docs/performance.md)."""
    return httpcore.AsyncConnectionPool(
        # Certificates verified against the system's CAs unless a context is given (a
        # private CA); the name checked is the URL's host, never the pinned address.
        ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=keepalive_expiry,
        http1=True,
        http2=False,
        network_backend=PinnedBackend(allow_private=allow_private, resolver=resolver, inner=inner),
    )
