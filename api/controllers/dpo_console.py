"""The data-protection officer's console: web pages at /dpo (German, English via ?lang=).

Sign-in: the DPO pastes an API key of the role `dpo`; it is checked by the same
authenticator as the API, and the answer is a session cookie `tresor_dpo` (HttpOnly,
SameSite=Strict, Path=/dpo, Secure over TLS). The cookie is a server-signed token, not a
key into process memory: `v1.<payload>.<HMAC-SHA256>` where the payload names the client
(id and name) and the expiry, and the MAC key is derived from the keyring's server key, so
every node sharing the keyring accepts it (multi-node) and nothing else can mint one. Each
page re-reads the client row, so revoking the key ends its sessions at once on every node.

Every form posts through Litestar's CSRF middleware (double-submit: an HMAC-signed token in
the cookie `tresor_dpo_csrf` that each form echoes as `_csrf_token`), mounted on this
controller only; the sign-in form is covered too (login CSRF).

Everything a DPO looks at here is audited by the vault functions behind it, exactly like the
same reads through the API. Charts are inline SVG drawn on the server (no script, no CDN),
each with a table of its numbers for screen readers.
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
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.middleware import DefineMiddleware
from litestar.params import FromPath
from litestar.response import Redirect, Template
from markupsafe import Markup, escape

from api.web import cookies as web_cookies
from api.web import dates
from api.web.errors import error_page, every_error
from api.auth import public
from api.deps import Vault
from api.i18n import TEXTS, N_, format_datetime, format_number, pick_language
from vault.audit import chain as audit_chain
from vault.audit import query as audit_query
from vault.audit import ropa
from vault.bases import consent_proof
from vault.outreach import followups
from vault.outreach import report as pressure_report
from vault.audit.events import Actor
from vault.audit.query import AuditFilter
from vault.admin.clients import (
    ClientInfo,
    Role,
    active_client,
    list_clients,
    record_console_sign_in,
    record_console_sign_out,
)
from vault.clock import as_utc
from vault.context import VaultContext
from vault.errors import InvalidInput, NotFound, RateLimited
from vault.rights.requests import request_queue

#: The console's cookies and CSRF secret (api/web/cookies.py).
SURFACE = web_cookies.Surface(
    path="/dpo",
    session_cookie="tresor_dpo",
    csrf_cookie="tresor_dpo_csrf",
    csrf_label=b"tresor.dpo.csrf.v1",
)
SESSION_COOKIE = SURFACE.session_cookie
SESSION_TTL = timedelta(hours=4)
_TOKEN_RE = re.compile(r"^v1\.([A-Za-z0-9_-]{10,600})\.([0-9a-f]{64})$")
_NEXT_RE = re.compile(r"^/dpo/[A-Za-z0-9/_.:-]*(\?[A-Za-z0-9_.:%&=+-]*)?$")
_UUID_RE = re.compile(r"^[0-9a-f-]{36}$")
log = structlog.get_logger("tresor.dpo")


#: Action tags offered as suggestions in the search form.
SUGGESTED_ACTIONS = ("lookup", "client:contact:lookup", "consent", "withdraw", "erase", "dpo")


# -- keys derived from the keyring --------------------------------------------------------------


def _session_key(ctx: VaultContext) -> bytes:
    """The key that signs console session tokens, derived from the keyring's server key."""
    return web_cookies.derive(ctx.secrets.client_key, b"tresor.dpo.session.v1")


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
    mac = web_cookies.sign(_session_key(ctx), payload)
    expires_at = datetime.fromtimestamp(int(expires.timestamp()), UTC)
    session = DpoSession(client.id, client.name, expires_at)
    return f"v1.{payload}.{mac}", session


def read_session(ctx: VaultContext, token: str | None) -> DpoSession | None:
    """The session a token carries if its MAC is right and it has not expired, else None."""
    m = _TOKEN_RE.match(token or "")
    if not m:
        return None
    payload, mac = m.group(1), m.group(2)
    if not web_cookies.signed_by(_session_key(ctx), payload, mac):
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
    return web_cookies.session_cookie(
        request, SURFACE, token, int(SESSION_TTL.total_seconds())
    )


def clear_session_cookie(request: Request[Any, Any, Any]) -> Cookie:
    return web_cookies.clear_session_cookie(request, SURFACE)


def fmt_for(lang: str):  # type: ignore[no-untyped-def]
    """Times on the console to the second (audit work), dates as the language writes them."""
    return dates.formatter(lang, "seconds")


def _period_for(lang: str, bucket: str):  # type: ignore[no-untyped-def]
    def period(start: datetime) -> str:
        return format_datetime(start, lang, "hour" if bucket == "hour" else "day")

    return period


def _axis_for(lang: str, bucket: str):  # type: ignore[no-untyped-def]
    """Short labels for a chart's time axis."""

    def axis(start: datetime) -> str:
        return format_datetime(start, lang, "hour_axis" if bucket == "hour" else "day_axis")

    return axis


def _request_id(request: Request[Any, Any, Any]) -> str | None:
    return request.scope.get("state", {}).get("request_id")


def _actor(request: Request[Any, Any, Any], session: DpoSession) -> Actor:
    return Actor("dpo", session.name, _request_id(request))


def _search_url(lang: str, **params: Any) -> str:
    query = {"lang": lang} | {k: v for k, v in params.items() if v not in (None, "")}
    return "/dpo/audit?" + urlencode(query)


def _lang_url(request: Request[Any, Any, Any]):  # type: ignore[no-untyped-def]
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
            "search_url": lambda **kw: _search_url(lang, **kw),
            "field_label": lambda f: t.get(f"field_{f}", f),
            "dpo": session.name if session else None,
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


def _to_signin(request: Request[Any, Any, Any], *, expired: bool = False) -> Redirect:
    lang = pick_language(request)
    query: dict[str, str] = {"lang": lang}
    target = request.url.path + (("?" + request.url.query) if request.url.query else "")
    if request.method == "GET" and _NEXT_RE.match(target) and len(target) <= 500:
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


def page_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors on the console are pages (`api.web.errors`); a missing or ended session goes
    to the sign-in page instead."""
    if isinstance(exc, SignInRequired):
        return _to_signin(request, expired=exc.expired)
    return error_page(request, exc, _message_page)


def _message_page(
    request: Request[Any, Any, Any],
    status: int,
    heading_key: str,
    text_key: str,
    headers: dict[str, str] | None,
) -> Template:
    return _message(request, status, text_key, heading_key, headers)


def _form_text(value: Any, limit: int) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def _parse_local(value: str, name: str) -> datetime | None:
    """A `datetime-local` value (or ISO 8601 text), read as UTC unless it names an offset."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("bad time", {name: "is not a date and time"}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _local_value(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M") if value else ""  # type: ignore[union-attr]


# -- charts ---------------------------------------------------------------------------------------

_W, _H, _L, _R, _T, _B = 640, 220, 48, 14, 14, 34


def _nice_max(value: int) -> int:
    if value <= 4:
        return 4
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * magnitude)
        if top >= value and top % 4 == 0:
            return top
    return ((value + 3) // 4) * 4


def _axes(chart_id: str, title: str, n: int, top: int, labels: list[str]) -> list[str]:
    pw, ph = _W - _L - _R, _H - _T - _B
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-labelledby="{chart_id}-t" id="{chart_id}" font-family="system-ui,sans-serif" '
        f'font-size="11">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
    ]
    for i in range(5):
        value = top * i // 4
        y = _T + ph - ph * i / 4
        out.append(
            f'<line x1="{_L}" y1="{y:.1f}" x2="{_W - _R}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{_L - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#4b5563">{value}</text>'
        )
    out.append(
        f'<line x1="{_L}" y1="{_T + ph}" x2="{_W - _R}" y2="{_T + ph}" stroke="#6b7280"/>'
    )
    if n:
        picks = sorted({round(i * (n - 1) / 5) for i in range(6)}) if n > 6 else range(n)
        slot = pw / n
        for i in picks:
            x, anchor = _L + (i + 0.5) * slot, "middle"
            if n > 1 and i == 0:
                x, anchor = _L + 0.5 * slot - min(slot / 2, 4), "start"
            elif n > 1 and i == n - 1:
                x, anchor = _W - _R, "end"
            out.append(
                f'<text x="{x:.1f}" y="{_H - 12}" text-anchor="{anchor}" fill="#4b5563">'
                f"{escape(labels[i])}</text>"
            )
    return out


def stacked_bars_svg(
    chart_id: str, title: str, labels: list[str], stacks: list[tuple[str, str, list[int]]]
) -> Markup:
    """Stacked bars, one per bucket; `stacks` = (name, colour, values) bottom to top."""
    n = len(labels)
    totals = [sum(s[2][i] for s in stacks) for i in range(n)]
    top = _nice_max(max(totals, default=0))
    pw, ph = _W - _L - _R, _H - _T - _B
    out = _axes(chart_id, title, n, top, labels)
    width = max(1.0, pw / max(n, 1) * 0.7)
    for i in range(n):
        base = 0
        x = _L + (i + 0.5) * pw / n - width / 2
        for name, colour, values in stacks:
            v = values[i]
            if v:
                y = _T + ph - ph * (base + v) / top
                h = ph * v / top
                out.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}" '
                    f'fill="{colour}"><title>{escape(labels[i])}: {escape(name)} {v}</title></rect>'
                )
            base += v
    out.append("</svg>")
    return Markup("".join(out))


def lines_svg(
    chart_id: str, title: str, labels: list[str], series: list[tuple[str, str, str, list[int]]]
) -> Markup:
    """One line per series: (name, colour, dash pattern, values)."""
    n = len(labels)
    top = _nice_max(max((max(s[3], default=0) for s in series), default=0))
    pw, ph = _W - _L - _R, _H - _T - _B
    out = _axes(chart_id, title, n, top, labels)
    for name, colour, dash, values in series:
        points = [
            (_L + (i + 0.5) * pw / max(n, 1), _T + ph - ph * v / top) for i, v in enumerate(values)
        ]
        if not points:
            continue
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash_attr} points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            + f'"><title>{escape(name)}</title></polyline>'
        )
        if n <= 62:
            for (x, y), v in zip(points, values, strict=True):
                if v:
                    out.append(
                        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}">'
                        f"<title>{escape(name)} {v}</title></circle>"
                    )
    out.append("</svg>")
    return Markup("".join(out))


# -- the controller -------------------------------------------------------------------------------


class DpoConsoleController(Controller):
    path = "/dpo"
    opt = public()
    include_in_schema = False
    middleware = [DefineMiddleware(web_cookies.CsrfMiddleware, surface=SURFACE)]
    exception_handlers = every_error(page_error)

    @get("/", operation_id="dpoHome")
    async def home(self, request: Request[Any, Any, Any], vault: Vault) -> Redirect:
        lang = pick_language(request)
        if await current_session(request, vault) is None:
            return Redirect(path=f"/dpo/signin?lang={lang}", status_code=303)
        return Redirect(path=f"/dpo/audit?lang={lang}", status_code=303)

    @get("/signin", operation_id="dpoSignInPage")
    async def signin_page(self, request: Request[Any, Any, Any], vault: Vault) -> Response[Any]:
        lang = pick_language(request)
        nxt = request.query_params.get("next") or ""
        if await current_session(request, vault) is not None:
            target = nxt if _NEXT_RE.match(nxt) else f"/dpo/audit?lang={lang}"
            return Redirect(path=target, status_code=303)
        t = TEXTS[lang]
        expired = request.query_params.get("expired") == "1"
        out = request.query_params.get("done") == "signed_out"
        return page(
            request,
            "dpo_signin.html",
            "dpo_signin_heading",
            signin_text=t["dpo_signin_text"].format(hours=int(SESSION_TTL.total_seconds() // 3600)),
            next=nxt if _NEXT_RE.match(nxt) else "",
            notice=t["dpo_signed_out"] if out else (t["dpo_session_expired"] if expired else None),
        )

    @post("/signin", operation_id="dpoSignIn", status_code=303)
    async def signin(self, request: Request[Any, Any, Any], vault: Vault) -> Response[Any]:
        form = await request.form()
        lang = pick_language(request)
        t = TEXTS[lang]
        key = _form_text(form.get("api_key"), 200)
        nxt = _form_text(form.get("next"), 500)
        authenticator = request.app.state.authenticator
        # The same per-address brake on failed keys as the bearer-key API
        # (TRESOR_FAILED_AUTH_LIMIT): the console must not be a way around it.
        limiter = request.app.state.failed_auth
        ip = request.client.host if request.client else "unknown"
        retry_after: int | None = None
        try:
            limiter.check(ip)
        except RateLimited as exc:
            retry_after = exc.retry_after
        client: ClientInfo | None = (
            await authenticator.authenticate(key) if key and retry_after is None else None
        )
        error = None
        if retry_after is not None:
            error = t["dpo_signin_rate_limited"]
        elif client is None:
            limiter.failed(ip)
            # Unknown keys are not audited (nobody to attribute them to, and a flood of
            # guesses must not grow the trail); the log line carries no key material.
            log.warning("dpo_signin_refused", reason="invalid_key")
            error = t["dpo_signin_wrong"]
        elif client.role is not Role.DPO:
            await record_console_sign_in(vault, client, _request_id(request), None)
            error = t["dpo_signin_role"]
        if error is not None or client is None:
            return page(
                request,
                "dpo_signin.html",
                "dpo_signin_heading",
                status=401 if retry_after is None else 429,
                headers={"WWW-Authenticate": 'Cookie realm="tresor-dpo"'}
                | ({"Retry-After": str(retry_after)} if retry_after is not None else {}),
                signin_text=t["dpo_signin_text"].format(
                    hours=int(SESSION_TTL.total_seconds() // 3600)
                ),
                next=nxt if _NEXT_RE.match(nxt) else "",
                error=error,
            )
        token, session = issue_session(vault, client)
        await record_console_sign_in(vault, client, _request_id(request), session.expires_at)
        target = nxt if _NEXT_RE.match(nxt) else f"/dpo/audit?lang={lang}"
        return Redirect(path=target, status_code=303, cookies=[session_cookie(request, token)])

    @post("/signout", operation_id="dpoSignOut", status_code=303)
    async def signout(self, request: Request[Any, Any, Any], vault: Vault) -> Redirect:
        session = await current_session(request, vault)
        if session is not None:
            await record_console_sign_out(vault, _actor(request, session))
        lang = pick_language(request)
        return Redirect(
            path=f"/dpo/signin?lang={lang}&done=signed_out",
            status_code=303,
            cookies=[clear_session_cookie(request)],
        )

    @get("/audit", operation_id="dpoAudit")
    async def audit_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault)
        q = request.query_params
        form = {
            "subject_id": _form_text(q.get("subject_id"), 100),
            "client": _form_text(q.get("client"), 100),
            "purpose": _form_text(q.get("purpose"), 100),
            "action": _form_text(q.get("action"), 100),
            "decision": _form_text(q.get("decision"), 10),
            "since": _form_text(q.get("since"), 40),
            "until": _form_text(q.get("until"), 40),
            "limit": _form_text(q.get("limit"), 4) or "50",
        }
        cursor = _form_text(q.get("cursor"), 60) or None
        t = TEXTS[pick_language(request)]
        context: dict[str, Any] = {
            "section": "audit",
            "form": form,
            "purposes": sorted(vault.catalogue.purposes.values(), key=lambda p: p.id),
            "actions": SUGGESTED_ACTIONS,
            "client_names": [],
            "page": None,
            "cursor": cursor,
            "next_url": None,
            "first_url": None,
        }
        status = 200
        try:
            limit = int(form["limit"]) if form["limit"].isdigit() else -1
            filters = AuditFilter(
                subject_id=form["subject_id"] or None,
                client=form["client"] or None,
                purpose=form["purpose"] or None,
                action=form["action"] or None,
                decision=form["decision"] or None,
                since=_parse_local(form["since"], "since"),
                until=_parse_local(form["until"], "until"),
            )
            result = await audit_query.search(
                vault, _actor(request, session), filters, limit=limit, cursor=cursor
            )
            context["page"] = result
            base = {k: v for k, v in form.items() if v}
            lang = pick_language(request)
            context["first_url"] = _search_url(lang, **base)
            if result.next_cursor:
                context["next_url"] = _search_url(lang, **base, cursor=result.next_cursor)
        except InvalidInput as exc:
            status = 422
            context["error"] = t["dpo_invalid_filter"]
            context["error_fields"] = sorted(exc.errors.items())
        context["client_names"] = [c.name for c in await list_clients(vault)]
        return page(
            request, "dpo_audit.html", "dpo_audit_heading", session=session, status=status,
            **context,
        )

    @get("/requests", operation_id="dpoRequests")
    async def requests_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault)
        show_closed = request.query_params.get("closed") == "1"
        records = await request_queue(vault, _actor(request, session), closed=show_closed)
        return page(
            request,
            "dpo_requests.html",
            "dpo_requests_heading",
            session=session,
            section="requests",
            requests=records,
            show_closed=show_closed,
        )

    @get("/stats", operation_id="dpoStats")
    async def stats_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault)
        lang = pick_language(request)
        t = TEXTS[lang]
        q = request.query_params
        bucket = q.get("bucket") if q.get("bucket") in audit_query.BUCKETS else "day"
        form = {
            "since": _form_text(q.get("since"), 40),
            "until": _form_text(q.get("until"), 40),
            "bucket": bucket,
        }
        actor = _actor(request, session)
        error: str | None = None
        error_fields: list[tuple[str, str]] = []
        try:
            since = _parse_local(form["since"], "since")
            until = _parse_local(form["until"], "until")
            access = await audit_query.access_stats(
                vault, actor, since=since, until=until, bucket=bucket
            )
        except InvalidInput as exc:
            error, error_fields = t["dpo_invalid_filter"], sorted(exc.errors.items())
            since = until = None
            access = await audit_query.access_stats(vault, actor, bucket=bucket)
        consents_ = await audit_query.consent_stats(
            vault, actor, since=access.since, until=access.until, bucket=bucket
        )
        period = _period_for(lang, bucket)
        axis = _axis_for(lang, bucket)
        labels = [axis(b.start) for b in access.series]
        access_chart = stacked_bars_svg(
            "access-chart",
            t["dpo_access_chart"],
            labels,
            [
                (t["dpo_col_allowed"], "#1d4ed8", [b.allowed for b in access.series]),
                (t["dpo_col_denied"], "#b91c1c", [b.denied for b in access.series]),
            ],
        )
        charts = []
        for i, p in enumerate(consents_.purposes, 1):
            purpose = vault.catalogue.get(p.purpose)
            title = purpose.title(lang) if purpose else p.purpose
            caption = t["dpo_consent_chart"].format(purpose=title)
            charts.append(
                {
                    "stats": p,
                    "title": title,
                    "caption": caption,
                    "chart": lines_svg(
                        f"consent-chart-{i}",
                        caption,
                        [axis(b.start) for b in p.series],
                        [
                            (t["dpo_granted"], "#166534", "", [b.granted for b in p.series]),
                            (t["dpo_withdrawn"], "#b91c1c", "6 3", [b.withdrawn for b in p.series]),
                            (t["dpo_expired"], "#6b7280", "2 3", [b.expired for b in p.series]),
                        ],
                    ),
                }
            )
        if not form["since"]:
            form["since"] = _local_value(access.since)
        return page(
            request,
            "dpo_stats.html",
            "dpo_stats_heading",
            session=session,
            status=422 if error else 200,
            section="stats",
            form=form,
            access=access,
            access_total=t["dpo_access_total"].format(
                total=format_number(access.total, lang),
                allowed=format_number(access.allowed, lang),
                denied=format_number(access.denied, lang),
            ),
            access_chart=access_chart,
            consent_charts=charts,
            period=period,
            error=error,
            error_fields=error_fields,
        )

    @get("/contacts", operation_id="dpoContacts")
    async def contacts_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        """Contact pressure of a month: bars per touchpoint, phase, brand and channel, and
        how many customers are near or at their limit (aggregates only); the read is
        audited like the console's other pages (in the report's transaction)."""
        session = await require_session(request, vault)
        lang = pick_language(request)
        t = TEXTS[lang]
        month = request.query_params.get("month") or None
        report = await pressure_report.contact_report(  # InvalidInput: 422 page
            vault, _actor(request, session), month
        )

        def touchpoint_label(key: str) -> str:
            tp = vault.touchpoints.get(key)
            return tp.name(lang) if tp else key

        def brand_label(key: str) -> str:
            brand = vault.pressure_rules.brands.get(key)
            return (brand.name_de if lang == "de" else brand.name_en) if brand else key

        sections = []
        for key, buckets, label in (
            ("touchpoint", report.by_touchpoint, touchpoint_label),
            ("phase", report.by_phase, str),
            ("brand", report.by_brand, brand_label),
            ("channel", report.by_channel, str),
        ):
            title = t[f"dpo_contacts_by_{key}"]
            labels = [label(b.key) for b in buckets]
            sections.append(
                {
                    "id": f"by-{key}",
                    "title": title,
                    "rows": list(zip(labels, buckets, strict=True)),
                    "chart": stacked_bars_svg(
                        f"by-{key}-chart",
                        title,
                        labels,
                        [(t["dpo_col_count"], "#1d4ed8", [b.contacts for b in buckets])],
                    ),
                }
            )
        below = report.customers_contacted - report.customers_near_limit - report.customers_at_limit
        limits = [
            (t["dpo_contacts_below"], below),
            (t["dpo_contacts_near"], report.customers_near_limit),
            (t["dpo_contacts_at"], report.customers_at_limit),
        ]
        fu_rows = [(touchpoint_label(b.key), b) for b in report.followups_by_touchpoint]
        followups_chart = stacked_bars_svg(
            "followups-chart",
            t["dpo_fu_by_touchpoint"],
            [label for label, _ in fu_rows],
            [
                (t["dpo_fu_kept"], "#166534", [b.kept for _, b in fu_rows]),
                (t["dpo_fu_missed"], "#b91c1c", [b.missed for _, b in fu_rows]),
                (t["dpo_fu_cancelled"], "#6b7280", [b.cancelled for _, b in fu_rows]),
            ],
        )
        prefs = report.preferences
        pref_rows = [
            (t[f"dpo_pref_reason_{reason}"], n)
            for reason, n in (prefs.denials_by_reason.items() if prefs else ())
        ]
        pref_chart = stacked_bars_svg(
            "preferences-chart",
            t["dpo_pref_heading"],
            [label for label, _ in pref_rows],
            [(t["dpo_col_count"], "#7c3aed", [n for _, n in pref_rows])],
        )
        limits_chart = stacked_bars_svg(
            "limits-chart",
            t["dpo_contacts_limits"],
            [label for label, _ in limits],
            [(t["dpo_col_count"], "#b45309", [n for _, n in limits])],
        )
        return page(
            request,
            "dpo_contacts.html",
            "dpo_contacts_heading",
            session=session,
            section="contacts",
            report=report,
            intro=t["dpo_contacts_intro"].format(
                month=report.month,
                basket=format_number(report.basket, lang),
                total=format_number(report.total_contacts, lang),
                points=format_number(report.total_points, lang),
            ),
            sections=sections,
            limits=limits,
            limits_chart=limits_chart,
            followup_rows=fu_rows,
            followups_chart=followups_chart,
            preference_rows=pref_rows,
            preferences_chart=pref_chart,
            preference_share=(
                t["dpo_pref_share"].format(
                    n=format_number(prefs.customers_with_preferences, lang),
                    total=format_number(prefs.customers, lang),
                    percent=format_number(prefs.share * 100, lang, 1),
                )
                if prefs
                else ""
            ),
        )

    @get("/followups", operation_id="dpoFollowups")
    async def followups_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        """Overdue agreed follow-ups: windows that passed without the contact the customer
        asked for (pseudonymous: subject ids, no contact data); the read is audited."""
        session = await require_session(request, vault)
        lang = pick_language(request)
        items = await followups.overdue(vault, _actor(request, session))

        def purpose_title(purpose_id: str) -> str:
            purpose = vault.catalogue.get(purpose_id)
            return purpose.title(lang) if purpose else purpose_id

        def touchpoint_label(key: str) -> str:
            tp = vault.touchpoints.get(key)
            return tp.name(lang) if tp else key

        return page(
            request,
            "dpo_followups.html",
            "dpo_fu_heading",
            session=session,
            section="followups",
            items=items,
            purpose_title=purpose_title,
            touchpoint_label=touchpoint_label,
        )

    @get("/chain", operation_id="dpoChain")
    async def chain_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault)
        lang = pick_language(request)
        t = TEXTS[lang]
        status = await audit_query.chain_status(vault, _actor(request, session))
        checkpoint_text = None
        if status.last_checkpoint_position is not None:
            checkpoint_text = t["dpo_chain_checkpoint_value"].format(
                position=status.last_checkpoint_position,
                seq=status.last_checkpoint_seq,
                at=fmt_for(lang)(status.last_checkpoint_at) + " UTC",
            )
        return page(
            request,
            "dpo_chain.html",
            "dpo_chain_heading",
            session=session,
            section="chain",
            chain=status,
            checkpoint_text=checkpoint_text,
            broken_text=t["dpo_chain_broken"].format(seq=status.broken_seq),
            public_key=audit_chain.public_key_pem(vault),
        )

    @get("/consents/{consent_id:str}/proof", operation_id="dpoConsentProof")
    async def proof_page(
        self, request: Request[Any, Any, Any], vault: Vault, consent_id: FromPath[str]
    ) -> Template:
        session = await require_session(request, vault)
        if not _UUID_RE.match(consent_id):
            raise NotFound("no such consent")
        proof = await consent_proof.consent_proof(vault, _actor(request, session), consent_id)
        return render_proof(request, proof, session=session)

    @get("/ropa", operation_id="dpoRopa")
    async def ropa_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        session = await require_session(request, vault)
        record = await ropa.record_of_processing(vault, _actor(request, session))
        return page(
            request,
            "dpo_ropa.html",
            "dpo_ropa_heading",
            session=session,
            section="ropa",
            ropa=record,
        )
