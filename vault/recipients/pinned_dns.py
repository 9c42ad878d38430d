"""Connect to the address that was checked (closing DNS rebinding for webhooks).

A webhook URL's host name is resolved when a connection is opened, the answers are
checked against the private-range rule (`urls.address_allowed`), and the TCP connection
goes to the first allowed answer itself, not to the name: a resolver that answers a public
address for a check and a private one a moment later (DNS rebinding) cannot steer the
notice inside the network, because there is no second lookup. TLS still verifies the
certificate and sends SNI for the host name (`webhook_http` passes the name as
`server_hostname`, and keeps it in the Host header), so only the TCP peer is pinned.

A kept-alive connection is not resolved again: its peer is the address checked when it
was opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable

import httpx

from vault.recipients.urls import address_allowed

#: Resolves a host name and port to IP address strings (getaddrinfo by default).
Resolver = Callable[[str, int], Awaitable[list[str]]]

#: Opens a TCP connection (TLS when a context is given, verified for `server_hostname`) to
#: an address already checked, with the protocol the factory makes; returns that protocol.
#: `open_tcp` by default; a test passes one that records where connections would go.
Opener = Callable[
    [Callable[[], asyncio.Protocol], str, int, ssl.SSLContext | None, str | None],
    Awaitable[asyncio.BaseProtocol],
]


class ConnectFailed(OSError):
    """No connection was made (the name did not resolve, or the connection was refused).
    Its message names no host or address (error kinds are what is kept)."""


class PrivateAddressError(ConnectFailed):
    """The host name resolved to an address the webhook rules refuse; no connection was
    made."""


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


async def checked_address(
    host: str, port: int, *, allow_private: bool, resolver: Resolver = system_resolver
) -> str:
    """The address to connect to for `host`: resolved once, every answer checked."""
    if _is_literal(host):
        # Literals were checked when the URL was registered; nothing to rebind.
        return host.strip("[]")
    try:
        answers = await resolver(host, port)
    except OSError:
        raise ConnectFailed("name resolution failed") from None
    if not answers:
        raise ConnectFailed("name resolution failed")
    # One refused answer refuses the name: a round-robin set mixing a public and a private
    # address is as dangerous as a private one.
    if not all(address_allowed(a, allow_private=allow_private) for a in answers):
        raise PrivateAddressError("resolved to a refused address")
    return answers[0]


async def open_tcp(
    factory: Callable[[], asyncio.Protocol],
    address: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
) -> asyncio.BaseProtocol:
    """asyncio's own connection: to `address`, with TLS verified for `server_hostname`."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        factory, address, port, ssl=ssl_context, server_hostname=server_hostname
    )
    return protocol


def default_ssl_context() -> ssl.SSLContext:
    """Certificates verified against the system's CAs (certifi's bundle, as httpx does,
    ignoring SSL_CERT_* variables); a private CA comes as a context of its own."""
    return httpx.create_ssl_context(trust_env=False)
