"""subjects lose the index on kek_version (issue 19: key rotation at hardware speed)

Every row a key rotation re-wraps is a new row version with an entry in every index of
`subjects`; `ix_subjects_kek_version` was one of them and served no query: the rotation
walks the primary key (`kek_version != active` cannot use a btree), and counting the keys
per version or still pending reads every row anyway. Without it a re-wrap writes one index
entry (and its share of write-ahead log) less per DEK, and `kek_version` is no longer an
indexed column, so a re-wrap that finds room in its page is a heap-only update.

Downgrading creates the index again.

Revision ID: 0039
Revises: 0037
Create Date: 2026-12-05 09:05:00
"""

from alembic import op

revision = "0039"
down_revision = "0037"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_subjects_kek_version", table_name="subjects")


def downgrade() -> None:
    op.create_index("ix_subjects_kek_version", "subjects", ["kek_version"])
