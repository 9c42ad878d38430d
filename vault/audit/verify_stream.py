"""One range of the audit chain checked on PostgreSQL, chunk by chunk, from a COPY stream.

Each chunk of `CHUNK` sequence numbers is one short `COPY ... TO STDOUT` statement (no
snapshot held for a whole range) in CSV, checked as it streams by `verify_csv.CsvWalk`: in
that form a line is almost the chain's canonical JSON already, so an event costs a split,
one format and one MAC in Python. The walk only ever accepts: the first line it cannot
rebuild or whose MAC differs, and everything after it in the chunk, is checked again by
`verify_exact` from typed rows with the chain's own encoding, and only that check reports
a break (naming the event), so every message is the same as with the exact check alone.

Memory stays flat: a chunk is consumed as it streams, the exact check reads small spans.

This module and the two it drives import only the standard library, asyncpg and the MAC
primitives of `vault.crypto.mac` (the one crypto surface), so worker processes
(`vault.audit.verify_worker`) start in a fraction of a second; the exact check imports the
chain's encoding only when it runs.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from vault.audit.verify_csv import CsvWalk
from vault.audit.verify_exact import check_exact
from vault.audit.verify_state import ChainState, RangeJob, RangeResult, Statements

#: Session settings for the verification's connections. The line parsing relies on
#: timestamps printed in UTC, ISO style. The planner settings give each chunk's COPY the
#: plan that costs least per event: a merge join of the two primary-key scans, already in
#: `seq` order. Left alone, PostgreSQL misjudges the join (it multiplies the two tables'
#: range conditions, expecting a hundredth of the rows) and picks a parallel hash join and
#: a sort, twice the CPU per event; parallel workers only compete with the verification's
#: own processes, one per core.
SESSION = {
    "timezone": "UTC",
    "datestyle": "ISO, MDY",
    "client_encoding": "UTF8",
    "max_parallel_workers_per_gather": "0",
    "enable_hashjoin": "off",
    "enable_sort": "off",
    "jit": "off",
}


async def check_range(
    conn: asyncpg.Connection, sql: Statements, key: bytes, job: RangeJob, tick: Any
) -> RangeResult:
    """Check every sealed event of the range, chunk by chunk; the first break. `conn` has
    the `SESSION` settings; `tick(n)` is told of every chunk's events."""
    start: Any = job.start
    if start is None:
        row = await conn.fetchrow(sql.before, job.lo)
        start = (row[0], row[1], row[2]) if row is not None else None
    state = ChainState.at(start, job.outside)
    lo = job.lo
    while lo < job.hi and state.broken is None:
        hi = min(job.hi, lo + sql.chunk)
        found = await conn.fetch(sql.checkpoints, state.expected, state.expected + (hi - lo))
        state.checkpoints = {r[0]: (r[1], r[2]) for r in found}
        before = state.verified
        walk = CsvWalk(key, state)
        query = sql.copy.format(lo=int(lo), hi=int(hi))
        await conn.copy_from_query(query, output=walk.feed, **sql.csv_options())
        if not walk.finish():
            # What the walk did not accept, from the last event it did, checked exactly.
            await check_exact(conn, sql, key, state, hi)
        tick(max(0, state.verified - before))
        lo = hi
    end = (state.expected - 1, state.last_seq) if state.verified else None
    return RangeResult(job.lo, state.verified, end, state.broken, state.last_cp, state.behind)
