"""subjects lose the index on kek_version and keep room in their pages (issue 19: key
rotation at hardware speed)

Every row a key rotation re-wraps is a new row version with an entry in every index of
`subjects`; `ix_subjects_kek_version` was one of them and served no query: the rotation
walks the primary key (`kek_version != active` cannot use a btree), and counting the keys
per version or still pending reads every row anyway. Without it a re-wrap writes one index
entry (and its share of write-ahead log) less per DEK, and `kek_version` is no longer an
indexed column, so a re-wrap that finds room in its page is a heap-only update (no index
entry at all).

On PostgreSQL the pages of `subjects` are filled to 85 % (`fillfactor`), room for one more
version of a row (about 700 bytes) in each: measured on 100,000 freshly copied subjects,
64 % of a rotation's re-wraps stayed in their page and the server spent 41 us of CPU per
DEK instead of 73 (the table full to the brim had to grow for every one). It costs a
freshly loaded table 15 % more heap pages; one rotation without room doubles the heap
anyway (every row gets a new version elsewhere), and vacuum reuses the room afterwards.
Only pages written from now on get the room; `VACUUM FULL subjects` gives it to all.

Downgrading creates the index again and restores the default fill factor.

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
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE subjects SET (fillfactor = 85)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE subjects RESET (fillfactor)")
    op.create_index("ix_subjects_kek_version", "subjects", ["kek_version"])
