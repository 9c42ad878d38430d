"""The client's real address and scheme, behind trusted proxies or none.

Behind a load balancer every connection comes from the balancer, so a per-address limit
keyed by the peer would put every customer into one bucket. The balancer names the client
in `Forwarded` (RFC 7239) or `X-Forwarded-For`, but anyone can send those headers too: they
count only when the peer is one of `TRESOR_TRUSTED_PROXIES`, and then only as far as the
chain of trusted proxies reaches. Walking the hops from the right (the one the nearest
proxy appended) over trusted proxies, the first hop that is not one is the client: what a
client wrote to the left of it is never reached.

Every per-address limit, the audit trail's request metadata and the consent evidence's IP
take the address from `client_address`, and nothing else in `api/` reads `scope["client"]`.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from litestar.types import Scope

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The address used when the server does not know its peer (a Unix socket, a test).
UNKNOWN = "unknown"
_STATE_KEY = "tresor_client"


def client_address(connection: Any) -> str:
    """The client's address for `connection` (a Litestar connection or request) or a raw
    ASGI scope: the peer, or behind a trusted proxy the right-most untrusted forwarded hop."""
    return _resolve(_scope_of(connection))[0]


def client_scheme(connection: Any) -> str:
    """`http` or `https` as the client used it: the connection's scheme, or behind a trusted
    proxy its `X-Forwarded-Proto` (or `Forwarded: proto=`)."""
    return _resolve(_scope_of(connection))[1]


def _scope_of(connection: Any) -> Scope:
    scope = getattr(connection, "scope", connection)
    return scope


def _trusted(scope: Scope) -> tuple[_Network, ...]:
    app = scope.get("litestar_app")
    vault = getattr(getattr(app, "state", None), "vault", None)
    return _networks(vault.settings.trusted_proxies) if vault is not None else ()


@functools.lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[_Network, ...]:
    """The settings' CIDR strings (validated at start-up) as networks, parsed once."""
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def _resolve(scope: Scope) -> tuple[str, str]:
    """Computed once per request and kept in the scope's state."""
    state = scope.setdefault("state", {})
    known = state.get(_STATE_KEY)
    if known is not None:
        return known
    client = scope.get("client")
    peer = str(client[0]) if client else UNKNOWN
    scheme = str(scope.get("scheme") or "http")
    trusted = _trusted(scope)
    result = (peer, scheme)
    if trusted and _is_trusted(peer, trusted):
        result = _forwarded(scope, peer, scheme, trusted)
    state[_STATE_KEY] = result
    return result


def _is_trusted(address: str, trusted: tuple[_Network, ...]) -> bool:
    parsed = _parse(address)
    return parsed is not None and any(parsed in net for net in trusted)


def _parse(address: str) -> _Address | None:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name]


def _forwarded(
    scope: Scope, peer: str, scheme: str, trusted: tuple[_Network, ...]
) -> tuple[str, str]:
    """The client behind a trusted peer: `Forwarded` if sent, else `X-Forwarded-For`."""
    forwarded = _headers(scope, b"forwarded")
    if forwarded:
        hops = parse_forwarded(",".join(forwarded))
        addresses = [h.get("for", "") for h in hops]
        protos = [h.get("proto", "") for h in hops]
    else:
        addresses = [_node(a) for v in _headers(scope, b"x-forwarded-for") for a in v.split(",")]
        xfp = [p.strip() for v in _headers(scope, b"x-forwarded-proto") for p in v.split(",")]
        protos = [xfp[0] if xfp else ""] * len(addresses)
    # Walk from the right: each trusted hop vouches for the one to its left.
    address, proto = peer, ""
    for hop, hop_proto in zip(reversed(addresses), reversed(protos), strict=True):
        parsed = _parse(hop)
        if parsed is None:
            break  # obfuscated or garbled: the trusted proxy to its right is the client
        address, proto = str(parsed), hop_proto
        if not any(parsed in net for net in trusted):
            break
    if not forwarded and not proto:
        xfp = [p.strip() for v in _headers(scope, b"x-forwarded-proto") for p in v.split(",")]
        proto = xfp[0] if xfp else ""
    proto = proto.lower()
    return address, proto if proto in ("http", "https") else scheme


def _node(value: str) -> str:
    """An address from a forwarded node: quotes, IPv6 brackets and a port removed."""
    value = value.strip().strip('"')
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has several colons
        return value.split(":", 1)[0]
    return value


def parse_forwarded(header: str) -> list[dict[str, str]]:
    """RFC 7239 `Forwarded` elements, left to right, each a dict of lower-case parameter
    names to values (`for` as a bare address). Commas inside quoted strings are kept."""
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    token, quoted, pairs = "", False, []
    for char in header + ",":
        if char == '"':
            quoted = not quoted
            token += char
        elif char in ";," and not quoted:
            pairs.append(token)
            token = ""
            if char == ",":
                for pair in pairs:
                    name, sep, value = pair.partition("=")
                    if sep:
                        current[name.strip().lower()] = value.strip().strip('"')
                elements.append(current)
                current, pairs = {}, []
        else:
            token += char
    for element in elements:
        if "for" in element:
            element["for"] = _node(element["for"])
    return elements
