"""Alembic migrations, shipped inside the package and run by `plugin.storage.upgrade`."""
