"""When a subject is due for erasure: the plan computed from its bases (each basis's end plus
its purpose's retention), the next time a subject must be looked at again, and re-planning
every subject in batches after the catalogue's retention periods changed.

Split from `retention`, which runs the sweep: the sweep only visits subjects whose stored
next check is due (O(due subjects)), and this is what keeps that stored time right.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update

from vault.bases.ending import LIVE_STATUSES
from vault.catalogue.purposes import LawfulBasis, Purpose
from vault.clock import as_utc
from vault.progress import NO_PROGRESS, Progress
from vault.storage.tables import subjects
from vault.subjects.decision import BasisStatus
from vault.subjects.store import SubjectStatus

if TYPE_CHECKING:
    from vault.context import VaultContext


BATCH = 500
#: Subjects decided (and erased) per transaction: a fixed number of statements per batch
#: makes erasure cheap already at 100 (the per-batch statements are then 0.2 per erasure),
#: and a small batch holds its row locks (and SQLite's one write lock, which lookups' audit
#: writes queue behind) only briefly.
ERASE_BATCH = 100


def _ended_at(row: Any) -> datetime:
    """When a basis that is no longer live ended."""
    ended: datetime  # a basis row always has created_at, so one of these is set
    if row.status in (BasisStatus.WITHDRAWN, BasisStatus.ENDED) and row.withdrawn_at:
        ended = row.withdrawn_at
    elif row.status == BasisStatus.EXPIRED and row.expires_at:
        ended = row.expires_at
    elif row.status == BasisStatus.LAPSED and row.confirm_deadline:
        ended = row.confirm_deadline
    else:
        ended = row.withdrawn_at or row.expires_at or row.created_at
    return as_utc(ended)


def erasure_plan(
    ctx: VaultContext, bases: list[Any], now: datetime
) -> tuple[str, list[tuple[Purpose, datetime]]]:
    """Decide for one subject's basis rows: ("erase", what to keep until when), "wait",
    "no_basis" or "unknown_purpose"."""
    keep: dict[str, tuple[Purpose, datetime]] = {}
    considered = 0
    for row in bases:
        if row.status == BasisStatus.SUPERSEDED:
            continue  # a newer record of the same purpose governs
        if row.status in LIVE_STATUSES:
            return "wait", []
        purpose = ctx.catalogue.get(row.purpose)
        if purpose is None:
            return "unknown_purpose", []
        considered += 1
        until = _ended_at(row) + purpose.retention_after_end
        if until <= now:
            continue
        if purpose.lawful_basis is not LawfulBasis.LEGAL_OBLIGATION:
            return "wait", []
        if purpose.id not in keep or keep[purpose.id][1] < until:
            keep[purpose.id] = (purpose, until)
    if considered == 0:
        return "no_basis", []
    return "erase", [keep[k] for k in sorted(keep)]


def next_check(ctx: VaultContext, bases: list[Any], now: datetime) -> datetime | None:
    """When a subject the sweep must wait for should be looked at again: the first of its
    retention periods still running ends; None while a basis is in force (its ending
    stamps the subject anew) or when there is no basis."""
    first: datetime | None = None
    for row in bases:
        if row.status == BasisStatus.SUPERSEDED:
            continue
        if row.status in LIVE_STATUSES:
            return None
        purpose = ctx.catalogue.get(row.purpose)
        if purpose is None:
            continue
        until = _ended_at(row) + purpose.retention_after_end
        if until > now and (first is None or until < first):
            first = until
    return first


async def replan(ctx: VaultContext, *, batch: int = BATCH, progress: Progress = NO_PROGRESS) -> int:
    """Stamp every active or restricted subject due at once, so the next run looks at each
    of them again: needed after a purpose's `retention_after_end` was shortened (a stamp
    for a retention still running was computed with the old length). O(subjects), in
    batches; returns how many subjects were stamped."""
    now = ctx.clock.now()
    progress.begin("stamp subjects for the sweep", None)
    total = 0
    after = ""
    while True:
        async with ctx.transaction() as conn:
            ids = (
                (
                    await conn.execute(
                        select(subjects.c.id)
                        .where(
                            subjects.c.status.in_([SubjectStatus.ACTIVE, SubjectStatus.RESTRICTED])
                        )
                        .where(subjects.c.id > after)
                        .order_by(subjects.c.id)
                        .limit(batch)
                    )
                )
                .scalars()
                .all()
            )
            if ids:
                await conn.execute(
                    update(subjects)
                    .where(subjects.c.id.in_(ids))
                    .where(
                        or_(
                            subjects.c.retention_check_at.is_(None),
                            subjects.c.retention_check_at > now,
                        )
                    )
                    .values(retention_check_at=now)
                )
        total += len(ids)
        progress.advance(len(ids))
        if len(ids) < batch:
            return total
        after = ids[-1]
