"""identity changes with a cooling-off, sessions that know their channel, sign-in lockout

Security finding 1: a writer could point a customer's e-mail at its own mailbox, sign in
to the privacy centre and read or erase the customer. Each change of an identifying
address is now recorded in `identity_changes` (keyed digests of old and new value, never
plaintext; the HMAC of the token mailed to the old address to confirm or object), so
sessions through a new, unconfirmed e-mail address can be restricted; sessions record the
identifier they were opened with (`channel`).

Security finding 7: codes were limited per address only, so e-mail and phone together
allowed about fifty guesses an hour. Codes are now also counted per subject (an index on
`self_service_challenges.subject_id`), and `self_service_lockouts` keeps the wrong codes
and the escalating lock per subject in the database, so every node sees the same count.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_changes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("old_digest", sa.String(length=64), nullable=True),
        sa.Column("new_digest", sa.String(length=64), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=120), nullable=False),
        sa.Column("cooling_off_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=120), nullable=True),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
            name=op.f("fk_identity_changes_subject_id_subjects"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_changes")),
    )
    with op.batch_alter_table("identity_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_changes_subject_id"), ["subject_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_identity_changes_token_hash"), ["token_hash"], unique=False
        )

    op.create_table(
        "self_service_lockouts",
        sa.Column("lock_key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("lock_key", name=op.f("pk_self_service_lockouts")),
    )

    with op.batch_alter_table("self_service_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=16), nullable=True))

    with op.batch_alter_table("self_service_challenges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_self_service_challenges_subject_id"), ["subject_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("self_service_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_self_service_challenges_subject_id"))

    with op.batch_alter_table("self_service_sessions", schema=None) as batch_op:
        batch_op.drop_column("channel")

    op.drop_table("self_service_lockouts")

    with op.batch_alter_table("identity_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_changes_token_hash"))
        batch_op.drop_index(batch_op.f("ix_identity_changes_subject_id"))
    op.drop_table("identity_changes")
