"""A display name per API client, shown to customers in place of its technical name

Issue 20 item 2: the privacy centre's access log names the internal system that read a
customer's data. The client's `name` is a technical id (`shop-backend`); `display_name`
(optional, set by `tresor clients create|update --display-name`) is what a customer reads
("Online-Shop"). Without one, the page keeps showing the name.

Revision ID: 0024
Revises: 0021
Create Date: 2026-12-04 19:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("display_name", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("display_name")
