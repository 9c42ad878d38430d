"""Bodies of the admin area's routes: API clients."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from api.schemas import Short


class ClientCreate(Struct, forbid_unknown_fields=True):
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
