"""Times on the browser pages, as each language writes them (Babel patterns in `api.i18n`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from api.i18n import format_datetime, format_local_datetime
from vault.clock import as_utc

#: What a page shows for a time that is not set.
NO_TIME = "–"


def formatter(
    lang: str, style: str, *, utc: bool = False, zone: ZoneInfo | None = None
) -> Callable[..., str]:
    """The `fmt(value, date_only=False)` a template gets: times in `style` (the privacy
    centre to the minute and marked UTC for customers anywhere, the console to the second
    for audit work), dates alone as the language writes them. With `zone`, times are in
    that zone and labelled with it (the privacy centre: the customer's zone)."""

    def fmt(value: datetime | None, date_only: bool = False) -> str:
        value = as_utc(value)
        if value is None:
            return NO_TIME
        if date_only:
            return format_datetime(value, lang, "date")
        if zone is not None:
            return format_local_datetime(value, lang, zone, style)
        return format_datetime(value, lang, style, utc=utc)

    return fmt
