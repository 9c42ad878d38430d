"""What every console page shares: the page frame, error pages, form helpers, and the
base controller (path, CSRF middleware, error handlers) that each page group extends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response
from litestar.datastructures import Cookie
from litestar.middleware import DefineMiddleware
from litestar.response import Template
from markupsafe import Markup, escape

from api.auth import public
from api.dpo.session import SURFACE, DpoSession, SignInRequired, to_signin
from api.i18n import N_, TEXTS, format_datetime, pick_language
from api.web import cookies as web_cookies
from api.web import dates
from api.web.errors import error_page, every_error
from vault.admin import console_sessions
from vault.audit.events import Actor
from vault.bases import consent_proof
from vault.clock import as_utc
from vault.errors import InvalidInput


def fmt_for(lang: str):
    """Times on the console to the second (audit work), dates as the language writes them."""
    return dates.formatter(lang, "seconds")


def period_for(lang: str, bucket: str):
    def period(start: datetime) -> str:
        return format_datetime(start, lang, "hour" if bucket == "hour" else "day")

    return period


def axis_for(lang: str, bucket: str):
    """Short labels for a chart's time axis."""

    def axis(start: datetime) -> str:
        return format_datetime(start, lang, "hour_axis" if bucket == "hour" else "day_axis")

    return axis


def request_id_of(request: Request[Any, Any, Any]) -> str | None:
    return request.scope.get("state", {}).get("request_id")


def dpo_actor(request: Request[Any, Any, Any], session: DpoSession) -> Actor:
    return console_sessions.actor_for(session.role, session.name, request_id_of(request))


def search_url(lang: str, **params: Any) -> str:
    query = {"lang": lang} | {k: v for k, v in params.items() if v not in (None, "")}
    return "/dpo/audit?" + urlencode(query)


def copy_button(value: str, copy_text: str, copied_text: str) -> Markup:
    """A button that copies the whole `value` (api/dpo/copy_script.py)."""
    full = escape(value)
    return Markup(
        '<button type="button" class="copy secondary" data-copy="{full}" '
        'data-copied-text="{copied}" aria-label="{label} {full}">{label}</button>'
    ).format(full=full, copied=escape(copied_text), label=escape(copy_text))


def short_id(value: str | None, copy_text: str, copied_text: str) -> Markup:
    """An id as `<code>` of its first eight characters (the whole id in `title`) and a copy
    button carrying the whole id, so tables never break an id mid-word."""
    if not value:
        return Markup("")
    return Markup('<span class="sid"><code title="{full}">{short}</code>{button}</span>').format(
        full=escape(value),
        short=escape(value[:8]) + ("…" if len(value) > 8 else ""),
        button=copy_button(value, copy_text, copied_text),
    )


def _lang_url(request: Request[Any, Any, Any]):
    def lang_url(code: str) -> str:
        items = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
        return request.url.path + "?" + urlencode([*items, ("lang", code)])

    return lang_url


def page(
    request: Request[Any, Any, Any],
    template: str,
    title_key: str,
    *,
    session: DpoSession | None = None,
    status: int = 200,
    cookies: list[Cookie] | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    lang = pick_language(request)
    t = TEXTS[lang]
    return Template(
        template_name=template,
        context={
            "lang": lang,
            "t": t,
            "title": t[title_key],
            "fmt": fmt_for(lang),
            "lang_url": _lang_url(request),
            "search_url": lambda **kw: search_url(lang, **kw),
            "field_label": lambda f: t.get(f"field_{f}", f),
            "dpo": session.name if session else None,
            "console_role": session.role.value if session else None,
            "action_name": lambda a: t.get(f"action_{a}", a),
            "short_id": lambda v: short_id(v, t["dpo_copy"], t["dpo_copied"]),
            "copy_button": lambda v: copy_button(v, t["dpo_copy"], t["dpo_copied"]),
            **context,
        },
        status_code=status,
        cookies=cookies or [],
        headers=headers or {},
    )


def render_proof(
    request: Request[Any, Any, Any],
    proof: consent_proof.ConsentProof,
    *,
    session: DpoSession | None = None,
) -> Template:
    """The printable consent proof page (also answered by the API with `format=html`)."""
    return page(
        request,
        "dpo_proof.html",
        "dpo_proof_title",
        session=session,
        section="audit",
        proof=proof,
    )


def _message(
    request: Request[Any, Any, Any],
    status: int,
    text_key: str,
    heading_key: str = N_("error_title"),
    headers: dict[str, str] | None = None,
) -> Template:
    t = TEXTS[pick_language(request)]
    return page(
        request,
        "dpo_message.html",
        heading_key,
        status=status,
        heading=t[heading_key],
        text=t[text_key],
        headers=headers,
    )


def page_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors on the console are pages (`api.web.errors`); a missing or ended session goes
    to the sign-in page instead."""
    if isinstance(exc, SignInRequired):
        return to_signin(request, expired=exc.expired)
    return error_page(request, exc, _message_page)


def _message_page(
    request: Request[Any, Any, Any],
    status: int,
    heading_key: str,
    text_key: str,
    headers: dict[str, str] | None,
) -> Template:
    return _message(request, status, text_key, heading_key, headers)


def form_text(value: Any, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def parse_local(value: str, name: str) -> datetime | None:
    """A `datetime-local` value (or ISO 8601 text), read as UTC unless it names an offset."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("bad time", {name: "is not a date and time"}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def local_value(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M") if value else ""


class DpoPages(Controller):
    """The base of the console's controllers: one per page group, all under /dpo, public
    to the API-key middleware (the console checks its own session), out of the OpenAPI
    document, every form CSRF-checked, every error a page."""

    path = "/dpo"
    opt = public()
    include_in_schema = False
    middleware = [DefineMiddleware(web_cookies.CsrfMiddleware, surface=SURFACE)]
    exception_handlers = every_error(page_error)
