"""failed mails a DPO can retry or discard (issue 20, the last pieces)

- `mail_outbox.valid_until`: until when the mail's content means something (a sign-in
  code's expiry, a double opt-in's confirmation deadline); NULL for notices that do not
  go stale. A failed mail is retriable by a DPO only before it, and its sealed message is
  kept for that until then (`vault.mail_outbox`). Existing rows keep NULL: their failed
  mails have no sealed message left, so none of them becomes retriable.
- `mail_outbox.dpo_note`: the reason the DPO gave for the last retry or discard (shown on
  the console's mail page; the audit event records that a reason was given).

Downgrading drops both columns and turns `discarded` rows into `failed` ones (the older
sweep deletes only sent and failed rows).

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-05 02:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("dpo_note", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    op.execute("UPDATE mail_outbox SET status = 'failed', sealed = NULL WHERE status = 'discarded'")
    with op.batch_alter_table("mail_outbox", schema=None) as batch_op:
        batch_op.drop_column("dpo_note")
        batch_op.drop_column("valid_until")
