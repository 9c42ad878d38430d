"""API-key hashes under a key derived for that use: a version per stored hash

Issue 14 item 11: every MAC now has a key of its own, derived by label (HKDF-SHA256) from
the server secret, where five uses shared the raw secret. A stored API-key hash cannot be
recomputed (the key itself is never stored), so `clients.key_hash_version` says how each
hash was made: 1 (the server default, so every existing row) under the raw secret, 2 under
the derived key. A version-1 key still authenticates and is re-hashed to 2 on its first
successful use (`vault.admin.clients`).

Downgrading drops the column: keys re-hashed by then no longer authenticate under the old
code: such a client is revoked and created anew (`tresor clients revoke`, `create`).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("key_hash_version", sa.Integer(), server_default="1", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("key_hash_version")
