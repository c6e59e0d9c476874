"""The long-running commands, `clientguard serve` and `clientguard worker`, as an operator
runs them: the installed console script in a subprocess. They print their log on standard
error (INFO and above, timestamped; `--log-level` / `service.log_level`), and a start-up
that cannot succeed — the port taken, the database out of reach — ends with one
`clientguard:` line naming what to fix and exit status 2, never a traceback.

Jira is stood in for by a small plain-http server on 127.0.0.1 (a Data Center site inside
the agency's network), serving the REST answers of tests/connectors/jira/fixtures/rest/.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import re
import socket
import sqlite3
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

from plugin.app import close_app, create_app
from plugin.cli import OncePer
from plugin.config import ConfigError, load_config
from tests.e2e.running import JsonStandIn

CLIENTGUARD = Path(sys.executable).parent / "clientguard"
FIXTURES = Path(__file__).parent / "connectors" / "jira" / "fixtures"
ISSUE = json.loads((FIXTURES / "rest" / "issue__datacenter.json").read_text("utf-8"))
STATUSES = [{"id": "1", "name": "Open", "statusCategory": {"key": "new"}},
            {"id": "3", "name": "In Progress", "statusCategory": {"key": "indeterminate"}},
            {"id": "6", "name": "Closed", "statusCategory": {"key": "done"}}]
PAT = "witness-pat-51c0e2"
WEBHOOK_SECRET = "witness-hook-secret-a9d4"
TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) [\w.]+: ")


class StandIn(JsonStandIn):
    """Jira Data Center's answers for issue 10231 / PRJA-7; every write is recorded."""

    writes: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        if self.path.startswith("/rest/api/2/issue/10231"):
            self.answer(200, ISSUE)
        elif self.path.startswith("/rest/api/2/status"):
            self.answer(200, STATUSES)
        else:
            self.answer(404, {"errorMessages": [f"no {self.path}"]})

    def do_POST(self) -> None:
        type(self).writes.append(f"POST {self.path}")
        self.answer(400, {"errorMessages": ["a dry run must write nothing"]})

    do_PUT = do_DELETE = do_POST


@pytest.fixture
def jira() -> Iterator[str]:
    StandIn.writes = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def configure(folder: Path, **service: Any) -> Path:
    """A configuration in `folder`: its own SQLite files, and `[jira]` when given `jira`."""
    jira = service.pop("jira", None)
    document: dict[str, Any] = {"service": {
        "database_url": f"sqlite:///{folder / 'clientguard.sqlite3'}",
        "queue_url": f"sqlite:///{folder / 'clientguard-queue.sqlite3'}", **service}}
    if jira:
        document["jira"] = {
            "site": "agency-dc", "base_url": jira, "flavour": "datacenter",
            "personal_access_token": PAT, "webhook_secret": WEBHOOK_SECRET,
            "service_account": "clientguard",
            "internal_visibility": {"type": "role", "value": "Developers"},
            "agency_domains": ["agency.example"], "client_domains": ["acme.example"],
            "fields": {"account_manager": "customfield_10100",
                       "project_manager": "customfield_10101"}}
    path = folder / "clientguard.toml"
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
    return path


def _environment(**extra: str) -> dict[str, str]:
    return {**{key: value for key, value in os.environ.items()
               if not key.startswith("CLIENTGUARD_")}, **extra}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A command that is expected to end by itself."""
    return subprocess.run([str(CLIENTGUARD), *args], capture_output=True, text=True,
                          encoding="utf-8", cwd=cwd, env=_environment(), timeout=60,
                          check=False)


class Running:
    """A started long-running command, its standard error collected line by line."""

    def __init__(self, *args: str, cwd: Path, **environment: str) -> None:
        self.process = subprocess.Popen(
            [str(CLIENTGUARD), *args], cwd=cwd, env=_environment(**environment),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, encoding="utf-8")
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.lines):
                if found := re.search(pattern, line):
                    return found
            assert self.process.poll() is None or self._reader.is_alive(), (
                f"exited {self.process.returncode} before {pattern!r}:\n{self.stderr}")
            assert time.monotonic() < deadline, f"no {pattern!r} within {timeout} s:\n" \
                                                 f"{self.stderr}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._reader.join(timeout=5)


def signed_delivery(jira: str, delivery_id: str) -> tuple[bytes, dict[str, str]]:
    """A signed Data Center `comment_created` on issue 10231, as Jira posts it: the body and
    its headers."""
    payload = json.loads((FIXTURES / "comment_created__datacenter_no_issue.json")
                         .read_text("utf-8"))
    payload["comment"]["self"] = f"{jira}/rest/api/2/issue/10231/comment/555"
    body = json.dumps(payload).encode()
    signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature": f"sha256={signature}",
                  "X-Atlassian-Webhook-Identifier": delivery_id}


def deliver(base: str, jira: str, delivery_id: str) -> None:
    body, headers = signed_delivery(jira, delivery_id)
    response = requests.post(f"{base}/hooks/jira", data=body, timeout=10, headers=headers)
    assert response.status_code == 202, response.text


def _serve_dry_run(tmp_path: Path, jira: str, *extra: str) -> Running:
    config = configure(tmp_path, jira=jira, coalesce_seconds=0)
    server = Running("--config", str(config), "serve", "--dry-run", "--port", "0", *extra,
                     cwd=tmp_path)
    base = server.wait_for(r"^ClientGuard listening on (http://127\.0\.0\.1:\d+) ").group(1)
    deliver(base, jira, "d-1")
    return server


# -- the log ---------------------------------------------------------------------------

def test_serve_dry_run_prints_what_it_would_write(tmp_path: Path, jira: str) -> None:
    server = _serve_dry_run(tmp_path, jira)
    try:
        line = server.wait_for(r"dry run, jira PRJA-7: would create the sticky comment, "
                               r"restricted to role Developers").string
    finally:
        server.stop()
    assert TIMESTAMPED.match(line), line
    assert " INFO plugin.pipeline.process: dry run, " in line
    assert StandIn.writes == []
    assert "Traceback" not in server.stderr


def test_no_secret_reaches_the_printed_log_even_at_debug(tmp_path: Path, jira: str) -> None:
    server = _serve_dry_run(tmp_path, jira, "--log-level", "debug")
    try:
        server.wait_for(r"dry run, jira PRJA-7: would create the sticky comment")
    finally:
        server.stop()
    assert " DEBUG " in server.stderr  # the debug records were printed: the check means something
    assert PAT not in server.stderr and WEBHOOK_SECRET not in server.stderr


def test_the_worker_logs_at_info_by_default(tmp_path: Path) -> None:
    worker = Running("--config", str(configure(tmp_path)), "worker", cwd=tmp_path)
    try:
        line = worker.wait_for(r" INFO huey\.consumer: Huey consumer started").string
    finally:
        worker.stop()
    assert TIMESTAMPED.match(line), line


def test_the_log_level_comes_from_the_configuration(tmp_path: Path) -> None:
    worker = Running("--config", str(configure(tmp_path)), "worker", cwd=tmp_path,
                     CLIENTGUARD_SERVICE__LOG_LEVEL="warning")
    try:
        worker.wait_for(r"^ClientGuard worker with 2 thread\(s\)$")
        time.sleep(1.0)  # the consumer has started meanwhile, and said so at INFO
    finally:
        worker.stop()
    assert " INFO " not in worker.stderr, worker.stderr


def test_a_log_level_that_does_not_exist_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "clientguard.toml"
    path.write_text('[service]\nlog_level = "loud"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    assert ("service → log_level: Must be one of: DEBUG, INFO, WARNING, ERROR."
            in str(raised.value))
    environ = {"CLIENTGUARD_SERVICE__LOG_LEVEL": "debug"}
    assert load_config(configure(tmp_path), environ=environ).service.log_level == "DEBUG"


# -- start-up failures ----------------------------------------------------------------------

def assert_one_line(process: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 2 and a last line `clientguard: …` with every fragment; no traceback."""
    assert process.returncode == 2, process.stderr
    assert "Traceback" not in process.stderr, process.stderr
    last = process.stderr.rstrip("\n").splitlines()[-1]
    assert last.startswith("clientguard: "), process.stderr
    for fragment in fragments:
        assert fragment in last, (fragment, last)
    return last


def test_serve_on_a_port_in_use_says_so_before_announcing_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = run("--config", str(configure(tmp_path)), "serve", "--port", str(port),
                      cwd=tmp_path)
    assert_one_line(process, f"cannot listen on 127.0.0.1:{port}", "service → port",
                    "Address already in use")
    assert "ClientGuard listening" not in process.stderr
    assert "Huey consumer started" not in process.stderr  # no worker started either


@pytest.mark.parametrize(("arguments", "said"), [
    (("serve", "--port", "83313"), "'--port': 83313 is not in the range 0<=x<=65535"),
    (("serve", "--threads", "0"), "'--threads': 0 is not in the range x>=1"),
    (("worker", "--metrics-port", "99999"),
     "'--metrics-port': 99999 is not in the range 0<=x<=65535"),
], ids=["port", "threads", "metrics port"])
def test_options_out_of_range_are_refused_before_anything_starts(
        tmp_path: Path, arguments: tuple[str, ...], said: str) -> None:
    """Not a port wrapped around to another, nor a server with no thread to answer."""
    process = run("--config", str(configure(tmp_path)), *arguments, cwd=tmp_path)
    assert process.returncode == 2
    assert f"Error: Invalid value for {said}" in process.stderr
    assert "ClientGuard" not in process.stderr


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_sqlite_file_that_cannot_be_opened_names_the_database_url(tmp_path: Path,
                                                                    command: str) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-folder' / 'clientguard.sqlite3'}"
    config = configure(tmp_path, database_url=url)
    process = run("--config", str(config), command, cwd=tmp_path)
    assert_one_line(process, f"service → database_url {url}: unable to open database file")
    assert "ClientGuard" not in process.stderr  # neither listening nor a worker announced


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_unreachable_postgresql_names_the_database_url(tmp_path: Path, command: str) -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as closed:  # bound, never listening: a connection is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        url = f"postgresql+psycopg://clientguard:witness-db-password@127.0.0.1:{port}/guard"
        process = run("--config", str(configure(tmp_path, database_url=url)), command,
                      cwd=tmp_path)
    assert_one_line(process, "service → database_url postgresql+psycopg://clientguard:***@"
                             f"127.0.0.1:{port}/guard: ", "Connection refused")
    assert "witness-db-password" not in process.stderr


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize(("queue", "said"), [
    ("redis://:witness-queue-password@127.0.0.1:{port}/0", "Connection refused"),
    ("sqlite:////proc/no-such-folder/queue.sqlite3", "No such file or directory"),
], ids=["redis down", "sqlite folder impossible"])
def test_a_queue_that_cannot_be_reached_names_the_queue_url(tmp_path: Path, command: str,
                                                             queue: str, said: str) -> None:
    with socket.socket() as closed:  # bound, never listening: a connection is refused
        closed.bind(("127.0.0.1", 0))
        url = queue.format(port=closed.getsockname()[1])
        process = run("--config", str(configure(tmp_path, queue_url=url)), command,
                      cwd=tmp_path)
    assert_one_line(process, "service → queue_url ", said)
    assert "witness-queue-password" not in process.stderr
    assert "ClientGuard" not in process.stderr  # neither listening nor a worker announced


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_jira_section_without_credentials_names_the_key_and_does_not_start(
        tmp_path: Path, command: str) -> None:
    """Started anyway, it would answer webhooks 202 and then fail every evaluation. Said
    before the database is created: a first start with a setting missing leaves no files
    and no migration log behind."""
    config = configure(tmp_path)
    config.write_text(config.read_text("utf-8") + tomli_w.dumps({"jira": {
        "site": "acme", "base_url": "https://acme.atlassian.net",
        "webhook_secret": WEBHOOK_SECRET}}), encoding="utf-8")
    process = run("--config", str(config), command, cwd=tmp_path)
    last = assert_one_line(process, "jira → email and api_token are needed for Jira Cloud")
    assert process.stderr.strip() == last
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clientguard.toml"]


def test_a_bitrix24_application_no_portal_installed_yet_is_served_and_said(
        tmp_path: Path) -> None:
    """The service is how a portal installs the application, so it must run meanwhile."""
    config = configure(tmp_path)
    config.write_text(config.read_text("utf-8") + tomli_w.dumps({"bitrix24": {
        "client_id": "local.0123456789abcd.12345678", "client_secret": "witness-b24-secret",
        "public_url": "https://guard.agency.example"}}), encoding="utf-8")
    served = Running("--config", str(config), "serve", "--port", "0", cwd=tmp_path)
    try:
        served.wait_for(r"ClientGuard listening on ")
        assert re.search(r"WARNING [\w.]+: bitrix24: no portal has installed the ClientGuard "
                         r"application yet", served.stderr)
    finally:
        served.stop()


def test_a_worker_serves_the_metrics_of_the_evaluations_it_runs(tmp_path: Path,
                                                                 jira: str) -> None:
    """In a scale-out deployment evaluations run in `clientguard worker` processes: their
    counts and platform latencies are scraped from the worker, not from a web process."""
    config = configure(tmp_path, jira=jira, coalesce_seconds=0, dry_run=True)
    worker = Running("--config", str(config), "worker", "--metrics-port", "0", cwd=tmp_path)
    try:
        scrape = worker.wait_for(r"^ClientGuard worker with \d+ thread\(s\), metrics on "
                                 r"(http://127\.0\.0\.1:\d+/metrics)").group(1)
        web = create_app(load_config(config))  # the web process, on the same database and queue
        try:
            body, headers = signed_delivery(jira, "d-1")
            assert web.test_client().post("/hooks/jira", data=body,
                                          headers=headers).status_code == 202
        finally:
            close_app(web)
        worker.wait_for(r"dry run, jira PRJA-7: would create the sticky comment")
        metrics = requests.get(scrape, timeout=10).text
    finally:
        worker.stop()
    assert 'clientguard_evaluations_total{connector="jira",outcome="done"} 1.0' in metrics
    calls = re.search(r'clientguard_platform_call_seconds_count\{connector="jira",'
                      r'method="GET"\} (\d+)', metrics)
    assert calls and int(calls.group(1)) >= 1, metrics
    assert re.search(r"^clientguard_queue_depth \d", metrics, re.MULTILINE), metrics


def test_a_worker_metrics_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = run("--config", str(configure(tmp_path)), "worker", "--metrics-port",
                       str(port), cwd=tmp_path)
    assert finished.returncode == 2, finished.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in finished.stderr


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_stop_ends_at_once_while_a_job_waits_for_jira_and_loses_nothing(
        tmp_path: Path, command: str) -> None:
    """Jira unreachable: the job's call is between retries (up to a minute of backoff) when
    SIGTERM comes (as from a container's stop). It gives its events back, postponed, and
    the process ends promptly — `serve`, and `worker` beside a separate web process."""
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        jira = f"http://127.0.0.1:{closed.getsockname()[1]}"
        config = configure(tmp_path, jira=jira, coalesce_seconds=0)
        running = Running("--config", str(config), command,
                          *(["--port", "0"] if command == "serve" else []), cwd=tmp_path)
        try:
            if command == "serve":
                deliver(running.wait_for(r"^ClientGuard listening on (http://127\.0\.0\.1:\d+) "
                                         ).group(1), jira, "d-1")
            else:  # the web process: the app on the same database and queue, in this one
                running.wait_for(r"^ClientGuard worker with ")
                web = create_app(load_config(config))
                try:
                    body, headers = signed_delivery(jira, "d-1")
                    answer = web.test_client().post("/hooks/jira", data=body, headers=headers)
                    assert answer.status_code == 202, answer.json
                finally:
                    close_app(web)
            running.wait_for(r"; trying again in [0-9.]+ s \(attempt 2 of")
            running.process.terminate()
            running.process.wait(timeout=30)
        finally:
            running.stop()
    assert running.process.returncode == 0, running.stderr
    assert "the service is stopping; the events are retried after its restart" in (
        running.stderr)
    with sqlite3.connect(tmp_path / "clientguard.sqlite3") as database:
        assert database.execute("SELECT status FROM events").fetchall() == [("pending",)]


def test_a_saturated_serve_warns_of_waiting_requests_once_not_per_request(
        tmp_path: Path, jira: str) -> None:
    """Waitress warns "Task queue depth is N" for every request that finds no free thread:
    while the service is saturated that was dozens of lines a second. One is shown a
    minute."""
    config = configure(tmp_path, jira=jira, coalesce_seconds=600)
    server = Running("--config", str(config), "serve", "--port", "0", "--threads", "1",
                     cwd=tmp_path)
    try:
        base = server.wait_for(r"^ClientGuard listening on (http://127\.0\.0\.1:\d+) ").group(1)
        deliver(base, jira, "d-0")  # the schema exists; the one thread is warm
        blocker = sqlite3.connect(tmp_path / "clientguard.sqlite3", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the next delivery's thread waits for this
        senders = [threading.Thread(target=deliver, args=(base, jira, f"d-{n}"))
                   for n in range(1, 13)]
        for sender in senders:
            sender.start()
            time.sleep(0.02)  # each arrives while the one thread is still held up
        time.sleep(0.3)
        blocker.execute("ROLLBACK")
        blocker.close()
        for sender in senders:
            sender.join(timeout=30)
        with sqlite3.connect(tmp_path / "clientguard.sqlite3") as database:
            assert database.execute("SELECT count(*) FROM events").fetchone() == (13,)
    finally:
        server.stop()
    assert len(re.findall(r"WARNING waitress\.queue: Task queue depth is \d+",
                          server.stderr)) == 1, server.stderr


def test_a_repeated_warning_is_shown_once_per_interval_with_how_many_were_held_back() -> None:
    now = [0.0]
    once = OncePer(60.0, clock=lambda: now[0])
    record = functools.partial(logging.LogRecord, "waitress.queue", logging.WARNING, __file__,
                               1, "Task queue depth is %d", exc_info=None)
    assert once.filter(record(args=(1,)))
    for depth in range(2, 30):
        now[0] += 1.0
        assert not once.filter(record(args=(depth,)))
    now[0] = 60.0
    shown = record(args=(4,))
    assert once.filter(shown)
    assert shown.getMessage() == (
        "Task queue depth is 4 (28 more like it held back in the last 60 s)")
    now[0] = 200.0
    quiet = record(args=(1,))
    assert once.filter(quiet) and quiet.getMessage() == "Task queue depth is 1"
