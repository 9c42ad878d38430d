"""Consents scoped to brands by their evidence

Issue 21 item 0: a consent given at one brand's touchpoint covers that brand, not every
brand of the group (`tresor_finance` may be a controller of its own). `consents.brands`
lists the brands a consent's evidence names (comma-separated, sorted; NULL: every brand the
purpose covers, so every existing consent keeps its meaning). A lookup announcing a contact
for another brand is `brand_not_covered`.

Revision ID: 0038
Revises: 0031
Create Date: 2026-12-04 23:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0038"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("brands", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_column("brands")
