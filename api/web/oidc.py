"""An OpenID Connect relying party for the console's single sign-on (issue 15 item 5).

The authorization code flow with PKCE (S256), `state` and `nonce`: `begin` makes the three
secrets and the provider's authorization URL; the browser carries them back in a short-lived
cookie signed under a key derived from the keyring (`FlowCookie`), so any node can finish
the flow. `finish` exchanges the code at the token endpoint (client secret, code verifier)
and checks the ID token with joserfc: the signature against the provider's published keys
(asymmetric algorithms only: never `none`, never a MAC under the client secret), and `iss`,
`aud` (and `azp` when there are several audiences), `exp`, `iat`, `sub` and the `nonce`.
Every refusal is an `SsoRejected` with a short reason for the trail, never the token.

The provider is found by discovery (`<issuer>/.well-known/openid-configuration`, whose
`issuer` must be the configured one); an issuer that is not https is accepted only on the
loopback interface (a test's provider).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError, MissingKeyError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from vault.crypto import Mac, same_digest

#: Signature algorithms an ID token may use (asymmetric only).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
#: How long a started sign-in may take at the provider.
FLOW_SECONDS = 600
#: Clock skew tolerated on `exp` and `iat`.
LEEWAY_SECONDS = 60
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class SsoRejected(Exception):
    """The provider's answer is not accepted; `reason` goes on the audit trail."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Flow:
    """One started sign-in: what the callback must see again, and where to go after."""

    state: str
    nonce: str
    verifier: str
    next: str
    expires: int


@dataclass(frozen=True, slots=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier (RFC 7636 section 4.2)."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


class FlowCookie:
    """The started flow in a signed cookie: `<payload>.<HMAC-SHA256>` under a key derived
    from the keyring's server key, so the node that finishes need not be the one that began.
    The browser that started the sign-in is the one that holds it: that binds `state`."""

    NAME = "tresor_dpo_sso"
    PATH = "/dpo/sso"

    def __init__(self, mac: Mac) -> None:
        self._mac = mac

    def dump(self, flow: Flow) -> str:
        payload = _b64(
            json.dumps(
                {
                    "s": flow.state,
                    "n": flow.nonce,
                    "v": flow.verifier,
                    "x": flow.next,
                    "e": flow.expires,
                },
                separators=(",", ":"),
            ).encode()
        )
        return f"{payload}.{self._mac.digest(payload.encode())}"

    def load(self, value: str | None, now: int) -> Flow | None:
        """The flow a cookie carries if its MAC is right and it has not expired, else None."""
        if not value or len(value) > 2000 or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not self._mac.verify(payload.encode(), mac):
            return None
        try:
            data = json.loads(_unb64(payload))
            flow = Flow(
                str(data["s"]), str(data["n"]), str(data["v"]), str(data["x"]), int(data["e"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        return flow if flow.expires > now else None


def _check_issuer_url(issuer: str) -> None:
    parts = urlsplit(issuer)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return
    raise SsoRejected("sso_issuer_not_https")


class OidcClient:
    """The relying party for one provider; discovery and keys are cached per process
    (the keys are fetched again when a token names a key id not seen yet)."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        *,
        now: Callable[[], int] = lambda: int(time.time()),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        _check_issuer_url(issuer)
        self.issuer = issuer
        self.client_id = client_id
        self._secret = client_secret
        self._now = now
        self._http = httpx.AsyncClient(timeout=10.0, transport=transport, follow_redirects=False)
        self._provider: Provider | None = None
        self._keys: KeySet | None = None

    async def close(self) -> None:
        await self._http.aclose()

    async def _json(self, response: httpx.Response, reason: str) -> dict[str, Any]:
        if response.status_code != 200:
            raise SsoRejected(reason)
        try:
            body = response.json()
        except ValueError:
            raise SsoRejected(reason) from None
        if not isinstance(body, dict):
            raise SsoRejected(reason)
        return body

    async def provider(self) -> Provider:
        """The provider's endpoints by discovery; its `issuer` must be the configured one."""
        if self._provider is not None:
            return self._provider
        try:
            response = await self._http.get(f"{self.issuer}/.well-known/openid-configuration")
        except httpx.HTTPError:
            raise SsoRejected("sso_discovery") from None
        doc = await self._json(response, "sso_discovery")
        try:
            provider = Provider(
                issuer=str(doc["issuer"]),
                authorization_endpoint=str(doc["authorization_endpoint"]),
                token_endpoint=str(doc["token_endpoint"]),
                jwks_uri=str(doc["jwks_uri"]),
                algorithms=tuple(
                    a
                    for a in doc.get("id_token_signing_alg_values_supported", ["RS256"])
                    if a in ALGORITHMS
                ),
            )
        except (KeyError, TypeError):
            raise SsoRejected("sso_discovery") from None
        if provider.issuer.rstrip("/") != self.issuer.rstrip("/") or not provider.algorithms:
            raise SsoRejected("sso_discovery")
        for url in (provider.authorization_endpoint, provider.token_endpoint, provider.jwks_uri):
            _check_issuer_url(url)
        self._provider = provider
        return provider

    async def _key_set(self, provider: Provider, refresh: bool) -> KeySet:
        if self._keys is None or refresh:
            try:
                response = await self._http.get(provider.jwks_uri)
            except httpx.HTTPError:
                raise SsoRejected("sso_keys") from None
            try:
                self._keys = KeySet.import_key_set(await self._json(response, "sso_keys"))  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError):
                raise SsoRejected("sso_keys") from None
        return self._keys

    async def begin(self, redirect_uri: str, next_path: str, scopes: str) -> tuple[str, Flow]:
        """The provider's authorization URL for a new sign-in, and the flow to keep."""
        provider = await self.provider()
        flow = Flow(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),
            next=next_path,
            expires=self._now() + FLOW_SECONDS,
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": scopes,
                "state": flow.state,
                "nonce": flow.nonce,
                "code_challenge": pkce_challenge(flow.verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{provider.authorization_endpoint}?{query}", flow

    @staticmethod
    def state_matches(flow: Flow, state: str | None) -> bool:
        """Whether the callback's `state` is the one this browser's flow began with."""
        return bool(state) and same_digest(flow.state, state or "")

    async def finish(self, code: str, flow: Flow, redirect_uri: str) -> dict[str, Any]:
        """Exchange the code and return the ID token's checked claims."""
        provider = await self.provider()
        try:
            response = await self._http.post(
                provider.token_endpoint,
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "code_verifier": flow.verifier,
                },
                auth=(self.client_id, self._secret),
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError:
            raise SsoRejected("sso_token_exchange") from None
        body = await self._json(response, "sso_token_exchange")
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise SsoRejected("sso_token_exchange")
        return await self.verify_id_token(id_token, flow.nonce)

    async def _decode(self, provider: Provider, id_token: str) -> jwt.Token:
        """The token if its signature is right under the provider's keys, fetched again once
        when it names a key not seen yet (the provider rotated its keys)."""
        algorithms = list(provider.algorithms)
        try:
            return jwt.decode(id_token, await self._key_set(provider, False), algorithms=algorithms)
        except (InvalidKeyIdError, MissingKeyError):
            return jwt.decode(id_token, await self._key_set(provider, True), algorithms=algorithms)

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of an ID token whose signature and claims are right, or `SsoRejected`."""
        provider = await self.provider()
        try:
            token = await self._decode(provider, id_token)
        except (JoseError, ValueError):
            raise SsoRejected("sso_signature") from None
        claims: dict[str, Any] = dict(token.claims)
        registry = JWTClaimsRegistry(
            now=self._now,
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": provider.issuer},
            aud={"essential": True, "value": self.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError:
            raise SsoRejected("sso_claims") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise SsoRejected("sso_claims")
        if not isinstance(claims.get("nonce"), str) or not same_digest(claims["nonce"], nonce):
            raise SsoRejected("sso_nonce")
        if not isinstance(claims["sub"], str) or not 0 < len(claims["sub"]) <= 100:
            raise SsoRejected("sso_claims")
        return claims


def has_value(claims: dict[str, Any], claim: str, value: str) -> bool:
    """Whether the claim (a string, or a list of strings) holds the value exactly."""
    held = claims.get(claim)
    if isinstance(held, str):
        return held == value
    return isinstance(held, list) and any(isinstance(v, str) and v == value for v in held)
