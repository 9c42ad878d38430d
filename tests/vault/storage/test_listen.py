"""A committed domain event wakes a listener at once on PostgreSQL (LISTEN/NOTIFY sent after
the commit by the process's waker, outside the writing transaction); a rolled-back one does
not; a burst of commits costs few notifications; SQLite answers that it cannot listen, so
the loop keeps polling."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from vault.recipients.delivery import outbox_listener
from vault.recipients.events import OUTBOX_CHANNEL, EventType, emit
from vault.storage.dialect import asyncpg_connection
from vault.storage.wakeup import INTERVAL, waker_for


class _Rollback(Exception):
    pass


async def _emit(vault, *, commit: bool, subject: int = 1) -> None:
    with pytest.raises(_Rollback) if not commit else _nothing():
        async with vault.transaction() as conn:
            await emit(
                conn,
                EventType.SUBJECT_ERASED,
                subject_id=f"7c1e2a40-0000-4000-8000-{subject:012d}",
                at=datetime.now(UTC),
                purposes=["order.delivery"],
            )
            if not commit:
                raise _Rollback


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


async def test_a_commit_wakes_the_listener_and_a_rollback_does_not(vault, db_url):
    """PostgreSQL: the event is set within a second of the commit, not by a rollback;
    SQLite: `start` is False (polling only) and nothing is held open."""
    listener = outbox_listener(vault)
    try:
        listening = await listener.start()
        if db_url.startswith("sqlite"):
            assert not listening and not listener.listening
            return
        assert listening
        listener.event.clear()  # `start` sets it once for what committed before
        await _emit(vault, commit=False)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(listener.event.wait(), 0.5)
        await _emit(vault, commit=True)
        await asyncio.wait_for(listener.event.wait(), 1.0)
    finally:
        await listener.close()
    assert not listener.listening


async def test_the_writing_transaction_itself_sends_no_notify(vault, db_url):
    """The NOTIFY is not part of the event's transaction (where it would serialise every
    notifying commit on PostgreSQL's queue lock): no `pg_notify` statement runs on the
    transaction's connection, on either database."""
    from sqlalchemy import event

    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    event.listen(vault.engine.sync_engine, "before_cursor_execute", record)
    try:
        await _emit(vault, commit=True)
    finally:
        event.remove(vault.engine.sync_engine, "before_cursor_execute", record)
    assert any("domain_events" in s for s in seen)
    assert not [s for s in seen if "notify" in s.lower()]


async def test_a_burst_of_commits_sends_few_notifies_and_still_wakes_in_time(vault, db_url):
    """PostgreSQL: 40 concurrent commits reach a raw listener as at most one notification per
    coalescing interval (plus the leading one), far fewer than 40, and the last commit's
    wake-up arrives within the interval (with scheduling slack)."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite has no notifications; its readers poll")
    arrivals: list[float] = []
    async with vault.engine.connect() as own:
        driver = await asyncpg_connection(own)
        assert driver is not None

        def heard(*_: object) -> None:
            arrivals.append(time.monotonic())

        await driver.add_listener(OUTBOX_CHANNEL, heard)
        # Warm the waker's own connection so its opening is not part of the measurement.
        await _emit(vault, commit=True)
        await asyncio.sleep(0.2)
        arrivals.clear()
        sent_before = waker_for(vault.engine).sent
        started = time.monotonic()
        await asyncio.gather(*(_emit(vault, commit=True, subject=i + 2) for i in range(40)))
        last_commit = time.monotonic()
        await asyncio.sleep(0.3)
        await driver.remove_listener(OUTBOX_CHANNEL, heard)
    sends = waker_for(vault.engine).sent - sent_before
    burst = last_commit - started
    assert 1 <= len(arrivals) == sends
    assert len(arrivals) <= burst / INTERVAL + 2
    assert len(arrivals) < 40
    # The last wake-up follows the last commit by at most one interval, plus slack for a
    # loaded machine; well under the poll interval it replaces.
    assert arrivals[-1] - last_commit <= INTERVAL + 0.25


async def test_the_waker_coalesces_and_survives_a_lost_connection(vault, db_url):
    """PostgreSQL: many pokes while one send is due make one more send; when its connection
    was killed the waker drops it without raising and sends again on a fresh one."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite has no notifications")
    waker = waker_for(vault.engine)
    before = waker.sent
    for _ in range(500):
        waker.poke([OUTBOX_CHANNEL])
    await asyncio.sleep(INTERVAL * 5 + 0.2)
    assert waker.sent - before == 1
    assert waker._driver is not None
    pid = waker._driver.get_server_pid()
    async with vault.engine.connect() as admin:
        await admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        await admin.commit()
    await asyncio.sleep(0.1)
    waker.poke([OUTBOX_CHANNEL])  # may fail on the dead connection: best effort, no raise
    await asyncio.sleep(INTERVAL * 5 + 0.2)
    waker.poke([OUTBOX_CHANNEL])
    await asyncio.sleep(INTERVAL * 5 + 0.2)
    assert waker.sent - before >= 2
    assert waker._driver is not None and waker._driver.get_server_pid() != pid
