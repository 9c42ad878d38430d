"""One range of the audit chain checked in keyset pages through SQLAlchemy (SQLite).

PostgreSQL streams its ranges instead (`vault.audit.verify_stream`); this path reads pages
of typed rows along the primary key, one short read each (no snapshot held for a whole
range), and encodes each event with the chain's own canonical encoding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.audit.chain_links import (
    _CANONICAL,
    EVENT_COLUMNS,
    GENESIS,
    _canonical_values,
    _mac,
    chain_message,
    events_with_seals_between,
)
from vault.audit.verify_state import (
    RangeJob,
    RangeResult,
    anchor_problem,
    disorder,
    mismatch,
)
from vault.crypto import Mac, same_digest
from vault.storage.audit_tables import audit_checkpoints, audit_events, audit_seals

_N = len(EVENT_COLUMNS)
_ENCODE = _CANONICAL.encode
#: (seq, head) of a checkpoint, by position.
Anchors = dict[int, tuple[int, str]]

BEFORE = (
    select(audit_seals.c.chain_pos, audit_seals.c.chain_mac, audit_seals.c.seq)
    .where(audit_seals.c.seq <= bindparam("lo"))
    .order_by(audit_seals.c.seq.desc())
    .limit(1)
)
PAGE_QUERY = (
    select(
        *(audit_events.c[name] for name in EVENT_COLUMNS),
        audit_seals.c.chain_pos,
        audit_seals.c.chain_mac,
    )
    # An outer join: an event without a seal inside the sealed range is named where it lies
    # (inserted behind the chain).
    .select_from(events_with_seals_between(bindparam("after"), bindparam("hi")))
    .where(audit_events.c.seq > bindparam("after"))
    .where(audit_events.c.seq <= bindparam("hi"))
    .order_by(audit_events.c.seq)
    .limit(bindparam("page"))
)
#: The checkpoints at the chain positions of one page (along the unique index on chain_pos).
CHECKPOINTS_AT = select(
    audit_checkpoints.c.chain_pos, audit_checkpoints.c.seq, audit_checkpoints.c.head
).where(audit_checkpoints.c.chain_pos.between(bindparam("first"), bindparam("last")))


def canonical_utc(row: Any) -> bytes:
    """`_canonical_values` of a row whose `at` is an aware UTC datetime, at a fifth of its
    cost: msgspec encodes the row as it is, writing the timestamp as `isoformat()` does but
    for its `Z`, which becomes `+00:00`. The first `Z"` is the timestamp's end: `seq` is an
    integer and `at` the first string. A mismatch is rechecked exactly (`Walk.check`)."""
    return _ENCODE(row[:_N]).replace(b'Z"', b'+00:00"', 1)


def canonical_any(row: Any) -> bytes:
    """The canonical bytes of any row (SQLite's naive datetimes too)."""
    return _canonical_values(list(row[:_N]))


class Walk:
    """The state of one range's walk along the chain: the MAC and position it expects next."""

    def __init__(self, key: Mac, job: RangeJob, start: Any, canonical: Callable[[Any], bytes]):
        self.key, self.outside, self.canonical = key, job.outside, canonical
        #: One keyed HMAC state for the whole walk, copied per event.
        self.digest = key.hexdigester()
        #: The checkpoints at the positions of the page being checked (a page's worth only).
        self.checkpoints: Anchors = {}
        self.previous: str = start[1] if start is not None else GENESIS
        self.expected: int = start[0] + 1 if start is not None else 1
        self.last_seq: int = start[2] if start is not None else 0
        self.verified = 0
        self.last_cp: tuple[int, int, str] | None = None
        #: The first event without a seal met (`RangeResult.behind`).
        self.behind: int | None = None

    def check(self, rows: Any) -> tuple[int, str] | None:
        """Check rows in order; (seq, problem) of the first break, None if all hold."""
        digest, canonical, checkpoints = self.digest, self.canonical, self.checkpoints
        marks = set(checkpoints)
        if self.outside is not None:
            marks.add(self.outside[0])
        previous, expected, last_seq = self.previous, self.expected, self.last_seq
        verified = 0
        try:
            for row in rows:
                seq, position, stored = row[0], row[_N], row[_N + 1]
                if position is None:  # no seal (the outer join's NULLs): not in the chain
                    if self.behind is None:
                        self.behind = seq
                    continue
                if position != expected or seq <= last_seq:
                    return disorder(seq, position, expected, last_seq)
                mac = digest(chain_message(previous, position, canonical(row)))
                if not same_digest(mac, stored or ""):
                    # The exact encoding decides before a break is reported.
                    mac = _mac(self.key, previous, position, canonical_any(row))
                    if not same_digest(mac, stored or ""):
                        return mismatch(seq)
                if position in marks:
                    broken = self._anchored(seq, position, mac)
                    if broken is not None:
                        return broken
                previous, last_seq, expected = mac, seq, expected + 1
                verified += 1
            return None
        finally:
            self.previous, self.expected, self.last_seq = previous, expected, last_seq
            self.verified += verified

    def _anchored(self, seq: int, position: int, mac: str) -> tuple[int, str] | None:
        """A position with a checkpoint (in the database or the checkpoint file)."""
        cp = self.checkpoints.get(position)
        if cp is not None:
            if cp != (seq, mac):
                return anchor_problem(seq, position, outside=False)
            self.last_cp = (position, seq, mac)
        outside = self.outside
        if outside is not None and position == outside[0] and outside[1:] != (seq, mac):
            return anchor_problem(seq, position, outside=True)
        return None


async def check_range(
    key: Mac, job: RangeJob, conn: AsyncConnection, page: int, tick: Callable[[int], None]
) -> RangeResult:
    """Check every sealed event of the range against the seal before it; the first break."""
    start: Any = job.start
    if start is None:
        start = (await conn.execute(BEFORE, {"lo": job.lo})).first()
        await conn.commit()
    walk = Walk(key, job, start, canonical_any)
    after = job.lo
    while True:
        rows = (await conn.execute(PAGE_QUERY, {"after": after, "hi": job.hi, "page": page})).all()
        span = {"first": walk.expected, "last": walk.expected + len(rows) - 1}
        found = (await conn.execute(CHECKPOINTS_AT, span)).all() if rows else []
        # One short read per page: no snapshot held for a whole range.
        await conn.commit()
        if not rows:
            break
        walk.checkpoints = {r.chain_pos: (r.seq, r.head) for r in found}
        broken = walk.check(rows)
        if broken is not None:
            return RangeResult(job.lo, walk.verified, None, broken, walk.last_cp, walk.behind)
        tick(len(rows))
        if len(rows) < page:
            break
        after = rows[-1][0]
        await asyncio.sleep(0)
    end = (walk.expected - 1, walk.last_seq) if walk.verified else None
    return RangeResult(job.lo, walk.verified, end, None, walk.last_cp, walk.behind)
