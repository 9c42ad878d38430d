"""A display name per API client; fields a customer leaves out of a consent

Issue 20 item 2: the privacy centre's access log names the internal system that read a
customer's data. The client's `name` is a technical id (`shop-backend`); `display_name`
(optional, set by `tresor clients create|update --display-name`) is what a customer reads
("Online-Shop"). Without one, the page keeps showing the name.

Issue 20 item 7: a customer giving a consent may leave out fields the purpose would reveal;
`consents.excluded_fields` lists them (comma-separated, sorted; NULL for none, so every
existing consent keeps covering all of its purpose's fields).

Revision ID: 0024
Revises: 0028
Create Date: 2026-12-04 19:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("display_name", sa.String(length=100), nullable=True))
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("excluded_fields", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_column("excluded_fields")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("display_name")
