"""The console's single sign-on callback without a browser: a provider faked at the HTTP
layer (discovery, keys, token endpoint) signs ID tokens the test shapes, and every token or
callback the relying party must not accept is refused, audited and opens no session."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select

from api.app import create_app
from api.web.oidc import OidcClient, SsoRejected, pkce_challenge
from vault.context import VaultContext
from vault.storage.audit_tables import audit_events
from vault.storage.rights_tables import web_sessions

ISSUER = "https://idp.example.test"
CLIENT_ID = "tresor-console"
SECRET = "s3cret-of-the-console-client"


class FakeProvider:
    """An OpenID provider at the HTTP layer: what it signs is up to the test."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})
        self.claims: dict[str, Any] = {}
        self.exchanges: list[dict[str, list[str]]] = []
        self.signer: RSAKey = self.key

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url == f"{ISSUER}/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/auth",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/jwks",
                    "id_token_signing_alg_values_supported": ["RS256"],
                },
            )
        if url == f"{ISSUER}/jwks":
            return httpx.Response(200, json={"keys": [self.key.as_dict(private=False)]})
        if url == f"{ISSUER}/token":
            form = parse_qs(request.content.decode())
            self.exchanges.append(form)
            token = jwt.encode({"alg": "RS256", "kid": "k1"}, self.claims, self.signer)
            return httpx.Response(200, json={"id_token": token, "token_type": "Bearer"})
        return httpx.Response(404)


@asynccontextmanager
async def console(vault: VaultContext, idp: FakeProvider) -> AsyncIterator[httpx.AsyncClient]:
    vault.settings = replace(
        vault.settings,
        oidc_issuer=ISSUER,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=SECRET,
        oidc_name="Example Org",
    )
    app = create_app(vault=vault, configure_logs=False)
    for hook in app.on_startup:
        await hook(app)
    await app.state.oidc.close()
    app.state.oidc = OidcClient(
        ISSUER,
        CLIENT_ID,
        SECRET,
        now=lambda: int(vault.clock.now().timestamp()),
        transport=httpx.MockTransport(idp.handler),
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver.local"
        ) as http:
            yield http
    finally:
        for hook in app.on_shutdown:
            await hook(app)


async def _start(http: httpx.AsyncClient) -> dict[str, str]:
    """Begin a sign-in; the authorization request's parameters."""
    r = await http.get("/dpo/sso/start?lang=en")
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert location.startswith(f"{ISSUER}/auth?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _claims(vault: VaultContext, flow_nonce: str, **changes: Any) -> dict[str, Any]:
    now = int(vault.clock.now().timestamp())
    claims = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "user-4711",
        "iat": now,
        "exp": now + 300,
        "nonce": flow_nonce,
        "groups": ["staff", "dpo"],
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


async def _events(vault: VaultContext) -> list[Any]:
    async with vault.engine.connect() as conn:
        rows = await conn.execute(select(audit_events).order_by(audit_events.c.seq))
        return [r for r in rows if r.action.startswith("dpo:session")]


async def _sessions(vault: VaultContext) -> list[Any]:
    async with vault.engine.connect() as conn:
        return list((await conn.execute(select(web_sessions))).all())


async def test_the_sign_in_page_offers_the_organisation_and_a_good_token_opens_a_session(vault):
    """With an issuer configured the page offers "Sign in with <org>"; the flow asks for a
    code with PKCE S256, state and nonce, and a valid ID token with the group opens a
    console session (audited, via sso) whose pages then load."""
    idp = FakeProvider()
    async with console(vault, idp) as http:
        page = await http.get("/dpo/signin?lang=en")
        assert "Sign in with Example Org" in page.text and 'href="/dpo/sso/start' in page.text
        params = await _start(http)
        assert params["response_type"] == "code" and params["client_id"] == CLIENT_ID
        assert params["code_challenge_method"] == "S256"
        assert params["redirect_uri"] == "http://testserver.local/dpo/sso/callback"
        idp.claims = _claims(vault, params["nonce"])
        r = await http.get(f"/dpo/sso/callback?code=abc&state={params['state']}")
        assert r.status_code == 200, r.text
        assert 'http-equiv="refresh"' in r.text
        (exchange,) = idp.exchanges
        assert pkce_challenge(exchange["code_verifier"][0]) == params["code_challenge"]
        assert (await http.get("/dpo/audit")).status_code == 200
    (row,) = await _sessions(vault)
    assert (row.kind, row.account, row.client_id) == ("console", "sso:user-4711", None)
    (start,) = await _events(vault)
    assert (start.actor_id, start.decision) == ("sso:user-4711", "allow")


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("bad_state", 401, "sso_state"),
        ("no_flow_cookie", 401, "sso_state"),
        ("bad_nonce", 401, "sso_nonce"),
        ("wrong_audience", 401, "sso_claims"),
        ("wrong_issuer", 401, "sso_claims"),
        ("expired", 401, "sso_claims"),
        ("foreign_key", 401, "sso_signature"),
        ("missing_group", 403, "role_not_allowed"),
        ("provider_error", 401, "sso_denied_by_provider"),
    ],
)
async def test_the_callback_refuses_what_it_must_not_accept(vault, case, status, reason):
    """Bad state, a missing flow, a wrong nonce, audience or issuer, an expired token, a
    signature by another key, a user without the dpo group, and a provider's error each
    get a refusal page, an audited denial with the reason, and no session."""
    idp = FakeProvider()
    async with console(vault, idp) as http:
        params = await _start(http)
        state = params["state"]
        changes: dict[str, Any] = {}
        if case == "bad_state":
            state = ("y" if state[0] == "x" else "x") + state[1:]  # always another state
        elif case == "no_flow_cookie":
            http.cookies.clear()
        elif case == "bad_nonce":
            changes["nonce"] = "not-the-nonce"
        elif case == "wrong_audience":
            changes["aud"] = "another-client"
        elif case == "wrong_issuer":
            changes["iss"] = "https://evil.example.test"
        elif case == "expired":
            changes["exp"] = int(vault.clock.now().timestamp()) - 3600
        elif case == "foreign_key":
            idp.signer = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        elif case == "missing_group":
            changes["groups"] = ["staff"]
        idp.claims = _claims(vault, params["nonce"], **changes)
        query = f"code=abc&state={state}"
        if case == "provider_error":
            query = f"error=access_denied&state={state}"
        r = await http.get(f"/dpo/sso/callback?{query}")
        assert r.status_code == status, r.text
        assert not [v for v in r.headers.get_list("set-cookie") if v.startswith("tresor_dpo=")]
        assert (await http.get("/dpo/audit")).status_code == 303
    assert await _sessions(vault) == []
    (denied,) = await _events(vault)
    assert (denied.decision, denied.reason) == ("deny", reason)


async def test_a_flow_is_used_once_and_nothing_of_it_is_logged(vault, log_stream):
    """The code, state, nonce and ID token appear in no log line or audit event, and the
    same callback replayed after the sign-in finds no flow (the cookie is cleared)."""
    idp = FakeProvider()
    async with console(vault, idp) as http:
        params = await _start(http)
        idp.claims = _claims(vault, params["nonce"])
        callback = f"/dpo/sso/callback?code=the-code-q81&state={params['state']}"
        assert (await http.get(callback)).status_code == 200
        assert (await http.get(callback)).status_code == 401
    trail = repr(await _events(vault)) + repr(await _sessions(vault))
    for secret in ("the-code-q81", params["state"], params["nonce"], SECRET):
        assert secret not in log_stream.getvalue() and secret not in trail


async def test_without_an_issuer_there_is_no_single_sign_on(vault):
    """Unconfigured, the sign-in page offers only the key and the SSO paths are 404 pages."""
    app = create_app(vault=vault, configure_logs=False)
    for hook in app.on_startup:
        await hook(app)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver.local"
        ) as http:
            page = await http.get("/dpo/signin?lang=en")
            assert "/dpo/sso/start" not in page.text
            assert (await http.get("/dpo/sso/start")).status_code == 404
            assert (await http.get("/dpo/sso/callback?code=a&state=b")).status_code == 404
    finally:
        for hook in app.on_shutdown:
            await hook(app)


async def test_an_issuer_without_tls_is_refused_unless_on_loopback():
    """Only a loopback provider (a test's) may speak plain http."""
    with pytest.raises(SsoRejected, match="sso_issuer_not_https"):
        OidcClient("http://idp.example.test", CLIENT_ID, SECRET)
    local = OidcClient("http://127.0.0.1:9999", CLIENT_ID, SECRET, now=lambda: int(time.time()))
    await local.close()
