"""Storage: SQLAlchemy table definitions and the engine factory.

The schema changes only through Alembic migrations in `migrations/`; a test proves that these
models and the migrations agree on SQLite and PostgreSQL.

Infrastructure: imports no other area (the kernel's errors only), so every area may use it.
"""

# The recipients' tables share `tables.Base`; importing them here puts them into
# `vault.storage.tables.metadata` for every user (migrations, tests), whatever it imports.
from vault.storage import recipient_tables as recipient_tables
