"""campaign bookings' pages keep room for every hold to be displaced in place (issue 21)

A displacing booking marks the holds it displaces (`status`, `displaced_by`); setting
`displaced_by` (36 characters where it was empty) makes the row version about 40 bytes
longer than the one it replaces. At `fillfactor` 50 (migration 0036) a page of about 30
holds has room for only about 80 % of those longer versions: the rest moved to another
page, with an entry in each index of `campaign_bookings`. At 40 a page holds about 24
holds and has room for all of their displaced versions, so every mark is a heap-only
update. Measured on 200,000 holds (displacing all of them with one UPDATE, load average
about 3): at 50, 80 % heap-only, 326,019 WAL records, 97 MB of WAL, 460-755 ms; at 40,
100 % heap-only, 200,000 records, 51 MB, 234-283 ms. Inserting the holds writes a fifth
more heap pages (the indexes unchanged). Only pages written from now on get the room;
`VACUUM FULL campaign_bookings` gives it to all.

Downgrading restores the fill factor of 0036.

Revision ID: 0040
Revises: 0039
Create Date: 2026-12-05 15:50:00
"""

from alembic import op

revision = "0040"
down_revision = "0039"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE campaign_bookings SET (fillfactor = 40)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE campaign_bookings SET (fillfactor = 50)")
