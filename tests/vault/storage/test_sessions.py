"""The session rows both browser surfaces share, on both databases: why a row is no longer
live, activity written at most every TOUCH_EVERY, and the purge of what ended."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from vault.storage import sessions as web
from vault.storage.rights_tables import console_signins, web_sessions

LIFETIME = web.Lifetime(idle=timedelta(minutes=15), absolute=timedelta(hours=1))


async def _row(vault, digest: str):
    async with vault.engine.connect() as conn:
        return (
            await conn.execute(select(web_sessions).where(web_sessions.c.token_hash == digest))
        ).one()


async def _open(vault, digest: str) -> None:
    async with vault.transaction() as conn:
        await web.open_in(
            conn,
            digest=digest,
            kind=web.Kind.CONSOLE,
            now=vault.clock.now(),
            lifetime=LIFETIME,
            client_id="c1",
        )


async def test_a_row_lapses_by_idleness_by_expiry_or_by_its_ending(vault, clock):
    """Live while seen within the idle time and before the expiry; then the reason says why."""
    await _open(vault, "a" * 64)
    now = clock.now()
    row = await _row(vault, "a" * 64)
    assert web.lapsed(row, now, LIFETIME) is None
    assert web.lapsed(row, now + timedelta(minutes=15), LIFETIME) is web.Ended.IDLE
    assert web.lapsed(row, now + timedelta(hours=1), LIFETIME) is web.Ended.EXPIRED
    async with vault.transaction() as conn:
        ended = await web.end_in(conn, "a" * 64, now, web.Ended.REVOKED)
        assert ended is not None and ended.client_id == "c1"
        assert await web.end_in(conn, "a" * 64, now, web.Ended.SIGNED_OUT) is None
    assert web.lapsed(await _row(vault, "a" * 64), now, LIFETIME) is web.Ended.REVOKED


async def test_activity_is_written_at_most_every_touch_interval(vault, clock):
    """A request within TOUCH_EVERY of the last write writes nothing; a later one does."""
    await _open(vault, "b" * 64)
    first = (await _row(vault, "b" * 64)).last_seen_at
    for step, moved in ((timedelta(seconds=10), False), (web.TOUCH_EVERY, True)):
        clock.advance(step)
        row = await _row(vault, "b" * 64)
        async with vault.transaction() as conn:
            await web.touch_in(conn, "b" * 64, row.last_seen_at, clock.now())
        assert ((await _row(vault, "b" * 64)).last_seen_at != first) is moved


async def test_purge_deletes_what_ended_and_keeps_what_is_live(vault, clock):
    """Ended, expired and idle rows and sign-in attempts out of their window go; a live
    session stays."""
    for digest in ("c" * 64, "d" * 64, "e" * 64):
        await _open(vault, digest)
    async with vault.transaction() as conn:
        await web.end_in(conn, "c" * 64, clock.now(), web.Ended.SIGNED_OUT)
        await conn.execute(
            console_signins.insert().values(
                at=clock.now(), account_hash=None, address_hash="f" * 64, ok=False
            )
        )
    clock.advance(timedelta(minutes=16))
    await _open(vault, "g" * 64)
    async with vault.transaction() as conn:
        assert await web.purge_in(conn, clock.now(), LIFETIME.idle) == 3
    async with vault.engine.connect() as conn:
        left = [r.token_hash for r in await conn.execute(select(web_sessions))]
        signins = (await conn.execute(select(console_signins))).all()
    assert left == ["g" * 64] and signins == []
