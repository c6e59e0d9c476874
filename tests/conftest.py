"""Shared fixtures: the default configuration, a fixed `now`, and an empty database on each
backend — a new SQLite file, and a new schema in the PostgreSQL database named by
`CLIENTGUARD_TEST_DATABASE_URL` (e.g. `postgresql+psycopg://postgres@127.0.0.1:5432/test`),
dropped afterwards. Without that variable, or without the server, PostgreSQL cases skip with
the reason."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError

from plugin.config import Config, build_config
from plugin.storage import Database, open_database, upgrade
from tests.builders import NOW


@pytest.fixture
def config() -> Config:
    return build_config({})


@pytest.fixture
def now() -> datetime:
    return NOW


POSTGRESQL_URL_VARIABLE = "CLIENTGUARD_TEST_DATABASE_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'clientguard.sqlite3'}"
    else:
        yield from _postgresql_schema()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """That database migrated to head, open."""
    upgrade(database_url)
    database = open_database(database_url)
    yield database
    database.close()


def _postgresql_schema() -> Iterator[str]:
    url = os.environ.get(POSTGRESQL_URL_VARIABLE)
    if not url:
        pytest.skip(f"PostgreSQL not tested: set {POSTGRESQL_URL_VARIABLE}, e.g. "
                    "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    admin = open_database(url)
    schema = f"clientguard_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.engine.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as error:
        admin.close()
        shown = make_url(url).render_as_string(hide_password=True)
        pytest.skip(f"PostgreSQL at {shown} unreachable: {error.orig}")
    try:
        yield make_url(url).update_query_dict(
            {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.close()


REDIS_URL_VARIABLE = "CLIENTGUARD_TEST_REDIS_URL"


@pytest.fixture
def queue_url(database_url: str, tmp_path: Path) -> str:
    """The queue that goes with the database: an SQLite file beside an SQLite database (the
    embedded default), Redis beside PostgreSQL (scale-out), from CLIENTGUARD_TEST_REDIS_URL."""
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'queue.sqlite3'}"
    url = os.environ.get(REDIS_URL_VARIABLE)
    if not url:
        pytest.skip(f"Redis not tested: set {REDIS_URL_VARIABLE}, e.g. redis://127.0.0.1:6379/0")
    import redis

    try:
        redis.Redis.from_url(url).ping()
    except redis.ConnectionError as error:
        pytest.skip(f"Redis at {url} unreachable: {error}")
    return url
