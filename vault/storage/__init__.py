"""Storage: SQLAlchemy table definitions, the engine factory, the storage ports, and the rows
of the browser sessions both web surfaces share (`sessions`).

The ports (`ports`: `ReadPort` with its asyncpg and SQLAlchemy adapters, picked once at
start-up), the statements that differ per database (`dialect`) and the one mapping of
storage failures to `Unavailable` (`errors`) live here: no other area asks which database
it runs on.

The schema changes only through Alembic migrations in `migrations/`; a test proves that these
models and the migrations agree on SQLite and PostgreSQL.

Infrastructure: imports no other area (the kernel's errors and clock only), so every area
may use it.
"""

# The area modules' tables share `tables.Base`; importing them here puts them into
# `vault.storage.tables.metadata` for every user (migrations, tests), whatever it imports.
from vault.storage import audit_tables as audit_tables
from vault.storage import campaign_tables as campaign_tables
from vault.storage import mail_tables as mail_tables
from vault.storage import outreach_tables as outreach_tables
from vault.storage import recipient_tables as recipient_tables
from vault.storage import rights_tables as rights_tables
