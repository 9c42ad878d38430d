"""subjects without the kek_version index, with room in their pages (issue 19: rotation)

Every row a key rotation re-wraps is a new row version with an entry in every index of
`subjects`; `ix_subjects_kek_version` was one of them and served no query: the rotation
walks the primary key (`kek_version != active` cannot use a btree), and counting the keys
per version or still pending reads every row anyway. Without it a re-wrap writes one index
entry (and its share of write-ahead log) less per DEK, and `kek_version` is no longer an
indexed column, so a re-wrap that finds room in its page is a heap-only update (no index
entry at all).

On PostgreSQL the pages of `subjects` are filled to 80 % (`fillfactor`): room for two more
versions of a row (about 700 bytes each) in each page. A page's room is freed again only
once the batch that used it is older than every running transaction, and two workers'
batches overlap, so one spare version was not enough: measured on 100,000 freshly loaded
subjects (2 workers, in random id order, under a load average of 13-16), fill factor 100
kept 0 % of the re-wraps in their page and the server spent 70-77 us of CPU per DEK; 85 %
kept 35-79 % (26-60 us); 80 % kept 80-84 % (20-25 us). It costs a freshly loaded table a
quarter more heap pages (about 170 bytes per subject, the indexes unchanged); a rotation
without room doubles the heap anyway (every row gets a new version elsewhere: 8,334 pages
became 16,668, at 80 % 12,500 became 13,352), and vacuum reuses the room afterwards. Only
pages written from now on get the room; `VACUUM FULL subjects` gives it to all.

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
        op.execute("ALTER TABLE subjects SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE subjects RESET (fillfactor)")
    op.create_index("ix_subjects_kek_version", "subjects", ["kek_version"])
