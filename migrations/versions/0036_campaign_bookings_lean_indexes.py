"""campaign bookings keep only the indexes their queries use (issue 21: booking speed)

Every hold written or displaced by a booking also wrote an entry into each index of
`campaign_bookings`. Two of them served nothing a primary-key prefix does not:

- `ix_campaign_bookings_campaign_id_status`: every query naming a campaign reads it
  through the primary key (campaign_id, subject_id), whose prefix is the campaign;
- `ix_campaign_bookings_displaced_by`: a booking finds the holds it displaced in its own
  scratch table (`vault.campaigns.basket_holds`), not by this column.

On PostgreSQL the pages of `campaign_bookings` and `contact_budgets` are also filled only
to half (`fillfactor` 50): with `status` and `displaced_by` no longer indexed, marking a
hold displaced or used, and raising a counter row's points (none of its indexed columns
change), can then write the new row version into the same page (a heap-only update)
instead of adding an entry to every index.

Downgrading creates the indexes again and restores the default fill factor.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-05 02:40:00
"""

from alembic import op

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_campaign_bookings_campaign_id_status", table_name="campaign_bookings")
    op.drop_index("ix_campaign_bookings_displaced_by", table_name="campaign_bookings")
    if op.get_bind().dialect.name == "postgresql":
        for table in ("campaign_bookings", "contact_budgets"):
            op.execute(f"ALTER TABLE {table} SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("campaign_bookings", "contact_budgets"):
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    op.create_index(
        "ix_campaign_bookings_campaign_id_status", "campaign_bookings", ["campaign_id", "status"]
    )
    op.create_index("ix_campaign_bookings_displaced_by", "campaign_bookings", ["displaced_by"])
