"""A committed domain event wakes a listener at once on PostgreSQL (LISTEN/NOTIFY sent
from inside the writing transaction); a rolled-back one does not; SQLite answers that it
cannot listen, so the loop keeps polling."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from vault.recipients.delivery import outbox_listener
from vault.recipients.events import EventType, emit


class _Rollback(Exception):
    pass


async def _emit(vault, *, commit: bool) -> None:
    with pytest.raises(_Rollback) if not commit else _nothing():
        async with vault.transaction() as conn:
            await emit(
                conn,
                EventType.SUBJECT_ERASED,
                subject_id="7c1e2a40-0000-4000-8000-000000000001",
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
