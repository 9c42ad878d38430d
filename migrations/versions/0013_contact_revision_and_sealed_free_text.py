"""contact revision counter; consent reference and notice version sealed

Two findings of the security review, one schema change:

* `subjects.contact_revision`: a write counter of the contact fields, bound into each
  field's associated data (`vault.crypto.fields`). With write access to the database, an
  older ciphertext of a field could be put back and would open as if current; sealed under
  an older revision it no longer does. Existing rows get 0, the format without a revision
  (`tresor.field.v1`), which they were sealed in and still open with; the next write of a
  subject's contact data re-seals every field at revision 1 or higher.
* `consents.reference_ct` and `consents.notice_version_ct`: a basis's reference and a
  consent's notice version are free text (a contract number, a notice name: whatever a
  client types) and were stored in plaintext, surviving the subject's erasure. New rows seal
  them under the subject's DEK, bound to (subject, column, consent id), and leave the
  plaintext columns empty.

Existing rows are not re-encrypted here: that needs the keyring (or HSM), which a migration
does not have. The plaintext columns stay for the rows written before this revision: the
code reads both, the retention sweep (`tresor retention run`, periodic in `serve`) seals such
rows under their subject's key and empties the plaintext, and erasure clears both forms.
Downgrading drops the sealed columns, so bases recorded after the upgrade lose their
reference and notice version.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subjects", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("contact_revision", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference_ct", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("notice_version_ct", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_column("notice_version_ct")
        batch_op.drop_column("reference_ct")
    with op.batch_alter_table("subjects", schema=None) as batch_op:
        batch_op.drop_column("contact_revision")
