"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec

from api.auth import public
from api.deps import Vault
from api.openapi_docs import PUBLIC
from api.operations.schemas import Health
from vault.crypto import KeyringError
from vault.storage.db import ping


class HealthController(Controller):
    tags = ["operations"]
    opt = public()

    @get("/health", operation_id="health", summary="The process is up", security=PUBLIC)
    async def health(self) -> Health:
        return Health(status="ok")

    @get(
        "/ready",
        operation_id="ready",
        summary="Database and keyring are usable (503 when not)",
        security=PUBLIC,
        responses={
            503: ResponseSpec(
                data_container=Health,
                description="Database or keyring unusable; `checks` names which",
                generate_examples=False,
            )
        },
    )
    async def ready(self, vault: Vault) -> Response[Health]:
        checks: dict[str, str] = {}
        try:
            await ping(vault.engine)
            checks["database"] = "ok"
        except Exception:  # noqa: BLE001 - any failure means not ready
            checks["database"] = "unavailable"
        try:
            refresh = getattr(vault.kek, "refresh", None)
            if refresh is not None:
                refresh()
            checks["keyring"] = "ok"
        except KeyringError:
            checks["keyring"] = "unavailable"
        ok = all(v == "ok" for v in checks.values())
        return Response(
            Health(status="ok" if ok else "unavailable", checks=checks),
            status_code=200 if ok else 503,
        )
