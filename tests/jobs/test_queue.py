"""The embedded queue's SQLite file: writers of one process take turns on a lock of their
own instead of SQLite's sleep-and-retry, so a webhook ringing the queue while the scheduler
or a worker writes to it waits its turn and nothing more."""

from __future__ import annotations

import threading
from pathlib import Path

from plugin.jobs import QueuedSqliteStorage, make_huey


def test_a_ring_while_another_thread_writes_the_queue_waits_its_turn(tmp_path: Path) -> None:
    # A busy timeout far shorter than the wait: SQLite alone would fail the ring.
    storage = QueuedSqliteStorage("clientguard", filename=str(tmp_path / "queue.sqlite3"),
                                  timeout=0.01)
    writing, finish = threading.Event(), threading.Event()

    def write_slowly() -> None:
        with storage.db(commit=True) as cursor:
            cursor.execute("INSERT INTO task (queue, data) VALUES ('clientguard', x'01')")
            writing.set()
            finish.wait()

    errors: list[Exception] = []

    def ring() -> None:
        try:
            storage.enqueue(b"evaluate 10001")
        except Exception as error:
            errors.append(error)

    writer, ringer = threading.Thread(target=write_slowly), threading.Thread(target=ring)
    writer.start()
    try:
        writing.wait()
        ringer.start()
        ringer.join(timeout=0.3)  # thirty busy timeouts
        assert errors == []
        assert ringer.is_alive()
    finally:
        finish.set()
        writer.join()
    ringer.join()
    assert errors == []
    assert storage.queue_size() == 2


def test_the_embedded_queue_uses_it(tmp_path: Path) -> None:
    huey = make_huey(f"sqlite:///{tmp_path / 'queue.sqlite3'}")
    assert isinstance(huey.storage, QueuedSqliteStorage)
