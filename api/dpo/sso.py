"""Single sign-on for the console through the organisation's OpenID provider.

`/dpo/sso/start` begins the authorization code flow (PKCE, state, nonce: `api.web.oidc`)
and sends the browser to the provider; `/dpo/sso/callback` checks what comes back and opens
a console session (`vault.admin.console_sessions`) for a user whose ID token carries the
configured role claim (TRESOR_OIDC_ROLE_CLAIM containing TRESOR_OIDC_DPO_VALUE, or
TRESOR_OIDC_MARKETING_VALUE for a marketer's session: campaigns and reports only). Every
refusal is a page (401, or 403 for a user without the role), counted for the sign-in limits
and audited with a short reason; nothing of the code, the tokens or the flow's secrets is
logged, audited or put into a URL of ours.

The flow cookie is SameSite=Lax (the provider's redirect back is a cross-site navigation
a Strict cookie would not ride on) and limited to /dpo/sso. The callback answers with a
page that moves on by itself rather than a redirect: the console's Strict session cookie
is then sent on the next, same-site navigation.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import Cookie
from litestar.response import Redirect

from api.client_address import client_address
from api.deps import Vault
from api.dpo.pages import DpoPages, page, request_id_of
from api.dpo.session import NEXT_RE, log, session_cookie
from api.i18n import N_, TEXTS, pick_language
from api.web import cookies as web_cookies
from api.web.oidc import FLOW_SECONDS, FlowCookie, OidcClient, SsoRejected, has_value
from vault.admin import console_sessions
from vault.admin.authentication import ROLE_NOT_ALLOWED
from vault.admin.clients import Role
from vault.context import VaultContext
from vault.crypto import KeyLabel
from vault.errors import NotFound, RateLimited


def oidc_client(vault: VaultContext) -> OidcClient | None:
    """The relying party when single sign-on is configured (issuer and client id), else
    None; its clock is the vault's, so tests can move time."""
    settings = vault.settings
    if not (settings.oidc_issuer and settings.oidc_client_id):
        return None
    return OidcClient(
        settings.oidc_issuer,
        settings.oidc_client_id,
        settings.oidc_client_secret,
        now=lambda: int(vault.clock.now().timestamp()),
    )


def sso_role(claims: Any, settings: Any) -> Role | None:
    """The console role the provider vouched for: dpo (TRESOR_OIDC_DPO_VALUE) before
    marketing (TRESOR_OIDC_MARKETING_VALUE) when the claim holds both; None: neither."""
    if has_value(claims, settings.oidc_role_claim, settings.oidc_dpo_value):
        return Role.DPO
    if settings.oidc_marketing_value and has_value(
        claims, settings.oidc_role_claim, settings.oidc_marketing_value
    ):
        return Role.MARKETING
    return None


def _oidc(request: Request[Any, Any, Any]) -> OidcClient:
    oidc: OidcClient | None = getattr(request.app.state, "oidc", None)
    if oidc is None:
        raise NotFound("single sign-on is not configured")
    return oidc


def redirect_uri(vault: Vault) -> str:
    """Where the provider sends the browser back: registered there as is."""
    return f"{vault.settings.public_url}/dpo/sso/callback"


def _flow_cookie(request: Request[Any, Any, Any], value: str, max_age: int) -> Cookie:
    return Cookie(
        key=FlowCookie.NAME,
        value=value,
        path=FlowCookie.PATH,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=web_cookies.is_secure(request.scope),
    )


class DpoSsoPages(DpoPages):
    """Signing in to the console through the organisation's identity provider."""

    @get("/sso/start", operation_id="dpoSsoStart")
    async def start(self, request: Request[Any, Any, Any], vault: Vault) -> Response[Any]:
        oidc = _oidc(request)
        nxt = request.query_params.get("next") or ""
        lang = pick_language(request)
        # Without a page asked for, the console's home: it sends each role to its start.
        target = nxt if NEXT_RE.match(nxt) and len(nxt) <= 500 else f"/dpo/?lang={lang}"
        try:
            url, flow = await oidc.begin(redirect_uri(vault), target, vault.settings.oidc_scopes)
        except SsoRejected as exc:
            log.warning("dpo_sso_unavailable", reason=exc.reason)
            return self._failed(request, 503, N_("dpo_sso_unavailable"))
        cookie = FlowCookie(vault.keys.mac(KeyLabel.SSO_FLOW)).dump(flow)
        return Redirect(
            path=url, status_code=303, cookies=[_flow_cookie(request, cookie, FLOW_SECONDS)]
        )

    @get("/sso/callback", operation_id="dpoSsoCallback")
    async def callback(self, request: Request[Any, Any, Any], vault: Vault) -> Response[Any]:
        oidc = _oidc(request)
        rid = request_id_of(request)
        address = client_address(request)
        settings = vault.settings
        now = int(vault.clock.now().timestamp())
        flow = FlowCookie(vault.keys.mac(KeyLabel.SSO_FLOW)).load(
            request.cookies.get(FlowCookie.NAME), now
        )
        code = request.query_params.get("code") or ""
        try:
            await console_sessions.check_signin_allowed(vault, address, rid)
            if flow is None or not oidc.state_matches(flow, request.query_params.get("state")):
                raise SsoRejected("sso_state")
            if request.query_params.get("error") or not code or len(code) > 2000:
                raise SsoRejected("sso_denied_by_provider")
            claims = await oidc.finish(code, flow, redirect_uri(vault))
            account = f"sso:{claims['sub']}"
            role = sso_role(claims, settings)
            if role is None:
                await console_sessions.refuse_signin(
                    vault, address, rid, account=account, reason=ROLE_NOT_ALLOWED
                )
                return self._failed(request, 403, N_("dpo_sso_role"))
            await console_sessions.check_signin_allowed(
                vault, address, rid, account=account, name=account
            )
        except SsoRejected as exc:
            log.warning("dpo_sso_refused", reason=exc.reason)
            await console_sessions.refuse_signin(vault, address, rid, reason=exc.reason)
            return self._failed(request, 401, N_("dpo_sso_failed"))
        except RateLimited as exc:
            t = TEXTS[pick_language(request)]
            return page(
                request,
                "dpo_message.html",
                N_("dpo_signin_heading"),
                status=429,
                headers={"Retry-After": str(exc.retry_after)},
                heading=t["dpo_signin_heading"],
                text=t["dpo_signin_rate_limited"],
                cookies=[_flow_cookie(request, "", 0)],
            )
        token, _ = await console_sessions.open_session(
            vault, address, rid, sso_subject=str(claims["sub"]), sso_role=role
        )
        return page(
            request,
            "dpo_continue.html",
            N_("dpo_sso_done"),
            target=flow.next if NEXT_RE.match(flow.next) else "/dpo/",
            cookies=[session_cookie(request, token, vault), _flow_cookie(request, "", 0)],
        )

    @staticmethod
    def _failed(request: Request[Any, Any, Any], status: int, text_key: str) -> Response[Any]:
        """A refused single sign-on: a page saying so, the flow cookie gone."""
        t = TEXTS[pick_language(request)]
        return page(
            request,
            "dpo_message.html",
            N_("dpo_signin_heading"),
            status=status,
            heading=t["dpo_signin_heading"],
            text=t[text_key],
            cookies=[_flow_cookie(request, "", 0)],
        )
