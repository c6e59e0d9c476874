"""How many webhooks `clientguard serve` accepts per second, and how fast it answers.

`clientguard serve` runs as a real subprocess on a free port with SQLite state in a temp
dir and `[jira]` with a webhook secret; beside it, in the same run, a bare Flask endpoint
that only answers 202, on the same waitress settings. The load: signed bodies of every
event kind in tests/connectors/jira/fixtures/ that intake stores, on 100 tickets, each
request with its own X-Atlassian-Webhook-Identifier (so every one is stored, none is a
duplicate), over keep-alive connections.

ClientGuard answers its webhook route in WSGI middleware in front of its Flask app, not in a
Flask view (docs/decisions.md, "The webhook route is WSGI in front of Flask"); the baseline
stays the bare Flask endpoint the target names. A bare endpoint without Flask (a plain WSGI
function on the same waitress settings) is measured too, and ClientGuard's share of it
printed, so the comparison on equal terms is in every run.

- Throughput: closed loop, `--clients` connections sending back to back for `--seconds`,
  taken in `--slices` alternating slices (bare, clientguard, bare, …) while the other server
  is stopped (SIGSTOP), so a machine whose speed drifts during the run (a shared VM) slows
  both alike. Target: >= 70 % of the bare endpoint. Each line gives the server's CPU per
  request: both servers run at about one core (the interpreter lock), so the share is about
  the inverse ratio of those (docs/decisions.md says where ClientGuard's go).
- Reference (printed, no target): the same ClientGuard app on the same waitress settings with
  its intake verifying, parsing and counting each delivery but not storing it. Its share of
  the bare endpoint is the most that any durable store could leave for the 70 % target.
- Latency: open loop at `--rate` requests/s for `--open-seconds`, each request sent at its
  scheduled time and timed from then (a slow answer does not hide the requests queued
  behind it). Target: p99 <= 25 ms.

The job consumer runs inside `serve` (as in production) and stored events give it work.
`--worker stub` (default, realistic): Jira is a local HTTPS stand-in (`support.FakeJira`),
so the consumer fetches, evaluates and writes comments during the measurement with the
product's coalescing delay, competing for the CPU as it would in real life. `--worker idle`:
coalesce_seconds is 600, so the consumer only polls its queue: intake alone (the stand-in is
not started; no job comes due while the bench runs).

    python bench/ingest.py [--seconds 10] [--slices 4] [--clients 8] [--rate 300]
                           [--worker stub|idle]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPConnection, HTTPException
from pathlib import Path

import tomli_w
from support import (
    FIXTURES,
    FakeJira,
    fixture,
    https_jira,
    jira_settings,
    percentile,
    retarget,
    signed,
)

from connectors.base import Delivery, Event
from connectors.jira.events import parse_delivery
from connectors.jira.settings import JiraSettingsSchema

CLIENTGUARD = Path(sys.executable).parent / "clientguard"
WAITRESS_THREADS = 8  # `clientguard serve`'s default, given to both servers
TARGET_SHARE = 0.70
TARGET_P99_SECONDS = 0.025
WARM_UP_TIMEOUT = 60.0
START_TIMEOUT = 30.0
BARE_APP = """
import sys
import waitress
from flask import Flask, jsonify, request

app = Flask("bare")

@app.post("/hooks/jira")
def hook():
    request.get_data()
    return jsonify(status="accepted"), 202

@app.get("/healthz")
def health():
    return "ok"

waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=int(sys.argv[2]),
               ident="bare")
"""
BARE_WSGI_APP = """
import sys
import waitress

def app(environ, start_response):
    if environ["PATH_INFO"] == "/healthz":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("202 Accepted", [("Content-Type", "application/json")])
    return [b'{"status": "accepted"}']

waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=int(sys.argv[2]),
               ident="bare-wsgi")
"""
NOT_STORING_APP = """
import sys
import waitress
from connectors.base import Ignored
from plugin.app import create_app
from plugin.pipeline.intake import Stored


class NotStoring:  # intake up to the store: verify and parse, then answer as if stored
    def accept(self, delivery, connector):
        parsed = connector.parse_delivery(delivery)
        return parsed if isinstance(parsed, Ignored) else Stored(parsed, duplicate=False)

    def close(self):
        pass


app = create_app()
app.extensions["clientguard.intake"] = NotStoring()
waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=int(sys.argv[2]),
               ident="clientguard-not-storing")
"""

Body = tuple[bytes, str]  # the body and its X-Hub-Signature


@dataclass(frozen=True)
class Phase:
    """One measurement: latencies of the requests answered 202 "accepted", the other
    answers and errors, wall time, and the CPU the server and this process used."""

    latencies: list[float]
    failed: int
    seconds: float
    server_cores: float
    generator_cores: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def cpu_per_request(self) -> float:
        return self.server_cores / self.rate

    @classmethod
    def joined(cls, slices: list[Phase]) -> Phase:
        """Several slices of one measurement as one (CPU weighted by time)."""
        seconds = sum(part.seconds for part in slices)
        return cls([latency for part in slices for latency in part.latencies],
                   sum(part.failed for part in slices), seconds,
                   sum(part.server_cores * part.seconds for part in slices) / seconds,
                   sum(part.generator_cores * part.seconds for part in slices) / seconds)


def bodies(tickets: list[tuple[str, str]]) -> list[Body]:
    """Every fixture intake stores (an event about an issue, not our own), once per ticket,
    signed; interleaved so consecutive requests differ in kind and ticket (the first
    `len(tickets)` are one per ticket)."""
    settings = JiraSettingsSchema().load({"service_account": "clientguard"})
    kinds = []
    for path in sorted(FIXTURES.glob("*.json")):
        payload = fixture(path.name)
        parsed = parse_delivery(Delivery(path.read_bytes(), {}, datetime.now(UTC)), settings)
        if isinstance(parsed, Event) and not parsed.by_us:
            kinds.append(payload)
    return [signed(retarget(kinds[n % len(kinds)], *tickets[(n * 7) % len(tickets)]))
            for n in range(len(kinds) * len(tickets))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(command: list[str], cwd: Path, env: dict[str, str], port: int
           ) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` until it answers GET /healthz; always stop it afterwards."""
    log = (cwd / "server.log").open("wb")
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not healthy(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not come up:\n"
                                   + (cwd / "server.log").read_text(errors="replace")[-2000:])
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


@contextmanager
def paused(*processes: subprocess.Popen[bytes]) -> Iterator[None]:
    """Stop `processes` (SIGSTOP) while another server is measured; always continue them."""
    for process in processes:
        process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGCONT)


def healthy(port: int) -> bool:
    connection = HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


class Sender:
    """One keep-alive connection posting signed deliveries, each with a new delivery id."""

    def __init__(self, port: int, bodies: list[Body], tag: str) -> None:
        self.port, self.bodies, self.tag = port, bodies, tag
        self.connection = HTTPConnection("127.0.0.1", port, timeout=10)
        self.sent = self.failed = 0

    def post(self) -> bool:
        """True when answered 202 "accepted"; a broken connection is opened again."""
        body, signature = self.bodies[self.sent % len(self.bodies)]
        self.sent += 1
        try:
            self.connection.request("POST", "/hooks/jira", body=body, headers={
                "Content-Type": "application/json", "X-Hub-Signature": signature,
                "X-Atlassian-Webhook-Identifier": f"{self.tag}-{self.sent}"})
            response = self.connection.getresponse()
            if response.status == 202 and b'"accepted"' in response.read():
                return True
        except (OSError, HTTPException):
            self.connection.close()
            self.connection = HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.failed += 1
        return False


def measure(pid: int, senders: list[Sender], work: Callable[[int, Sender], list[float]]
            ) -> Phase:
    """Run `work(index, sender)` in one thread per sender; count, time and CPU the lot."""
    results: list[list[float]] = [[] for _ in senders]
    server_cpu, own_cpu, started = cpu_seconds(pid), time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=lambda k=k: results[k].extend(work(k, senders[k])),
                                daemon=True) for k in range(len(senders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return Phase([latency for result in results for latency in result],
                 sum(sender.failed for sender in senders), seconds,
                 (cpu_seconds(pid) - server_cpu) / seconds,
                 (time.process_time() - own_cpu) / seconds)


def closed_loop(pid: int, port: int, bodies: list[Body], clients: int, seconds: float,
                tag: str) -> Phase:
    """`clients` connections, each sending its next request as soon as the last is answered."""
    stop = time.perf_counter() + seconds

    def work(k: int, sender: Sender) -> list[float]:
        latencies = []
        while (began := time.perf_counter()) < stop:
            if sender.post():
                latencies.append(time.perf_counter() - began)
        return latencies

    senders = [Sender(port, bodies[k * 13:] + bodies[:k * 13], f"{tag}-{k}")
               for k in range(clients)]
    return measure(pid, senders, work)


def open_loop(pid: int, port: int, bodies: list[Body], rate: float, seconds: float,
              tag: str, connections: int = 16) -> Phase:
    """`rate` requests/s on a fixed schedule, spread over `connections`; each latency runs
    from the request's scheduled time, so time spent waiting for a connection counts."""
    total = round(rate * seconds)
    start = time.perf_counter() + 0.05

    def work(k: int, sender: Sender) -> list[float]:
        latencies = []
        for n in range(k, total, connections):
            due = start + n / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            if sender.post():
                latencies.append(time.perf_counter() - due)
        return latencies

    senders = [Sender(port, bodies[k * 13:] + bodies[:k * 13], f"{tag}-{k}")
               for k in range(connections)]
    return measure(pid, senders, work)


def warm_up(port: int, bodies: list[Body], tickets: int, ready: Callable[[], bool]) -> int:
    """One event per ticket, then wait until `ready()` (every ticket evaluated once, so the
    measurement sees the steady state, not first sight). Returns how many were accepted."""
    warm = Sender(port, bodies, "warm")
    for _ in range(tickets):
        warm.post()
    deadline = time.monotonic() + WARM_UP_TIMEOUT
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the warm-up did not finish in {WARM_UP_TIMEOUT} s")
        time.sleep(0.1)
    return warm.sent - warm.failed


def stored_events(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as connection:
        return dict(connection.execute(
            "SELECT status, count(*) FROM events GROUP BY status").fetchall())


def queued_jobs(queue: Path) -> tuple[int, int]:
    """Jobs left in huey's SQLite queue: waiting to run, and waiting for their time."""
    with sqlite3.connect(queue) as connection:
        return (connection.execute("SELECT count(*) FROM task").fetchone()[0],
                connection.execute("SELECT count(*) FROM schedule").fetchone()[0])


def stop(*_: object) -> None:
    raise SystemExit(1)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="closed-loop measurement per endpoint")
    parser.add_argument("--clients", type=int, default=8, help="closed-loop connections")
    parser.add_argument("--slices", type=int, default=4,
                        help="alternating closed-loop slices per endpoint")
    parser.add_argument("--rate", type=float, default=300.0, help="open-loop requests/s")
    parser.add_argument("--open-seconds", type=float, default=10.0)
    parser.add_argument("--worker", choices=("stub", "idle"), default="stub")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, stop)  # so the servers are stopped on the way out
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        jira_port = free_port()
        jira = FakeJira(f"https://127.0.0.1:{jira_port}")
        tickets = [(issue_id, issue["key"]) for issue_id, issue in jira.issues.items()]
        load = bodies(tickets)
        env = dict(os.environ)
        jira_table = jira_settings(jira.base_url)
        if args.worker == "stub":
            env["REQUESTS_CA_BUNDLE"] = str(stack.enter_context(https_jira(jira, root, jira_port)))
            service: dict[str, object] = {}
        else:
            service = {"coalesce_seconds": 600}
        (root / "bare").mkdir()
        (root / "bare-wsgi").mkdir()
        for name in ("cg", "not-storing"):
            (root / name).mkdir()
            (root / name / "clientguard.toml").write_text(tomli_w.dumps({
                "service": {"database_url": f"sqlite:///{root / name / 'state.sqlite3'}",
                            "queue_url": f"sqlite:///{root / name / 'queue.sqlite3'}",
                            **service},
                "jira": jira_table}), encoding="utf-8")
        database, queue = root / "cg" / "state.sqlite3", root / "cg" / "queue.sqlite3"

        bare_port, cg_port, reference_port = free_port(), free_port(), free_port()
        wsgi_port = free_port()
        bare = stack.enter_context(server(
            [sys.executable, "-c", BARE_APP, str(bare_port), str(WAITRESS_THREADS)],
            root / "bare", env, bare_port))
        bare_wsgi = stack.enter_context(server(
            [sys.executable, "-c", BARE_WSGI_APP, str(wsgi_port), str(WAITRESS_THREADS)],
            root / "bare-wsgi", env, wsgi_port))
        reference = stack.enter_context(server(
            [sys.executable, "-c", NOT_STORING_APP, str(reference_port), str(WAITRESS_THREADS)],
            root / "not-storing", env, reference_port))
        served = stack.enter_context(server(
            [str(CLIENTGUARD), "serve", "--port", str(cg_port), "--threads",
             str(WAITRESS_THREADS)], root / "cg", env, cg_port))
        with paused(bare, bare_wsgi, reference):
            warmed = warm_up(cg_port, load, len(tickets), lambda: args.worker == "idle" or len(
                {i for i, _ in jira.written}) == len(tickets))
        with paused(served, bare_wsgi, reference):
            bare_open = open_loop(bare.pid, bare_port, load, args.rate, args.open_seconds,
                                  "bare-open")
        with paused(bare, bare_wsgi, reference):
            cg_open = open_loop(served.pid, cg_port, load, args.rate, args.open_seconds,
                                "cg-open")
        servers = {"bare": (bare, bare_port), "bare-wsgi": (bare_wsgi, wsgi_port),
                   "not-storing": (reference, reference_port), "cg": (served, cg_port)}
        slices: dict[str, list[Phase]] = {name: [] for name in servers}
        for k in range(args.slices):  # each slice with the other servers stopped
            for name, (process, port) in servers.items():
                with paused(*(other for other, _ in servers.values() if other is not process)):
                    slices[name].append(closed_loop(process.pid, port, load, args.clients,
                                                    args.seconds / args.slices,
                                                    f"{name}-closed-{k}"))
        bare_closed, wsgi_closed, reference_closed, cg_closed = (
            Phase.joined(slices[name]) for name in servers)
        stack.close()  # both servers stopped: what clientguard stored is final
        events, jobs = stored_events(database), queued_jobs(queue)

    sizes = [len(body) for body, _ in load]
    consumer = ("the consumer evaluates against a local HTTPS Jira stand-in in this "
                "process, coalesce_seconds 2.0 as by default" if args.worker == "stub"
                else "coalesce_seconds 600: the consumer only polls its queue")
    print(f"load: {len(load)} signed bodies (every stored event kind of the fixtures, on "
          f"{len(jira.issues)} tickets), {min(sizes) / 1024:.1f}-{max(sizes) / 1024:.1f} KiB, "
          f"mean {sum(sizes) / len(sizes) / 1024:.1f} KiB; waitress threads {WAITRESS_THREADS}")
    print(f"worker in serve: {args.worker} ({consumer})")
    for label, phase in (("baseline  bare Flask endpoint", bare_closed),
                         ("reference bare WSGI, no Flask ", wsgi_closed),
                         ("reference not storing (below) ", reference_closed),
                         ("measured  clientguard serve   ", cg_closed)):
        print(f"{label} closed loop, {args.clients} clients: {phase.rate:7,.0f} req/s  "
              f"(p50 {ms(percentile(phase.latencies, 0.5))}, p99 "
              f"{ms(percentile(phase.latencies, 0.99))}; {phase.failed} failed; CPU: server "
              f"{phase.server_cores:.2f} cores = {phase.cpu_per_request * 1e6:.0f} µs "
              f"per request, this process {phase.generator_cores:.2f})")
    for label, phase in (("baseline  bare Flask endpoint", bare_open),
                         ("measured  clientguard serve   ", cg_open)):
        print(f"{label} open loop {args.rate:.0f} req/s:   p50 "
              f"{ms(percentile(phase.latencies, 0.5))}  p99 "
              f"{ms(percentile(phase.latencies, 0.99))}  max {ms(max(phase.latencies))}  "
              f"({len(phase.latencies)} accepted, {phase.failed} failed; CPU: server "
              f"{phase.server_cores:.2f} cores)")
    accepted = warmed + len(cg_open.latencies) + len(cg_closed.latencies)
    print(f"clientguard stored {sum(events.values())} events for {accepted} requests answered "
          f"\"accepted\" (warm-up included); by status {events}")
    print(f"left in the queue when serve stopped: {jobs[0]} jobs due, {jobs[1]} scheduled; "
          f"Jira calls by the worker: {dict(jira.calls) or 'none'}")
    share = cg_closed.rate / bare_closed.rate
    storing = cg_closed.cpu_per_request - reference_closed.cpu_per_request
    added = ("storing durably and the consumer's evaluations (it runs no consumer) add"
             if args.worker == "stub" else "storing durably adds")
    print(f"reference: the same app verifying, parsing and counting but storing nothing "
          f"reaches {reference_closed.rate / bare_closed.rate:.0%} of the bare endpoint; "
          f"{added} {storing * 1e6:.0f} µs of server CPU per request")
    print(f"reference: a bare endpoint without Flask answers {wsgi_closed.rate:,.0f} req/s, "
          f"{wsgi_closed.rate / bare_closed.rate:.0%} of the bare Flask endpoint; clientguard "
          f"reaches {cg_closed.rate / wsgi_closed.rate:.0%} of it")
    p99 = percentile(cg_open.latencies, 0.99)
    print(f"target >= {TARGET_SHARE:.0%} of the bare Flask endpoint's throughput: "
          f"{'met' if share >= TARGET_SHARE else 'MISSED'} ({share:.0%})")
    print(f"target p99 <= {TARGET_P99_SECONDS * 1000:.0f} ms at {args.rate:.0f} req/s: "
          f"{'met' if p99 <= TARGET_P99_SECONDS and not cg_open.failed else 'MISSED'} "
          f"({p99 * 1000:.1f} ms, {cg_open.failed} failed)")


if __name__ == "__main__":
    main()
