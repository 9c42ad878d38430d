"""The injected clock: domain code never calls `datetime.now()` itself.

Consent expiry, confirmation deadlines and audit times are decided against a `Clock`, so
tests move time instead of sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, overload


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self._at = at

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at

    def advance(self, delta: timedelta) -> None:
        self._at = self._at + delta


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
@overload
def as_utc(value: datetime | None) -> datetime | None: ...


def as_utc(value: datetime | None) -> datetime | None:
    """Normalise a datetime read back from storage to aware UTC.

    SQLite hands back naive datetimes even for `DateTime(timezone=True)` columns.
    """
    if value is None:
        return None
    tz = value.tzinfo
    if tz is UTC:  # what asyncpg hands back: nothing to convert (no new object)
        return value
    if tz is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
