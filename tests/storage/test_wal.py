"""The SQLite write-ahead log is copied into the database file by a thread of its own, never
inside a commit (a commit that checkpoints made every webhook waiting behind it wait)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from plugin.storage import Database, open_database
from plugin.storage import wal as wal_module
from plugin.storage.wal import WalCheckpointer

ROW = 64 * 1024  # bytes per commit: 16+ pages
SQLITE_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default, what a commit would checkpoint at


@pytest.fixture
def database_file(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite3"


def opened(database_file: Path) -> Database:
    database = open_database(f"sqlite:///{database_file}")
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS blobs (body BLOB)"))
    return database


def write(database: Database, commits: int, pause: float = 0.0) -> None:
    for _ in range(commits):
        with database.engine.begin() as connection:
            connection.execute(text("INSERT INTO blobs VALUES (randomblob(:size))"),
                               {"size": ROW})
        time.sleep(pause)


def log_bytes(database_file: Path) -> int:
    return Path(f"{database_file}-wal").stat().st_size


@pytest.fixture
def never_on_its_own(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The checkpointer's thread waits an hour: only the test checkpoints."""
    monkeypatch.setattr(wal_module, "CHECKPOINT_INTERVAL_SECONDS", 3600.0)
    yield


@pytest.fixture
def by_hand(database_file: Path, never_on_its_own: None
            ) -> Iterator[tuple[Database, WalCheckpointer, sqlite3.Connection]]:
    """The database, its checkpointer, and a connection of the test's own to run it on."""
    database = opened(database_file)
    assert database.checkpointer is not None
    side = sqlite3.connect(database_file, isolation_level=None)
    yield database, database.checkpointer, side
    side.close()
    database.close()


@pytest.mark.usefixtures("never_on_its_own")
def test_a_commit_never_checkpoints(database_file: Path) -> None:
    database = opened(database_file)
    try:
        write(database, 80)  # ~1,300 pages: past the point where SQLite would checkpoint
        page = 4096
        assert log_bytes(database_file) > SQLITE_AUTOCHECKPOINT_PAGES * page * 1.2
        with sqlite3.connect(database_file) as look:
            assert look.execute("SELECT count(*) FROM blobs").fetchone() == (80,)
    finally:
        database.close()


class CommitWhileCopying:
    """The checkpointer's connection, with a webhook's commit landing while it first copies
    the log (as under steady load: then no write ever finds the log fully copied)."""

    def __init__(self, connection: sqlite3.Connection, database: Database) -> None:
        self.connection, self.database = connection, database
        self.landed = False

    def execute(self, sql: str) -> sqlite3.Cursor:
        cursor = self.connection.execute(sql)
        if "PASSIVE" in sql and not self.landed:
            self.landed = True
            result = cursor.fetchall()
            write(self.database, 1)
            return self.connection.execute("SELECT ?, ?, ?", result[0])
        return cursor


def test_a_round_starts_the_log_over_though_writes_go_on(
        by_hand: tuple[Database, WalCheckpointer, sqlite3.Connection]) -> None:
    database, checkpointer, side = by_hand
    write(database, 20)
    assert checkpointer.checkpoint(CommitWhileCopying(side, database))  # type: ignore[arg-type]
    assert not checkpointer.checkpoint(side), "nothing written since: nothing to do"
    write(database, 1)
    _busy, pages, copied = side.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert pages < 40 and copied == pages  # the new commit went to the start of the log


def test_a_reader_on_the_old_log_only_postpones_the_restart(
        by_hand: tuple[Database, WalCheckpointer, sqlite3.Connection],
        database_file: Path) -> None:
    database, checkpointer, side = by_hand
    reader = sqlite3.connect(database_file, isolation_level=None)
    try:
        write(database, 5)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM blobs").fetchone() == (5,)
        write(database, 5)  # the reader's snapshot keeps these pages in the log
        assert not checkpointer.checkpoint(side)
        with database.engine.begin() as connection:  # writers are not held up meanwhile
            connection.execute(text("INSERT INTO blobs VALUES (x'00')"))
        reader.execute("COMMIT")
        assert checkpointer.checkpoint(side)
    finally:
        reader.close()


def test_the_log_stays_small_under_steady_writes(database_file: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal_module, "CHECKPOINT_INTERVAL_SECONDS", 0.05)
    database = opened(database_file)
    try:
        commits = 150  # 9.4 MiB in all, at about 20 MiB/s: a dozen rounds of the checkpointer
        write(database, commits, pause=0.003)
        assert log_bytes(database_file) < commits * ROW / 3
        with sqlite3.connect(database_file) as look:
            assert look.execute("SELECT count(*) FROM blobs").fetchone() == (commits,)
    finally:
        database.close()


def test_closing_the_database_stops_its_checkpointer(database_file: Path) -> None:
    database = opened(database_file)
    checkpointer = database.checkpointer
    assert checkpointer is not None and checkpointer.running
    database.close()
    assert not checkpointer.running
