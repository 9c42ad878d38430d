"""When the retention sweeper next has to look at a subject (`subjects.retention_check_at`).

The sweeper used to find subjects due for erasure by anti-joining every subject with its
bases on every run: O(all subjects), about 1.2 s at 100,000 (issue 5's note). Instead,
every write that can make a subject due stamps the subject with the earliest time the
sweeper must look at it, and the sweeper reads only stamped subjects through an index,
so a run costs O(subjects due):

* a basis stops being in force (withdrawn, ended, expired, lapsed): look at the next run;
* a subject is created (it may stay without any basis, which the sweep reports once);
* the sweeper itself re-stamps a subject whose retention still runs with the moment the
  first of its retention periods ends, and clears the stamp when nothing but a new write
  can change the verdict (a basis still in force, no basis at all, erased).

Stamps are catalogue-independent except for the sweeper's "retention still runs until"
one; `vault.rights.retention_plan.replan` stamps every live subject again after a purpose's
retention was shortened.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.storage.tables import subjects


async def check_at(conn: AsyncConnection, subject_id: str, at: datetime) -> None:
    """Make the sweeper look at `subject_id` at `at` or earlier (an earlier stamp stays)."""
    await conn.execute(
        update(subjects)
        .where(subjects.c.id == subject_id)
        .where(or_(subjects.c.retention_check_at.is_(None), subjects.c.retention_check_at > at))
        .values(retention_check_at=at)
    )


async def reschedule(conn: AsyncConnection, subject_id: str, at: datetime | None) -> None:
    """Set the sweeper's own verdict: look again at `at`, or never without a new write."""
    await conn.execute(
        update(subjects).where(subjects.c.id == subject_id).values(retention_check_at=at)
    )
