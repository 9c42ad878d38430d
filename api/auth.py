"""Bearer API-key authentication and role checks.

Default deny by construction: every route either names the roles that may call it
(`opt=roles(...)`) or is marked `opt=public()`, the one way past the API key; `create_app`
refuses to build an app with a route that has neither (`check_every_route_guarded`).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.routes import HTTPRoute

from api.client_address import client_address
from api.client_certs import certificate_client
from vault.admin.authentication import ClientAuthenticator, record_role_denial
from vault.admin.clients import ClientInfo, Role
from vault.admin.limits import CounterStore, Window, address_key
from vault.admin.quotas import QuotaGate
from vault.audit.events import Actor
from vault.context import VaultContext
from vault.errors import RateLimited

if TYPE_CHECKING:
    from litestar import Litestar


class FailedAuthLimiter:
    """The brake on failed authentications per client address, shared by all processes.

    It never blocks a valid key: the key is checked first, and a request whose key is valid
    is served whatever its address did before (and costs the brake nothing: no counter is
    read or written). Only a request whose key turns out invalid is counted, in the shared
    counter store (`vault.admin.limits`), and once an address has had `limit` failures in
    the current minute its further *failed* attempts get 429 with `Retry-After` instead of
    401. While an address is known to be over the limit, this process answers its failures
    without writing the counter again. A request without an `Authorization` header is a
    plain 401 and not counted: it is no guess.

    Guessing 256-bit keys is hopeless anyway; the brake keeps a misconfigured or hostile
    client from turning failures into load and shows it a clear 429.
    """

    def __init__(
        self, ctx: VaultContext, store: CounterStore, limit: int = 30, window: int = 60
    ) -> None:
        self.ctx = ctx
        self.store = store
        self.limit = limit
        self.window = window
        self._braked: dict[str, int] = {}  # address key -> end of its window (epoch s)

    async def failed(self, address: str) -> None:
        """Count one failed authentication from `address`; raises `RateLimited` when the
        address is over the limit (then the answer is 429 instead of 401)."""
        now = self.ctx.clock.now()
        key = "auth:" + address_key(self.ctx, address)
        until = self._braked.get(key)
        epoch = int(now.timestamp())
        if until is None or until <= epoch:
            window = Window.at(now, self.window)
            count = await self.store.add(key, window, 1)
            if count <= self.limit:
                return
            if len(self._braked) >= 10_000:
                self._braked.clear()
            until = self._braked[key] = window.start + window.seconds
        raise RateLimited(
            "too many failed authentications from this address; try again later",
            retry_after=max(1, until - epoch),
        )


class BearerKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization")
        client = None
        if header is None:
            # Without a key, a client certificate the TLS layer verified may name the client
            # (`tresor serve --client-ca`; api/client_certs.py). Neither: 401, not counted.
            client = await certificate_client(connection)
            if client is None:
                raise NotAuthorizedException("a bearer API key is required")
        else:
            scheme, _, key = header.partition(" ")
            authenticator: ClientAuthenticator = connection.app.state.authenticator
            if scheme.lower() == "bearer" and key.strip():
                client = await authenticator.authenticate(key.strip())
            if client is None:
                limiter: FailedAuthLimiter = connection.app.state.failed_auth
                await limiter.failed(client_address(connection))
                raise NotAuthorizedException("the API key is not valid")
        allowed = connection.scope["route_handler"].opt.get(ROLES)
        if allowed is not None and client.role not in allowed:
            await audit_role_denial(connection, client)
            raise PermissionDeniedException(
                "this operation needs the role " + " or ".join(sorted(r.value for r in allowed))
            )
        if client.quota.rate:
            gate: QuotaGate = connection.app.state.quotas
            await gate.request(client, connection.scope.get("state", {}).get("request_id"))
        return AuthenticationResult(user=client, auth=None)


async def take_lookups(connection: ASGIConnection[Any, Any, Any, Any], count: int) -> None:
    """Count `count` lookups against the client's daily quota before they are made;
    raises `QuotaExceeded` (429) when the quota cannot cover them all."""
    client: ClientInfo = connection.user
    if client.quota.daily_lookups:
        gate: QuotaGate = connection.app.state.quotas
        await gate.lookups(client, count, connection.scope.get("state", {}).get("request_id"))


async def audit_role_denial(
    connection: ASGIConnection[Any, Any, Any, Any], client: ClientInfo
) -> None:
    """Put a role refusal on record before the 403 leaves: every attempt to reach contact
    data or a DPO view is an audit event, also one that never got past the role check.

    The event names the client, the route template and operation (never the raw path, which
    is client input), and the subject when the route names a well-formed one, so the
    attempt shows in that subject's trail. Fail closed: if the event cannot be written this
    raises `Unavailable` and the answer is a 503, not an unrecorded 403. The request is
    refused either way; a 503 is also what every other request gets while the audit trail
    is down, and an answer whose event is missing would be the one exception to "no event,
    no outcome".
    """
    ctx: VaultContext = connection.app.state.vault
    scope = connection.scope
    handler = scope["route_handler"]
    operation_id = getattr(handler, "operation_id", None)  # HTTP handlers have one
    operation = operation_id if isinstance(operation_id, str) else None
    subject = (scope.get("path_params") or {}).get("subject_id")
    await record_role_denial(
        ctx,
        client,
        request_id=scope.get("state", {}).get("request_id"),
        subject_id=_subject_id(subject),
        detail={
            "method": scope.get("method"),
            "route": scope.get("path_template"),
            "operation": operation or handler.handler_name,
            "role": client.role.value,
        },
    )


def _subject_id(value: Any) -> str | None:
    """A well-formed subject id from the path, canonical; anything else stays out."""
    if not isinstance(value, str | uuid.UUID):
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


#: Route option (`opt`) naming the roles that may call a route; see `roles`.
ROLES = "roles"


def roles(*allowed: Role) -> dict[str, frozenset[Role]]:
    """Route option: the authenticated client must hold one of `allowed` (else 403).

    Checked by `BearerKeyMiddleware` right after authentication rather than by a Litestar
    guard: Litestar copies the route handler for every guard call, a cost the lookup
    benchmark's profile showed (docs/performance.md). Set on a controller (`opt = roles(...)`)
    or a handler (`opt=roles(...)`); a handler's setting replaces its controller's.
    """
    return {ROLES: frozenset(allowed)}


#: Route option (`opt`) marking a route that takes no API key; see `public`.
PUBLIC_ROUTE = "public"


def public() -> dict[str, bool]:
    """Route option: no API key. For the public pages and documents (health, confirmation
    pages, the OpenAPI document), and for the privacy centre, the self-service API and the
    DPO console, which check their own session in the handler instead.

    The only way past `BearerKeyMiddleware`: there is no list of excluded paths beside it,
    so whether a route is public is read off the route itself.
    """
    return {PUBLIC_ROUTE: True}


class UnguardedRoute(RuntimeError):
    """A route names no roles and is not marked public (or is both): the app must not start."""


def check_every_route_guarded(app: Litestar) -> None:
    """Refuse an app with a route that has neither `roles(...)` nor `public()`.

    Without this, a handler that forgot its `opt` would be served to every valid API key
    (the middleware checks roles only when a route names them). A route that is both is
    refused as well: the middleware skips public routes, so its roles would be checked by
    nothing. Litestar's generated OPTIONS handlers are left out; the middleware answers
    OPTIONS without a key and they reveal only the allowed methods.
    """
    bad = [
        f"{method} {route.path}"
        for route in app.routes
        for handler in (
            route.route_handlers if isinstance(route, HTTPRoute) else [route.route_handler]
        )
        if (methods := getattr(handler, "http_methods", {"ASGI"})) != {"OPTIONS"}
        and bool(handler.opt.get(PUBLIC_ROUTE)) == isinstance(handler.opt.get(ROLES), frozenset)
        for method in sorted(methods)
    ]
    if bad:
        raise UnguardedRoute(
            "every route needs roles(...) or public(), exactly one: " + ", ".join(bad)
        )


def actor_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor:
    client: ClientInfo = connection.user
    return Actor(
        type=client.actor_type,
        id=client.name,
        request_id=connection.scope.get("state", {}).get("request_id"),
    )
