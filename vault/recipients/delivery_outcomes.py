"""Writing what became of sent notices, a batch at a time: delivered, to be retried (with
the next attempt's time), or failed.

On PostgreSQL each outcome is one `UPDATE … FROM unnest(…)` for the whole batch, its rows
passed as arrays (one statement instead of one per row: the per-row parameter work of an
executemany was the larger cost); on SQLite, with one writer in the process, an
executemany. Either way a row is written only while it is still `pending` with the
attempt count of this claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.storage.dialect import takes_array_parameters
from vault.storage.recipient_tables import deliveries


@dataclass(frozen=True, slots=True)
class Outcome:
    """A sent claim's result: `at` is the delivery time, or the next attempt's time for a
    retry; `error` the error kind (None when delivered)."""

    id: str
    attempts: int
    at: datetime
    error: str | None


#: What each outcome writes (`status` delivered, pending (a retry) or failed), on
#: PostgreSQL as one statement per batch, the rows passed as arrays. Only the claim that
#: is still current writes: a node whose lease ran out and was overtaken (attempts moved
#: on) leaves the row to the newer claim.
_PG_OUTCOME = {
    "delivered": "status = 'delivered', delivered_at = v.at, last_error = NULL",
    "pending": "next_attempt_at = v.at, last_error = v.error",
    "failed": "status = 'failed', last_error = v.error",
}


#: The same on SQLite, as an executemany.
_OUTCOME: dict[str, dict[str, Any]] = {
    "delivered": {"status": "delivered", "delivered_at": bindparam("b_at"), "last_error": None},
    "pending": {"next_attempt_at": bindparam("b_at"), "last_error": bindparam("b_error")},
    "failed": {"status": "failed", "last_error": bindparam("b_error")},
}


async def write_outcomes(conn: AsyncConnection, status: str, outcomes: list[Outcome]) -> None:
    """Record `outcomes` as `status` (delivered, pending for a retry, or failed)."""
    if takes_array_parameters(conn):
        await conn.exec_driver_sql(
            f"UPDATE deliveries AS d SET {_PG_OUTCOME[status]} "  # noqa: S608 - from code
            "FROM unnest($1::varchar[], $2::int[], $3::timestamptz[], $4::varchar[]) "
            "AS v(id, attempts, at, error) "
            "WHERE d.id = v.id AND d.attempts = v.attempts AND d.status = 'pending'",
            (
                [o.id for o in outcomes],
                [o.attempts for o in outcomes],
                [o.at for o in outcomes],
                [o.error for o in outcomes],
            ),
        )
        return
    mine = update(deliveries).where(
        deliveries.c.id == bindparam("b_id"),
        deliveries.c.status == "pending",
        deliveries.c.attempts == bindparam("b_attempts"),
    )
    await conn.execute(
        mine.values(_OUTCOME[status]),
        [
            {"b_id": o.id, "b_attempts": o.attempts, "b_at": o.at, "b_error": o.error}
            for o in outcomes
        ],
    )
