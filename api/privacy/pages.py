"""The privacy centre web pages at /privacy (German by default, English via ?lang=en).

Sign-in by a code mailed to the stored address; the session lives in the cookie
`tresor_self` (HttpOnly, SameSite=Strict, Path=/privacy, short-lived; Secure when the
request came over TLS or TRESOR_PUBLIC_URL is https, i.e. behind a TLS-terminating proxy).
Every form is CSRF-protected by Litestar's CSRF middleware (an HMAC-signed token in the
cookie `tresor_csrf` that each form must echo as `_csrf_token`), mounted on this controller
only, so API clients elsewhere are unaffected. Pages are never cached and never framed.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.middleware import DefineMiddleware
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.outreach.preferences import form_document as preference_form
from api.outreach.preferences import form_errors as preference_errors
from api.outreach.preferences import page_context as preference_page
from api.rights.selfservice import (
    access_label,
    access_outcome,
    link_actor,
    operation_of,
    restriction_text,
    client_ip,
    create_my_request,
    my_export,
    my_requests,
    request_id_of,
)
from api.web import cookies as web_cookies
from api.web import dates
from api.web.errors import error_page, every_error
from api.auth import public
from api.deps import Vault
from api.export_view import render_html
from api.i18n import TEXTS, N_, pick_language
from api.schemas import UUID_PATTERN
from vault.outreach import followups
from vault.rights import identity_objection
from vault.subjects import identity
from vault.outreach import preferences
from vault.rights import selfservice
from vault.errors import (
    AccessDenied,
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
)

#: The privacy centre's cookies and CSRF secret (api/web/cookies.py).
SURFACE = web_cookies.Surface(
    path="/privacy",
    session_cookie="tresor_self",
    csrf_cookie="tresor_csrf",
    csrf_label=b"tresor.privacy.csrf.v1",
)
SESSION_COOKIE = SURFACE.session_cookie
CONTACT_FIELDS = ("name", "email", "phone", "postal_address", "external_ref")
#: Request types the page forms may ask for (export is a download, not a form).
FORM_REQUEST_TYPES = ("rectification", "restriction", "objection", "erasure")
_DONE = ("withdrawn", "requested", "signed_out", "erased", "expired")
_ADDRESS_PARTS = ("street", "postal_code", "city", "country")


def _fmt(lang: str):  # type: ignore[no-untyped-def]
    """Times to the minute and marked UTC: customers may read them anywhere."""
    return dates.formatter(lang, "minutes", utc=True)


def session_cookie(request: Request[Any, Any, Any], token: str, max_age: int) -> Cookie:
    return web_cookies.session_cookie(request, SURFACE, token, max_age)


def clear_session_cookie(request: Request[Any, Any, Any]) -> Cookie:
    return web_cookies.clear_session_cookie(request, SURFACE)


def _page(
    request: Request[Any, Any, Any],
    template: str,
    title_key: str,
    *,
    status: int = 200,
    cookies: list[Cookie] | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    lang = pick_language(request)
    t = TEXTS[lang]
    return Template(
        template_name=template,
        context={"lang": lang, "t": t, "title": t[title_key], "fmt": _fmt(lang), **context},
        status_code=status,
        cookies=cookies or [],
        headers=headers or {},
    )


def _to_privacy(
    request: Request[Any, Any, Any],
    done: str | None = None,
    anchor: str = "",
    cookies: list[Cookie] | None = None,
) -> Redirect:
    lang = pick_language(request)
    query = f"?lang={lang}" + (f"&done={done}" if done else "")
    return Redirect(path=f"/privacy{query}{anchor}", status_code=303, cookies=cookies or [])


async def _signed_in(
    request: Request[Any, Any, Any], vault: Any
) -> selfservice.SelfSession | None:
    """The live session of the cookie, restricted or not (only the overview takes one)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return await selfservice.session_info(vault, token)
    except Unauthenticated:
        return None


def _signin_page(
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
    return _page(
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


def _message(
    request: Request[Any, Any, Any],
    status: int,
    heading_key: str,
    text: str,
    headers: dict[str, str] | None = None,
) -> Template:
    lang = pick_language(request)
    return _page(
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
        return _to_privacy(request, "expired")
    if isinstance(exc, AccessDenied) and exc.reason == identity.REFUSED_REASON:
        return _message(
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
    return _message(request, status, heading_key, TEXTS[pick_language(request)][text_key], headers)


def _form_value(form: Any, name: str, limit: int = 320) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    return value.strip()[:limit]


def rectification_payload(form: Any) -> dict[str, Any] | None:
    """The request payload of a rectification form: `{"changes": {field: new value}}`, or
    None when every field was left empty ("unchanged")."""
    changes: dict[str, Any] = {}
    for name, limit in (("name", 200), ("email", 320), ("phone", 40)):
        value = _form_value(form, name, limit)
        if value:
            changes[name] = value
    address = {part: _form_value(form, part, 200) for part in _ADDRESS_PARTS}
    if any(address.values()):
        changes["postal_address"] = {
            **address,
            "country": (address["country"] or "DE").upper(),
        }
    return {"changes": changes} if changes else None


class PrivacyController(Controller):
    path = "/privacy"
    opt = public()
    include_in_schema = False
    middleware = [DefineMiddleware(web_cookies.CsrfMiddleware, surface=SURFACE)]
    exception_handlers = every_error(page_error)

    @get("/", operation_id="privacyCentre")
    async def overview(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        lang = pick_language(request)
        t = TEXTS[lang]
        done = request.query_params.get("done")
        notice = t[f"done_{done}"] if done in _DONE else None
        session = await _signed_in(request, vault)
        if session is None:
            cookies = (
                [clear_session_cookie(request)] if request.cookies.get(SESSION_COOKIE) else None
            )
            return _signin_page(request, notice=notice, cookies=cookies)
        view = await selfservice.my_data(
            vault,
            selfservice.subject_actor(request_id_of(request)),
            session.subject_id,
            restriction=session.restriction,
        )
        records = [] if view.restriction else await my_requests(vault, session.subject_id)
        restricted = restriction_text(lang, view.restriction) if view.restriction else None
        error = t["pc_rectify_empty"] if request.query_params.get("error") == "empty" else None
        return _page(
            request,
            "privacy_overview.html",
            "pc_title",
            view=view,
            requests=records,
            fields=CONTACT_FIELDS,
            notice=notice,
            error=error,
            restricted=restricted,
            session_minutes=vault.settings.self_session_minutes,
            access_label=lambda entry: access_label(lang, entry),
            access_outcome=lambda entry: access_outcome(lang, entry),
        )

    @post("/sign-in", operation_id="privacySignIn", status_code=200)
    async def sign_in(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        form = await request.form()
        t = TEXTS[pick_language(request)]
        kind = _form_value(form, "kind", 10)
        kind = kind if kind in selfservice.KINDS else "email"
        value = _form_value(form, "value")
        try:
            await selfservice.start_challenge(
                vault,
                kind=kind,
                value=value,
                client_ip=client_ip(request),
                request_id=request_id_of(request),
            )
        except InvalidInput:
            return _signin_page(
                request, status=422, error=t["pc_invalid_address"], kind=kind, value=value
            )
        except RateLimited as exc:
            minutes = max(1, -(-exc.retry_after // 60))
            return _signin_page(
                request,
                status=429,
                error=t["pc_rate_limited"].format(minutes=minutes),
                kind=kind,
                headers={"Retry-After": str(exc.retry_after)},
            )
        return _page(
            request,
            "privacy_code.html",
            "pc_code_heading",
            kind=kind,
            value=value,
            otp_minutes=vault.settings.otp_minutes,
        )

    @post("/verify", operation_id="privacyVerify", status_code=303)
    async def verify(self, request: Request[Any, Any, Any], vault: Vault) -> Response[Any]:
        form = await request.form()
        t = TEXTS[pick_language(request)]
        kind = _form_value(form, "kind", 10)
        kind = kind if kind in selfservice.KINDS else "email"
        value = _form_value(form, "value")
        try:
            session = await selfservice.verify_code(
                vault,
                kind=kind,
                value=value,
                code=_form_value(form, "code", 20),
                client_ip=client_ip(request),
                request_id=request_id_of(request),
            )
        except (Unauthenticated, InvalidInput):
            return _page(
                request,
                "privacy_code.html",
                "pc_code_heading",
                status=401,
                error=t["pc_code_wrong"],
                kind=kind,
                value=value,
                otp_minutes=vault.settings.otp_minutes,
            )
        max_age = vault.settings.self_session_minutes * 60
        return _to_privacy(request, cookies=[session_cookie(request, session.token, max_age)])

    @post("/sign-out", operation_id="privacySignOut", status_code=303)
    async def sign_out(self, request: Request[Any, Any, Any], vault: Vault) -> Redirect:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await selfservice.end_session(vault, token, request_id_of(request))
        return _to_privacy(request, "signed_out", cookies=[clear_session_cookie(request)])

    @post(
        "/consents/{consent_id:str}/withdraw", operation_id="privacyWithdraw", status_code=303
    )
    async def withdraw(
        self, request: Request[Any, Any, Any], vault: Vault, consent_id: FromPath[str]
    ) -> Redirect:
        subject_id = await _require(request, vault)
        if not _valid_uuid(consent_id):
            raise NotFound("no such consent")
        await selfservice.withdraw_consent(
            vault, selfservice.subject_actor(request_id_of(request)), subject_id, consent_id
        )
        return _to_privacy(request, "withdrawn", "#consents")

    @get("/followups", operation_id="privacyFollowups")
    async def followups_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        """My agreed follow-ups; missed ones are marked, open ones can be cancelled."""
        subject_id = await _require(request, vault)
        lang = pick_language(request)
        t = TEXTS[lang]
        items = await followups.for_subject(
            vault, selfservice.subject_actor(request_id_of(request)), subject_id
        )

        def purpose_title(purpose_id: str) -> str:
            purpose = vault.catalogue.get(purpose_id)
            return purpose.title(lang) if purpose else purpose_id

        def touchpoint_name(touchpoint_id: str) -> str:
            tp = vault.touchpoints.get(touchpoint_id)
            return tp.name(lang) if tp else touchpoint_id

        done = request.query_params.get("done")
        return _page(
            request,
            "privacy_followups.html",
            "pc_fu_heading",
            items=items,
            purpose_title=purpose_title,
            touchpoint_name=touchpoint_name,
            notice=t["done_followup_cancelled"] if done == "cancelled" else None,
        )

    @post(
        "/followups/{followup_id:str}/cancel",
        operation_id="privacyCancelFollowup",
        status_code=303,
    )
    async def cancel_followup(
        self, request: Request[Any, Any, Any], vault: Vault, followup_id: FromPath[str]
    ) -> Redirect:
        subject_id = await _require(request, vault)
        if not _valid_uuid(followup_id):
            raise NotFound("no such follow-up")
        await followups.cancel_by_subject(
            vault, selfservice.subject_actor(request_id_of(request)), subject_id, followup_id
        )
        lang = pick_language(request)
        return Redirect(path=f"/privacy/followups?lang={lang}&done=cancelled", status_code=303)

    @get("/erase", operation_id="privacyEraseConfirm")
    async def erase_confirm(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        await _require(request, vault)
        return _page(request, "privacy_erase.html", "pc_erase_confirm_heading")

    @post("/requests", operation_id="privacyRequest", status_code=303)
    async def make_request(self, request: Request[Any, Any, Any], vault: Vault) -> Response[Any]:
        subject_id = await _require(request, vault)
        form = await request.form()
        type_ = _form_value(form, "type", 40)
        if type_ not in FORM_REQUEST_TYPES:
            raise InvalidInput("unknown request type", {"type": "is not offered here"})
        payload: dict[str, Any] | None = None
        if type_ == "erasure" and _form_value(form, "confirm", 5) != "yes":
            return _page(request, "privacy_erase.html", "pc_erase_confirm_heading", status=200)
        if type_ == "rectification":
            payload = rectification_payload(form)
            if not payload:
                lang = pick_language(request)
                return Redirect(path=f"/privacy?lang={lang}&error=empty#rights", status_code=303)
        await create_my_request(vault, request, subject_id, type_, payload)
        if type_ == "erasure":
            token = request.cookies.get(SESSION_COOKIE)
            if token:
                await selfservice.end_session(vault, token, request_id_of(request))
            return _to_privacy(request, "erased", cookies=[clear_session_cookie(request)])
        return _to_privacy(request, "requested", "#requests")

    @get("/export", operation_id="privacyExportPage")
    async def export_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        subject_id = await _require(request, vault)
        document = msgspec.to_builtins(await my_export(vault, request, subject_id))
        return _page(
            request,
            "privacy_export.html",
            "pc_export_heading_full",
            export=document,
            rendered=render_html(document, pick_language(request)),
        )

    @get("/export.json", operation_id="privacyExportDownload")
    async def export_download(
        self, request: Request[Any, Any, Any], vault: Vault
    ) -> Response[bytes]:
        subject_id = await _require(request, vault)
        document = await my_export(vault, request, subject_id)
        return Response(
            content=msgspec.json.format(msgspec.json.encode(document), indent=2),
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="tresor-export.json"'},
        )

    @get("/identity/{token:str}", operation_id="privacyIdentityChange")
    async def identity_page(
        self, request: Request[Any, Any, Any], vault: Vault, token: FromPath[str]
    ) -> Template:
        """The link in the notice to the previous address: what changed, and two buttons.
        Opening it changes nothing (mail scanners open links); the buttons post."""
        lang = pick_language(request)
        t = TEXTS[lang]
        try:
            notice = await identity.peek_notice(vault, token)
        except NotFound:
            return _message(
                request, 404, N_("pc_identity_invalid_title"), t["pc_identity_invalid_text"]
            )
        what = t["pc_identity_what_" + "_".join(notice.kinds)]
        return _page(
            request,
            "privacy_identity.html",
            "pc_identity_heading",
            intro=t["pc_identity_intro"].format(at=_fmt(lang)(notice.changed_at), what=what),
            token=token,
        )

    @post("/identity/{token:str}/confirm", operation_id="privacyIdentityConfirm", status_code=200)
    async def identity_confirm(
        self, request: Request[Any, Any, Any], vault: Vault, token: FromPath[str]
    ) -> Template:
        t = TEXTS[pick_language(request)]
        try:
            await identity.confirm_by_token(vault, link_actor(request), token)
        except NotFound:
            return _message(
                request, 410, N_("pc_identity_invalid_title"), t["pc_identity_invalid_text"]
            )
        except Conflict:
            return _message(request, 409, N_("pc_error_title"), t["pc_identity_conflict_text"])
        return _message(
            request, 200, N_("pc_identity_confirmed_title"), t["pc_identity_confirmed_text"]
        )

    @post("/identity/{token:str}/object", operation_id="privacyIdentityObject", status_code=200)
    async def identity_object(
        self, request: Request[Any, Any, Any], vault: Vault, token: FromPath[str]
    ) -> Template:
        t = TEXTS[pick_language(request)]
        try:
            await identity_objection.object_by_token(vault, link_actor(request), token)
        except NotFound:
            return _message(
                request, 410, N_("pc_identity_invalid_title"), t["pc_identity_invalid_text"]
            )
        return _message(
            request, 200, N_("pc_identity_objected_title"), t["pc_identity_objected_text"]
        )

    @get("/sign-in-link/{token:str}", operation_id="privacySignInLink")
    async def sign_in_link_page(
        self, request: Request[Any, Any, Any], vault: Vault, token: FromPath[str]
    ) -> Template:
        """The link mailed while sign-in by code is locked: a page with one button. Opening
        it changes nothing (mail scanners open links); the button posts, CSRF-protected."""
        if not await selfservice.link_usable(vault, token):
            t = TEXTS[pick_language(request)]
            return _message(request, 404, N_("pc_link_invalid_title"), t["pc_link_invalid_text"])
        return _page(request, "privacy_link.html", N_("pc_link_heading"), token=token)

    @post("/sign-in-link/{token:str}", operation_id="privacySignInByLink", status_code=303)
    async def sign_in_by_link(
        self, request: Request[Any, Any, Any], vault: Vault, token: FromPath[str]
    ) -> Response[Any]:
        try:
            session = await selfservice.open_link_session(
                vault, token, request_id=request_id_of(request)
            )
        except Unauthenticated:
            t = TEXTS[pick_language(request)]
            return _message(request, 410, N_("pc_link_invalid_title"), t["pc_link_invalid_text"])
        max_age = vault.settings.self_session_minutes * 60
        return _to_privacy(request, cookies=[session_cookie(request, session.token, max_age)])

    @get("/preferences", operation_id="privacyPreferences")
    async def preferences_page(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        subject_id = await _require(request, vault)
        view = await preferences.get_preferences(
            vault, selfservice.subject_actor(request_id_of(request)), subject_id
        )
        t = TEXTS[pick_language(request)]
        saved = request.query_params.get("done") == "saved"
        return _page(
            request,
            "privacy_preferences.html",
            "pc_pref_heading",
            notice=t["pc_pref_saved"] if saved else None,
            errors=[],
            **preference_page(vault, view, None),
        )

    @post("/preferences", operation_id="privacyPreferencesSave", status_code=303)
    async def preferences_save(
        self, request: Request[Any, Any, Any], vault: Vault
    ) -> Response[Any]:
        subject_id = await _require(request, vault)
        lang = pick_language(request)
        actor = selfservice.subject_actor(request_id_of(request))
        doc = preference_form(await request.form())
        try:
            await preferences.set_preferences(
                vault,
                actor,
                subject_id,
                doc,
                source="self_service",
                evidence=preferences.self_service_evidence(
                    lang, ip=client_ip(request), ua=request.headers.get("user-agent")
                ),
            )
        except InvalidInput as exc:
            view = await preferences.get_preferences(vault, actor, subject_id)
            return _page(
                request,
                "privacy_preferences.html",
                "pc_pref_heading",
                status=422,
                error=TEXTS[lang]["pc_pref_invalid"],
                errors=preference_errors(exc.errors, TEXTS[lang]),
                **preference_page(vault, view, doc),
            )
        return Redirect(path=f"/privacy/preferences?lang={lang}&done=saved", status_code=303)


def _valid_uuid(value: str) -> bool:
    return bool(re.fullmatch(UUID_PATTERN, value or ""))


async def _require(request: Request[Any, Any, Any], vault: Any) -> str:
    """The subject of the cookie's session; a restricted session is refused (audited)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Unauthenticated("sign in first", "invalid_session")
    return await selfservice.session_subject(
        vault, token, operation=operation_of(request), request_id=request_id_of(request)
    )


__all__ = ["PrivacyController"]
