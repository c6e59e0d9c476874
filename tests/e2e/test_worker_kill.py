"""Killing a `clientguard worker` process in the middle of an event loses nothing: after the
event's lease runs out, the next worker processes it. Real processes, the real database and
queue; Jira stood in for by a small HTTPS server on 127.0.0.1 (a separate process cannot
share `responses`), serving the same REST answers as the other end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
import tomli_w
from flask import Flask
from sqlalchemy import select

from plugin.app import close_app, create_app
from plugin.config import load_config
from plugin.storage.models import EventRecord
from tests.connectors.jira.openapi import assert_valid_jira_request
from tests.e2e.running import JsonStandIn
from tests.e2e.test_jira_pipeline import ISSUE, REF, ROLE, STATUSES, deliver

CLIENTGUARD = Path(sys.executable).parent / "clientguard"


class StandIn(JsonStandIn):
    """Jira's answers for issue 10231 / PRJA-7; the first issue read can be made slow."""

    slow_first_read: ClassVar[threading.Event] = threading.Event()
    released: ClassVar[threading.Event] = threading.Event()  # the slow read may end
    issue_reads: ClassVar[int] = 0
    comments: ClassVar[list[dict[str, Any]]] = []
    asked: ClassVar[list[tuple[str, str]]] = []  # every request's method and path

    def do_GET(self) -> None:
        type(self).asked.append(("GET", self.path))
        if self.path.startswith("/rest/api/2/issue/10231"):
            type(self).issue_reads += 1
            if self.slow_first_read.is_set() and self.issue_reads == 1:
                self.released.wait(30)  # the worker is killed while it waits here
            issue = json.loads(json.dumps(ISSUE))
            issue["fields"]["comment"]["comments"] += self.comments
            self.answer(200, issue)
        elif self.path.startswith("/rest/api/2/status"):
            self.answer(200, STATUSES)
        elif match := re.match(r"/rest/api/2/issue/PRJA-7/comment/(\d+)", self.path):
            self.answer(200, next(c for c in self.comments if c["id"] == match.group(1)))
        else:
            self.answer(404, {"errorMessages": [f"no {self.path}"]})

    def do_POST(self) -> None:
        type(self).asked.append(("POST", self.path))
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        comment = {"id": str(90001 + len(self.comments)), "body": body["body"],
                   "visibility": body["visibility"], "author": {"name": "clientguard"}}
        type(self).comments.append(comment)
        self.answer(201, comment)


@pytest.fixture
def jira(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    StandIn.issue_reads, StandIn.comments, StandIn.asked = 0, [], []
    StandIn.slow_first_read.set()
    StandIn.released.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"https://127.0.0.1:{server.server_address[1]}"
    yield base_url, cert
    StandIn.released.set()  # its answer to the killed worker fails now, not in a later test
    server.shutdown()
    server.server_close()  # waits for the request threads
    for method, path in StandIn.asked:  # Data Center: the routes the client may call
        assert_valid_jira_request(requests.Request(method, base_url + path).prepare())


def start_worker(config: Path, cert: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(CLIENTGUARD), "--config", str(config), "worker"],
                            env={**os.environ, "REQUESTS_CA_BUNDLE": str(cert)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def statuses(app: Flask) -> list[str]:
    with app.extensions["clientguard.database"].session() as session:
        return list(session.scalars(select(EventRecord.status)))


def test_killing_the_worker_mid_event_loses_nothing(tmp_path: Path, database_url: str,
                                                   queue_url: str, jira: tuple[str, Path]):
    base_url, cert = jira
    config_file = tmp_path / "clientguard.toml"
    config_file.write_text(tomli_w.dumps({
        "service": {"database_url": database_url, "queue_url": queue_url,
                    "coalesce_seconds": 0, "lease_seconds": 2, "workers": 1},
        "jira": {"site": "agency-dc", "base_url": base_url, "flavour": "datacenter",
                 "personal_access_token": "pat", "webhook_secret": "hook-secret",
                 "service_account": "clientguard", "internal_visibility": ROLE},
    }), encoding="utf-8")
    app = create_app(load_config(config_file, environ={}))
    app.extensions["clientguard.jobs"].huey.flush()
    first = start_worker(config_file, cert)
    try:
        deliver(app, "d-1")
        wait_for(lambda: StandIn.issue_reads == 1, "the worker to be mid-event")
        assert statuses(app) == ["processing"]
        first.send_signal(signal.SIGKILL)  # the worker dies mid-event
        first.wait(timeout=10)
        StandIn.slow_first_read.clear()
        second = start_worker(config_file, cert)
        try:
            # the dead worker's lease runs out (2 s), then a sweep rings for the event: ours,
            # or the second worker's own once-a-minute one if a minute begins meanwhile
            sweep = app.extensions["clientguard.jobs"].sweep
            wait_for(lambda: statuses(app) == ["done"] or sweep() == [REF],
                     "the sweep to find the event's lease run out")
            wait_for(lambda: statuses(app) == ["done"], "the event to be processed")
        finally:
            second.terminate()
            second.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        app.extensions["clientguard.jobs"].huey.flush()
        close_app(app)
    assert [(c["visibility"], "clientguard:sticky" in c["body"]) for c in StandIn.comments] == [
        (ROLE, True)]
