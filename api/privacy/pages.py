"""The privacy centre web pages at /privacy (German by default, English via ?lang=en).

Sign-in by a code mailed to the stored address; the session lives in the cookie
`tresor_self` (HttpOnly, SameSite=Strict, Path=/privacy, short-lived; Secure when the
request came over TLS or TRESOR_PUBLIC_URL is https, i.e. behind a TLS-terminating proxy).
Every form is CSRF-protected by Litestar's CSRF middleware (an HMAC-signed token in the
cookie `tresor_csrf` that each form must echo as `_csrf_token`), mounted on this controller
only, so API clients elsewhere are unaffected. Pages are never cached and never framed.

What every page shares lives here: the page frame, the session cookie, error pages, form
helpers and `PrivacyPages`, the base controller each page group extends.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Controller, Request, Response
from litestar.datastructures import Cookie
from litestar.middleware import DefineMiddleware
from litestar.response import Redirect, Template

from api.auth import public
from api.i18n import N_, TEXTS, country_name, customer_zone, pick_language
from api.rights.self_views import (
    operation_of,
    request_id_of,
)
from api.schemas import UUID_PATTERN
from api.web import cookies as web_cookies
from api.web import dates
from api.web.errors import error_page, every_error
from vault.crypto import KeyLabel
from vault.errors import (
    AccessDenied,
    Unauthenticated,
)
from vault.rights import selfservice
from vault.subjects import identity

#: The privacy centre's cookies and CSRF secret (api/web/cookies.py).


SURFACE = web_cookies.Surface(
    path="/privacy",
    session_cookie="tresor_self",
    csrf_cookie="tresor_csrf",
    csrf_label=KeyLabel.PRIVACY_CSRF,
)
SESSION_COOKIE = SURFACE.session_cookie
CONTACT_FIELDS = ("name", "email", "phone", "postal_address", "external_ref")
#: Request types the page forms may ask for (export is a download, not a form).
FORM_REQUEST_TYPES = (
    "rectification",
    "restriction",
    "objection",
    "legitimate_interest_objection",
    "erasure",
)
DONE_NOTICES = (
    "withdrawn",
    "requested",
    "signed_out",
    "erased",
    "expired",
    "consented",
    "confirm_sent",
)
_ADDRESS_PARTS = ("street", "postal_code", "city", "country")


def fmt_for(lang: str, zone: str | None = None):
    """Times to the minute in the customer's zone (`zone` from their preferences, else the
    language's default: Europe/Berlin for German, UTC for English), always labelled."""
    return dates.formatter(lang, "minutes", zone=customer_zone(lang, zone))


def session_cookie(request: Request[Any, Any, Any], token: str, max_age: int) -> Cookie:
    return web_cookies.session_cookie(request, SURFACE, token, max_age)


def clear_session_cookie(request: Request[Any, Any, Any]) -> Cookie:
    return web_cookies.clear_session_cookie(request, SURFACE)


def render(
    request: Request[Any, Any, Any],
    template: str,
    title_key: str,
    *,
    status: int = 200,
    cookies: list[Cookie] | None = None,
    headers: dict[str, str] | None = None,
    zone: str | None = None,
    **context: Any,
) -> Template:
    """A privacy-centre page; `zone` is the signed-in customer's preferred time zone."""
    lang = pick_language(request)
    t = TEXTS[lang]
    return Template(
        template_name=template,
        context={
            "lang": lang,
            "t": t,
            "title": t[title_key],
            "fmt": fmt_for(lang, zone),
            "zone_name": customer_zone(lang, zone).key,
            "country": lambda code: country_name(code, lang),
            **context,
        },
        status_code=status,
        cookies=cookies or [],
        headers=headers or {},
    )


def to_privacy(
    request: Request[Any, Any, Any],
    done: str | None = None,
    anchor: str = "",
    cookies: list[Cookie] | None = None,
) -> Redirect:
    lang = pick_language(request)
    query = f"?lang={lang}" + (f"&done={done}" if done else "")
    return Redirect(path=f"/privacy{query}{anchor}", status_code=303, cookies=cookies or [])


async def signed_in(request: Request[Any, Any, Any], vault: Any) -> selfservice.SelfSession | None:
    """The live session of the cookie, restricted or not (only the overview takes one)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return await selfservice.session_info(vault, token)
    except Unauthenticated:
        return None


def signin_page(
    request: Request[Any, Any, Any],
    *,
    status: int = 200,
    notice: str | None = None,
    error: str | None = None,
    kind: str = "email",
    value: str = "",
    headers: dict[str, str] | None = None,
    cookies: list[Cookie] | None = None,
) -> Template:
    return render(
        request,
        "privacy_signin.html",
        "pc_signin_heading",
        status=status,
        notice=notice,
        error=error,
        kind=kind,
        value=value,
        headers=headers,
        cookies=cookies,
    )


def message(
    request: Request[Any, Any, Any],
    status: int,
    heading_key: str,
    text: str,
    headers: dict[str, str] | None = None,
) -> Template:
    lang = pick_language(request)
    return render(
        request,
        "privacy_message.html",
        heading_key,
        status=status,
        heading=TEXTS[lang][heading_key],
        text=text,
        headers=headers,
    )


def page_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors on the pages are pages too (`api.web.errors`); an ended session goes back to
    the sign-in, a sign-in locked by a recent identity change says why."""
    t = TEXTS[pick_language(request)]
    if isinstance(exc, Unauthenticated):
        return to_privacy(request, "expired")
    if isinstance(exc, AccessDenied) and exc.reason == identity.REFUSED_REASON:
        return message(
            request, 403, N_("pc_identity_refused_title"), t["pc_identity_restricted_heading"]
        )
    return error_page(request, exc, _message_page)


def _message_page(
    request: Request[Any, Any, Any],
    status: int,
    heading_key: str,
    text_key: str,
    headers: dict[str, str] | None,
) -> Template:
    return message(request, status, heading_key, TEXTS[pick_language(request)][text_key], headers)


def form_value(form: Any, name: str, limit: int = 320) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    return value.strip()[:limit]


def rectification_payload(form: Any) -> dict[str, Any] | None:
    """The request payload of a rectification form: `{"changes": {field: new value}}`, or
    None when every field was left empty ("unchanged")."""
    changes: dict[str, Any] = {}
    for name, limit in (("name", 200), ("email", 320), ("phone", 40)):
        value = form_value(form, name, limit)
        if value:
            changes[name] = value
    address = {part: form_value(form, part, 200) for part in _ADDRESS_PARTS}
    if any(address.values()):
        changes["postal_address"] = {
            **address,
            "country": (address["country"] or "DE").upper(),
        }
    return {"changes": changes} if changes else None


class PrivacyPages(Controller):
    """The base of the privacy centre's controllers, one per page group: all under /privacy,
    public to the API-key middleware (the pages check their own session cookie), out of
    the OpenAPI document, every form CSRF-checked, every error a page."""

    path = "/privacy"
    opt = public()
    include_in_schema = False
    middleware = [DefineMiddleware(web_cookies.CsrfMiddleware, surface=SURFACE)]
    exception_handlers = every_error(page_error)


def touchpoint_name(vault: Any, lang: str, touchpoint_id: str | None) -> str:
    """Where something was given, by the catalogue's name in the language
    (policies/touchpoints.toml); an id the catalogue does not know stays as it is."""
    if not touchpoint_id:
        return "–"
    touchpoint = vault.touchpoints.get(touchpoint_id)
    return touchpoint.name(lang) if touchpoint else touchpoint_id


def valid_uuid(value: str) -> bool:
    return bool(re.fullmatch(UUID_PATTERN, value or ""))


async def require_session(request: Request[Any, Any, Any], vault: Any) -> str:
    """The subject of the cookie's session; a restricted session is refused (audited)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Unauthenticated("sign in first", "invalid_session")
    return await selfservice.session_subject(
        vault, token, operation=operation_of(request), request_id=request_id_of(request)
    )
