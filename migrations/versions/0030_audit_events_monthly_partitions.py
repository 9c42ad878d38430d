"""audit events in monthly range partitions on PostgreSQL (issue 19)

Every lookup appends an event and nothing leaves the table: at the measured rate one node
writes hundreds of millions of events a day into one heap and its indexes. Partitioned by
month on `at`, a closed month is a table of its own: archive reads it, and retention
removes it by `DROP` (no `DELETE`, no dead tuples, no vacuum of the rest), and every index
stays the size of a month. `vault.audit.partitions` creates the months ahead (the jobs
process) and a `DEFAULT` partition catches an event whose month has no partition yet.

PostgreSQL needs the partition key in every unique constraint, so the primary key becomes
`(seq, at)`; `seq` stays unique in practice (one sequence, kept: its ownership moves to the
new column, so numbering continues where it was). The existing rows move with
`INSERT … SELECT` in sequence order; their months get partitions, as do the current month
and the three after it (by the database clock: a migration has no other). Indexes are
built after the rows are in (faster than maintaining them row by row).

`audit_seals` stays one table: a seal has no time, only the `seq` of its event, and every
reader of seals goes by `seq` (the chain head, the sealer's and verify's anchors), which a
table partitioned by time could not prune. It is narrow (three columns), appended in `seq`
order, so a month's seals are one contiguous key range.

SQLite keeps one table (it has no partitions): nothing changes there.

Downgrading copies the rows back into one plain table with the primary key `seq`.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-04 23:00:00
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

COLUMNS = (
    "seq",
    "at",
    "request_id",
    "actor_type",
    "actor_id",
    "action",
    "subject_id",
    "purpose",
    "fields",
    "decision",
    "reason",
    "consent_id",
    "detail",
)


def _copy(source: str) -> None:
    """`INSERT INTO audit_events (…) SELECT … FROM source ORDER BY seq`: in sequence order,
    so the rows of each month lie in time order (what the BRIN index on `at` relies on)."""
    columns = [sa.column(name) for name in COLUMNS]
    rows = sa.select(*sa.table(source, *columns).c).order_by(sa.column("seq"))
    op.execute(
        sa.insert(sa.table("audit_events", *(sa.column(n) for n in COLUMNS))).from_select(
            list(COLUMNS), rows
        )
    )


#: Months ahead of the current one that get a partition (as `ensure_ahead` does later).
AHEAD = 3


def _definition(sequence: str) -> str:
    """The columns of `audit_events` as migrations 0001-0011 left them."""
    return f"""
        seq BIGINT NOT NULL DEFAULT nextval('{sequence}'::regclass),
        at TIMESTAMP WITH TIME ZONE NOT NULL,
        request_id VARCHAR(64),
        actor_type VARCHAR(16) NOT NULL,
        actor_id VARCHAR(120) NOT NULL,
        action VARCHAR(64) NOT NULL,
        subject_id VARCHAR(36),
        purpose VARCHAR(100),
        fields VARCHAR(200),
        decision VARCHAR(8) NOT NULL,
        reason VARCHAR(64),
        consent_id VARCHAR(36),
        detail TEXT
    """


def _indexes(table: str) -> None:
    op.execute(f"CREATE INDEX ix_{table}_at ON {table} USING brin (at)")
    op.execute(f"CREATE INDEX ix_{table}_actor_id ON {table} (actor_id)")
    op.execute(f"CREATE INDEX ix_{table}_subject_id ON {table} (subject_id)")


def _rename(old: str, new: str, *, primary_key: str) -> None:
    """Rename the table and its constraint and indexes out of the way of the new one."""
    op.execute(f"ALTER TABLE {old} RENAME TO {new}")
    op.execute(f"ALTER TABLE {new} RENAME CONSTRAINT {primary_key} TO pk_{new}")
    for column in ("at", "actor_id", "subject_id"):
        op.execute(f"ALTER INDEX ix_audit_events_{column} RENAME TO ix_{new}_{column}")


def _sequence() -> str:
    found = op.get_bind().execute(text("SELECT pg_get_serial_sequence('audit_events', 'seq')"))
    name = found.scalar()
    if not name:
        raise RuntimeError("audit_events.seq owns no sequence: not the schema of 0029")
    return str(name)


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _months() -> list[date]:
    """The months that have events, and the current month with `AHEAD` after it."""
    bind = op.get_bind()
    with_rows = bind.execute(
        text(
            "SELECT DISTINCT date_trunc('month', at AT TIME ZONE 'UTC')::date "
            "FROM audit_events_plain"
        )
    ).scalars()
    current = bind.execute(
        text("SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date")
    ).scalar_one()
    months = set(with_rows)
    for _ in range(AHEAD + 1):
        months.add(current)
        current = _next_month(current)
    return sorted(months)


def _partition(month: date) -> None:
    name = f"audit_events_y{month.year:04d}m{month.month:02d}"
    op.execute(
        f"CREATE TABLE {name} PARTITION OF audit_events "
        f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') "
        f"TO ('{_next_month(month).isoformat()} 00:00:00+00')"
    )


def _no_statement_timeout() -> None:
    """Copying the trail takes as long as the trail is big: `migrations/env.py`'s statement
    timeout (meant to stop waiting behind live traffic) would cut it off. The lock timeout
    stays, so the migration still fails fast when the table is busy."""
    op.execute("SET LOCAL statement_timeout = 0")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _no_statement_timeout()
    sequence = _sequence()
    _rename("audit_events", "audit_events_plain", primary_key="pk_audit_events")
    op.execute(f"CREATE TABLE audit_events ({_definition(sequence)}) PARTITION BY RANGE (at)")
    for month in _months():
        _partition(month)
    op.execute("CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT")
    _copy("audit_events_plain")
    op.execute("ALTER TABLE audit_events ADD CONSTRAINT pk_audit_events PRIMARY KEY (seq, at)")
    _indexes("audit_events")
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY audit_events.seq")
    op.execute("DROP TABLE audit_events_plain")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _no_statement_timeout()
    sequence = _sequence()
    _rename("audit_events", "audit_events_partitioned", primary_key="pk_audit_events")
    op.execute(f"CREATE TABLE audit_events ({_definition(sequence)})")
    _copy("audit_events_partitioned")
    op.execute("ALTER TABLE audit_events ADD CONSTRAINT pk_audit_events PRIMARY KEY (seq)")
    _indexes("audit_events")
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY audit_events.seq")
    op.execute("DROP TABLE audit_events_partitioned")
