"""Months of the audit trail as `YYYY-MM` text: what the archive, prune and their CLI
name a month by (a segment per month, the retention cut-off in months)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from vault.clock import as_utc
from vault.errors import InvalidInput

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(text: str) -> str:
    """`YYYY-MM` checked (month 01–12); `InvalidInput` otherwise."""
    found = _MONTH.match(text or "")
    if not found or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 1970:
        raise InvalidInput(f"--before {text!r} is not a month YYYY-MM")
    return text


def month_start(month: str) -> datetime:
    year, number = (int(part) for part in month.split("-"))
    return datetime(year, number, 1, tzinfo=UTC)


def next_month(month: str) -> str:
    year, number = (int(part) for part in month.split("-"))
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def month_of(at: datetime) -> str:
    return as_utc(at).strftime("%Y-%m")


def add_months(month: str, count: int) -> str:
    year, number = (int(part) for part in month.split("-"))
    index = year * 12 + number - 1 + count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"
