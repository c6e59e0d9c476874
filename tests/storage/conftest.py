"""Every storage test runs on both backends (see `database_url` in tests/conftest.py), each
time on a fresh schema migrated to head."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from plugin.storage import Database, open_database, upgrade


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """The database migrated to head."""
    upgrade(database_url)
    database = open_database(database_url)
    yield database
    database.close()
