"""Art. 12(3) deadlines in calendar months: month ends, leap years, year rollover, extension."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from vault.rights.deadlines import (
    MAX_EXTENSION_MONTHS,
    add_calendar_months,
    due_date,
    extended_due,
    extension_refusal,
    is_overdue,
    max_extended_due,
)


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (at(2026, 11, 23), at(2026, 12, 23)),
        (at(2027, 1, 31), at(2027, 2, 28)),  # not a leap year
        (at(2028, 1, 31), at(2028, 2, 29)),  # leap year
        (at(2028, 1, 29), at(2028, 2, 29)),
        (at(2027, 1, 29), at(2027, 2, 28)),
        (at(2026, 3, 31), at(2026, 4, 30)),
        (at(2026, 8, 31), at(2026, 9, 30)),
        (at(2026, 12, 15), at(2027, 1, 15)),  # year rollover
        (at(2026, 12, 31, 23, 59), at(2027, 1, 31, 23, 59)),
        (at(2028, 2, 29), at(2028, 3, 29)),
    ],
)
def test_due_date_is_one_calendar_month_clamped_to_the_month_end(received, due):
    """The answer is due the same day next month, or on the last day of a shorter month."""
    assert due_date(received) == due


def test_time_of_day_and_timezone_are_kept():
    """Adding months keeps the time of day and the timezone of the receipt."""
    berlin = timezone(timedelta(hours=1))
    received = datetime(2027, 1, 31, 23, 30, 15, 123, tzinfo=berlin)
    due = due_date(received)
    assert due == datetime(2027, 2, 28, 23, 30, 15, 123, tzinfo=berlin)
    assert due.tzinfo is berlin


def test_adding_months_handles_many_months_and_negative_counts():
    """Twelve months is the same day next year; negative months go back, also clamped."""
    assert add_calendar_months(at(2028, 2, 29), 12) == at(2029, 2, 28)
    assert add_calendar_months(at(2028, 2, 29), 48) == at(2032, 2, 29)
    assert add_calendar_months(at(2027, 3, 31), -1) == at(2027, 2, 28)
    assert add_calendar_months(at(2027, 1, 15), -1) == at(2026, 12, 15)
    assert add_calendar_months(at(2027, 1, 15), 0) == at(2027, 1, 15)


def test_every_day_of_four_years_lands_in_the_next_month_never_later():
    """For every receipt day 2026-2029 the due date is in the following month, on the same day
    or (at month ends) earlier, and never more than 31 days later."""
    day = at(2026, 1, 1)
    while day.year < 2030:
        due = due_date(day)
        assert (due.year * 12 + due.month) - (day.year * 12 + day.month) == 1
        assert due.day <= day.day
        assert timedelta(days=28) <= due - day <= timedelta(days=31)
        day += timedelta(days=1)


@pytest.mark.parametrize(
    ("received", "latest"),
    [
        (at(2026, 11, 23), at(2027, 2, 23)),
        (at(2026, 11, 30), at(2027, 2, 28)),
        (at(2027, 1, 31), at(2027, 4, 30)),
        (at(2027, 11, 30), at(2028, 2, 29)),  # leap year
        (at(2026, 10, 31), at(2027, 1, 31)),  # year rollover
    ],
)
def test_max_extended_due_is_receipt_plus_three_months(received, latest):
    """The longest possible deadline is receipt + 1 month + 2 months of extension."""
    assert max_extended_due(received) == latest
    assert extended_due(received) == latest
    assert extended_due(received, 1) == add_calendar_months(received, 2)


def test_extension_is_allowed_only_inside_the_first_month():
    """An extension may be given up to just before the original due date, not at or after it."""
    received = at(2027, 1, 31)
    due = due_date(received)  # 2027-02-28 10:00
    assert extension_refusal(received, None, received, 2) is None
    assert extension_refusal(received, None, due - timedelta(seconds=1), 2) is None
    assert "first month" in (extension_refusal(received, None, due, 2) or "")
    assert "first month" in (extension_refusal(received, None, due + timedelta(days=3), 1) or "")


def test_extension_is_allowed_only_once_and_at_most_two_months():
    """A second extension is refused, and so is any extension other than 1 or 2 months."""
    received = at(2026, 11, 23)
    now = received + timedelta(days=3)
    assert "only once" in (extension_refusal(received, now, now, 1) or "")
    assert extension_refusal(received, None, now, MAX_EXTENSION_MONTHS + 1)
    assert extension_refusal(received, None, now, 0)
    with pytest.raises(ValueError):
        extended_due(received, 3)


def test_overdue_means_open_and_past_the_due_date():
    """Only an open request past its due date is overdue; a closed one never is."""
    due = at(2026, 12, 23)
    assert not is_overdue(due, False, due)
    assert is_overdue(due, False, due + timedelta(seconds=1))
    assert not is_overdue(due, True, due + timedelta(days=40))
