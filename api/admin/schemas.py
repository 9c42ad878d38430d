"""Bodies of the admin area's routes: API clients, their quotas and keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from litestar.openapi.spec import Schema
from msgspec import UNSET, Meta, Struct, UnsetType

from api.schemas import Short

#: A request rate: requests per second, minute or hour, e.g. `200/s`; `off` for none.
Rate = Annotated[str, Meta(max_length=20, pattern=r"^(off|[1-9][0-9]{0,8}/[smh])$")]
#: Lookups per UTC day; 0 for no limit.
DailyLookups = Annotated[int, Meta(gt=-1, le=1_000_000_000)]  # gt=-1: Litestar drops a ge of 0


class ClientCreate(Struct, forbid_unknown_fields=True):
    """A lookup client names at least one purpose it may use."""

    __openapi__: ClassVar[dict[str, Any]] = {
        "schema_if": Schema(properties={"role": Schema(const="lookup")}, required=["role"]),
        "then": Schema(properties={"purposes": Schema(min_items=1)}, required=["purposes"]),
        "examples": [{"name": "shop", "role": "lookup", "purposes": ["order.delivery"]}],
    }

    name: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    role: Literal["writer", "lookup", "dpo", "admin", "marketing"]
    purposes: Annotated[list[Short], Meta(max_length=50)] = msgspec.field(default_factory=list)
    rate: Rate | None = None
    daily_lookups: DailyLookups | None = None


class ClientUpdate(Struct, forbid_unknown_fields=True):
    """The quotas to change (at least one); a member left out stays as it is."""

    __openapi__: ClassVar[dict[str, Any]] = {
        "min_properties": 1,
        "examples": [{"rate": "200/s"}, {"daily_lookups": 1_000_000}],
    }

    rate: Rate | UnsetType = UNSET
    daily_lookups: DailyLookups | UnsetType = UNSET


#: 0, or at most 90 days in days, hours, minutes or seconds (no leading zeros), exactly what
#: `vault.admin.hygiene.parse_duration` and MAX_GRACE accept.
GRACE_PATTERN = (
    r"^(0|([1-9]|[1-8][0-9]|90)d"
    r"|([1-9][0-9]{0,2}|1[0-9]{3}|20[0-9]{2}|21[0-5][0-9]|2160)h"
    r"|([1-9][0-9]{0,4}|1[01][0-9]{4}|12[0-8][0-9]{3}|129[0-5][0-9]{2}|129600)m"
    r"|([1-9][0-9]{0,5}|[1-6][0-9]{6}|7[0-6][0-9]{5}|77[0-6][0-9]{4}|777[0-5][0-9]{3}|7776000)s)$"
)


class KeyRotation(Struct, forbid_unknown_fields=True):
    """How long the replaced key stays valid: `7d`, `12h`, `30m`, `0` (at most 90 days)."""

    grace: Annotated[str, Meta(max_length=10, pattern=GRACE_PATTERN)] = "7d"


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
