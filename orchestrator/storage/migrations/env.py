"""Alembic environment: the connection comes from `Database.migrate`, never from a config file."""

from alembic import context

from orchestrator.storage.tables import Base

context.configure(connection=context.config.attributes["connection"], target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
