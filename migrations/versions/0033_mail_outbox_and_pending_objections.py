"""the mail outbox, sent with retries (issue 20 item 9); pending Art. 21(1) objections
restrict (issue 20 item 7)

- `mail_outbox`: one row per mail; the message is sealed (`sealed`, NULL once sent or
  given up), `status` pending / sent / failed, the attempts, the next attempt's time (also
  the claim's lease), when to give up, and the last error's class.

- `consents.objection_pending_at`: since when an Art. 21(1) objection to a
  legitimate-interest basis is undecided; processing for it is restricted meanwhile
  (Art. 18(1)(d)).

Downgrading drops the table (mails still pending then are lost: send or fail them first)
and the column (pending objections then no longer restrict until decided).

Revision ID: 0033
Revises: 0038
Create Date: 2026-12-04 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0038"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("give_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=64), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_outbox")),
    )
    op.create_index(
        "ix_mail_outbox_status_next_attempt_at", "mail_outbox", ["status", "next_attempt_at"]
    )
    op.create_index("ix_mail_outbox_subject_id", "mail_outbox", ["subject_id"])
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("objection_pending_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_column("objection_pending_at")
    op.drop_index("ix_mail_outbox_subject_id", table_name="mail_outbox")
    op.drop_index("ix_mail_outbox_status_next_attempt_at", table_name="mail_outbox")
    op.drop_table("mail_outbox")
