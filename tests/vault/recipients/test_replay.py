"""Replaying a recipient's notices keeps each notice's first deadline: a replay never
restarts the 3-day give-up window, and a notice past it gets one more attempt only."""

from __future__ import annotations

from datetime import timedelta

from tests.support.dsar import DPO, contract, new_subject
from tests.support.factories import ADMIN
from tests.support.recipients import client_recipient, delivered, lookup_by
from vault.clock import as_utc
from vault.recipients.acks import replay
from vault.recipients.delivery import GIVE_UP, Deliverer
from vault.rights.restriction import restrict

DEAD = "http://127.0.0.1:9/closed"


async def _failing_notice(vault, seed: int):
    actor, _ = await client_recipient(vault, "mailer", DEAD)
    sid, _ = await new_subject(vault, seed)
    await contract(vault, sid)
    await lookup_by(vault, actor, sid)
    started = vault.clock.now()
    await restrict(vault, DPO, sid)
    return started


async def test_a_replay_inside_the_window_keeps_the_first_deadline(vault, clock):
    """Replayed two days in, a notice to a dead receiver is still `failed` three days after
    it was first created, not three days after the replay; its creation time is kept."""
    started = await _failing_notice(vault, 41)
    deliverer = Deliverer(vault)
    try:
        await deliverer.run()
        clock.advance(timedelta(days=2))
        assert await replay(vault, ADMIN, "mailer", started - timedelta(minutes=1)) == 1
        assert (await deliverer.run()).retried == 1
        clock.advance(GIVE_UP - timedelta(days=2))
        assert (await deliverer.run()).failed == 1
    finally:
        await deliverer.close()
    (row,) = await delivered(vault)
    assert row.status == "failed"
    assert abs(as_utc(row.created_at) - started) < timedelta(seconds=1)


async def test_a_replay_past_the_window_is_one_more_attempt(vault, clock):
    """A notice that already failed after three days, replayed later, is tried once: still
    unreachable, it is `failed` again at once instead of retrying for another three days."""
    started = await _failing_notice(vault, 42)
    deliverer = Deliverer(vault)
    try:
        await deliverer.run()
        clock.advance(GIVE_UP)
        assert (await deliverer.run()).failed == 1
        clock.advance(timedelta(days=5))
        assert await replay(vault, ADMIN, "mailer", started - timedelta(minutes=1)) == 1
        report = await deliverer.run()
        clock.advance(timedelta(hours=2))
        again = await deliverer.run()
    finally:
        await deliverer.close()
    assert (report.failed, report.retried) == (1, 0)
    assert again.failed == 0
    (row,) = await delivered(vault)
    assert row.status == "failed" and row.attempts == 3
