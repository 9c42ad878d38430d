"""idempotency records: safe retries of creating and changing POSTs (issue 17)

A client that times out retries with the same `Idempotency-Key`
(draft-ietf-httpapi-idempotency-key-header); the vault must answer the retry with the first
answer instead of recording a second consent or reserving contact points twice, also when
the retry reaches another node. One row per (client, key): the key as a SHA-256 digest, a
digest of method, path and body (another body under the same key is refused), the state
(in progress or done) with a lease for a worker that died, and the answer: status, media
type and the body sealed under a key of its own wrapped by the KEK (a lookup's answer holds
contact data). Rows expire 24 hours after their first use.

Downgrading drops the table: retries then run again.

Revision ID: 0018
Revises: 0014
Create Date: 2026-12-04 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_records",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("key_digest", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_type", sa.String(length=100), nullable=True),
        sa.Column("kek_version", sa.Integer(), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("response_ct", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_records")),
    )
    op.create_index(
        op.f("ix_idempotency_records_expires_at"),
        "idempotency_records",
        ["expires_at"],
        unique=False,
    )
    op.create_index(
        "uq_idempotency_records_client_id_key_digest",
        "idempotency_records",
        ["client_id", "key_digest"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_idempotency_records_client_id_key_digest", table_name="idempotency_records")
    op.drop_index(op.f("ix_idempotency_records_expires_at"), table_name="idempotency_records")
    op.drop_table("idempotency_records")
