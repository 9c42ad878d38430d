"""The console's session: a server-signed token in the `tresor_dpo` cookie.

The token is `v1.<payload>.<HMAC-SHA256>`; the payload names the client (id and name) and
the expiry, the MAC key is derived from the keyring's server key (`api.web.cookies`), so
every node sharing the keyring accepts it and nothing else can mint one. Each page re-reads
the client, so revoking the key ends its sessions at once on every node.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import structlog
from litestar import Request
from litestar.datastructures import Cookie
from litestar.response import Redirect

from api.i18n import pick_language
from api.web import cookies as web_cookies
from vault.admin.clients import (
    ClientInfo,
    Role,
    active_client,
)
from vault.context import VaultContext
from vault.crypto import KeyLabel, Mac

SURFACE = web_cookies.Surface(
    path="/dpo",
    session_cookie="tresor_dpo",
    csrf_cookie="tresor_dpo_csrf",
    csrf_label=KeyLabel.DPO_CSRF,
)
SESSION_COOKIE = SURFACE.session_cookie
SESSION_TTL = timedelta(hours=4)
_TOKEN_RE = re.compile(r"^v1\.([A-Za-z0-9_-]{10,600})\.([0-9a-f]{64})$")
NEXT_RE = re.compile(r"^/dpo/[A-Za-z0-9/_.:-]*(\?[A-Za-z0-9_.:%&=+-]*)?$")
UUID_RE = re.compile(r"^[0-9a-f-]{36}$")
log = structlog.get_logger("tresor.dpo")


# -- keys derived from the keyring --------------------------------------------------------------


def _session_mac(ctx: VaultContext) -> Mac:
    """The MAC of console session tokens, under a key derived from the keyring's server key
    for them alone. Sessions signed before the derivation end at the upgrade (they last
    hours): the DPO signs in again."""
    return ctx.keys.mac(KeyLabel.DPO_SESSION)


# -- the session token --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DpoSession:
    client_id: str
    name: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_session(ctx: VaultContext, client: ClientInfo) -> tuple[str, DpoSession]:
    """A signed session token for a verified DPO client."""
    expires = ctx.clock.now() + SESSION_TTL
    payload = _b64(
        json.dumps(
            {
                "c": client.id,
                "n": client.name,
                "e": int(expires.timestamp()),
                "r": secrets.token_urlsafe(12),
            },
            separators=(",", ":"),
        ).encode()
    )
    mac = _session_mac(ctx).digest(payload.encode())
    expires_at = datetime.fromtimestamp(int(expires.timestamp()), UTC)
    session = DpoSession(client.id, client.name, expires_at)
    return f"v1.{payload}.{mac}", session


def read_session(ctx: VaultContext, token: str | None) -> DpoSession | None:
    """The session a token carries if its MAC is right and it has not expired, else None."""
    m = _TOKEN_RE.match(token or "")
    if not m:
        return None
    payload, mac = m.group(1), m.group(2)
    if not _session_mac(ctx).verify(payload.encode(), mac):
        return None
    try:
        claims = json.loads(_unb64(payload))
        session = DpoSession(
            str(claims["c"]), str(claims["n"]), datetime.fromtimestamp(int(claims["e"]), UTC)
        )
    except (ValueError, KeyError, TypeError, OverflowError):
        return None
    if session.expires_at <= ctx.clock.now():
        return None
    return session


async def active_dpo(ctx: VaultContext, session: DpoSession) -> bool:
    """The session's client still exists, is not revoked and still has the role dpo."""
    client = await active_client(ctx, session.client_id)
    return client is not None and client.role is Role.DPO and client.name == session.name


# -- middleware, cookies, helpers ----------------------------------------------------------------


def session_cookie(request: Request[Any, Any, Any], token: str) -> Cookie:
    return web_cookies.session_cookie(request, SURFACE, token, int(SESSION_TTL.total_seconds()))


def clear_session_cookie(request: Request[Any, Any, Any]) -> Cookie:
    return web_cookies.clear_session_cookie(request, SURFACE)


def to_signin(request: Request[Any, Any, Any], *, expired: bool = False) -> Redirect:
    lang = pick_language(request)
    query: dict[str, str] = {"lang": lang}
    target = request.url.path + (("?" + request.url.query) if request.url.query else "")
    if request.method == "GET" and NEXT_RE.match(target) and len(target) <= 500:
        query["next"] = target
    if expired:
        query["expired"] = "1"
    cookies = [clear_session_cookie(request)] if request.cookies.get(SESSION_COOKIE) else []
    return Redirect(path="/dpo/signin?" + urlencode(query), status_code=303, cookies=cookies)


class SignInRequired(Exception):
    """No valid console session: the handler answers with a redirect to the sign-in page."""

    def __init__(self, expired: bool) -> None:
        self.expired = expired


async def current_session(
    request: Request[Any, Any, Any], vault: VaultContext
) -> DpoSession | None:
    session = read_session(vault, request.cookies.get(SESSION_COOKIE))
    if session is None or not await active_dpo(vault, session):
        return None
    return session


async def require_session(request: Request[Any, Any, Any], vault: VaultContext) -> DpoSession:
    session = await current_session(request, vault)
    if session is None:
        raise SignInRequired(expired=bool(request.cookies.get(SESSION_COOKIE)))
    return session
