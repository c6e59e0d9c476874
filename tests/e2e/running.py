"""Running the real queue in end-to-end tests, and platform stand-ins on a real socket for
tests that run the service as a process."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from plugin.storage.models import EventRecord


def statuses(app: Flask) -> set[str]:
    """The statuses the stored events are in."""
    with app.extensions["clientguard.database"].session() as session:
        return set(session.scalars(select(EventRecord.status)).all())


def scrape(app: Flask, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample `name` shows on /metrics, by its labels (sorted (name, value) pairs)."""
    text = app.test_client().get("/metrics").get_data(as_text=True)
    return {tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == name}


def run_jobs_until_done(app: Flask, workers: int = 2, timeout: float = 20.0) -> None:
    """Run the real queue's consumer until no stored event is pending or in progress."""
    run_jobs_until(app, lambda: not statuses(app) & {"pending", "processing"}, workers,
                   timeout)


def run_jobs_until(app: Flask, done: Callable[[], bool], workers: int = 2,
                   timeout: float = 20.0) -> None:
    """Run the real queue's consumer until `done()` — without the periodic tasks: tests
    sweep and review when they mean to, not when the wall clock says (a review at :00, :15,
    :30 and :45 would read the platform mid-test)."""
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    consumer = app.extensions["clientguard.jobs"].consumer(workers, periodic=False)
    consumer.start()
    signal.signal(signal.SIGTERM, handlers[0])  # the consumer took them for its run loop
    signal.signal(signal.SIGINT, handlers[1])
    try:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"not done; events: {statuses(app)}"
            time.sleep(0.05)
    finally:
        consumer.stop(graceful=True)


class JsonStandIn(BaseHTTPRequestHandler):
    """A platform stand-in answering JSON (subclasses say what, in `do_GET` and friends),
    quietly: the test's output is the service's."""

    def answer(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass
