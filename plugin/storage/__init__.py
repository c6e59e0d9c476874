"""Where the service keeps its state: a SQLite file by default, PostgreSQL at scale, same code.

`open_database(url)` gives the engine and sessions; `upgrade(url)` brings the schema to the
newest migration (safe to run at every start, also by several processes at once).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from plugin.storage.wal import WalCheckpointer

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000


READS_ONLY = "clientguard_reads_only"  # execution option of `Database.reading` sessions


@dataclass(frozen=True)
class Database:
    """One engine and its session factories. Sessions do not expire objects on commit, so a
    claimed event can be read after the claim is committed."""

    engine: Engine
    sessions: sessionmaker[Session]
    reading_sessions: sessionmaker[Session]
    checkpointer: WalCheckpointer | None = None  # SQLite files: see `plugin.storage.wal`

    def session(self) -> Session:
        """A new session; use as `with database.session() as session, session.begin():`."""
        return self.sessions()

    def reading(self) -> Session:
        """A session that only reads. On SQLite it does not queue for the write lock (WAL
        readers see the last commit and never wait for a writer), so a worker's look at the
        queue does not hold up the webhooks being stored."""
        return self.reading_sessions()

    def ping(self) -> str | None:
        """None when the database answers, else the problem (for `/readyz`)."""
        try:
            with self.reading() as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            return type(error).__name__
        return None

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()


def open_database(url: str) -> Database:
    """Engine and sessions for `url` (`sqlite:///file` or `postgresql[+psycopg]://…`)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":  # the one driver we ship
        parsed = parsed.set(drivername="postgresql+psycopg")
    checkpointer = None
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"factory": _WriterQueueConnection})
        _tune_sqlite(engine)
        if parsed.database and not parsed.database.startswith(":memory:"):
            checkpointer = WalCheckpointer(parsed.database, write_lock(parsed.database))
            checkpointer.start()
    else:
        engine = create_engine(parsed, pool_pre_ping=True)
    return Database(engine, sessionmaker(engine, expire_on_commit=False),
                    sessionmaker(engine.execution_options(**{READS_ONLY: True}),
                                 expire_on_commit=False), checkpointer)


_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def write_lock(database_file: str) -> threading.Lock:
    """The lock this process's writers of one SQLite file queue on (see
    `_WriterQueueConnection`); `":memory:…"` names are taken as they are."""
    key = database_file if database_file.startswith(":memory:") else str(
        Path(database_file).resolve())
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.Lock())


class _WriterQueueConnection(sqlite3.Connection):
    """A SQLite connection whose transactions queue on an in-process lock per database file
    before taking SQLite's write lock.

    Why: SQLite lets a writer that finds the file locked poll with growing sleeps (1, 2, 5,
    10, 25 … ms); under eight webhook threads most of the time went to those sleeps and p99
    reached 130 ms. A thread waiting on this lock wakes the moment the holder commits. Other
    processes on the same file still meet SQLite's own lock and busy timeout."""

    def __init__(self, database: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._queue = write_lock(database if database != ":memory:" else f":memory:{id(self)}")
        self._holding = False

    def begin_deferred(self) -> None:
        """A transaction that only reads: no lock until it first reads, never the write lock."""
        self.execute("BEGIN")

    def begin_immediate(self) -> None:
        """Wait for this process's other writers, then take SQLite's write lock."""
        if not self._queue.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise sqlite3.OperationalError("database is locked (waited for another writer)")
        self._holding = True
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._let_go()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self._let_go()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._let_go()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._let_go()

    def _let_go(self) -> None:
        if self._holding:
            self._holding = False
            self._queue.release()


def _tune_sqlite(engine: Engine) -> None:
    """WAL (readers never block the writer) checkpointed by `WalCheckpointer` rather than
    inside a commit, a busy timeout (writers queue instead of failing), foreign keys on; and
    every transaction but a `Database.reading` one starts with BEGIN IMMEDIATE, so it takes
    the write lock up front: a transaction that reads, then writes cannot fail half-way with
    "database is locked", and read-then-write steps are atomic across processes."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA wal_autocheckpoint = 0")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        dbapi_connection = connection.connection.dbapi_connection
        reads_only = connection.get_execution_options().get(READS_ONLY)
        try:
            if reads_only:
                dbapi_connection.begin_deferred()
            else:
                dbapi_connection.begin_immediate()
        except sqlite3.Error as error:  # a listener's errors are not wrapped by SQLAlchemy:
            # raise what a statement's would be (`OperationalError`: locked past its timeout)
            raise DBAPIError.instance("BEGIN" if reads_only else "BEGIN IMMEDIATE", None,
                                      error, sqlite3.Error) from error


def upgrade(url: str) -> None:
    """Apply the shipped migrations up to head; a no-op when the schema is current.

    Several processes may run it at once (PostgreSQL: an advisory lock; SQLite: BEGIN
    IMMEDIATE), but call it from one thread only: Alembic's migration context is global."""
    database = open_database(url)
    try:
        with database.engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        database.close()
