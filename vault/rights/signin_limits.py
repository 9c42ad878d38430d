"""Limits on privacy-centre sign-in codes per customer (security finding 7).

Codes were limited per address only: five an hour by e-mail and five by phone, each with
five tries, let a guesser try about fifty codes an hour against one customer. Two limits
now hold per customer, across all its addresses, and both are counted in the database so
every node sees the same numbers:

- at most `otp_per_subject_hour` codes an hour are *sent*; further requests are answered
  as always but no code is made for them (a 429 would tell that an e-mail address and a
  phone number belong to the same customer);
- after `otp_lockout_failures` wrong codes, sign-in is locked for the first of
  `otp_lockout_minutes` (15 min), after the next as many for the second (1 h), then the
  third (24 h), which repeats. While locked, no code is sent and even a right code is
  refused with the ordinary wrong-code error; wrong codes then do not count, so guessing
  on does not prolong the lock. A successful sign-in by code, or a day without a wrong
  code after the lock ended, starts over.

Anyone who knows an address can cause the lock, so it must not keep the customer out: while
it holds, a code request mails a one-time sign-in link to the stored e-mail address instead
(`vault.rights.selfservice.open_link_session`). A guesser never sees that mailbox, and the link's
256-bit token needs no attempt limit. Signing in by link leaves the lock (and its level) in
place: the lock is the guesser's, and clearing it would give the guesser a fresh count.

Enumeration: the lock is keyed by the subject id, or, for an address that belongs to no
subject, by the address's digest. Known and unknown addresses thus run the same statements,
lock alike and answer alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.clock import as_utc
from vault.settings import Settings
from vault.storage.dialect import insert_ignoring_conflict
from vault.storage.rights_tables import self_service_challenges as challenges
from vault.storage.rights_tables import self_service_lockouts as lockouts

#: Without a wrong code for this long after the last one (and after the lock), the count
#: and the escalation start over.
QUIET = timedelta(days=1)
#: Counts codes "per subject" for an address that has none: matches no challenge row.
NO_SUBJECT = "-"


async def codes_sent_in(conn: AsyncConnection, subject_id: str | None, since: datetime) -> int:
    """Codes made for the subject since `since`, over all its addresses (the same query runs
    for an unknown address, with an id that matches nothing). Requests that got no code
    (limited or locked) do not count, so a lock does not outlast itself."""
    return int(
        (
            await conn.execute(
                select(func.count())
                .select_from(challenges)
                .where(challenges.c.subject_id == (subject_id or NO_SUBJECT))
                .where(challenges.c.created_at > since)
                .where(challenges.c.code_hash.is_not(None))
            )
        ).scalar_one()
    )


async def locked_until_in(conn: AsyncConnection, key: str, now: datetime) -> datetime | None:
    """When the lock on `key` ends, or None when sign-in is not locked now."""
    until = (
        await conn.execute(select(lockouts.c.locked_until).where(lockouts.c.lock_key == key))
    ).scalar_one_or_none()
    until = as_utc(until)
    return until if until is not None and until > now else None


def _ensure_row(conn: AsyncConnection) -> Any:
    return insert_ignoring_conflict(conn, lockouts, ["lock_key"]).values(failures=0, level=0)


def _period(settings: Settings, level: int) -> timedelta:
    periods = settings.otp_lockout_minutes
    return timedelta(minutes=periods[min(level, len(periods)) - 1])


async def register_failure_in(
    conn: AsyncConnection, settings: Settings, key: str, now: datetime
) -> tuple[datetime, int] | None:
    """Count one wrong code for `key` inside the caller's transaction; returns (lock end,
    level) when this failure started a lock, else None. The row is locked while counted,
    so concurrent wrong codes on several nodes are each counted once."""
    await conn.execute(_ensure_row(conn).values(lock_key=key))
    row = (
        await conn.execute(select(lockouts).where(lockouts.c.lock_key == key).with_for_update())
    ).one()
    failures, level = row.failures, row.level
    last = max(
        (t for t in (as_utc(row.last_failure_at), as_utc(row.locked_until)) if t is not None),
        default=None,
    )
    if last is not None and last <= now - QUIET:
        failures, level = 0, 0
    failures += 1
    locked_until = as_utc(row.locked_until)
    started = None
    if failures >= settings.otp_lockout_failures:
        level += 1
        locked_until = now + _period(settings, level)
        failures = 0
        started = (locked_until, level)
    await conn.execute(
        update(lockouts)
        .where(lockouts.c.lock_key == key)
        .values(failures=failures, level=level, locked_until=locked_until, last_failure_at=now)
    )
    return started


async def clear_in(conn: AsyncConnection, key: str) -> None:
    """A successful sign-in: the count and the escalation start over."""
    await conn.execute(delete(lockouts).where(lockouts.c.lock_key == key))


async def purge_in(conn: AsyncConnection, now: datetime) -> int:
    """Delete the rows that no longer lock nor count (quiet for a day after the lock)."""
    quiet = now - QUIET
    result = await conn.execute(
        delete(lockouts)
        .where((lockouts.c.locked_until.is_(None)) | (lockouts.c.locked_until <= quiet))
        .where((lockouts.c.last_failure_at.is_(None)) | (lockouts.c.last_failure_at <= quiet))
    )
    return int(result.rowcount or 0)


__all__ = [
    "QUIET",
    "clear_in",
    "codes_sent_in",
    "locked_until_in",
    "purge_in",
    "register_failure_in",
]
