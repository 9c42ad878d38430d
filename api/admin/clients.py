"""Client administration over HTTP (admin role); the CLI offers the same."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, patch, post
from litestar.params import JSONBody, Parameter
from msgspec import UNSET

from api.admin.schemas import (
    ClientCreate,
    ClientCreated,
    ClientList,
    ClientOut,
    ClientUpdate,
    KeyRotation,
)
from api.auth import actor_of, roles
from api.deps import Vault
from api.idempotency import IdempotentOperation
from api.openapi_docs import AUTHED, problems
from vault.admin import clients, hygiene, quotas
from vault.admin.clients import ClientInfo, Quota, Role


def client_out(info: ClientInfo) -> ClientOut:
    rate = quotas.format_rate(info.quota)
    return ClientOut(
        name=info.name,
        role=info.role.value,
        purposes=sorted(info.purposes),
        created_at=info.created_at,
        revoked_at=info.revoked_at,
        key_created_at=info.key_created_at,
        last_used_at=info.last_used_at,
        previous_key_valid_until=info.previous_key_until,
        rate=None if rate == "-" else rate,
        daily_lookups=info.quota.daily_lookups,
    )


class ClientController(Controller):
    path = "/v1/clients"
    tags = ["administration"]
    opt = roles(Role.ADMIN)

    @post(
        "/",
        operation_id="createClient",
        operation_class=IdempotentOperation,
        summary="Create an API client (with optional quotas); the key is in this response only",
        status_code=201,
        responses=problems(*AUTHED, 409, 413, 422),
    )
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[ClientCreate], vault: Vault
    ) -> ClientCreated:
        rate = quotas.parse_rate(data.rate) if data.rate else None
        quota = Quota(
            rate[0] if rate else None, rate[1] if rate else None, data.daily_lookups or None
        )
        info, key = await clients.create_client(
            vault, actor_of(request), data.name, data.role, list(data.purposes), quota
        )
        return ClientCreated(client=client_out(info), api_key=key)

    @get(
        "/",
        operation_id="listClients",
        summary="All clients, with their keys' creation and last use",
        responses=problems(*AUTHED),
    )
    async def list_(self, vault: Vault) -> ClientList:
        return ClientList(items=[client_out(c) for c in await clients.list_clients(vault)])

    @get(
        "/unused",
        operation_id="listUnusedClients",
        summary="Active clients whose key was not used for `days` days (for clean-up)",
        responses=problems(*AUTHED, 422),
    )
    async def unused(
        self,
        vault: Vault,
        days: int = Parameter(default=90, ge=1, le=3650, description="Days without a use"),
    ) -> ClientList:
        return ClientList(items=[client_out(c) for c in await hygiene.unused_clients(vault, days)])

    @patch(
        "/{name:str}",
        operation_id="updateClient",
        summary="Change a client's quotas (`rate` such as 200/s or off, `daily_lookups`, 0 "
        "for none)",
        status_code=204,
        responses=problems(*AUTHED, 404, 413, 422),
    )
    async def update(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ClientUpdate],
        vault: Vault,
        name: str = Parameter(description="Client name", max_length=100),
    ) -> None:
        await quotas.set_quota(
            vault,
            actor_of(request),
            name,
            rate=False if data.rate is UNSET else quotas.parse_rate(data.rate),
            daily_lookups=False if data.daily_lookups is UNSET else (data.daily_lookups or None),
        )

    @post(
        "/{name:str}/rotate-key",
        operation_id="rotateClientKey",
        summary="Issue a new key; the old one stays valid for the grace period",
        status_code=201,
        responses=problems(*AUTHED, 404, 413, 422),
    )
    async def rotate_key(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[KeyRotation],
        vault: Vault,
        name: str = Parameter(description="Client name", max_length=100),
    ) -> ClientCreated:
        info, key = await hygiene.rotate_key(
            vault, actor_of(request), name, hygiene.parse_duration(data.grace)
        )
        return ClientCreated(client=client_out(info), api_key=key)

    @post(
        "/{name:str}/revoke",
        operation_id="revokeClient",
        operation_class=IdempotentOperation,
        summary="Revoke a client's key",
        status_code=204,
        responses=problems(*AUTHED, 404),
    )
    async def revoke(
        self,
        request: Request[Any, Any, Any],
        vault: Vault,
        name: str = Parameter(description="Client name", max_length=100),
    ) -> None:
        await clients.revoke_client(vault, actor_of(request), name)
