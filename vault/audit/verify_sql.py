"""The statements a verification of ranges runs on PostgreSQL, from the table definitions.

Built once in the process that starts a verification and handed to its workers as text
(`verify_state.Statements`), so a worker imports neither SQLAlchemy nor the table
definitions. Every identifier comes from code, never from input; the only values put into
the text are the integer bounds of a COPY chunk (`COPY` takes no parameters).
"""

from __future__ import annotations

from vault.audit.chain_links import EVENT_COLUMNS
from vault.audit.verify_state import Statements
from vault.storage.audit_tables import audit_checkpoints, audit_events, audit_seals


def _sealed(seal_columns: str, lo: str, hi: str) -> str:
    """The events of `lo < seq <= hi` with their seals, seal columns first, in `seq` order.

    An outer join: an event without a seal inside the sealed range comes out with NULL
    seal columns, so the walk names an event inserted behind the chain where it lies, for
    nothing more than the join it does anyway (no separate anti-join over every event,
    which cost more than the whole verification at ten million events). The same bounds on
    the seals as on the events: without them PostgreSQL merge-joins a chunk against every
    seal from the first, so each chunk would cost O(its position)."""
    events, seals = audit_events.name, audit_seals.name
    columns = ", ".join(f"e.{name}" for name in EVENT_COLUMNS)
    return (
        f"SELECT {seal_columns}, {columns} "  # noqa: S608 - names from code
        f"FROM {events} AS e LEFT JOIN {seals} AS s "
        f"ON s.seq = e.seq AND s.seq > {lo} AND s.seq <= {hi} "
        f"WHERE e.seq > {lo} AND e.seq <= {hi} ORDER BY e.seq"
    )


def statements(chunk: int) -> Statements:
    seals, checkpoints = audit_seals.name, audit_checkpoints.name
    return Statements(
        # The MAC first and bare (a line's first 64 bytes), then the position, the event.
        copy=_sealed("s.chain_mac, s.chain_pos", "{lo}", "{hi}"),
        quoted=tuple(name for name in EVENT_COLUMNS if name != "seq"),
        before=(
            f"SELECT chain_pos, chain_mac, seq FROM {seals} "  # noqa: S608 - names from code
            "WHERE seq <= $1 ORDER BY seq DESC LIMIT 1"
        ),
        checkpoints=(
            f"SELECT chain_pos, seq, head FROM {checkpoints} "  # noqa: S608 - names from code
            "WHERE chain_pos BETWEEN $1 AND $2"
        ),
        rows=_sealed("s.chain_pos, s.chain_mac", "$1", "$2"),
        chunk=chunk,
    )
