"""Signing in and out of the console with a DPO's API key."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect

from api.client_address import client_address
from api.deps import Vault
from api.dpo.pages import DpoPages, dpo_actor, form_text, page, request_id_of
from api.dpo.session import (
    NEXT_RE,
    SESSION_TTL,
    clear_session_cookie,
    current_session,
    issue_session,
    log,
    session_cookie,
)
from api.i18n import TEXTS, pick_language
from vault.admin.clients import (
    ClientInfo,
    Role,
    record_console_sign_in,
    record_console_sign_out,
)
from vault.errors import RateLimited


class DpoSignInPages(DpoPages):
    """The console's front door: the sign-in form, the session's start and end."""

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
            target = nxt if NEXT_RE.match(nxt) else f"/dpo/audit?lang={lang}"
            return Redirect(path=target, status_code=303)
        t = TEXTS[lang]
        expired = request.query_params.get("expired") == "1"
        out = request.query_params.get("done") == "signed_out"
        return page(
            request,
            "dpo_signin.html",
            "dpo_signin_heading",
            signin_text=t["dpo_signin_text"].format(hours=int(SESSION_TTL.total_seconds() // 3600)),
            next=nxt if NEXT_RE.match(nxt) else "",
            notice=t["dpo_signed_out"] if out else (t["dpo_session_expired"] if expired else None),
        )

    @post("/signin", operation_id="dpoSignIn", status_code=303)
    async def signin(self, request: Request[Any, Any, Any], vault: Vault) -> Response[Any]:
        form = await request.form()
        lang = pick_language(request)
        t = TEXTS[lang]
        key = form_text(form.get("api_key"), 200)
        nxt = form_text(form.get("next"), 500)
        authenticator = request.app.state.authenticator
        # The same per-address brake on failed keys as the bearer-key API
        # (TRESOR_FAILED_AUTH_LIMIT): a valid key is always let in; failures are counted and,
        # over the limit, answered 429 instead of 401.
        limiter = request.app.state.failed_auth
        retry_after: int | None = None
        client: ClientInfo | None = await authenticator.authenticate(key) if key else None
        error = None
        if client is None:
            try:
                await limiter.failed(client_address(request))
            except RateLimited as exc:
                retry_after = exc.retry_after
        if retry_after is not None:
            error = t["dpo_signin_rate_limited"]
        elif client is None:
            # Unknown keys are not audited (nobody to attribute them to, and a flood of
            # guesses must not grow the trail); the log line carries no key material.
            log.warning("dpo_signin_refused", reason="invalid_key")
            error = t["dpo_signin_wrong"]
        elif client.role is not Role.DPO:
            await record_console_sign_in(vault, client, request_id_of(request), None)
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
                next=nxt if NEXT_RE.match(nxt) else "",
                error=error,
            )
        token, session = issue_session(vault, client)
        await record_console_sign_in(vault, client, request_id_of(request), session.expires_at)
        target = nxt if NEXT_RE.match(nxt) else f"/dpo/audit?lang={lang}"
        return Redirect(path=target, status_code=303, cookies=[session_cookie(request, token)])

    @post("/signout", operation_id="dpoSignOut", status_code=303)
    async def signout(self, request: Request[Any, Any, Any], vault: Vault) -> Redirect:
        session = await current_session(request, vault)
        if session is not None:
            await record_console_sign_out(vault, dpo_actor(request, session))
        lang = pick_language(request)
        return Redirect(
            path=f"/dpo/signin?lang={lang}&done=signed_out",
            status_code=303,
            cookies=[clear_session_cookie(request)],
        )
