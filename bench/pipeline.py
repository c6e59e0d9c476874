"""How long a platform event takes to become a sticky comment, and how many platform calls it
costs (Jira, or Bitrix24 with --platform bitrix24).

The real app (`create_app`, SQLite files in a temp dir) and the real huey consumer run
in-process; only the platform is stood in for, through `responses`: Jira by
`support.FakeJira` (100 issues built from the REST fixture), Bitrix24 by `FakePortal` of
tests/connectors/bitrix24/portal.py (100 deals built from the REST samples, webhook mode, the
real leaky bucket of `[bitrix24] rate_per_second`/`burst` waiting for real). A stream of mixed
events goes through the Flask test client in real time: bursts on one ticket or deal within a
second, repeats of earlier deliveries (Jira redelivers; Bitrix24 never does, but a proxy may),
changes to what ClientGuard reads, changes that do not, and the echoes of our own comment
writes. Per platform (`Platform`): the stand-in, how an event is made and posted, how calls
are counted and classified, the echoes.

Jira: a comment, the account manager (changes); another field, a worklog note (none).
Bitrix24: the responsible person, the mapped project-manager field, the stage (changes);
another deal field (none); a client's e-mail, an agency reply (ONCRMACTIVITYADD), a person's
timeline comment (ONCRMTIMELINECOMMENTADD) — indirect, resolved to the deal by a batch, and
changes; a task or smart-invoice update (ONTASKUPDATE, ONCRMDYNAMICITEMUPDATE, indirect,
nothing ClientGuard reads changed); each of our timeline comment writes echoes back as
ONCRMTIMELINECOMMENT* by our webhook's user. A Bitrix24 call is one HTTP request (a batch is
one call, however many commands it carries).

Then the quarter-hourly review runs once: its catch-up of lost webhooks should ask for no
evaluation (none was lost, and every change was evaluated) and cost one listing.

Latency per stored event: from its 202 to the end of the evaluation that answered it (comment
written or skipped). Baseline in the same run: single events on an otherwise idle service, and
the evaluation alone. Targets: p95 <= 250 ms; <= 1.5 Jira / 1.2 Bitrix24 calls per stored
event; 0 writes when nothing changed.

    python bench/pipeline.py [--platform jira|bitrix24] [--seconds 20] [--events 1000]
                             [--coalesce 0.2] [--rate 2.0 --burst 50]
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import responses
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from support import (
    SENTENCES,
    FakeJira,
    fixture,
    jira_settings,
    mock_jira,
    percentile,
    retarget,
    signed,
)

from connectors.base import Delivery, EngagementRef
from connectors.bitrix24.events import delivery_id as bitrix24_delivery_id
from connectors.bitrix24.settings import DEFAULT_BURST, DEFAULT_RATE
from plugin.app import create_app
from plugin.config import build_config
from plugin.pipeline.process import Processed, process
from plugin.storage.models import EventRecord

JIRA = "https://jira.agency.example"
TARGET_P95_SECONDS = 0.25
IDLE_SECONDS = 8.0  # how long the service idles before the first baseline event
BASELINE_EVENTS = 6  # one after the idle time, then one after the other
DRAIN_TIMEOUT = 60.0  # seconds without any stored event finishing: give up
COMMENT_CREATED = fixture("comment_created__datacenter_no_issue.json")
ISSUE_UPDATED = fixture("jira_issue_updated__datacenter_custom_field.json")
WORKLOG_UPDATED = fixture("worklog_updated__cloud.json")
# What happens in Jira before each event, by weight: the first three change what
# ClientGuard reads (a new comment, the account manager cleared or set again), the last two
# do not (another field edited, a worklog's note edited).
KINDS = {"client comment": 20, "agency comment": 10, "account manager": 15,
         "other field": 35, "worklog note": 20}
CHANGES = ("client comment", "agency comment", "account manager")

ROOT = Path(__file__).resolve().parent.parent
BITRIX24_SITE = "acme-b24"
PROJECT_MANAGER = "UF_CRM_1725001000"  # mapped as the account manager, as the e2e tests do
PERSON, BOT = "3", "1"  # John Doe, an employee; the webhook's user, whom we write as
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# What happens on the portal before each event, by weight: the first six change what
# ClientGuard reads, the last three do not (the deal's amount; a task's or a smart
# invoice's field ClientGuard does not read).
BITRIX24_KINDS = {"responsible person": 6, "project manager field": 6, "stage": 6,
                  "client e-mail": 15, "agency reply": 8, "person comment": 10,
                  "other deal field": 22, "task update": 15, "smart invoice update": 12}
BITRIX24_CHANGES = ("responsible person", "project manager field", "stage", "client e-mail",
                    "agency reply", "person comment")
STAGES = ("PREPARATION", "EXECUTING")  # pre-sale (todo) and work (in progress)
RESOLVE_KEY = ("comment_", "activity_", "task_", "invoice_")  # connectors.bitrix24.resolve
ECHO_EVENTS = {"crm.timeline.comment.add": "ONCRMTIMELINECOMMENTADD",
               "crm.timeline.comment.update": "ONCRMTIMELINECOMMENTUPDATE",
               "crm.timeline.comment.delete": "ONCRMTIMELINECOMMENTDELETE"}


@dataclass(frozen=True)
class Planned:
    """One delivery of the stream: when (seconds after its start), about which issue or
    deal, what happened on the platform, and the delivery id (a repeat names an earlier
    one)."""

    at: float
    issue_id: str
    kind: str
    delivery_id: str
    redelivery: bool = False


@dataclass(frozen=True)
class Sent:
    """A delivery as posted: body, headers, and the id intake stores it under."""

    body: bytes
    headers: dict[str, str]
    stored_id: str


@dataclass(frozen=True)
class Run:
    """One call of `process` (one job): when it began and ended, what it did."""

    began: float
    ended: float
    result: Processed


class Platform(Protocol):
    """What the bench needs from a platform: its stand-in, its events, its call counts."""

    name: str  # the connector, and /hooks/<name>
    label: str  # in the figures: "target <= 1.5 Jira calls …"
    calls_name: str  # "Jira calls: …"
    noun: str  # what an engagement is called: tickets, deals
    kinds: dict[str, int]  # what happens before an event, by weight
    changes: tuple[str, ...]  # the kinds that change what ClientGuard reads
    quiet: str  # the kind of the baseline events
    repeats: float  # share of deliveries repeated later
    target_calls: float  # per stored event
    target_p95: float | None  # seconds from 202 to comment; None: the issue sets none
    ids: list[str]
    calls: Counter[str]  # by kind: "read: …", "write: …", anything else
    needless_writes: int  # writes although nothing changed since the last write

    def settings(self) -> dict[str, Any]: ...

    def serve(self, requests_mock: responses.RequestsMock) -> None: ...

    def started(self, app: Flask) -> None: ...

    def delivery(self, item: Planned) -> Sent: ...

    def echoes(self) -> list[tuple[str, Sent]]: ...

    def notes(self, names: list[str], total: list[float]) -> list[str]: ...


class Jira:
    """Jira Data Center: `support.FakeJira`, signed JSON webhooks with delivery ids."""

    name, label, noun, calls_name = "jira", "Jira", "tickets", "Jira calls"
    kinds, changes, quiet, repeats, target_calls = KINDS, CHANGES, "other field", 0.08, 1.5
    target_p95 = TARGET_P95_SECONDS

    def __init__(self, args: argparse.Namespace) -> None:
        self.jira = FakeJira(JIRA, args.tickets, args.seed)
        self.ids = self.jira.ids
        self._echoed = 0

    @property
    def calls(self) -> Counter[str]:
        return self.jira.calls

    @property
    def needless_writes(self) -> int:
        return self.jira.needless_writes

    def settings(self) -> dict[str, Any]:
        return {"jira": jira_settings(JIRA)}

    def serve(self, requests_mock: responses.RequestsMock) -> None:
        mock_jira(requests_mock, self.jira)

    def started(self, app: Flask) -> None:
        pass

    def delivery(self, item: Planned) -> Sent:
        return self._signed(item.delivery_id, payload_for(item, self.jira))

    @staticmethod
    def _signed(delivery_id: str, payload: dict[str, Any]) -> Sent:
        body, signature = signed(payload)
        return Sent(body, {"X-Hub-Signature": signature,
                           "X-Atlassian-Webhook-Identifier": delivery_id}, delivery_id)

    def echoes(self) -> list[tuple[str, Sent]]:
        """Jira's comment_created / comment_updated for every comment we wrote since."""
        found = []
        for _, comment in self.jira.written[self._echoed:]:
            self._echoed += 1
            event = "comment_created" if comment["created"] == comment["updated"] else \
                "comment_updated"
            found.append(self._signed(f"echo-{self._echoed}", {
                **COMMENT_CREATED, "webhookEvent": event, "comment": comment}))
        return [(sent.stored_id, sent) for sent in found]

    def notes(self, names: list[str], total: list[float]) -> list[str]:
        return []


def payload_for(item: Planned, jira: FakeJira) -> dict[str, Any]:
    """Make the change `item` stands for in Jira, and return the webhook Jira sends then."""
    issue = jira.issues[item.issue_id]
    if item.kind in ("client comment", "agency comment"):
        comment = jira.change_comment(item.issue_id, client=item.kind == "client comment")
        return {**COMMENT_CREATED, "comment": comment}
    if item.kind == "account manager":
        jira.change_account_manager(item.issue_id)
    else:
        jira.change_unread(item.issue_id)
    if item.kind == "worklog note":
        return retarget(WORKLOG_UPDATED, item.issue_id, issue["key"])
    return retarget(ISSUE_UPDATED, item.issue_id, issue["key"])


def fake_portal_module() -> ModuleType:
    """tests/connectors/bitrix24/portal.py (the tests are not an installed package)."""
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))
    return importlib.import_module("tests.connectors.bitrix24.portal")


class Bitrix24:
    """A Bitrix24 portal in webhook mode: `FakePortal` with `deals` deals, events as the form
    bodies a portal posts (no delivery id: intake keys them by the body's hash, so `ts` in
    Unix seconds tells events apart), every HTTP request counted by kind.

    What ClientGuard reads of a deal has a version, bumped by each change of `changes`; the
    version a worker read with its snapshot batch is compared, at each comment write, with
    the version the previous write of that deal was based on (`needless_writes`)."""

    name, label, noun = "bitrix24", "Bitrix24", "deals"
    calls_name = "Bitrix24 HTTP calls (a batch is one)"
    kinds, changes, quiet = BITRIX24_KINDS, BITRIX24_CHANGES, "other deal field"
    repeats, target_calls = 0.03, 1.2  # a proxy repeating a few deliveries
    # No latency target: a cloud portal answers 2 requests/s, so a stream faster than that
    # queues behind the portal's limit however fast ClientGuard is.
    target_p95 = None

    def __init__(self, args: argparse.Namespace) -> None:
        self.module = fake_portal_module()
        self.portal = self.module.FakePortal(deals=args.tickets)
        self.rate, self.burst = args.rate, args.burst
        self.ids = [str(deal) for deal in self.portal.deals]
        self.tasks = {deal: self.portal.task_of(int(deal)) for deal in self.ids}
        self.invoices = {deal: self.portal.invoice_of(int(deal)) for deal in self.ids}
        self.calls: Counter[str] = Counter()
        self.needless_writes = 0
        self.waits: list[float] = []  # each call's wait in the leaky bucket
        self._lock = threading.Lock()  # changes, versions and answers, one at a time
        self._version: Counter[str] = Counter()
        self._written_version: dict[str, int] = {}
        self._last_read: dict[str, int] = {}  # deal -> the version its latest snapshot read
        self._fetched = threading.local()  # per worker: deal -> version its snapshot read
        self._written: list[tuple[str, str]] = []  # (echo event, comment id), in order
        self._echoed = 0
        self._rng = random.Random(args.seed)

    def settings(self) -> dict[str, Any]:
        return {"bitrix24": {
            "site": BITRIX24_SITE, "webhook_url": self.module.WEBHOOK_URL,
            "outgoing_token": self.module.OUTGOING_TOKEN,
            "fields": {"account_manager": PROJECT_MANAGER},
            "rate_per_second": self.rate, "burst": self.burst}}

    def serve(self, requests_mock: responses.RequestsMock) -> None:
        """The portal's callbacks (`FakePortal.mock`), each request counted on the way."""

        def reply(request: Any) -> tuple[int, dict[str, str], str]:
            with self._lock:
                status, headers, text = self.portal.answer(request.method, request.url,
                                                           request.body)
                self._count(request.url, request.body, status, text)
            return status, headers, text

        requests_mock.add_callback(
            responses.POST, re.compile(re.escape(self.module.PORTAL) + r"/rest/.*"),
            callback=reply)

    def started(self, app: Flask) -> None:
        """The app is up: note every wait in the portal's leaky bucket (the one the
        connector's client waits in, shared through the database)."""
        bucket = app.extensions["clientguard.connectors"]["bitrix24"].client_for(
            BITRIX24_SITE).throttle
        acquire = bucket.acquire

        def noted() -> float:
            waited = acquire()
            self.waits.append(waited)
            return waited

        bucket.acquire = noted  # type: ignore[method-assign]

    def _count(self, url: str, body: bytes | str | None, status: int, text: str) -> None:
        method = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".json")
        params = json.loads(body or "{}")
        if method == "batch":
            cmd = params.get("cmd") or {}
            if "deal" in cmd:
                kind = "read: batch snapshot"
                query = str(cmd["deal"]).partition("?")[2]
                deal = parse_qs(query).get("id", [""])[0]
                self._read()[deal] = self._last_read[deal] = self._version[deal]
            elif cmd and all(key.startswith(RESOLVE_KEY) for key in cmd):
                kind = "read: batch resolve"
            else:
                kind = "read: batch snapshot, 2nd (catalogue, pages)"
        elif method in ECHO_EVENTS:
            kind = "write: comment " + method.rsplit(".", 1)[-1]
            if status == 200:
                self._wrote(method, params, json.loads(text)["result"])
        else:
            kind = f"other: {method}"
        self.calls[kind] += 1

    def _read(self) -> dict[str, int]:
        """The calling worker's reads: deal -> the version its last snapshot batch read."""
        if not hasattr(self._fetched, "versions"):
            self._fetched.versions = {}
        return self._fetched.versions

    def _wrote(self, method: str, params: dict[str, Any], result: Any) -> None:
        if method == "crm.timeline.comment.add":
            deal, comment_id = str(params["fields"]["ENTITY_ID"]), str(result)
        else:
            deal, comment_id = str(params["ownerId"]), str(params["id"])
        self._written.append((ECHO_EVENTS[method], comment_id))
        if method == "crm.timeline.comment.delete":
            return
        fetched = self._read().get(deal)
        if fetched is not None and fetched == self._written_version.get(deal):
            self.needless_writes += 1
        if fetched is not None:
            self._written_version[deal] = fetched

    def delivery(self, item: Planned) -> Sent:
        """Make the change `item` stands for on the portal; the event the portal posts."""
        deal, kind, portal = item.issue_id, item.kind, self.portal
        number, text = int(deal), self._rng.choice(SENTENCES)
        name, object_id, actor = "ONCRMDEALUPDATE", number, PERSON
        with self._lock:
            fields = portal.deals[number]
            if kind == "responsible person":
                portal.change_deal(number, assignedById=3 if fields["assignedById"] == 1 else 1)
            elif kind == "project manager field":
                portal.change_deal(number, **{PROJECT_MANAGER: None if fields[PROJECT_MANAGER]
                                              else int(PERSON)})
            elif kind == "stage":
                stage = STAGES[1] if fields["stageId"] == STAGES[0] else STAGES[0]
                portal.change_deal(number, stageId=stage,
                                   movedTime=datetime.now(UTC).isoformat(timespec="seconds"))
            elif kind == "other deal field":
                portal.change_deal(number, opportunity=float(self._rng.randint(1, 500) * 1000))
            elif kind == "client e-mail":
                name, actor = "ONCRMACTIVITYADD", None
                object_id = portal.client_writes(number, text)
            elif kind == "agency reply":
                name, object_id = "ONCRMACTIVITYADD", portal.agency_replies(number, text)
            elif kind == "person comment":
                name = "ONCRMTIMELINECOMMENTADD"
                object_id = portal.person_comments(number, text, author=PERSON)
            elif kind == "task update":
                name, object_id = "ONTASKUPDATE", self.tasks[deal]
            elif kind == "smart invoice update":
                name, object_id = "ONCRMDYNAMICITEMUPDATE", self.invoices[deal]
            else:
                raise ValueError(f"unknown kind {kind!r}")
            if kind in self.changes:
                self._version[deal] += 1
        return self._event(name, object_id, actor)

    def _event(self, name: str, object_id: int | str, actor: str | None) -> Sent:
        own = name.startswith("ONCRMTIMELINECOMMENT") and name != "ONCRMTIMELINECOMMENTADD"
        body = self.module.event_body("ONCRMTIMELINECOMMENTADD" if own else name, object_id,
                                      ts=int(time.time()),
                                      auth=self.module.webhook_auth(user_id=actor))
        if own:  # no sample of its own: the add's body under the event's name
            body = body.replace(b"event=ONCRMTIMELINECOMMENTADD", b"event=" + name.encode())
        stored_id = bitrix24_delivery_id(Delivery(body, FORM, datetime.now(UTC)))
        return Sent(body, FORM, stored_id)

    def echoes(self) -> list[tuple[str, Sent]]:
        """The portal's ONCRMTIMELINECOMMENT* by our user for each comment we wrote since."""
        with self._lock:
            new = self._written[self._echoed:]
            self._echoed += len(new)
        return [(f"echo-{self._echoed - len(new) + n}", self._event(name, comment_id, BOT))
                for n, (name, comment_id) in enumerate(new, 1)]

    def notes(self, names: list[str], total: list[float]) -> list[str]:
        waited = [seconds for seconds in self.waits if seconds > 0]
        unseen = sorted(deal for deal, version in self._version.items()
                        if self._last_read.get(deal, -1) < version)
        lines = [f"Bitrix24 rate limit (our leaky bucket, {self.rate:g} requests/s, burst "
                 f"{self.burst}, shared by the workers): {len(waited)} of {len(self.waits)} "
                 f"calls waited, {sum(waited):.1f} s in total, longest "
                 f"{max(waited, default=0.0):.2f} s",
                 f"deals whose last change no evaluation read (left to the review): "
                 f"{len(unseen)}{' ' + ', '.join(unseen) if unseen else ''}"]
        direct = [t for name, t in zip(names, total, strict=True) if "DEAL" in name]
        indirect = [t for name, t in zip(names, total, strict=True) if "DEAL" not in name]
        for label, values in (("deal events", direct), ("indirect events", indirect)):
            if values:
                lines.append(f"measured  202 -> comment, {label + ':':16}             p50 "
                             f"{ms(percentile(values, 0.5))}  p95 "
                             f"{ms(percentile(values, 0.95))}  ({len(values)} events)")
        return lines


PLATFORMS: dict[str, Callable[[argparse.Namespace], Platform]] = {
    "jira": Jira, "bitrix24": Bitrix24}


def plan_stream(ids: list[str], events: int, seconds: float, rng: random.Random,
                kinds: dict[str, int], repeats: float) -> list[Planned]:
    """`events` deliveries over `seconds`: single events and bursts of 3-6 events on one
    ticket within a second; some tickets much busier than others; a share `repeats` of
    deliveries repeated 0.1-5 s later."""
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
            kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
            item = Planned(start + offset, issue_id, kind, f"d-{len(planned)}")
            planned.append(item)
            if rng.random() < repeats:  # the sender did not see our 202 in time: again
                planned.append(Planned(item.at + rng.uniform(0.1, 5), issue_id, item.kind,
                                       item.delivery_id, redelivery=True))
    return sorted(planned, key=lambda p: p.at)[:events]


class Deliverer:
    """Posts deliveries through the test client, notes when each stored one got its 202,
    and sends the platform's echo of every comment we wrote (ignored by intake as our
    own)."""

    def __init__(self, client: FlaskClient, platform: Platform) -> None:
        self.client = client
        self.platform = platform
        self.accepted_at: dict[str, float] = {}
        self.answers: Counter[str] = Counter()
        self.echo_answers: Counter[str] = Counter()
        self.sent: dict[str, Sent] = {}
        self.echoes = 0

    def post(self, delivery_id: str, sent: Sent | None = None) -> str:
        if sent is not None:
            self.sent[delivery_id] = sent
        sent = self.sent[delivery_id]
        response = self.client.post(f"/hooks/{self.platform.name}", data=sent.body,
                                    headers=sent.headers)
        assert response.status_code == 202, (response.status_code, response.json)
        status = response.json["status"]
        if status == "accepted":
            self.accepted_at[sent.stored_id] = time.perf_counter()
        return status

    def echo(self) -> None:
        for delivery_id, sent in self.platform.echoes():
            self.echoes += 1
            self.echo_answers[self.post(delivery_id, sent)] += 1

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
    """Wait until no stored event is pending or in progress (a platform's rate limit may
    make that take minutes: give up only when none finished for `DRAIN_TIMEOUT`)."""
    left, deadline = open_events(app), time.monotonic() + DRAIN_TIMEOUT
    while left:
        assert time.monotonic() < deadline, f"{left} events still open"
        deliverer.wait_until(time.perf_counter() + 0.02)
        if (now_left := open_events(app)) < left:
            deadline = time.monotonic() + DRAIN_TIMEOUT
        left = now_left
    deliverer.echo()


def latencies(app: Flask, accepted_at: dict[str, float], runs: dict[tuple[str, datetime], Run]
              ) -> tuple[list[float], list[float], Counter[str], list[str]]:
    """Per stored event: seconds from its 202 to the end of the run that finished it, and
    from its 202 to that run's start; the final statuses; the event names of the first
    list."""
    with app.extensions["clientguard.database"].session() as session:
        rows = session.execute(select(EventRecord.delivery_id, EventRecord.engagement_key,
                                      EventRecord.processed_at, EventRecord.status,
                                      EventRecord.name)
                               .order_by(EventRecord.id)).all()
    total, waited, statuses, names = [], [], Counter[str](), []
    for delivery_id, key, processed_at, status, name in rows:
        if delivery_id not in accepted_at:
            continue
        statuses[status] += 1
        run = runs.get((key, processed_at))
        if status == "done" and run is not None:
            total.append(run.ended - accepted_at[delivery_id])
            waited.append(run.began - accepted_at[delivery_id])
            names.append(name.upper())
    return total, waited, statuses, names


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
    parser.add_argument("--platform", choices=sorted(PLATFORMS), default="jira")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the stream")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--tickets", "--deals", type=int, default=100)
    parser.add_argument("--coalesce", type=float, default=0.2,
                        help="service.coalesce_seconds [the product default is 2.0]")
    parser.add_argument("--workers", type=int, default=2, help="service.workers")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE,
                        help="Bitrix24: [bitrix24] rate_per_second (Enterprise: 5)")
    parser.add_argument("--burst", type=int, default=DEFAULT_BURST,
                        help="Bitrix24: [bitrix24] burst (Enterprise: 250)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    runs: dict[tuple[str, datetime], Run] = {}
    platform = PLATFORMS[args.platform](args)
    with tempfile.TemporaryDirectory() as tmp, \
            responses.RequestsMock(assert_all_requests_are_fired=False) as requests_mock, \
            mock.patch("plugin.app.process", timed(runs)):
        platform.serve(requests_mock)
        app = create_app(build_config({
            "service": {"database_url": f"sqlite:///{Path(tmp) / 'state.sqlite3'}",
                        "queue_url": f"sqlite:///{Path(tmp) / 'queue.sqlite3'}",
                        "coalesce_seconds": args.coalesce, "workers": args.workers},
            **platform.settings()}))
        platform.started(app)
        deliverer = Deliverer(app.test_client(), platform)
        handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
        consumer = app.extensions["clientguard.jobs"].consumer(args.workers)
        consumer.start()
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
        try:
            # Baseline: one event at a time on an otherwise idle service, first after the
            # workers idled (their queue polling backs off), then right after each other.
            deliverer.wait_until(time.perf_counter() + IDLE_SECONDS)
            for n, issue_id in enumerate(platform.ids[-BASELINE_EVENTS:]):
                deliverer.post(f"baseline-{n}", platform.delivery(
                    Planned(0, issue_id, platform.quiet, f"baseline-{n}")))
                drain(app, deliverer)
            single, _, _, _ = latencies(app, deliverer.accepted_at, runs)
            evaluations_before, calls_before = len(runs), platform.calls.copy()
            deliverer.accepted_at.clear()
            echoes_before, needless_before = deliverer.echoes, platform.needless_writes

            plan = plan_stream(platform.ids, args.events, args.seconds, rng, platform.kinds,
                               platform.repeats)
            started = time.perf_counter()
            for item in plan:
                deliverer.wait_until(started + item.at)
                sent = None if item.redelivery else platform.delivery(item)
                deliverer.answers[deliverer.post(item.delivery_id, sent)] += 1
            sent_in = time.perf_counter() - started
            drain(app, deliverer)
            calls, evaluations_after = platform.calls - calls_before, len(runs)
            # The quarter-hourly review right after: its catch-up asks only for changes no
            # evaluation saw (every webhook arrived here), so it should cost its listing.
            reviewed = app.extensions["clientguard.jobs"].review()
            drain(app, deliverer)
            review_calls = platform.calls - calls_before - calls
        finally:
            consumer.stop(graceful=True)
            app.extensions["clientguard.jobs"].huey.flush()
        total, waited, statuses, names = latencies(app, deliverer.accepted_at, runs)
        app.extensions["clientguard.database"].close()
    stream_runs = dict(list(runs.items())[evaluations_before:evaluations_after])
    evaluations = [run for run in stream_runs.values() if run.result.events]
    reads = sum(n for kind, n in calls.items() if kind.startswith("read"))
    writes = sum(n for kind, n in calls.items() if kind.startswith("write"))
    other = sum(calls.values()) - reads - writes
    every = reads + writes + other
    stored = len(deliverer.accepted_at)
    changes = sum(1 for item in plan if item.kind in platform.changes and not item.redelivery)
    metrics = app.extensions["clientguard.metrics"].registry
    evaluate_mean = (metrics.get_sample_value("clientguard_evaluation_seconds_sum")
                     / metrics.get_sample_value("clientguard_evaluation_seconds_count"))
    noun, label = platform.noun, platform.label
    echoed = "ignored" if set(deliverer.echo_answers) <= {"ignored"} else \
        f"answered {dict(deliverer.echo_answers)}"

    print(f"stream: {len(plan)} events on {len({p.issue_id for p in plan})} {noun} in "
          f"{sent_in:.1f} s; {changes} changed what ClientGuard reads; answers "
          f"{dict(deliverer.answers)}; {deliverer.echoes - echoes_before} echoes of our "
          f"writes, {echoed}")
    repeats = sum(1 for item in plan if item.redelivery)
    if deliverer.answers["duplicate"] != repeats:
        print(f"    duplicates: {repeats} repeated deliveries, and "
              f"{deliverer.answers['duplicate'] - repeats} new events whose body equals an "
              "earlier one's (same event, object and second)")
    print(f"service: coalesce_seconds {args.coalesce}, {args.workers} workers, SQLite; "
          f"stored events {dict(statuses)}")
    print(f"evaluations: {len(evaluations)} for {stored} stored events "
          f"({stored / len(evaluations):.1f} events each); {len(stream_runs) - len(evaluations)}"
          f" jobs found nothing left to do")
    print(f"{platform.calls_name}: {reads} reads + {writes} writes"
          f"{f' + {other} other' if other else ''} = {every}; per delivered "
          f"event {every / len(plan):.2f}, per stored event "
          f"{every / stored:.2f}, per evaluation "
          f"{every / len(evaluations):.2f}")
    width = max([28, *(len(kind) for kind in calls)])
    for kind, n in sorted(calls.items()):
        print(f"    {kind:{width}} {n:5}  ({n / stored:.2f} per stored event)")
    needless = platform.needless_writes - needless_before
    print(f"writes when nothing changed since the last write: {needless}; evaluations that "
          f"overlapped another of the same {noun.removesuffix('s')}: "
          f"{overlapping(stream_runs)}")
    print(f"review right after the stream, catching up the last 30 minutes: asked "
          f"{len(reviewed)} evaluation(s) of the {len({p.issue_id for p in plan})} {noun} "
          f"changed; {sum(review_calls.values())} {platform.calls_name} "
          f"{dict(review_calls)}")
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
    for line in platform.notes(names, total):
        print(line)
    per_event = every / stored
    if platform.target_p95 is not None:
        print(f"target p95 <= {platform.target_p95 * 1000:.0f} ms: "
              f"{'met' if p95 <= platform.target_p95 else 'MISSED'} ({p95 * 1000:.0f} ms)")
    print(f"target <= {platform.target_calls} {label} calls per stored event: "
          f"{'met' if per_event <= platform.target_calls else 'MISSED'} ({per_event:.2f}; "
          f"{every / len(plan):.2f} per delivered event)")
    print(f"target 0 writes when nothing changed: {'met' if needless == 0 else 'MISSED'} "
          f"({needless})")


if __name__ == "__main__":
    main()
