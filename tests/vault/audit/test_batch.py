"""Group commit of audit events on both databases: shared commits, never data before the
event, a failed batch fails every waiter, a cancelled waiter's event still lands."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.db import count_rows
from tests.support.factories import WRITER, person
from tests.support.faults import audit_down
from vault.access.lookup import lookup
from vault.audit import events as audit
from vault.audit.batch import AuditBatcher
from vault.audit.events import Actor, AuditAction, Decision
from vault.bases.consents import record_basis
from vault.clock import SystemClock
from vault.errors import Unavailable
from vault.storage.audit_tables import audit_events
from vault.subjects.store import create_subject

SHOP = Actor("client", "shop", "req-batch")
PURPOSES = frozenset({"order.delivery"})


def _row(n: int) -> dict[str, object]:
    return audit.event_row(
        at=SystemClock().now(),
        actor=SHOP,
        action=AuditAction.LOOKUP,
        decision=Decision.DENY,
        purpose="order.delivery",
        reason="subject_not_found",
        detail={"n": n},
    )


async def _customer(vault, seed: int) -> str:
    sid = await create_subject(vault, WRITER, person(seed))
    await record_basis(vault, WRITER, sid, "order.delivery", reference=f"Auftrag {seed}")
    return sid


async def test_concurrent_events_share_commits_and_all_land(vault):
    """64 concurrent appends are all durable on return, written by far fewer statements."""
    batcher = vault.audit_batcher
    assert isinstance(batcher, AuditBatcher)
    before = batcher.flushes
    await asyncio.gather(*(batcher.append(_row(n)) for n in range(64)))
    assert await count_rows(vault, audit_events) == 64
    assert 1 <= batcher.flushes - before < 64


async def test_lookup_waits_for_its_event_before_returning_data(vault, monkeypatch):
    """A lookup's data does not come back while its event's INSERT is still in flight."""
    sid = await _customer(vault, 1)
    assert vault.audit_batcher is not None
    gate, entered = asyncio.Event(), asyncio.Event()
    real_write = vault.audit_batcher._write

    async def slow_write(rows):
        entered.set()
        await gate.wait()
        await real_write(rows)

    monkeypatch.setattr(vault.audit_batcher, "_write", slow_write)
    task = asyncio.ensure_future(
        lookup(
            vault,
            SHOP,
            PURPOSES,
            purpose_id="order.delivery",
            identifier_kind="subject_id",
            identifier=sid,
        )
    )
    await asyncio.wait_for(entered.wait(), 5)
    await asyncio.sleep(0.05)
    assert not task.done()
    gate.set()
    result = await asyncio.wait_for(task, 5)
    assert result.subject_id == sid and result.fields


async def test_failed_batch_fails_every_waiter_and_reveals_nothing(vault):
    """When the shared INSERT fails, every lookup in the batch gets Unavailable, none data."""
    ids = [await _customer(vault, n) for n in range(5)]
    before = await count_rows(vault, audit_events)
    async with audit_down(vault):
        outcomes = await asyncio.gather(
            *(
                lookup(
                    vault,
                    SHOP,
                    PURPOSES,
                    purpose_id="order.delivery",
                    identifier_kind="subject_id",
                    identifier=sid,
                )
                for sid in ids
            ),
            return_exceptions=True,
        )
    assert all(isinstance(o, Unavailable) for o in outcomes), outcomes
    assert await count_rows(vault, audit_events) == before
    # The trail is back: the next lookup works and is recorded.
    out = await lookup(
        vault,
        SHOP,
        PURPOSES,
        purpose_id="order.delivery",
        identifier_kind="subject_id",
        identifier=ids[0],
    )
    assert out.subject_id == ids[0]
    assert await count_rows(vault, audit_events) == before + 1


async def test_a_cancelled_waiter_still_leaves_its_event(vault, monkeypatch):
    """Cancelling a request while its event is queued does not take the event back."""
    assert vault.audit_batcher is not None
    gate = asyncio.Event()
    real_write = vault.audit_batcher._write

    async def slow_write(rows):
        await gate.wait()
        await real_write(rows)

    monkeypatch.setattr(vault.audit_batcher, "_write", slow_write)
    task = asyncio.ensure_future(vault.audit_batcher.append(_row(1)))
    await asyncio.sleep(0.05)
    task.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await vault.audit_batcher.drain()
    assert await count_rows(vault, audit_events) == 1
