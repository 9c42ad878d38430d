"""The console's session: a random id in the `tresor_dpo` cookie, the session a row.

The row (`vault.admin.console_sessions`, table `web_sessions`) names the DPO's or the
marketer's client or the single sign-on user, the role it was opened with, the last
request and the absolute expiry; each page reads it, so a
sign-out, a revoked key, the idle and the absolute timeout end the session at once on every
node. The cookie's id is 256 bits of randomness; only its keyed digest is stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import structlog
from litestar import Request
from litestar.datastructures import Cookie
from litestar.response import Redirect

from api.i18n import pick_language
from api.web import cookies as web_cookies
from vault.admin import console_sessions
from vault.admin.authentication import ROLE_NOT_ALLOWED
from vault.admin.clients import Role
from vault.context import VaultContext
from vault.crypto import KeyLabel
from vault.errors import AccessDenied

SURFACE = web_cookies.Surface(
    path="/dpo",
    session_cookie="tresor_dpo",
    csrf_cookie="tresor_dpo_csrf",
    csrf_label=KeyLabel.DPO_CSRF,
)
SESSION_COOKIE = SURFACE.session_cookie
NEXT_RE = re.compile(r"^/dpo/[A-Za-z0-9/_.:-]*(\?[A-Za-z0-9_.:%&=+-]*)?$")
UUID_RE = re.compile(r"^[0-9a-f-]{36}$")
log = structlog.get_logger("tresor.dpo")


#: Who may see a page: the DPO pages are the DPO's alone (the default of `require_session`);
#: campaigns, the calendar, forecasts and reports are also the marketer's (issue 21).
DPO_ONLY = frozenset({Role.DPO})
PLANNING = frozenset({Role.DPO, Role.MARKETING})


@dataclass(frozen=True, slots=True)
class DpoSession:
    """A live console session: the user's name on the trail, its absolute expiry and the
    role it was opened with."""

    name: str
    expires_at: datetime
    role: Role = Role.DPO

    @property
    def home(self) -> str:
        """Where the console starts for this role (without the language)."""
        return "/dpo/audit" if self.role is Role.DPO else "/dpo/campaigns"


def session_ttl(vault: VaultContext) -> timedelta:
    """The console's absolute session lifetime (TRESOR_CONSOLE_SESSION_HOURS)."""
    return console_sessions.lifetime(vault).absolute


# -- middleware, cookies, helpers ----------------------------------------------------------------


def session_cookie(request: Request[Any, Any, Any], token: str, vault: VaultContext) -> Cookie:
    """The cookie lives as long as the session may (the row decides whether it still does)."""
    max_age = int(session_ttl(vault).total_seconds())
    return web_cookies.session_cookie(request, SURFACE, token, max_age)


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
    session = await console_sessions.read_session(vault, request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    return DpoSession(session.account, session.expires_at, session.role)


async def require_session(
    request: Request[Any, Any, Any],
    vault: VaultContext,
    allow: frozenset[Role] = DPO_ONLY,
) -> DpoSession:
    """The live session of a page's reader, or the sign-in page; a reader whose role the
    page does not `allow` (a marketer on a DPO page) gets 403. The default is the DPO's
    alone, so a page that forgets to say fails closed."""
    session = await current_session(request, vault)
    if session is None:
        raise SignInRequired(expired=bool(request.cookies.get(SESSION_COOKIE)))
    if session.role not in allow:
        log.warning("dpo_page_refused", reason=ROLE_NOT_ALLOWED, role=session.role.value)
        raise AccessDenied(ROLE_NOT_ALLOWED, "this console page is not for your role")
    return session
