"""What the checks of one range on PostgreSQL share: the statements, the range, its result,
and where the walk along the chain stands (`ChainState`), read and advanced by the fast
check of CSV lines (`verify_csv`) and the exact check of typed rows (`verify_exact`).

Standard library only: worker processes import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64
#: Sequence numbers per COPY statement: large enough that a statement's start is noise,
#: small enough that no statement holds a snapshot for long.
CHUNK = 100_000


@dataclass(frozen=True, slots=True)
class Statements:
    """The SQL a range needs, built by the parent from the table definitions in code
    (`vault.audit.verify_sql`), so a worker imports none of them."""

    #: The query COPYed: `chain_mac, chain_pos, <event columns>` in `seq` order, with
    #: `{lo}`/`{hi}` integer slots; printed as the CSV `verify_csv` reads (`csv_options`).
    copy: str
    #: The columns COPY quotes even where CSV would not: every text column of the event.
    quoted: tuple[str, ...]
    #: The seal at or before `$1`: (chain_pos, chain_mac, seq).
    before: str
    #: Checkpoints with chain_pos between `$1` and `$2`: (chain_pos, seq, head).
    checkpoints: str
    #: `chain_pos, chain_mac, <event columns>` of the sealed events with `$1 < seq <= $2`,
    #: in `seq` order, as typed values (the exact check).
    rows: str
    #: Sequence numbers per COPY statement (`CHUNK`; small only in tests).
    chunk: int = CHUNK

    def csv_options(self) -> dict[str, Any]:
        """`copy_from_query`'s options for the CSV form `verify_csv` reads: every text
        column quoted (so each is a JSON string), NULL printed as `null`, a backslash
        before a quote or a backslash in a value (JSON's escapes for them)."""
        return {"format": "csv", "null": "null", "escape": "\\", "force_quote": self.quoted}


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
    #: The first event of the range without a seal (inserted behind the chain): reported
    #: only when no range has a break of the chain itself, which is reported first.
    behind: int | None = None


@dataclass(slots=True)
class ChainState:
    """Where a range's walk stands: what both checks read and advance."""

    #: The MAC (ASCII hex) of the event before the next one.
    previous: bytes
    #: The chain position the next event must have.
    expected: int
    #: The sequence number of the last event checked.
    last_seq: int
    #: (chain_pos, seq, head) of the checkpoint file's newest checkpoint, if any.
    outside: tuple[int, int, str] | None
    verified: int = 0
    last_cp: tuple[int, int, str] | None = None
    broken: tuple[int, str] | None = None
    #: The first event without a seal met (`RangeResult.behind`).
    behind: int | None = None
    #: Checkpoints (seq, head) by position, for the chunk being checked.
    checkpoints: dict[int, tuple[int, str]] = field(default_factory=dict)

    @classmethod
    def at(cls, start: Any, outside: tuple[int, int, str] | None) -> ChainState:
        """The state after `start` (chain_pos, mac, seq), or at the chain's beginning."""
        if start is None:
            return cls(GENESIS.encode(), 1, 0, outside)
        return cls(str(start[1]).encode(), int(start[0]) + 1, int(start[2]), outside)

    def anchor_break(self, seq: int, position: int, mac: str) -> tuple[int, str] | None:
        """The break at a position with a checkpoint (in the database or the checkpoint
        file) that the event there disagrees with; None if it agrees or there is none."""
        cp = self.checkpoints.get(position)
        if cp is not None and cp != (seq, mac):
            return anchor_problem(seq, position, outside=False)
        outside = self.outside
        if outside is not None and position == outside[0] and outside[1:] != (seq, mac):
            return anchor_problem(seq, position, outside=True)
        return None

    def marks(self) -> list[int]:
        """The positions with a checkpoint to compare, in order."""
        marks = set(self.checkpoints)
        if self.outside is not None:
            marks.add(self.outside[0])
        return sorted(marks)


def disorder(seq: int, position: int, expected: int, last_seq: int) -> tuple[int, str]:
    """The break of an event at the wrong place: a position skipped or a seq behind."""
    if position != expected:
        return seq, f"chain position {expected} is missing (event deleted before seq {seq})"
    return seq, f"event seq {seq} is out of order (after seq {last_seq})"


def inserted(seq: int) -> tuple[int, str]:
    """The break of an event without a seal inside the sealed range."""
    return seq, f"event seq {seq} was inserted behind the sealed chain"


def mismatch(seq: int) -> tuple[int, str]:
    return seq, f"event seq {seq} does not match its seal (altered or moved)"


def anchor_problem(seq: int, position: int, *, outside: bool) -> tuple[int, str]:
    if outside:
        return seq, (
            f"chain position {position} differs from the signed checkpoint in "
            "the checkpoint file (trail rewritten)"
        )
    return seq, f"checkpoint at position {position} disagrees with the chain"
