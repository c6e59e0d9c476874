"""How long a Jira event takes to become a sticky comment, and how many Jira calls it costs.

The real app (`create_app`, SQLite files in a temp dir) and the real huey consumer run
in-process; only Jira is stood in for (`support.FakeJira` through `responses`: 100 issues
built from the REST fixture). A stream of mixed, signed events goes through the Flask test
client in real time: bursts on one ticket within a second, Jira's redeliveries, events that
change what ClientGuard reads (a comment, the account manager), events that do not (another
field, a worklog note), and the echoes of our own comment writes. Latency per stored event:
from its 202 to the end of the evaluation that answered it (comment written or skipped).
Baseline in the same run: single events on an otherwise idle service, and the evaluation
alone. Targets: p95 <= 250 ms; <= 1.5 Jira calls per event; 0 writes when nothing changed.

    python bench/pipeline.py [--seconds 20] [--events 1000] [--coalesce 0.2]
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import responses
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from support import FakeJira, fixture, jira_settings, mock_jira, percentile, retarget, signed

from connectors.base import EngagementRef
from plugin.app import create_app
from plugin.config import build_config
from plugin.pipeline.process import Processed, process
from plugin.storage.models import EventRecord

JIRA = "https://jira.agency.example"
TARGET_P95_SECONDS = 0.25
TARGET_CALLS_PER_EVENT = 1.5
IDLE_SECONDS = 8.0  # how long the service idles before the first baseline event
BASELINE_EVENTS = 6  # one after the idle time, then one after the other
DRAIN_TIMEOUT = 60.0
COMMENT_CREATED = fixture("comment_created__datacenter_no_issue.json")
ISSUE_UPDATED = fixture("jira_issue_updated__datacenter_custom_field.json")
WORKLOG_UPDATED = fixture("worklog_updated__cloud.json")
# What happens in Jira before each event, by weight: the first three change what
# ClientGuard reads (a new comment, the account manager cleared or set again), the last two
# do not (another field edited, a worklog's note edited).
KINDS = {"client comment": 20, "agency comment": 10, "account manager": 15,
         "other field": 35, "worklog note": 20}
CHANGES = ("client comment", "agency comment", "account manager")


@dataclass(frozen=True)
class Planned:
    """One delivery of the stream: when (seconds after its start), about which issue, what
    happened in Jira, and the delivery id (a redelivery repeats an earlier one)."""

    at: float
    issue_id: str
    kind: str
    delivery_id: str
    redelivery: bool = False


@dataclass(frozen=True)
class Run:
    """One call of `process` (one job): when it began and ended, what it did."""

    began: float
    ended: float
    result: Processed


def plan_stream(ids: list[str], events: int, seconds: float, rng: random.Random
                ) -> list[Planned]:
    """`events` deliveries over `seconds`: single events and bursts of 3-6 events on one
    ticket within a second; some tickets much busier than others; 8 % redeliveries."""
    weights = [1 / (rank + 1) ** 0.7 for rank in range(len(ids))]
    episodes: list[tuple[str, list[float]]] = []
    count = 0
    while count < events:
        size = 1 if rng.random() < 0.55 else rng.randint(3, 6)
        episodes.append((rng.choices(ids, weights)[0],
                         [0.0, *sorted(rng.uniform(0.05, 1.0) for _ in range(size - 1))]))
        count += size
    planned: list[Planned] = []
    starts = sorted(rng.uniform(0, seconds) for _ in episodes)
    for start, (issue_id, offsets) in zip(starts, episodes, strict=True):
        for offset in offsets:
            kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
            item = Planned(start + offset, issue_id, kind, f"d-{len(planned)}")
            planned.append(item)
            if rng.random() < 0.08:  # Jira did not see our 202 in time and sends it again
                planned.append(Planned(item.at + rng.uniform(0.1, 5), issue_id, item.kind,
                                       item.delivery_id, redelivery=True))
    return sorted(planned, key=lambda p: p.at)[:events]


def payload_for(item: Planned, jira: FakeJira) -> dict[str, Any]:
    """Make the change `item` stands for in Jira, and return the webhook Jira sends then."""
    issue = jira.issues[item.issue_id]
    if item.kind in ("client comment", "agency comment"):
        comment = jira.change_comment(item.issue_id, client=item.kind == "client comment")
        return {**COMMENT_CREATED, "comment": comment}
    if item.kind == "account manager":
        jira.change_account_manager(item.issue_id)
    if item.kind == "worklog note":
        return retarget(WORKLOG_UPDATED, item.issue_id, issue["key"])
    return retarget(ISSUE_UPDATED, item.issue_id, issue["key"])


class Deliverer:
    """Posts signed deliveries through the test client, notes when each stored one got its
    202, and sends Jira's echo of every comment we wrote (ignored by intake as our own)."""

    def __init__(self, client: FlaskClient, jira: FakeJira) -> None:
        self.client = client
        self.jira = jira
        self.accepted_at: dict[str, float] = {}
        self.answers: Counter[str] = Counter()
        self.bodies: dict[str, tuple[bytes, str]] = {}
        self.echoes = 0

    def post(self, delivery_id: str, payload: dict[str, Any] | None = None) -> str:
        if payload is not None:
            self.bodies[delivery_id] = signed(payload)
        body, signature = self.bodies[delivery_id]
        response = self.client.post("/hooks/jira", data=body, headers={
            "X-Hub-Signature": signature, "X-Atlassian-Webhook-Identifier": delivery_id})
        assert response.status_code == 202, (response.status_code, response.json)
        status = response.json["status"]
        if status == "accepted":
            self.accepted_at[delivery_id] = time.perf_counter()
        return status

    def echo(self) -> None:
        for _, comment in self.jira.written[self.echoes:]:
            self.echoes += 1
            event = "comment_created" if comment["created"] == comment["updated"] else \
                "comment_updated"
            self.post(f"echo-{self.echoes}",
                      {**COMMENT_CREATED, "webhookEvent": event, "comment": comment})

    def wait_until(self, moment: float) -> None:
        """Sleep until `moment` (perf_counter), sending echoes meanwhile."""
        while (left := moment - time.perf_counter()) > 0:
            self.echo()
            time.sleep(min(left, 0.01))


def open_events(app: Flask) -> int:
    with app.extensions["clientguard.database"].session() as session:
        return session.scalar(select(func.count()).where(
            EventRecord.status.in_(("pending", "processing"))))


def drain(app: Flask, deliverer: Deliverer) -> None:
    """Wait until no stored event is pending or in progress."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while open_events(app):
        assert time.monotonic() < deadline, f"{open_events(app)} events still open"
        deliverer.wait_until(time.perf_counter() + 0.02)
    deliverer.echo()


def latencies(app: Flask, accepted_at: dict[str, float], runs: dict[tuple[str, datetime], Run]
              ) -> tuple[list[float], list[float], Counter[str]]:
    """Per stored event: seconds from its 202 to the end of the run that finished it, and
    from its 202 to that run's start; the final statuses."""
    with app.extensions["clientguard.database"].session() as session:
        rows = session.execute(select(EventRecord.delivery_id, EventRecord.engagement_key,
                                      EventRecord.processed_at, EventRecord.status)
                               .order_by(EventRecord.id)).all()
    total, waited, statuses = [], [], Counter[str]()
    for delivery_id, key, processed_at, status in rows:
        if delivery_id not in accepted_at:
            continue
        statuses[status] += 1
        run = runs.get((key, processed_at))
        if status == "done" and run is not None:
            total.append(run.ended - accepted_at[delivery_id])
            waited.append(run.began - accepted_at[delivery_id])
    return total, waited, statuses


def timed(runs: dict[tuple[str, datetime], Run]) -> Callable[..., Processed]:
    """`process`, noting each run by (engagement key, its `now`): that `now` is what the run
    stores as `processed_at` on the events it finishes."""

    def run(ref: EngagementRef, *args: Any) -> Processed:
        now, began = datetime.now(UTC), time.perf_counter()
        result = process(ref, *args, now=now)
        runs[(ref.key, now)] = Run(began, time.perf_counter(), result)
        return result

    return run


def overlapping(runs: dict[tuple[str, datetime], Run]) -> int:
    """Evaluations that began before another evaluation of the same ticket had ended."""
    by_ticket: dict[str, list[Run]] = {}
    for (key, _), run in runs.items():
        if run.result.events:
            by_ticket.setdefault(key, []).append(run)
    count = 0
    for ticket_runs in by_ticket.values():
        ended = float("-inf")
        for run in sorted(ticket_runs, key=lambda r: r.began):
            count += run.began < ended
            ended = max(ended, run.ended)
    return count


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the stream")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--tickets", type=int, default=100)
    parser.add_argument("--coalesce", type=float, default=0.2,
                        help="service.coalesce_seconds [the product default is 2.0]")
    parser.add_argument("--workers", type=int, default=2, help="service.workers")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    runs: dict[tuple[str, datetime], Run] = {}
    with tempfile.TemporaryDirectory() as tmp, \
            responses.RequestsMock(assert_all_requests_are_fired=False) as jira_mock, \
            mock.patch("plugin.app.process", timed(runs)):
        jira = FakeJira(JIRA, args.tickets, args.seed)
        mock_jira(jira_mock, jira)
        app = create_app(build_config({
            "service": {"database_url": f"sqlite:///{Path(tmp) / 'state.sqlite3'}",
                        "queue_url": f"sqlite:///{Path(tmp) / 'queue.sqlite3'}",
                        "coalesce_seconds": args.coalesce, "workers": args.workers},
            "jira": jira_settings(JIRA)}))
        deliverer = Deliverer(app.test_client(), jira)
        handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
        consumer = app.extensions["clientguard.jobs"].consumer(args.workers)
        consumer.start()
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
        try:
            # Baseline: one event at a time on an otherwise idle service, first after the
            # workers idled (their queue polling backs off), then right after each other.
            deliverer.wait_until(time.perf_counter() + IDLE_SECONDS)
            for n, issue_id in enumerate(jira.ids[-BASELINE_EVENTS:]):
                deliverer.post(f"baseline-{n}", payload_for(
                    Planned(0, issue_id, "other field", f"baseline-{n}"), jira))
                drain(app, deliverer)
            single, _, _ = latencies(app, deliverer.accepted_at, runs)
            evaluations_before, calls_before = len(runs), jira.calls.copy()
            deliverer.accepted_at.clear()
            echoes_before, needless_before = deliverer.echoes, jira.needless_writes

            plan = plan_stream(jira.ids, args.events, args.seconds, rng)
            started = time.perf_counter()
            for item in plan:
                deliverer.wait_until(started + item.at)
                payload = None if item.redelivery else payload_for(item, jira)
                deliverer.answers[deliverer.post(item.delivery_id, payload)] += 1
            sent = time.perf_counter() - started
            drain(app, deliverer)
        finally:
            consumer.stop(graceful=True)
            app.extensions["clientguard.jobs"].huey.flush()
        total, waited, statuses = latencies(app, deliverer.accepted_at, runs)
        app.extensions["clientguard.database"].close()
    stream_runs = dict(list(runs.items())[evaluations_before:])
    evaluations = [run for run in stream_runs.values() if run.result.events]
    calls = jira.calls - calls_before
    reads = sum(n for kind, n in calls.items() if kind.startswith("read"))
    writes = sum(n for kind, n in calls.items() if kind.startswith("write"))
    stored = len(deliverer.accepted_at)
    changes = sum(1 for item in plan if item.kind in CHANGES and not item.redelivery)
    metrics = app.extensions["clientguard.metrics"].registry
    evaluate_mean = (metrics.get_sample_value("clientguard_evaluation_seconds_sum")
                     / metrics.get_sample_value("clientguard_evaluation_seconds_count"))

    print(f"stream: {len(plan)} events on {len({p.issue_id for p in plan})} tickets in "
          f"{sent:.1f} s; {changes} changed what ClientGuard reads; answers "
          f"{dict(deliverer.answers)}; {deliverer.echoes - echoes_before} echoes of our "
          "writes, ignored")
    print(f"service: coalesce_seconds {args.coalesce}, {args.workers} workers, SQLite; "
          f"stored events {dict(statuses)}")
    print(f"evaluations: {len(evaluations)} for {stored} stored events "
          f"({stored / len(evaluations):.1f} events each); {len(stream_runs) - len(evaluations)}"
          f" jobs found nothing left to do")
    print(f"Jira calls: {reads} reads + {writes} writes = {reads + writes}; per delivered "
          f"event {(reads + writes) / len(plan):.2f}, per stored event "
          f"{(reads + writes) / stored:.2f}, per evaluation "
          f"{(reads + writes) / len(evaluations):.2f}")
    for kind, n in sorted(calls.items()):
        print(f"    {kind:28} {n:5}  ({n / stored:.2f} per stored event)")
    needless = jira.needless_writes - needless_before
    print(f"writes when nothing changed since the last write: {needless}; evaluations that "
          f"overlapped another of the same ticket: {overlapping(stream_runs)}")
    processing = [run.ended - run.began for run in evaluations]
    print(f"baseline  evaluation alone (engine, mean):            {ms(evaluate_mean)}")
    print(f"baseline  single event, service idle {IDLE_SECONDS:.0f} s before:      "
          f"{ms(single[0])}")
    print(f"baseline  single event, workers just active (median): "
          f"{ms(statistics.median(single[1:]))}")
    print(f"measured  evaluation run: fetch + evaluate + write    p50 "
          f"{ms(percentile(processing, 0.5))}  p95 {ms(percentile(processing, 0.95))}")
    print(f"measured  202 -> run starts (coalescing, queue)       p50 "
          f"{ms(percentile(waited, 0.5))}  p95 {ms(percentile(waited, 0.95))}")
    p50, p95, p99 = (percentile(total, share) for share in (0.5, 0.95, 0.99))
    print(f"measured  202 -> comment written or skipped           p50 {ms(p50)}  p95 "
          f"{ms(p95)}  p99 {ms(p99)}  (mean {ms(statistics.mean(total))}, {len(total)} events)")
    # An event waits at most the coalescing delay for it (less when it joins a burst whose
    # job is already due); whatever else it waited is the queue: polling, the scheduler.
    coalescing = sum(min(args.coalesce, wait) for wait in waited)
    print(f"share of the summed latency: coalescing delay ({args.coalesce * 1000:.0f} ms) at "
          f"most {coalescing / sum(total):.0%}, queue {(sum(waited) - coalescing) / sum(total):.0%}"
          f", evaluation run {(sum(total) - sum(waited)) / sum(total):.0%}")
    per_event = (reads + writes) / stored
    print(f"target p95 <= {TARGET_P95_SECONDS * 1000:.0f} ms: "
          f"{'met' if p95 <= TARGET_P95_SECONDS else 'MISSED'} ({p95 * 1000:.0f} ms)")
    print(f"target <= {TARGET_CALLS_PER_EVENT} Jira calls per stored event: "
          f"{'met' if per_event <= TARGET_CALLS_PER_EVENT else 'MISSED'} ({per_event:.2f}; "
          f"{(reads + writes) / len(plan):.2f} per delivered event)")
    print(f"target 0 writes when nothing changed: {'met' if needless == 0 else 'MISSED'} "
          f"({needless})")


if __name__ == "__main__":
    main()
