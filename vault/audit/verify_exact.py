"""The exact check of the audit chain on PostgreSQL: typed rows, the chain's own encoding.

It takes over where the fast check of CSV lines (`verify_csv`) stopped accepting, up to
the end of the chunk, and it alone reports breaks: an event at the wrong position or out
of `seq` order, a MAC that does not match, a checkpoint that disagrees; and it notes the
first event without a seal (inserted behind the chain, `ChainState.behind`). The rows are read
in spans of `SPAN` sequence numbers (memory stays flat; a span holds every row of its
sequence numbers, so an event duplicated under one number cannot hide at a page's edge).

It starts one sequence number early, at the last event the fast check accepted: a second
row under that number (the primary key is `(seq, at)` on the partitioned table) lies after
the accepted one and must be found out of order, not skipped.
"""

from __future__ import annotations

import asyncpg

from vault.audit.verify_state import ChainState, Statements, disorder, mismatch
from vault.crypto.mac import hex_mac, same_mac

#: Sequence numbers per read of typed rows.
SPAN = 5_000


async def check_exact(
    conn: asyncpg.Connection, sql: Statements, key: bytes, state: ChainState, hi: int
) -> None:
    """Check the sealed events after the last one `state` accepted, up to `seq` `hi`;
    `state.broken` is set at the first break."""
    from vault.audit.chain_links import _canonical_values  # only when this check runs

    skip = state.verified > 0 or state.last_seq > 0  # the accepted event, read again
    lo = state.last_seq - 1 if skip else state.last_seq
    while lo < hi and state.broken is None:
        top = min(hi, lo + SPAN)
        for row in await conn.fetch(sql.rows, lo, top):
            position, seq, head = row[0], row[2], row[1]
            if skip:
                skip = False
                if seq == state.last_seq and position in (None, state.expected - 1):
                    if head is None or head.encode() == state.previous:
                        continue  # the event the state stands after (or a pruned one's row)
            if position is None:  # no seal (the outer join's NULLs): not part of the chain
                if state.behind is None:
                    state.behind = seq
                continue
            stored = head.encode()
            if position != state.expected or seq <= state.last_seq:
                state.broken = disorder(seq, position, state.expected, state.last_seq)
                return
            prefix = b"%s|%d|" % (state.previous, position)
            if not same_mac(hex_mac(key, prefix + _canonical_values(list(row[2:]))), stored):
                state.broken = mismatch(seq)
                return
            broken = state.anchor_break(seq, position, head)
            if broken is not None:
                state.broken = broken
                return
            if position in state.checkpoints:
                state.last_cp = (position, seq, head)
            state.previous, state.expected, state.last_seq = stored, position + 1, seq
            state.verified += 1
        lo = top
