"""The archive's event lines: the struct-based encoding writes the bytes the dict-based one
wrote, so segments archived before and after it are alike and verify the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from vault.audit.archive_format import encoded_event, event_line
from vault.audit.chain_links import EVENT_COLUMNS
from vault.clock import as_utc


def _as_before(values: list[Any], chain_pos: int, mac: str) -> bytes:
    """`event_line` as it was written first: a dict per event, encoded by msgspec."""
    event = dict(zip(EVENT_COLUMNS, values, strict=True))
    if isinstance(event["at"], datetime):
        event["at"] = as_utc(event["at"]).isoformat()
    line = {"kind": "event", "chain_pos": chain_pos, "mac": mac, "event": event}
    return msgspec.json.encode(line) + b"\n"


CEST = timezone(timedelta(hours=2))
EVENTS = [
    [1, datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC), None, "client", "bench",
     "lookup", "7f0c2e3a-0000-4000-8000-000000000001", "order.delivery",
     "name,phone,postal_address", "allow", None, None, None],
    [2, datetime(2026, 2, 1, 1, 0, tzinfo=CEST), "req-ü\"\\\n", "admin", "cli@root",
     "admin:audit:archive", None, None, "", "deny", "no basis ✓", 42,
     '{"month": "2026-01", "events": 3}'],
    [3, "2026-02-01T00:00:00+00:00", None, "system", "", "x", None, None, None, "allow",
     None, None, {"nested": [1, 2.5, None, "é"]}],
]  # fmt: skip


@pytest.mark.parametrize("values", EVENTS)
def test_an_event_line_has_the_bytes_the_dict_encoding_wrote(values: list[Any]):
    """Time stamps in any zone or already formatted, escapes, non-ASCII text and JSON
    details give the same line as the first, dict-based encoding."""
    assert event_line(list(values), 7, "ab" * 32) == _as_before(list(values), 7, "ab" * 32)


def test_an_event_with_a_column_too_many_or_too_few_is_refused():
    """The struct takes exactly one value per column, as `zip(strict=True)` did."""
    values = [*EVENTS[2][:1], "2026-02-01T00:00:00+00:00", *EVENTS[2][2:]]
    with pytest.raises(TypeError):
        encoded_event(values[:-1], 1, "ab" * 32)
    with pytest.raises(TypeError):
        encoded_event([*values, None], 1, "ab" * 32)
