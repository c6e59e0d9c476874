"""Alembic environment: runs on the connection `plugin.storage.upgrade` hands over (no
alembic.ini, no URL in a config file).

A new revision, from a database at head::

    from alembic import command
    from alembic.config import Config
    from plugin.storage import MIGRATIONS, open_database

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with open_database("sqlite:///dev.sqlite3").engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, "what changed", autogenerate=True)

Then review the file: autogenerate misses renames and server-side details.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from plugin.storage.models import Base

MIGRATION_LOCK = 0x436C_6775_6172_64  # any constant shared by every ClientGuard process


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through plugin.storage.upgrade(url)")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
        transactional_ddl=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":  # SQLite: BEGIN IMMEDIATE serialises
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": MIGRATION_LOCK})
        context.run_migrations()


run_migrations()
