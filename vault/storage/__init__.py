"""Storage: SQLAlchemy table definitions, the engine factory, and the rows of the browser
sessions both web surfaces share (`sessions`).

The schema changes only through Alembic migrations in `migrations/`; a test proves that these
models and the migrations agree on SQLite and PostgreSQL.

Infrastructure: imports no other area (the kernel's errors and clock only), so every area
may use it.
"""
