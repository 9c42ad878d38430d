"""On PostgreSQL the delivery job is woken by the commit of a domain event (the waker's
NOTIFY after the commit, heard by the job's LISTEN), so a notice reaches the receiver in
about a second although the job's poll interval is a minute."""

from __future__ import annotations

import asyncio
import time

import pytest

from api.background import PeriodicJob
from tests.support.dsar import DPO, contract, erase, new_subject
from tests.support.receiver import serving
from tests.support.recipients import client_recipient, delivered, lookup_by, receiver
from vault.recipients.delivery import Deliverer, outbox_listener


async def _all_delivered(vault) -> bool:
    rows = await delivered(vault)
    return bool(rows) and all(r.status == "delivered" for r in rows)


async def test_a_commit_wakes_delivery_long_before_the_poll(vault, db_url):
    """With a 60 s interval, an erasure committed after the job went idle is delivered
    within 3 s (woken, not polled)."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite has no notifications; its delivery polls")
    state, app = receiver(vault, [])
    async with serving(app) as base:
        actor, key = await client_recipient(vault, "mailer", base + "/tresor/notices")
        state.keys.append(key)
        sid, _ = await new_subject(vault, 31)
        await contract(vault, sid)
        await lookup_by(vault, actor, sid)
        deliverer = Deliverer(vault)
        wake = outbox_listener(vault)
        rounds = 0

        async def notify() -> None:
            nonlocal rounds
            await wake.start()
            await deliverer.run()
            rounds += 1

        job = PeriodicJob("notify", 60.0, notify, wake=wake.event)
        job.start()
        try:
            while rounds < 2:  # the first round, then the one `start`'s own signal asks for
                await asyncio.sleep(0.05)
            before = rounds
            await asyncio.sleep(0.3)  # idle now: the next round needs a wake-up or 60 s
            assert rounds == before
            committed_at = time.monotonic()
            await erase(vault, DPO, sid)
            while not await _all_delivered(vault):
                assert time.monotonic() - committed_at < 3.0, "not woken by the commit"
                await asyncio.sleep(0.05)
        finally:
            await job.stop()
            await deliverer.close()
            await wake.close()
    assert "subject.erased" in [n["type"] for n in state.handled]
