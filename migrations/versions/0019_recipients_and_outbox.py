"""recipients: the transactional outbox of domain events, recipients, deliveries

Issue 16: Tresor tells every system that received a customer's data when the customer
changes their mind. Each change (consent granted/withdrawn/expired, basis ended, subject
rectified/restricted/objected/erased, preferences changed) writes a `domain_events` row in
its own transaction; the fan-out turns each into `deliveries` for the recipients concerned
(`recipients`, `recipient_subscriptions`), signed with a secret wrapped by the KEK
(`recipient_secrets`). All new tables: nothing deployed reads or writes them, so the
running code is unaffected. No contact value is stored: subject ids, purposes and field
names only.

Downgrading drops the tables and with them any undelivered notice.

Revision ID: 0019
Revises: 0014
Create Date: 2026-12-04 16:42:52
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "domain_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("purposes", sa.Text(), nullable=False),
        sa.Column("fields", sa.String(length=200), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fanned_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_domain_events")),
        sa.UniqueConstraint("id", name=op.f("uq_domain_events_id")),
    )
    with op.batch_alter_table("domain_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_domain_events_fanned_out_at"), ["fanned_out_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_domain_events_subject_id"), ["subject_id"], unique=False
        )

    op.create_table(
        "recipients",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("client_name", sa.String(length=100), nullable=True),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=500), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recipients")),
        sa.UniqueConstraint("client_name", name=op.f("uq_recipients_client_name")),
        sa.UniqueConstraint("name", name=op.f("uq_recipients_name")),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column(
            "event_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("recipient_id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=64), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ack_outcome", sa.String(length=16), nullable=True),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_reason", sa.Text(), nullable=True),
        sa.Column("closed_by", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(
            ["recipient_id"], ["recipients.id"], name=op.f("fk_deliveries_recipient_id_recipients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint(
            "event_seq", "recipient_id", name=op.f("uq_deliveries_event_seq_recipient_id")
        ),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deliveries_recipient_id_subject_id", ["recipient_id", "subject_id"], unique=False
        )
        batch_op.create_index(
            "ix_deliveries_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index("ix_deliveries_subject_id", ["subject_id"], unique=False)

    op.create_table(
        "recipient_secrets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recipient_id", sa.String(length=36), nullable=False),
        sa.Column("kek_version", sa.Integer(), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["recipients.id"],
            name=op.f("fk_recipient_secrets_recipient_id_recipients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recipient_secrets")),
    )
    with op.batch_alter_table("recipient_secrets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recipient_secrets_recipient_id"), ["recipient_id"], unique=False
        )

    op.create_table(
        "recipient_subscriptions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("recipient_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=100), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["recipients.id"],
            name=op.f("fk_recipient_subscriptions_recipient_id_recipients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recipient_subscriptions")),
        sa.UniqueConstraint(
            "recipient_id",
            "event_type",
            "purpose",
            name=op.f("uq_recipient_subscriptions_recipient_id_event_type_purpose"),
        ),
    )
    with op.batch_alter_table("recipient_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_recipient_subscriptions_recipient_id"), ["recipient_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("recipient_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recipient_subscriptions_recipient_id"))

    op.drop_table("recipient_subscriptions")
    with op.batch_alter_table("recipient_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recipient_secrets_recipient_id"))

    op.drop_table("recipient_secrets")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_subject_id")
        batch_op.drop_index("ix_deliveries_status_next_attempt_at")
        batch_op.drop_index("ix_deliveries_recipient_id_subject_id")

    op.drop_table("deliveries")
    op.drop_table("recipients")
    with op.batch_alter_table("domain_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_domain_events_subject_id"))
        batch_op.drop_index(batch_op.f("ix_domain_events_fanned_out_at"))

    op.drop_table("domain_events")
