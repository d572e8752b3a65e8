"""Persistence: SQLAlchemy tables, the database handle and its Alembic migrations."""
