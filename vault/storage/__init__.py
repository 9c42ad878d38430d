"""Storage: SQLAlchemy table definitions and the engine factory.

The schema changes only through Alembic migrations in `migrations/`; a test proves that these
models and the migrations agree on SQLite and PostgreSQL.

Infrastructure: imports no other area (the kernel's errors only), so every area may use it.
"""
