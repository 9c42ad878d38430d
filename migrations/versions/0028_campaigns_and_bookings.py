"""campaigns and bookings (issue 21 items 1, 2)

- `campaigns`: planned campaigns (name, brand, type, channel, priority and rank, purpose,
  touchpoint, send window and its basket month, audience kind, owner, state);
- `campaign_audience`: the subject ids of a campaign's audience;
- `campaign_bookings`: a campaign's points held per customer and month, with status;
- `plan_months`: one lock row per basket month for bookings;
- `contact_budgets.booked_tenths`: points held by bookings, which contacts outside a
  booking may not use.

Downgrading drops them; bookings are then forgotten (the used points stay).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-04 19:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("contact_budgets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("booked_tenths", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("brand", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=32), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("order_key", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=100), nullable=False),
        sa.Column("touchpoint", sa.String(length=100), nullable=True),
        sa.Column("window_start", TZ, nullable=False),
        sa.Column("window_end", TZ, nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("audience_kind", sa.String(length=8), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index("ix_campaigns_month_state", "campaigns", ["month", "state"])
    op.create_table(
        "campaign_audience",
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "subject_id", name=op.f("pk_campaign_audience")),
    )
    op.create_table(
        "campaign_bookings",
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("points_tenths", sa.Integer(), nullable=False),
        sa.Column("order_key", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("displaced_by", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("campaign_id", "subject_id", name=op.f("pk_campaign_bookings")),
    )
    op.create_index(
        "ix_campaign_bookings_subject_id_month", "campaign_bookings", ["subject_id", "month"]
    )
    op.create_index(
        "ix_campaign_bookings_campaign_id_status", "campaign_bookings", ["campaign_id", "status"]
    )
    op.create_index("ix_campaign_bookings_displaced_by", "campaign_bookings", ["displaced_by"])
    op.create_table(
        "plan_months",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_plan_months")),
    )


def downgrade() -> None:
    op.drop_table("plan_months")
    op.drop_index("ix_campaign_bookings_displaced_by", table_name="campaign_bookings")
    op.drop_index("ix_campaign_bookings_campaign_id_status", table_name="campaign_bookings")
    op.drop_index("ix_campaign_bookings_subject_id_month", table_name="campaign_bookings")
    op.drop_table("campaign_bookings")
    op.drop_table("campaign_audience")
    op.drop_index("ix_campaigns_month_state", table_name="campaigns")
    op.drop_table("campaigns")
    with op.batch_alter_table("contact_budgets", schema=None) as batch_op:
        batch_op.drop_column("booked_tenths")
