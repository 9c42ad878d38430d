"""The rules for the values of single settings whose checks go beyond a number or a
choice (`vault.env_reader`): network ranges, URLs, lists. A bad value raises `ValueError`
naming the variable, never echoing a value that may be a secret, except a network entry."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlparse


def default_smtp_tls(smtp_url: str) -> str:
    """TLS unless the mail server is this machine: `tls` for smtps://, `none` for a
    loopback host (a local relay), `starttls` (required) for any other."""
    parsed = urlparse(smtp_url)
    if parsed.scheme == "smtps":
        return "tls"
    host = parsed.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return "none" if loopback or not host else "starttls"


def listening_url(scheme: str, host: str, port: int) -> str:
    """The base URL of a server listening on `host:port`: what mail links point to unless
    TRESOR_PUBLIC_URL says otherwise. A wildcard address (all interfaces) is reached on
    this machine through loopback; serving others needs TRESOR_PUBLIC_URL."""
    if host in ("", "0.0.0.0"):  # noqa: S104 (naming the wildcard, not binding it)
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def openid_scopes(text: str) -> str:
    """The OIDC scopes as one space-separated string, `openid` first and once."""
    rest = [s for s in text.replace(",", " ").split() if s != "openid"]
    return " ".join(["openid", *dict.fromkeys(rest)])


def minutes_list(text: str, name: str) -> tuple[int, ...]:
    """A comma-separated list of positive whole minutes, e.g. "15,60,1440"."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"{name} must list positive whole minutes, e.g. 15,60,1440")
    return values


def parse_networks(text: str, name: str) -> tuple[str, ...]:
    """Comma-separated addresses and CIDR ranges ("10.0.0.0/8, 192.0.2.7, ::1"). A bad
    entry stops the start with an error naming it: a typo here would otherwise silently
    trust nobody (every customer behind one address) or the wrong network."""
    out = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            out.append(str(ipaddress.ip_network(entry, strict=True)))
        except ValueError as exc:
            raise ValueError(f"{name}: {entry!r} is not an address or CIDR range ({exc})") from None
    return tuple(out)


def sqlite_sync_level(value: str) -> str:
    """TRESOR_SQLITE_SYNCHRONOUS: `normal` (also when empty) or `full`, any case."""
    level = value.strip().lower() or "normal"
    if level not in ("normal", "full"):
        raise ValueError("TRESOR_SQLITE_SYNCHRONOUS must be normal or full")
    return level


def limits_store_url(url: str) -> str:
    """Empty (the database) or a redis:// / rediss:// URL."""
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("TRESOR_LIMITS_URL must be empty (the database) or a redis:// URL")
    return url
