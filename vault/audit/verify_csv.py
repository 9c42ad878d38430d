"""The fast check of the audit chain: COPY's CSV lines turned into MAC inputs in bulk.

The chunk's COPY (`verify_sql`) prints each sealed event as one CSV line,
`chain_mac,chain_pos,seq,"at",<the other event columns>`, with every text column quoted,
`null` for NULL and a backslash before a quote or a backslash in a value. From the fourth
field on, that is the chain's canonical JSON (`vault.audit.chain_links._canonical_values`)
already: strings in quotes with `\\"` and `\\\\`, `null`, commas. Only the timestamp needs
work: PostgreSQL prints `2026-06-08 05:32:45.1234+00`, the chain has
`2026-06-08T05:32:45.123400+00:00` (PostgreSQL drops trailing zeros of the fraction,
`datetime.isoformat` writes all six). So an event costs one split, one `%` format and one
MAC in Python, and the MACs of a block of lines are compared at once.

Why a match proves the event: the rebuilt bytes are a one-to-one function of the stored
values (CSV's escapes are reversible, and the timestamp's fields keep their places), and
they can only equal canonical JSON where every escape means in JSON what it meant in CSV.
A value CSV leaves raw but JSON escapes (a control character, a newline, which also splits
the line) never matches; such a line, or one of another shape, or a wrong MAC, makes the
walk stop accepting (`failed`): the exact check (`verify_exact`) takes over from the last
event accepted and names any break. Each MAC input starts with the MAC *stored* on the
line before, and every stored MAC is compared, so each line is checked on its own and the
order of the lines is proven by the chain itself; the positions are checked at each
block's ends and wherever a checkpoint lies.

Standard library and `vault.crypto.mac` only: worker processes import it.
"""

from __future__ import annotations

from vault.audit.verify_state import ChainState
from vault.crypto.mac import keyed_state, same_mac

#: Zeros completing the fraction of a quoted timestamp to six digits, by the field's length
#: (`"YYYY-MM-DD HH:MM:SS[.f]+00"`); a length not here is no timestamp this handles.
_PAD = {24: b"", 26: b"00000", 27: b"0000", 28: b"000", 29: b"00", 30: b"0", 31: b""}
#: previous mac | position | [seq,"date T clock+00:00", the other columns]
_MESSAGE = b'%s|%s|[%s,%sT%s%s+00:00",%s]'


class CsvWalk:
    """Checks the lines of one chunk's COPY as they stream, advancing `state` block by
    block (a block: the whole lines of what arrived); accepts nothing after a line it
    cannot accept."""

    def __init__(self, key: bytes, state: ChainState) -> None:
        self._copy = keyed_state(key).copy
        self.state = state
        self._marks = state.marks()
        self._tail = b""
        #: Set at the first line not accepted; the rest of the chunk streams by unread.
        self.failed = False

    async def feed(self, data: bytes) -> None:
        """COPY output (`copy_from_query`'s sink). asyncpg hands over a `bytearray`: made
        `bytes` once here, every piece split from it is cheaper to make and to format."""
        self.check(bytes(data))

    def check(self, data: bytes) -> None:
        """Whole lines are checked, a partial last line waits for the next data."""
        if self.failed:
            return
        lines = (self._tail + data if self._tail else data).split(b"\n")
        self._tail = lines.pop()
        if lines and not self._accept(lines):
            self.failed = True

    def finish(self) -> bool:
        """At the end of the chunk's COPY: whether every line was accepted."""
        return not self.failed and not self._tail

    def _accept(self, lines: list[bytes]) -> bool:
        """Check a block; advance the state past it only if every line holds."""
        copy, pad, message = self._copy, _PAD, _MESSAGE
        previous = self.state.previous
        digests: list[str] = []
        stored: list[bytes] = []
        digest, keep = digests.append, stored.append
        try:
            for line in lines:
                mac, position, seq, at, rest = line.split(b",", 4)
                fields = (previous, position, seq, at[:11], at[12:-4], pad[len(at)], rest)
                keyed = copy()
                keyed.update(message % fields)
                digest(keyed.hexdigest())
                keep(mac)
                previous = mac
            if not same_mac("".join(digests).encode("ascii"), b"".join(stored)):
                return False
            return self._advance(lines, previous)
        except (ValueError, KeyError):  # a line of another shape
            return False

    def _advance(self, lines: list[bytes], previous: bytes) -> bool:
        """The block's MACs hold: check its ends' positions and its checkpoints, then move
        the state past it."""
        state, count = self.state, len(lines)
        first, last = lines[0].split(b",", 3), lines[-1].split(b",", 3)
        top = state.expected + count - 1
        if int(first[1]) != state.expected or int(last[1]) != top:
            return False
        if int(first[2]) <= state.last_seq:
            return False
        last_cp = state.last_cp
        for position in self._marks:
            if state.expected <= position <= top:
                mac, at, seq = lines[position - state.expected].split(b",", 3)[:3]
                head = mac.decode("ascii")
                if int(at) != position or state.anchor_break(int(seq), position, head):
                    return False
                if position in state.checkpoints:
                    last_cp = (position, int(seq), head)
        state.previous, state.expected, state.last_seq = previous, top + 1, int(last[2])
        state.verified += count
        state.last_cp = last_cp
        return True
