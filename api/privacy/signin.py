"""Signing in (a mailed code or link) and out of the privacy centre."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from api.deps import Vault
from api.i18n import N_, TEXTS, pick_language
from api.privacy.pages import (
    SESSION_COOKIE,
    PrivacyPages,
    clear_session_cookie,
    form_value,
    message,
    render,
    session_cookie,
    signin_page,
    to_privacy,
)
from api.rights.self_views import (
    client_ip,
    request_id_of,
)
from vault.errors import (
    InvalidInput,
    RateLimited,
    Unauthenticated,
)
from vault.rights import selfservice

#: The privacy centre's cookies and CSRF secret (api/web/cookies.py).


class PrivacySignInPages(PrivacyPages):
    """Signing in (a mailed code or link) and out of the privacy centre."""

    @post("/sign-in", operation_id="privacySignIn", status_code=200)
    async def sign_in(self, request: Request[Any, Any, Any], vault: Vault) -> Template:
        form = await request.form()
        t = TEXTS[pick_language(request)]
        kind = form_value(form, "kind", 10)
        kind = kind if kind in selfservice.KINDS else "email"
        value = form_value(form, "value")
        try:
            await selfservice.start_challenge(
                vault,
                kind=kind,
                value=value,
                client_ip=client_ip(request),
                request_id=request_id_of(request),
            )
        except InvalidInput:
            return signin_page(
                request, status=422, error=t["pc_invalid_address"], kind=kind, value=value
            )
        except RateLimited as exc:
            minutes = max(1, -(-exc.retry_after // 60))
            return signin_page(
                request,
                status=429,
                error=t["pc_rate_limited"].format(minutes=minutes),
                kind=kind,
                headers={"Retry-After": str(exc.retry_after)},
            )
        return render(
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
        kind = form_value(form, "kind", 10)
        kind = kind if kind in selfservice.KINDS else "email"
        value = form_value(form, "value")
        try:
            session = await selfservice.verify_code(
                vault,
                kind=kind,
                value=value,
                code=form_value(form, "code", 20),
                client_ip=client_ip(request),
                request_id=request_id_of(request),
            )
        except (Unauthenticated, InvalidInput):
            return render(
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
        return to_privacy(request, cookies=[session_cookie(request, session.token, max_age)])

    @post("/sign-out", operation_id="privacySignOut", status_code=303)
    async def sign_out(self, request: Request[Any, Any, Any], vault: Vault) -> Redirect:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await selfservice.end_session(vault, token, request_id_of(request))
        return to_privacy(request, "signed_out", cookies=[clear_session_cookie(request)])

    @get("/sign-in-link/{token:str}", operation_id="privacySignInLink")
    async def sign_in_link_page(
        self, request: Request[Any, Any, Any], vault: Vault, token: FromPath[str]
    ) -> Template:
        """The link mailed while sign-in by code is locked: a page with one button. Opening
        it changes nothing (mail scanners open links); the button posts, CSRF-protected."""
        if not await selfservice.link_usable(vault, token):
            t = TEXTS[pick_language(request)]
            return message(request, 404, N_("pc_link_invalid_title"), t["pc_link_invalid_text"])
        return render(request, "privacy_link.html", N_("pc_link_heading"), token=token)

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
            return message(request, 410, N_("pc_link_invalid_title"), t["pc_link_invalid_text"])
        max_age = vault.settings.self_session_minutes * 60
        return to_privacy(request, cookies=[session_cookie(request, session.token, max_age)])
