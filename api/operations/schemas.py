"""Bodies of the operations routes: health and readiness."""

from __future__ import annotations

import msgspec
from msgspec import Struct


class Health(Struct):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)
