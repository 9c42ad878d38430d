"""One range of the audit chain checked on PostgreSQL from a `COPY ... TO STDOUT` stream.

Fetching rows as asyncpg records cost more CPU than checking them (fifteen decoded columns
and a `datetime` per event, then encoded again as JSON for the MAC). Here PostgreSQL sends
each event as one line of COPY text, and the MAC input is rebuilt from that line's bytes
with a handful of `bytes` operations, with no per-column Python objects.

Why this is exact: for a line whose values hold no `"`, no backslash (COPY's escapes, its
NULL `\\N` aside) and a timestamp in the shape PostgreSQL prints in UTC, the rebuilt bytes
are the chain's canonical JSON (`vault.audit.chain._canonical_values`) byte for byte. A line
that is not in that shape, or whose MAC does not match, is *deferred*: after its chunk, the
event is read again as typed values and checked with the exact encoding, and only that
check reports a break. A raw control character, which JSON would escape, can never make a
rebuilt line match a stored MAC (the canonical bytes never contain one), so it is deferred
too and never passes by accident.

Each line's MAC needs only the MAC stored on the line before (`mac = HMAC(previous mac |
position | event)`), so deferring a line does not hold up the ones after it. Lines arrive
in chunks of `CHUNK` sequence numbers, each COPY its own short statement (no snapshot held
for a whole range), and memory stays flat: a chunk is consumed as it streams.

This module imports only the standard library, asyncpg and the MAC primitives of
`vault.crypto.mac` (the one crypto surface): worker processes (`vault.audit.verify_worker`)
start in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from vault.crypto.mac import hex_mac, keyed_state, same_mac

GENESIS = "0" * 64
#: Sequence numbers per COPY statement: large enough that a statement's start is noise,
#: small enough that no statement holds a snapshot for long.
CHUNK = 100_000
#: Session settings the line parsing relies on: timestamps printed in UTC, ISO style.
SESSION = {"timezone": "UTC", "datestyle": "ISO, MDY", "client_encoding": "UTF8"}


@dataclass(frozen=True, slots=True)
class Statements:
    """The SQL a range needs, built by the parent from the table definitions in code
    (`vault.audit.verify_sql`), so a worker imports none of them."""

    #: The query COPYed: `chain_pos, chain_mac, <event columns>`, `{lo}`/`{hi}` integer slots.
    copy: str
    #: The seal at or before `$1`: (chain_pos, chain_mac, seq).
    before: str
    #: Checkpoints with chain_pos between `$1` and `$2`: (chain_pos, seq, head).
    checkpoints: str
    #: The event columns (`EVENT_COLUMNS` order) of the events with seq = any(`$1`).
    events: str
    #: Sequence numbers per COPY statement (`CHUNK`; small only in tests).
    chunk: int = CHUNK


@dataclass(frozen=True, slots=True)
class RangeJob:
    """Events with `lo < seq <= hi`, checked from the seal stored at `lo` or before (or
    from `start`: chain_pos, mac, seq, where the live chain begins after pruning)."""

    lo: int
    hi: int
    #: (chain_pos, seq, head) of the checkpoint file's newest checkpoint, if any.
    outside: tuple[int, int, str] | None
    start: tuple[int, str, int] | None = None


@dataclass(frozen=True, slots=True)
class RangeResult:
    lo: int
    verified: int
    #: (position, seq) of the range's last sealed event, None for an empty range.
    end: tuple[int, int] | None
    #: (seq, problem) of the first break in the range.
    broken: tuple[int, str] | None
    #: (position, seq, head) of the range's last checkpoint, checked against the chain.
    last_checkpoint: tuple[int, int, str] | None


def disorder(seq: int, position: int, expected: int, last_seq: int) -> tuple[int, str]:
    """The break of an event at the wrong place: a position skipped or a seq behind."""
    if position != expected:
        return seq, f"chain position {expected} is missing (event deleted before seq {seq})"
    return seq, f"event seq {seq} is out of order (after seq {last_seq})"


def mismatch(seq: int) -> tuple[int, str]:
    return seq, f"event seq {seq} does not match its seal (altered or moved)"


def anchor_problem(seq: int, position: int, *, outside: bool) -> tuple[int, str]:
    if outside:
        return seq, (
            f"chain position {position} differs from the signed checkpoint in "
            "the checkpoint file (trail rewritten)"
        )
    return seq, f"checkpoint at position {position} disagrees with the chain"


def rebuild(previous: bytes, position: bytes, seq: bytes, at: bytes, rest: bytes) -> bytes | None:
    """The MAC input (`previous|position|canonical JSON`) of an event from its COPY text
    fields (seq, at, the rest still tab-separated), or None when the line is not in the
    shape this handles exactly. One `%` format builds it: concatenations cost more."""
    if b'"' in rest:
        return None
    body = b'"%s"' % rest.replace(b"\t", b'","')
    if b"\\" in body:
        body = body.replace(b'"\\N"', b"null")
        if b"\\" in body:
            return None
    # `YYYY-MM-DD HH:MM:SS[.f{1,6}]+00` -> `YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`
    size = len(at)
    if size == 29 and at[10] == 0x20 and at[19] == 0x2E and at[26:] == b"+00":
        return b'%s|%s|[%s,"%sT%s+00:00",%s]' % (previous, position, seq, at[:10], at[11:26], body)
    if size < 22 or at[10] != 0x20 or not at.endswith(b"+00"):
        return None
    if size == 22:
        clock = at[11:19]
    elif at[19] == 0x2E and size < 29:
        clock = at[11:-3] + b"0" * (29 - size)  # PostgreSQL drops trailing zeros
    else:
        return None
    return b'%s|%s|[%s,"%sT%s+00:00",%s]' % (previous, position, seq, at[:10], clock, body)


class StreamWalk:
    """The state of one range's walk: the MAC and position it expects next, the lines it
    deferred to the exact check, and the first break found."""

    def __init__(self, key: bytes, job: RangeJob, start: Any) -> None:
        self._copy = keyed_state(key).copy
        self.previous: bytes = (start[1] if start is not None else GENESIS).encode()
        self.expected: int = start[0] + 1 if start is not None else 1
        self.last_seq: int = start[2] if start is not None else 0
        self.outside = job.outside
        #: Checkpoints (seq, head) by position, for the chunk being read.
        self.checkpoints: dict[int, tuple[int, str]] = {}
        #: (seq, position, previous mac, stored mac, verified before it) to check exactly.
        self.deferred: list[tuple[int, int, bytes, bytes, int]] = []
        self.verified = 0
        self.last_cp: tuple[int, int, str] | None = None
        self.broken: tuple[int, str] | None = None
        self._tail = b""

    async def feed(self, chunk: bytes) -> None:
        """COPY output (`copy_from_query`'s sink)."""
        self._check_chunk(chunk)

    def _check_chunk(self, chunk: bytes) -> None:
        """Whole lines are checked, a partial last line waits for the next chunk."""
        if self.broken is not None:
            return  # the rest of the chunk streams by unread
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()
        self._check(lines)

    def _check(self, lines: list[bytes]) -> None:
        """The inner loop, the whole cost of a verification: a split, a rebuild, one copied
        HMAC state and a comparison per line; checkpoints looked up only at their places."""
        copy, deferred = self._copy, self.deferred
        marks = set(self.checkpoints)
        if self.outside is not None:
            marks.add(self.outside[0])
        previous, expected, last_seq = self.previous, self.expected, self.last_seq
        verified = self.verified
        try:
            for line in lines:
                pos_b, stored, seq_b, at, rest = line.split(b"\t", 4)
                position, seq = int(pos_b), int(seq_b)
                if position != expected or seq <= last_seq:
                    self.broken = disorder(seq, position, expected, last_seq)
                    return
                message = rebuild(previous, pos_b, seq_b, at, rest)
                if message is None:
                    deferred.append((seq, position, previous, stored, verified))
                else:
                    state = copy()
                    state.update(message)
                    if not same_mac(state.hexdigest().encode(), stored):
                        deferred.append((seq, position, previous, stored, verified))
                if position in marks and self._anchored(seq, position, stored):
                    return
                previous, last_seq, expected = stored, seq, expected + 1
                verified += 1
        finally:
            self.previous, self.expected, self.last_seq = previous, expected, last_seq
            self.verified = verified

    def _anchored(self, seq: int, position: int, stored: bytes) -> bool:
        """A position with a checkpoint; True (and `broken` set) if it disagrees."""
        head = stored.decode("ascii", "replace")
        cp = self.checkpoints.get(position)
        if cp is not None:
            if cp != (seq, head):
                self.broken = anchor_problem(seq, position, outside=False)
                return True
            self.last_cp = (position, seq, head)
        outside = self.outside
        if outside is not None and position == outside[0] and outside[1:] != (seq, head):
            self.broken = anchor_problem(seq, position, outside=True)
            return True
        return False

    async def settle(self, conn: asyncpg.Connection, sql: Statements, key: bytes) -> None:
        """Check the deferred lines with the chain's exact encoding, reading their events
        again as typed values; the first that fails is the range's break (it lies before
        any break found while streaming)."""
        if not self.deferred:
            return
        from vault.audit.chain import _canonical_values  # only for lines that need it

        seqs = [d[0] for d in self.deferred]
        rows = {r[0]: r for r in await conn.fetch(sql.events, seqs)}
        for seq, position, previous, stored, verified in self.deferred:
            row = rows.get(seq)
            message = b"%s|%d|" % (previous, position)
            if row is not None:
                if same_mac(hex_mac(key, message + _canonical_values(list(row))), stored):
                    continue
            self.broken, self.verified = mismatch(seq), verified
            break
        self.deferred = []


async def check_range(
    conn: asyncpg.Connection, sql: Statements, key: bytes, job: RangeJob, tick: Any
) -> RangeResult:
    """Check every sealed event of the range, chunk by chunk; the first break. `conn` has
    the `SESSION` settings; `tick(n)` is told of every chunk's events."""
    start: Any = job.start
    if start is None:
        row = await conn.fetchrow(sql.before, job.lo)
        start = (row[0], row[1], row[2]) if row is not None else None
    walk = StreamWalk(key, job, start)
    lo = job.lo
    while lo < job.hi and walk.broken is None:
        hi = min(job.hi, lo + sql.chunk)
        found = await conn.fetch(sql.checkpoints, walk.expected, walk.expected + (hi - lo))
        walk.checkpoints = {r[0]: (r[1], r[2]) for r in found}
        before = walk.verified
        await conn.copy_from_query(sql.copy.format(lo=int(lo), hi=int(hi)), output=walk.feed)
        await walk.settle(conn, sql, key)
        tick(max(0, walk.verified - before))
        lo = hi
    end = (walk.expected - 1, walk.last_seq) if walk.verified else None
    return RangeResult(job.lo, walk.verified, end, walk.broken, walk.last_cp)
