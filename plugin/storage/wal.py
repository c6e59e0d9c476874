"""Copies the SQLite write-ahead log into the database file on a thread of its own.

Why: by default SQLite checkpoints inside the commit that fills the log past 1,000 pages.
That commit then writes megabytes into the database file and waits for their fsync —
measured here at 100–160 ms — while every webhook waiting to be stored waits behind it:
the open-loop p99 at 300 webhooks/s went from 3 ms to 45 ms on a slow-disk day. So our
connections never checkpoint (`wal_autocheckpoint = 0`); this thread does, in two steps:

1. Copy what is in the log and fsync the database file (PASSIVE). Writers go on meanwhile,
   so the pages they add are left over.
2. Once at most `FINISH_AT_MOST_PAGES` are left: copy those while holding this process's
   write lock (writers queue on it and wake as soon as it is done, ~0.5–5 ms). With every
   page copied, the next write starts the log over — under steady writes no moment comes
   when every page is copied by itself, and the log would grow without end (42 MB in
   10 s at 300 commits/s). Step 2 never waits for readers: one still on the old log keeps
   its pages there until a later round (RESTART, which waits for readers, held the lock up
   to its busy timeout while the worker read, and doubled the webhooks' p99).
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_SECONDS = 1.0
FINISH_AT_MOST_PAGES = 256  # left to copy under the write lock: about 1 MB, a few ms


class WalCheckpointer:
    """Checkpoints one SQLite file every `CHECKPOINT_INTERVAL_SECONDS` until `stop()`."""

    def __init__(self, database_file: str, write_lock: threading.Lock) -> None:
        self.database_file = database_file
        self.write_lock = write_lock
        self._stopping = threading.Event()
        self._last: tuple[int, int] | None = None  # (in the log, copied) after the last copy
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        while not self._stopping.wait(CHECKPOINT_INTERVAL_SECONDS):
            try:
                if connection is None:
                    connection = sqlite3.connect(self.database_file, isolation_level=None)
                self.checkpoint(connection)
            except sqlite3.Error:  # e.g. a disk error: the log only grows until it passes
                log.warning("could not checkpoint %s", self.database_file, exc_info=True)
        if connection is not None:
            connection.close()

    def checkpoint(self, connection: sqlite3.Connection) -> bool:
        """One round; True when every page of the log is in the database file (so the next
        write starts the log over)."""
        pages, copied = _copy(connection)
        nearly_all = copied >= 0 and pages - copied <= FINISH_AT_MOST_PAGES
        changed = (pages, copied) != self._last
        self._last = (pages, copied)
        if not (pages > 0 and nearly_all and changed):  # idle, or readers hold the log back
            return False
        with self.write_lock:  # no commit lands meanwhile: this copy can finish the log
            pages, copied = self._last = _copy(connection)
        return pages == copied


def _copy(connection: sqlite3.Connection) -> tuple[int, int]:
    """Copy what the log holds and readers allow into the database file (PASSIVE: it never
    waits); the pages in the log, and how many of them are copied."""
    _busy, pages, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return pages, copied
