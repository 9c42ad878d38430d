"""Recording a batch's outcomes on both databases (one statement per outcome on
PostgreSQL, an executemany on SQLite): each outcome writes its own columns, and a row
that is no longer the claim's (delivered already, or claimed again since) is left alone."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from tests.support.dsar import DPO, contract, new_subject
from tests.support.recipients import client_recipient, delivered, lookup_by
from vault.recipients.delivery_outcomes import Outcome, write_outcomes
from vault.recipients.fanout import fan_out
from vault.rights.restriction import restrict
from vault.storage.recipient_tables import deliveries


async def _pending_deliveries(vault, n: int) -> list[str]:
    """`n` pending deliveries (one restriction each) claimed once: attempts is 1."""
    actor, _ = await client_recipient(vault, "mailer", "http://127.0.0.1:9/hook")
    for seed in range(n):
        sid, _ = await new_subject(vault, 40 + seed)
        await contract(vault, sid)
        await lookup_by(vault, actor, sid)
        await restrict(vault, DPO, sid)
    await fan_out(vault)
    async with vault.transaction() as conn:
        await conn.execute(update(deliveries).values(attempts=1))
    rows = await delivered(vault)
    assert [r.status for r in rows] == ["pending"] * n
    return [r.id for r in rows]


async def test_each_outcome_writes_its_columns_and_stale_claims_change_nothing(vault):
    """Delivered sets the time and clears the error; a retry keeps the row pending with
    its next attempt and error kind; failed keeps the error kind. An outcome with an
    older attempt count, or for a row no longer pending, writes nothing."""
    d1, d2, d3, d4 = await _pending_deliveries(vault, 4)
    now = vault.clock.now()
    later = now + timedelta(seconds=40)
    async with vault.transaction() as conn:
        await write_outcomes(conn, "delivered", [Outcome(d1, 1, now, None)])
        await write_outcomes(conn, "pending", [Outcome(d2, 1, later, "http_503")])
        await write_outcomes(conn, "failed", [Outcome(d3, 1, now, "timeout")])
        # Stale: d4 was claimed again (attempts 1), this outcome is of attempt 0; d1 is
        # delivered already.
        await write_outcomes(conn, "delivered", [Outcome(d4, 0, now, None)])
        await write_outcomes(conn, "failed", [Outcome(d1, 1, now, "timeout")])
    rows = {r.id: r for r in await delivered(vault)}
    assert (rows[d1].status, rows[d1].last_error) == ("delivered", None)
    assert rows[d1].delivered_at is not None
    assert (rows[d2].status, rows[d2].last_error) == ("pending", "http_503")
    assert abs(rows[d2].next_attempt_at.replace(tzinfo=later.tzinfo) - later) < timedelta(seconds=1)
    assert (rows[d3].status, rows[d3].last_error) == ("failed", "timeout")
    assert rows[d3].delivered_at is None
    assert (rows[d4].status, rows[d4].delivered_at) == ("pending", None)
