"""The statements a verification of ranges runs on PostgreSQL, from the table definitions.

Built once in the process that starts a verification and handed to its workers as text
(`verify_stream.Statements`), so a worker imports neither SQLAlchemy nor the table
definitions. Every identifier comes from code, never from input; the only values put into
the text are the integer bounds of a COPY chunk (`COPY` takes no parameters).
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from vault.audit.chain import EVENT_COLUMNS
from vault.audit.verify_stream import Statements
from vault.storage.audit_tables import audit_checkpoints, audit_events, audit_seals
from vault.storage.pg_direct import Compiled

_EVENTS = (
    select(*(audit_events.c[name] for name in EVENT_COLUMNS))
    .where(audit_events.c.seq == bindparam("seqs", expanding=False).any_())
    .order_by(audit_events.c.seq)
)


def _copy() -> str:
    """The query whose rows are COPYed (`copy_from_query` wraps it in `COPY (...) TO
    STDOUT`): the sealed events of one chunk, seal columns first. The same bounds on the
    seals as on the events: without them PostgreSQL merge-joins a chunk against every seal
    from the first, so each chunk would cost O(its position)."""
    events, seals = audit_events.name, audit_seals.name
    columns = ", ".join(f"e.{name}" for name in EVENT_COLUMNS)
    return (
        f"SELECT s.chain_pos, s.chain_mac, {columns} "  # noqa: S608 - names from code
        f"FROM {events} AS e JOIN {seals} AS s ON s.seq = e.seq "
        "WHERE e.seq > {lo} AND e.seq <= {hi} AND s.seq > {lo} AND s.seq <= {hi} "
        "ORDER BY e.seq"
    )


def statements(chunk: int) -> Statements:
    seals, checkpoints = audit_seals.name, audit_checkpoints.name
    return Statements(
        copy=_copy(),
        before=(
            f"SELECT chain_pos, chain_mac, seq FROM {seals} "  # noqa: S608 - names from code
            "WHERE seq <= $1 ORDER BY seq DESC LIMIT 1"
        ),
        checkpoints=(
            f"SELECT chain_pos, seq, head FROM {checkpoints} "  # noqa: S608 - names from code
            "WHERE chain_pos BETWEEN $1 AND $2"
        ),
        events=Compiled(_EVENTS).sql,
        chunk=chunk,
    )
