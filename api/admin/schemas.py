"""Bodies of the admin area's routes: API clients, their quotas and keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from api.schemas import Short

#: A request rate: requests per second, minute or hour, e.g. `200/s`; `off` for none.
Rate = Annotated[str, Meta(max_length=20, pattern=r"^(off|[1-9][0-9]{0,9}/[smh])$")]
#: Lookups per UTC day; 0 for no limit.
DailyLookups = Annotated[int, Meta(ge=0, le=1_000_000_000)]


class ClientCreate(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    role: Literal["writer", "lookup", "dpo", "admin"]
    purposes: Annotated[list[Short], Meta(max_length=50)] = msgspec.field(default_factory=list)
    rate: Rate | None = None
    daily_lookups: DailyLookups | None = None


class ClientUpdate(Struct, forbid_unknown_fields=True):
    """The quotas to change; a member left out stays as it is."""

    rate: Rate | UnsetType = UNSET
    daily_lookups: DailyLookups | UnsetType = UNSET


class KeyRotation(Struct, forbid_unknown_fields=True):
    """How long the replaced key stays valid: `7d`, `12h`, `30m`, `0` (at most 90 days)."""

    grace: Annotated[str, Meta(max_length=10, pattern=r"^(0|[1-9][0-9]{0,6}[dhms])$")] = "7d"


class ClientOut(Struct):
    name: str
    role: str
    purposes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    #: When the current key was issued, and its last use (to the minute).
    key_created_at: datetime | None = None
    last_used_at: datetime | None = None
    #: Until when the key replaced by the last rotation is still accepted.
    previous_key_valid_until: datetime | None = None
    rate: str | None = None
    daily_lookups: int | None = None


class ClientCreated(Struct):
    client: ClientOut
    api_key: str


class ClientList(Struct):
    items: list[ClientOut]
