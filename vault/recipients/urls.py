"""Webhook URL validation: what Tresor agrees to POST notices to (SSRF guard).

HTTPS only, except plain HTTP to a loopback address (development); no user name or
password in the URL (it would sit in the database and in logs); a host that is a private,
link-local, reserved or multicast address is refused unless the operator allows private
ranges (`TRESOR_WEBHOOK_ALLOW_PRIVATE`), since Tresor often runs inside the network those
ranges name. Host names are checked as literals here; `address_allowed` is the same rule for
what a name resolves to at delivery time (`pinned_dns` resolves once, checks the answers and
connects to the checked address), so a name pointing inside is refused then too.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from vault.errors import InvalidInput

_BAD = "must be an https:// URL (http:// only to a loopback address) without credentials"


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    addr = _address(host)
    return host == "localhost" if addr is None else addr.is_loopback


def _is_private(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        addr.is_private
        or addr.is_link_local
        or addr.is_reserved
        or addr.is_multicast
        or addr.is_unspecified
    ) and not addr.is_loopback


def validate_webhook_url(url: str, *, allow_private: bool) -> str:
    """The URL as given if Tresor may deliver to it, else `InvalidInput` naming the rule."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise InvalidInput("bad webhook URL", {"url": _BAD}) from None
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host or len(url) > 500:
        raise InvalidInput("bad webhook URL", {"url": _BAD})
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("bad webhook URL", {"url": "must not carry a user name or password"})
    if parts.fragment:
        raise InvalidInput("bad webhook URL", {"url": "must not have a fragment"})
    if parts.scheme == "http" and not _is_loopback(host):
        raise InvalidInput("bad webhook URL", {"url": "http:// is allowed to loopback only"})
    addr = _address(host)
    if addr is not None and _is_private(addr) and not allow_private:
        raise InvalidInput(
            "bad webhook URL",
            {"url": "private address ranges are refused (TRESOR_WEBHOOK_ALLOW_PRIVATE)"},
        )
    del port
    return url.strip()


def address_allowed(address: str, *, allow_private: bool) -> bool:
    """Whether a webhook may connect to this resolved IP address (the private-range rule of
    `validate_webhook_url`; loopback stays allowed, as for literals)."""
    addr = _address(address)
    if addr is None:
        return False
    return allow_private or not _is_private(addr)
