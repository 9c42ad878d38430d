"""Bearer API-key authentication and role guards.

Default deny: every route needs a valid key unless its handler opts out with
`opt={"public": True}` (health, confirmation pages, the OpenAPI document).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from vault.audit import Actor
from vault.clients import ClientAuthenticator, ClientInfo, Role


class BearerKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise NotAuthorizedException("a bearer API key is required")
        authenticator: ClientAuthenticator = connection.app.state.authenticator
        client = await authenticator.authenticate(key.strip())
        if client is None:
            raise NotAuthorizedException("the API key is not valid")
        return AuthenticationResult(user=client, auth=None)


def requires(*roles: Role):  # type: ignore[no-untyped-def]
    """Guard: the authenticated client must hold one of `roles`."""
    allowed = frozenset(roles)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        client = connection.scope.get("user")
        if not isinstance(client, ClientInfo) or client.role not in allowed:
            raise PermissionDeniedException(
                "this operation needs the role " + " or ".join(sorted(r.value for r in allowed))
            )

    return guard


def actor_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor:
    client: ClientInfo = connection.user
    return Actor(
        type=client.actor_type,
        id=client.name,
        request_id=connection.scope.get("state", {}).get("request_id"),
    )
