"""The durable job queue (huey: an SQLite file by default, Redis at scale).

The queue is only a doorbell: the events table is the truth. Intake rings for an
engagement's first waiting event, `coalesce_seconds` later, so a burst on one ticket is
answered by one evaluation (the job claims every event waiting by then); a job finding
events that arrived during its evaluation rings again; the sweep rings for events whose job
was lost (a crash, a full queue) and the review for open engagements and missed webhooks.
The prune forgets finished events after `keep_events_days`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from pathlib import Path

from huey import Huey, RedisHuey, crontab
from huey.api import TaskWrapper
from huey.consumer import Consumer
from huey.storage import SqliteStorage

from connectors.base import Connector, EngagementRef, ResolvesIndirect
from connectors.errors import ConnectorNotConfigured, PlatformError
from plugin.metrics import Metrics
from plugin.pipeline.process import POSTPONED_BY, Processed
from plugin.pipeline.resolve import resolve_waiting
from plugin.storage import Database, write_lock
from plugin.storage.repository import (
    claim_period,
    close_engagement,
    due_for_review,
    last_catch_up,
    oldest_waiting,
    prune_events,
    record_catch_up,
    record_review,
    seen_changes,
    stale_engagements,
    waiting_counts,
)

log = logging.getLogger(__name__)

JOB_RETRIES, JOB_RETRY_DELAY = 2, 30  # seconds, for failures not POSTPONED_BY; then the sweep
STALE_AFTER_SECONDS = 120.0  # a pending event with no job done by then is re-rung
REVIEW_AFTER_SECONDS = 3600.0  # an open engagement is re-evaluated at least hourly
SCHEDULER_RESOLUTION = 1.0  # seconds: huey checks its schedule once a second
POLL_AT_MOST_EVERY = 0.25  # seconds an idle worker waits before looking at the queue again
LOGGED_KEYS = 20  # engagements named in one log line; the rest are counted
CATCH_UP_MINUTES = 30  # the review looks at least this far back for changes no webhook announced
CATCH_UP_AT_MOST_DAYS = 7  # after a longer outage, `clientguard backfill` catches up
PRUNE_BATCH = 1000  # events deleted per transaction: a short hold of SQLite's write lock


class QueuedSqliteStorage(SqliteStorage):
    """huey's SQLite storage, its write transactions queued on this process's lock for the
    file first, as the state database's are (`plugin.storage.write_lock`). Why: SQLite's busy
    handler retries after sleeps of 1, 2, 5 … 25 ms, and a webhook ringing the queue while
    the scheduler enqueued the jobs due that second waited up to 43 ms."""

    @contextlib.contextmanager
    def db(self, commit: bool = False, close: bool = False) -> Iterator[sqlite3.Cursor]:
        with (write_lock(self.filename) if commit else contextlib.nullcontext(),
              super().db(commit=commit, close=close) as cursor):
            yield cursor


def make_huey(url: str) -> Huey:
    """`sqlite:///path` (default, embedded) or `redis://host:port/db` (scale-out)."""
    if url.startswith("redis://") or url.startswith("rediss://"):
        return RedisHuey("clientguard", url=url)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return Huey("clientguard", storage_class=QueuedSqliteStorage, filename=str(path))
    raise ValueError(f"unsupported queue URL {url!r}")


class Jobs:
    """The queue with ClientGuard's jobs: evaluate one engagement; sweep; review; prune."""

    def __init__(self, url: str, evaluate: Callable[[EngagementRef], Processed],
                 database: Database, connectors: Mapping[str, Connector],
                 delay_seconds: float, keep_events_days: int, metrics: Metrics) -> None:
        self.huey = make_huey(url)
        self.metrics = metrics
        self.delay_seconds = delay_seconds
        self.keep_events = timedelta(days=keep_events_days)
        self._database = database
        self._connectors = connectors
        # per connector, the due engagements its last open-engagement listing missed
        self._missed: dict[str, set[EngagementRef]] = {}

        @self.huey.task(name="evaluate", retries=JOB_RETRIES, retry_delay=JOB_RETRY_DELAY)
        def evaluate_job(connector: str, site: str, key: str) -> None:
            ref = EngagementRef(connector, site, key)
            self._settle(ref)
            if ref.indirect:
                self.resolve(ref)
                return
            try:
                processed = evaluate(ref)
            except POSTPONED_BY:  # no job retry: the events wait their turn, then the sweep
                return            # rings (a retry in 30 s would only ask the platform again)
            if processed.more_waiting:
                self.ring(ref, delay_seconds=0)

        self.periodic_jobs = {
            name: self._periodic(name, schedule, minutes, run) for name, schedule, minutes, run
            in (("sweep", crontab(minute="*"), 1, self.sweep),
                ("review", crontab(minute="*/15"), 15, self.review),
                ("prune", crontab(minute="7"), 60, self.prune))}
        self._evaluate_job = evaluate_job

    def _periodic(self, name: str, schedule: Callable[[datetime], bool], minutes: int,
                  run: Callable[[], object]) -> TaskWrapper:
        """`run` as huey's periodic job `name`, run once a period of `minutes`: every
        process's scheduler enqueues it, and on a shared queue (Redis, or one SQLite file
        for `serve` and `worker`) each copy would run — the review listing each platform's
        changes once per process. The first copy claims the period; the others return."""

        @self.huey.periodic_task(schedule, name=name)
        def periodic_job() -> None:
            now = datetime.now(UTC)
            period = (now.replace(second=0, microsecond=0)
                      - timedelta(minutes=now.minute % minutes))
            with self._database.session() as session, session.begin():
                claimed = claim_period(session, name, period)
            if claimed:
                run()
            else:
                log.debug("%s of %s: another process ran it", name, f"{period:%H:%M} UTC")

        return periodic_job

    def ring(self, ref: EngagementRef, delay_seconds: float | None = None) -> None:
        """Ask for an evaluation of `ref` after the coalescing delay. A delay under a second
        is waited out by the job itself (`_settle`): huey's scheduler looks only once a
        second."""
        delay = self.delay_seconds if delay_seconds is None else delay_seconds
        args = (ref.connector, ref.site, ref.key)
        if delay >= SCHEDULER_RESOLUTION:
            self._evaluate_job.schedule(args=args, delay=delay)
        else:
            self._evaluate_job(*args)

    def resolve(self, ref: EngagementRef) -> list[EngagementRef]:
        """File the installation's waiting indirect events (`ref`'s among them) under their
        engagements, and ring for those at once: this job already let the burst settle, and
        each evaluation still waits (`_settle`) until its engagement's oldest event is
        `delay_seconds` old — without a second full coalescing delay."""
        connector = self._connectors.get(ref.connector)
        if not isinstance(connector, ResolvesIndirect):
            log.error("%s: indirect key, but connector %r resolves none", ref, ref.connector)
            return []
        targets = resolve_waiting(connector, self._database, ref.connector, ref.site)
        for target in targets:  # the burst has settled already: the job's own wait suffices
            self.ring(target, delay_seconds=0)
        return targets

    def _settle(self, ref: EngagementRef) -> None:
        """Let a burst finish: wait until the oldest waiting event is `delay_seconds` old, so
        the events arriving meanwhile are answered by this one evaluation."""
        with self._database.reading() as session:
            oldest = oldest_waiting(session, ref)
        if oldest is not None:
            remaining = (oldest - datetime.now(UTC)).total_seconds() + self.delay_seconds
            time.sleep(min(max(remaining, 0.0), SCHEDULER_RESOLUTION))

    def sweep(self, now: datetime | None = None) -> list[EngagementRef]:
        """Ring for every engagement whose stored events have waited too long."""
        now = now or datetime.now(UTC)
        with self._database.reading() as session:
            stale = stale_engagements(session, now, STALE_AFTER_SECONDS)
        for ref in stale:
            self.ring(ref, delay_seconds=0)
        if stale:
            log.info("sweep re-queued %d engagement(s) with waiting events", len(stale))
        return stale

    def review(self, now: datetime | None = None) -> list[EngagementRef]:
        """Ask for a re-evaluation of open engagements not evaluated for an hour (time-based
        rules), and of engagements the platforms changed since the last listing that worked
        (webhooks are not guaranteed; `catch_up_minutes`) — unless their latest evaluation
        already saw that change, or events of theirs wait. Platform errors are logged: the
        next review tries again, and looks back that much further."""
        now = now or datetime.now(UTC)
        with self._database.reading() as session:
            asked: dict[tuple[EngagementRef, str], datetime | None] = {
                (ref, "time"): None
                for ref in due_for_review(session, now, REVIEW_AFTER_SECONDS)}
        for connector in self._connectors.values():
            with self._database.reading() as session:
                minutes = catch_up_minutes(now, last_catch_up(session, connector.name))
            try:
                changed = connector.recently_updated(minutes)
            except (PlatformError, ConnectorNotConfigured) as error:
                log.warning("review: cannot list recent changes on %s: %s", connector.name,
                            error)
                continue
            with self._database.session() as session, session.begin():
                record_catch_up(session, connector.name, now)
            with self._database.reading() as session:
                seen = seen_changes(session, [ref for ref, at in changed.items() if at])
                waiting = waiting_counts(session.connection(), list(changed))
            # Waiting events are evaluated on a fresh snapshot anyway.
            unseen = {ref: at for ref, at in changed.items() if not waiting[ref]
                      and (at is None or ref not in seen or at > seen[ref])}
            if minutes > CATCH_UP_MINUTES:
                log.info("review: caught up %d minutes of changes on %s (%d engagements, "
                         "%d of them changed since their evaluation)", minutes,
                         connector.name, len(changed), len(unseen))
            asked |= {(ref, "catch-up"): at for ref, at in unseen.items()}
            self._close_out_of_scope(connector, asked)
        rung = []
        for (ref, reason), change in sorted(asked.items(),
                                            key=lambda item: (*astuple(item[0][0]), item[0][1])):
            with self._database.session() as session, session.begin():
                new = record_review(session, ref, now, reason, change)
            if new:
                self.ring(ref, delay_seconds=0)
                rung.append(ref)
                if reason == "catch-up" and change is not None:  # a dated change missed
                    self.metrics.catch_ups.labels(ref.connector).inc()
        return rung

    def _close_out_of_scope(self, connector: Connector,
                            asked: dict[tuple[EngagementRef, str], datetime | None]) -> None:
        """Close, instead of re-evaluating, the engagements up for their hourly
        re-evaluation that the platform no longer lists as open engagements (Jira with an
        `engagement_jql`): moved out of the agency's scope (they get no more comments), or
        done without a webhook saying so. An event brings one back. When the platform
        cannot list them, all are evaluated, as before.

        Missing from one listing is not proof: Data Center's search pages by offset, so an
        issue leaving the results while they are read shifts another out of them. One
        missing is left until the next review (a quarter hour), and closed only if that
        listing misses it too."""
        due = [ref for ref, reason in asked if reason == "time"
               and ref.connector == connector.name and (ref, "catch-up") not in asked]
        if not due:
            return
        try:
            in_scope = connector.engagements_in_scope()
        except (PlatformError, ConnectorNotConfigured) as error:
            log.warning("review: cannot list the open engagements on %s: %s", connector.name,
                        error)
            return
        if in_scope is None:
            return
        out = [ref for ref in due if ref not in in_scope]
        missed_before = self._missed.get(connector.name, set())
        self._missed[connector.name] = set(out)
        for ref in out:  # not evaluated now: closed, or looked for again next time
            del asked[(ref, "time")]
        closing = [ref for ref in out if ref in missed_before]
        if not closing:
            return
        with self._database.session() as session, session.begin():
            for ref in closing:
                close_engagement(session, ref)
        log.info("review: closed %d engagement(s) on %s that are no longer open engagements "
                 "there (out of scope, or done): %s", len(closing), connector.name,
                 ", ".join(ref.key for ref in closing[:LOGGED_KEYS])
                 + (" …" if len(closing) > LOGGED_KEYS else ""))

    def prune(self, now: datetime | None = None) -> int:
        """Delete finished events older than `keep_events_days`, a batch per transaction:
        their raw bodies hold client text, and the table would grow without end. A
        redelivery arrives within hours, so recognising one needs nothing older."""
        received_before = (now or datetime.now(UTC)) - self.keep_events
        pruned = 0
        while True:
            with self._database.session() as session, session.begin():
                deleted = prune_events(session, received_before, PRUNE_BATCH)
            pruned += deleted
            if deleted < PRUNE_BATCH:
                break
        if pruned:
            log.info("pruned %d finished event(s) received before %s", pruned,
                     f"{received_before:%Y-%m-%d %H:%M} UTC")
        return pruned

    def consumer(self, workers: int, *, periodic: bool = True) -> Consumer:
        """Worker threads (and, unless told otherwise, the periodic sweep, review and
        prune) for this process."""
        return self.huey.create_consumer(workers=workers, worker_type="thread",
                                         periodic=periodic, check_worker_health=True,
                                         initial_delay=0.05, max_delay=POLL_AT_MOST_EVERY)

    def pending(self) -> int:
        """Jobs waiting in the queue (for /metrics and /readyz)."""
        return self.huey.pending_count() + self.huey.scheduled_count()


def catch_up_minutes(now: datetime, listed_at: datetime | None) -> int:
    """How far back the review lists changes: from the last listing that worked, with a
    margin of half the usual window, and at least `CATCH_UP_MINUTES` — so a service down for
    hours, or a platform unreachable for as long, misses nothing. Past
    `CATCH_UP_AT_MOST_DAYS` it says so and looks back that far only."""
    if listed_at is None:
        return CATCH_UP_MINUTES
    gap = math.ceil((now - listed_at).total_seconds() / 60) + CATCH_UP_MINUTES // 2
    most = CATCH_UP_AT_MOST_DAYS * 24 * 60
    if gap > most:
        log.warning("review: the last listing of recent changes was %s; changes older than "
                    "%d days are not caught up — run `clientguard backfill`",
                    f"{listed_at:%Y-%m-%d %H:%M} UTC", CATCH_UP_AT_MOST_DAYS)
    return min(max(CATCH_UP_MINUTES, gap), most)
