"""Deadlines of data-subject requests (GDPR Art. 12(3)), computed in calendar months.

"Within one month of receipt" means the same day of the next month; where that month is
shorter, the period ends on its last day (31 January → 28 February, or 29 February in a
leap year). The time of day and the timezone of the receipt are kept, so a request received
at 10:00 UTC is due at 10:00 UTC. The controller may extend by at most two further months,
counted from the receipt (received + 3 months at most), if it tells the subject inside the
first month; it may do so once.
"""

from __future__ import annotations

import calendar
from datetime import datetime

#: The answer period (Art. 12(3) sentence 1).
ANSWER_MONTHS = 1
#: The longest extension (Art. 12(3) sentence 2).
MAX_EXTENSION_MONTHS = 2


def add_calendar_months(dt: datetime, n: int) -> datetime:
    """`dt` moved by `n` calendar months (n may be negative), clamped to the month's end."""
    index = dt.year * 12 + (dt.month - 1) + n
    year, month0 = divmod(index, 12)
    month = month0 + 1
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return dt.replace(year=year, month=month, day=day)


def due_date(received_at: datetime) -> datetime:
    """When the answer is due without an extension: one calendar month after receipt."""
    return add_calendar_months(received_at, ANSWER_MONTHS)


def max_extended_due(received_at: datetime) -> datetime:
    """The latest possible due date: receipt plus one month plus two months of extension."""
    return add_calendar_months(received_at, ANSWER_MONTHS + MAX_EXTENSION_MONTHS)


def extension_refusal(
    received_at: datetime, extended_at: datetime | None, now: datetime, months: int
) -> str | None:
    """Why an extension by `months` is not allowed at `now`, or None when it is."""
    if months < 1 or months > MAX_EXTENSION_MONTHS:
        return f"an extension is 1 to {MAX_EXTENSION_MONTHS} months"
    if extended_at is not None:
        return "the deadline was already extended; it can be extended only once"
    if now >= due_date(received_at):
        return "an extension must be given within the first month after receipt"
    return None


def extended_due(received_at: datetime, months: int = MAX_EXTENSION_MONTHS) -> datetime:
    """The due date after an extension by `months` (1 or 2), never past `max_extended_due`."""
    if months < 1 or months > MAX_EXTENSION_MONTHS:
        raise ValueError(f"an extension is 1 to {MAX_EXTENSION_MONTHS} months")
    return add_calendar_months(received_at, ANSWER_MONTHS + months)


def is_overdue(due_at: datetime, closed: bool, now: datetime) -> bool:
    """An open request whose due date has passed."""
    return not closed and due_at < now
