"""Deleting the challenges, sessions and lockouts that no longer count (data
minimisation), for the periodic retention sweep."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete

from vault.rights import signin_limits
from vault.rights.selfservice.challenges import RATE_WINDOW
from vault.storage import sessions as web
from vault.storage.rights_tables import self_service_challenges as challenges

if TYPE_CHECKING:
    from vault.context import VaultContext


async def purge_expired(ctx: VaultContext) -> tuple[int, int]:
    """Delete the challenges that neither verify nor count for a rate limit any more, and the
    sessions that have expired or were ended (data minimisation). Returns both counts.
    Sign-in lockout rows that neither lock nor count any more go too (not counted).
    Meant for the periodic retention sweep; safe to run on several nodes at once."""
    now = ctx.clock.now()
    async with ctx.transaction() as conn:
        gone_challenges = await conn.execute(
            delete(challenges)
            .where(challenges.c.created_at <= now - RATE_WINDOW)
            .where(challenges.c.expires_at <= now)
        )
        # Both surfaces' sessions share the table: an ended one goes, whoever opened it.
        gone_sessions = await web.purge_in(
            conn, now, timedelta(minutes=ctx.settings.session_idle_minutes)
        )
        await signin_limits.purge_in(conn, now)
    return int(gone_challenges.rowcount or 0), gone_sessions
