"""Bodies of the admin area's routes: API clients."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from litestar.openapi.spec import Schema
from msgspec import Meta, Struct

from api.schemas import Short


class ClientCreate(Struct, forbid_unknown_fields=True):
    """A lookup client names at least one purpose it may use."""

    __openapi__: ClassVar[dict[str, Any]] = {
        "schema_if": Schema(properties={"role": Schema(const="lookup")}, required=["role"]),
        "then": Schema(properties={"purposes": Schema(min_items=1)}, required=["purposes"]),
        "examples": [{"name": "shop", "role": "lookup", "purposes": ["order.delivery"]}],
    }

    name: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    role: Literal["writer", "lookup", "dpo", "admin"]
    purposes: Annotated[list[Short], Meta(max_length=50)] = msgspec.field(default_factory=list)


class ClientOut(Struct):
    name: str
    role: str
    purposes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class ClientCreated(Struct):
    client: ClientOut
    api_key: str


class ClientList(Struct):
    items: list[ClientOut]
