"""Signing in and out of the console with a DPO's or a marketer's API key (single sign-on:
`api.dpo.sso`). A marketer lands on the campaigns; every DPO page refuses them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect

from api.client_address import client_address
from api.deps import Vault
from api.dpo.pages import DpoPages, form_text, page, request_id_of
from api.dpo.session import (
    NEXT_RE,
    SESSION_COOKIE,
    clear_session_cookie,
    current_session,
    log,
    session_cookie,
    session_ttl,
)
from api.i18n import TEXTS, pick_language
from vault.admin import console_sessions
from vault.admin.clients import Role
from vault.errors import RateLimited


class DpoSignInPages(DpoPages):
    """The console's front door: the sign-in form, the session's start and end."""

    @get("/", operation_id="dpoHome")
    async def home(self, request: Request[Any, Any, Any], vault: Vault) -> Redirect:
        lang = pick_language(request)
        session = await current_session(request, vault)
        if session is None:
            return Redirect(path=f"/dpo/signin?lang={lang}", status_code=303)
        return Redirect(path=f"{session.home}?lang={lang}", status_code=303)

    @get("/signin", operation_id="dpoSignInPage")
    async def signin_page(self, request: Request[Any, Any, Any], vault: Vault) -> Response[Any]:
        lang = pick_language(request)
        nxt = request.query_params.get("next") or ""
        session = await current_session(request, vault)
        if session is not None:
            target = nxt if NEXT_RE.match(nxt) else f"{session.home}?lang={lang}"
            return Redirect(path=target, status_code=303)
        t = TEXTS[lang]
        expired = request.query_params.get("expired") == "1"
        out = request.query_params.get("done") == "signed_out"
        return page(
            request,
            "dpo_signin.html",
            "dpo_signin_heading",
            signin_text=signin_text(t, vault),
            next=nxt if NEXT_RE.match(nxt) else "",
            notice=t["dpo_signed_out"] if out else (t["dpo_session_expired"] if expired else None),
            **sso_offer(vault),
        )

    @post("/signin", operation_id="dpoSignIn", status_code=303)
    async def signin(self, request: Request[Any, Any, Any], vault: Vault) -> Response[Any]:
        form = await request.form()
        lang = pick_language(request)
        t = TEXTS[lang]
        key = form_text(form.get("api_key"), 200)
        nxt = form_text(form.get("next"), 500)
        rid = request_id_of(request)
        address = client_address(request)
        authenticator = request.app.state.authenticator
        # The same per-address brake on failed keys as the bearer-key API
        # (TRESOR_FAILED_AUTH_LIMIT): a valid key is always let in; failures are counted and,
        # over the limit, answered 429 instead of 401.
        limiter = request.app.state.failed_auth
        try:
            # The console's own limits, per address and (below) per account, shared by
            # every node through the database; a refusal is audited.
            await console_sessions.check_signin_allowed(vault, address, rid)
            client = await authenticator.authenticate(key) if key else None
            if client is None:
                # Audited without a name (nobody to attribute a wrong key to); the log line
                # and the trail carry no key material. Over the brake's limit: 429.
                log.warning("dpo_signin_refused", reason="invalid_key")
                await console_sessions.refuse_signin(vault, address, rid)
                await limiter.failed(address)
                return self._refused(request, nxt, t["dpo_signin_wrong"], vault)
            if client.role not in console_sessions.CONSOLE_ROLES:
                await console_sessions.refuse_signin(vault, address, rid, client=client)
                return self._refused(request, nxt, t["dpo_signin_role"], vault)
            await console_sessions.check_signin_allowed(
                vault, address, rid, account=client.id, name=client.name
            )
        except RateLimited as exc:
            return self._refused(
                request, nxt, t["dpo_signin_rate_limited"], vault, retry_after=exc.retry_after
            )
        token, opened = await console_sessions.open_session(vault, address, rid, client=client)
        home = "/dpo/audit" if opened.role is Role.DPO else "/dpo/campaigns"
        target = nxt if NEXT_RE.match(nxt) else f"{home}?lang={lang}"
        return Redirect(
            path=target, status_code=303, cookies=[session_cookie(request, token, vault)]
        )

    @staticmethod
    def _refused(
        request: Request[Any, Any, Any],
        nxt: str,
        error: str,
        vault: Vault,
        *,
        retry_after: int | None = None,
    ) -> Response[Any]:
        """The sign-in page again with the error: 401, or 429 with Retry-After."""
        t = TEXTS[pick_language(request)]
        return page(
            request,
            "dpo_signin.html",
            "dpo_signin_heading",
            status=401 if retry_after is None else 429,
            headers={"WWW-Authenticate": 'Cookie realm="tresor-dpo"'}
            | ({"Retry-After": str(retry_after)} if retry_after is not None else {}),
            signin_text=signin_text(t, vault),
            next=nxt if NEXT_RE.match(nxt) else "",
            error=error,
            **sso_offer(vault),
        )

    @post("/signout", operation_id="dpoSignOut", status_code=303)
    async def signout(self, request: Request[Any, Any, Any], vault: Vault) -> Redirect:
        await console_sessions.end_session(
            vault, request.cookies.get(SESSION_COOKIE), request_id_of(request)
        )
        lang = pick_language(request)
        return Redirect(
            path=f"/dpo/signin?lang={lang}&done=signed_out",
            status_code=303,
            cookies=[clear_session_cookie(request)],
        )


def signin_text(t: Mapping[str, str], vault: Vault) -> str:
    """The sign-in page's explanation, naming the session's absolute lifetime in hours."""
    hours = session_ttl(vault).total_seconds() / 3600
    return t["dpo_signin_text"].format(hours=f"{hours:g}", idle=vault.settings.session_idle_minutes)


def sso_offer(vault: Vault) -> dict[str, Any]:
    """What the sign-in page needs to offer single sign-on (nothing when not configured)."""
    settings = vault.settings
    if not (settings.oidc_issuer and settings.oidc_client_id):
        return {"sso_name": None}
    return {"sso_name": settings.oidc_name}
