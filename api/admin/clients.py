"""Client administration over HTTP (admin role); the CLI offers the same."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import JSONBody, Parameter

from api.admin.schemas import ClientCreate, ClientCreated, ClientList, ClientOut
from api.auth import actor_of, roles
from api.deps import Vault
from api.idempotency import IdempotentOperation
from api.openapi_docs import AUTHED, problems
from vault.admin import clients
from vault.admin.clients import ClientInfo, Role


def client_out(info: ClientInfo) -> ClientOut:
    return ClientOut(
        name=info.name,
        role=info.role.value,
        purposes=sorted(info.purposes),
        created_at=info.created_at,
        revoked_at=info.revoked_at,
    )


class ClientController(Controller):
    path = "/v1/clients"
    tags = ["administration"]
    opt = roles(Role.ADMIN)

    @post(
        "/",
        operation_id="createClient",
        operation_class=IdempotentOperation,
        summary="Create an API client; the key is in this response only",
        status_code=201,
        responses=problems(*AUTHED, 409, 413, 422),
    )
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[ClientCreate], vault: Vault
    ) -> ClientCreated:
        info, key = await clients.create_client(
            vault, actor_of(request), data.name, data.role, list(data.purposes)
        )
        return ClientCreated(client=client_out(info), api_key=key)

    @get("/", operation_id="listClients", summary="All clients", responses=problems(*AUTHED))
    async def list_(self, vault: Vault) -> ClientList:
        return ClientList(items=[client_out(c) for c in await clients.list_clients(vault)])

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
