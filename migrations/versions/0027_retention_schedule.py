"""retention sweep in O(due subjects) (issue 19 item 6)

- `subjects.retention_check_at` (indexed with `id` for the sweep's keyset): the earliest
  time the retention sweeper must look at the subject, stamped by every write that can
  make it due (`vault.subjects.retention_schedule`); the sweeper reads only stamped
  subjects instead of anti-joining every subject with its bases on each run.
- `consents (status, expires_at)` and `consents (status, confirm_deadline)`: expiry and
  lapse find the bases due by an index range instead of a scan of every basis.
- Partial indexes over the rows from before migration 0013 that the retention run brings
  up to date (`subjects.contact_revision = 0`, plaintext free text in `consents`): found
  without a scan of every row, and empty once done.

The upgrade stamps every active or restricted subject without a basis in force, so the
first sweep after it looks at each of them once (what every sweep did before).
The indexes are built last, CONCURRENTLY on PostgreSQL (`create_index_concurrently`).
Downgrading drops the column and the indexes.

Revision ID: 0027
Revises: 0022
Create Date: 2026-12-04 19:45:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from vault.storage.db import create_index_concurrently

revision = "0027"
down_revision = "0022"
branch_labels = None
depends_on = None

#: name, table, columns, partial index condition
INDEXES: list[tuple[str, str, list[str], str | None]] = [
    ("ix_subjects_retention_check_at_id", "subjects", ["retention_check_at", "id"], None),
    ("ix_consents_status_expires_at", "consents", ["status", "expires_at"], None),
    ("ix_consents_status_confirm_deadline", "consents", ["status", "confirm_deadline"], None),
    ("ix_subjects_legacy_revision", "subjects", ["id"], "contact_revision = 0"),
    (
        "ix_consents_legacy_texts",
        "consents",
        ["id"],
        "reference IS NOT NULL OR notice_version IS NOT NULL",
    ),
]


def upgrade() -> None:
    with op.batch_alter_table("subjects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention_check_at", sa.DateTime(timezone=True)))
    stamp = sa.text(
        "UPDATE subjects SET retention_check_at = :now "
        "WHERE status IN ('active', 'restricted') AND NOT EXISTS ("
        "SELECT 1 FROM consents WHERE consents.subject_id = subjects.id "
        "AND consents.status IN ('granted', 'active', 'pending_confirmation'))"
    ).bindparams(sa.bindparam("now", datetime.now(UTC), type_=sa.DateTime(timezone=True)))
    op.execute(stamp)
    # Last: built CONCURRENTLY on PostgreSQL, lookups and writes go on meanwhile.
    for name, table, columns, where in INDEXES:
        kw = (
            {}
            if where is None
            else {"postgresql_where": sa.text(where), "sqlite_where": sa.text(where)}
        )
        create_index_concurrently(name, table, columns, **kw)


def downgrade() -> None:
    for name, table, _, _ in INDEXES:
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("subjects", schema=None) as batch_op:
        batch_op.drop_column("retention_check_at")
