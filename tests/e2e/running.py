"""Running the real queue in end-to-end tests."""

from __future__ import annotations

import signal
import time

from flask import Flask
from sqlalchemy import select

from plugin.storage.models import EventRecord


def statuses(app: Flask) -> set[str]:
    """The statuses the stored events are in."""
    with app.extensions["clientguard.database"].session() as session:
        return set(session.scalars(select(EventRecord.status)).all())


def run_jobs_until_done(app: Flask, workers: int = 2, timeout: float = 20.0) -> None:
    """Run the real queue's consumer until no stored event is pending or in progress —
    without the periodic tasks: tests sweep and review when they mean to, not when the wall
    clock says (a review at :00, :15, :30 and :45 would read the platform mid-test)."""
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    consumer = app.extensions["clientguard.jobs"].consumer(workers, periodic=False)
    consumer.start()
    signal.signal(signal.SIGTERM, handlers[0])  # the consumer took them for its run loop
    signal.signal(signal.SIGINT, handlers[1])
    try:
        deadline = time.monotonic() + timeout
        while statuses(app) & {"pending", "processing"}:
            assert time.monotonic() < deadline, f"events still waiting: {statuses(app)}"
            time.sleep(0.05)
    finally:
        consumer.stop(graceful=True)
