"""server-side sessions for both browser surfaces, console sign-in attempts, client certificates

Issue 15 item 4: a DPO's console cookie stayed valid for hours after sign-out (it was a
signed token). Privacy-centre and console sessions are now rows of one table,
`web_sessions` (the cookie carries a random id, the row its keyed digest), with the kind,
the subject or API client, the last request (idle timeout), the absolute expiry and when
and why the session ended. Every request reads the row, so an ending holds on every node
at once. The privacy centre's `self_service_sessions` becomes that table: its rows are
copied (kind `privacy`, last seen at creation), so live customer sessions survive.

`console_signins` holds one row per console sign-in attempt (account and address as keyed
digests only) for the per-account and per-address limits shared by every node.

Issue 15 item 6: `clients.cert_subject` (unique, nullable) names the client certificate
subject that authenticates a client over mutual TLS (`tresor clients cert`).

Downgrading copies the privacy-centre sessions back; console sessions end (the old console
cookie was a signed token that no session row backed).

Revision ID: 0017
Revises: 0014
Create Date: 2026-12-04 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=True),
        sa.Column("client_id", sa.String(length=36), nullable=True),
        sa.Column("account", sa.String(length=120), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_why", sa.String(length=32), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_web_sessions")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_subject_id"), ["subject_id"])
        batch_op.create_index(batch_op.f("ix_web_sessions_client_id"), ["client_id"])
    op.execute(
        "INSERT INTO web_sessions (token_hash, kind, subject_id, client_id, created_at, "
        "last_seen_at, expires_at, ended_at, ended_why, channel) "
        "SELECT token_hash, 'privacy', subject_id, NULL, created_at, created_at, expires_at, "
        "revoked_at, CASE WHEN revoked_at IS NULL THEN NULL ELSE 'signed_out' END, channel "
        "FROM self_service_sessions"
    )
    with op.batch_alter_table("self_service_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_self_service_sessions_subject_id"))
    op.drop_table("self_service_sessions")

    op.create_table(
        "console_signins",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account_hash", sa.String(length=64), nullable=True),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_signins")),
    )
    with op.batch_alter_table("console_signins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_signins_at"), ["at"])
        batch_op.create_index(batch_op.f("ix_console_signins_account_hash"), ["account_hash"])
        batch_op.create_index(batch_op.f("ix_console_signins_address_hash"), ["address_hash"])

    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cert_subject", sa.String(length=500), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_clients_cert_subject"), ["cert_subject"])


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_clients_cert_subject"), type_="unique")
        batch_op.drop_column("cert_subject")

    with op.batch_alter_table("console_signins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_signins_address_hash"))
        batch_op.drop_index(batch_op.f("ix_console_signins_account_hash"))
        batch_op.drop_index(batch_op.f("ix_console_signins_at"))
    op.drop_table("console_signins")

    op.create_table(
        "self_service_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_self_service_sessions")),
    )
    with op.batch_alter_table("self_service_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_self_service_sessions_subject_id"), ["subject_id"], unique=False
        )
    op.execute(
        "INSERT INTO self_service_sessions (token_hash, subject_id, created_at, expires_at, "
        "revoked_at, channel) SELECT token_hash, subject_id, created_at, expires_at, ended_at, "
        "channel FROM web_sessions WHERE kind = 'privacy' AND subject_id IS NOT NULL"
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_client_id"))
        batch_op.drop_index(batch_op.f("ix_web_sessions_subject_id"))
    op.drop_table("web_sessions")
