"""Indirect events (an activity, a task, a comment named only by its id) are filed under
their engagement by one bulk lookup, then evaluated there; events about no engagement are
kept as ignored. Events a lookup could not place wait before the next (a lookup the platform
failed: for up to a day; one that failed otherwise, or placed nothing: five lookups)."""

from __future__ import annotations

import contextlib
import itertools
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from connectors.base import EngagementRef, Event
from connectors.errors import Transient
from plugin.jobs import Jobs
from plugin.metrics import Metrics
from plugin.pipeline.process import Processed
from plugin.pipeline.resolve import resolve_waiting
from plugin.storage import Database
from plugin.storage.models import EventRecord
from plugin.storage.repository import GIVE_UP_AFTER, MAX_ATTEMPTS, RETRY_WAIT_MIN, record_event

NOW = datetime(2026, 11, 20, 12, 5, tzinfo=UTC)


def ref(key: str) -> EngagementRef:
    return EngagementRef("crm", "portal", key)


class Owners:
    """Answers which deal an object belongs to; counts its lookups."""

    name = "crm"

    def __init__(self, owners: dict[str, str | None], fail: bool = False) -> None:
        self.owners, self.fail, self.lookups = owners, fail, []
        self.error: Exception = Transient("portal busy", status=503)

    def resolve(self, refs: list[EngagementRef]) -> dict[EngagementRef, EngagementRef | None]:
        self.lookups.append([r.key for r in refs])
        if self.fail:
            raise self.error
        return {r: None if self.owners[r.key] is None else ref(self.owners[r.key])
                for r in refs if r.key in self.owners}


def jobs_with(connector: Owners, database: Database, queue_url: str) -> Jobs:
    def evaluate(_: EngagementRef) -> Processed:
        raise AssertionError("not evaluated in these tests")
    return Jobs(queue_url, evaluate, database, {"crm": connector}, delay_seconds=0.0,
                keep_events_days=30, metrics=Metrics())


def store(database: Database, key: str, delivery: str) -> None:
    with database.session() as session, session.begin():
        record_event(session, Event(ref(key), "ONCRMACTIVITYADD", delivery, None, None), b"",
                     NOW)


def events(database: Database) -> list[tuple[str, str, str | None]]:
    with database.session() as session:
        return [tuple(row) for row in session.execute(
            select(EventRecord.engagement_key, EventRecord.status, EventRecord.last_error)
            .order_by(EventRecord.id))]


def test_all_waiting_indirect_events_are_filed_by_one_lookup(database: Database,
                                                             queue_url: str) -> None:
    owners = Owners({"activity:1": "77", "activity:2": "77", "task:5": "78",
                     "timeline-comment:9": None})
    for n, key in enumerate(["activity:1", "activity:2", "task:5", "timeline-comment:9",
                             "activity:1"]):
        store(database, key, f"d{n}")
    store(database, "77", "direct")
    jobs = jobs_with(owners, database, queue_url)

    rung = jobs.resolve(ref("activity:2"))

    assert owners.lookups == [["activity:1", "activity:2", "task:5", "timeline-comment:9"]]
    assert rung == [ref("77"), ref("78")]
    assert events(database) == [("77", "pending", None), ("77", "pending", None),
                                ("78", "pending", None),
                                ("timeline-comment:9", "ignored", "not about an engagement"),
                                ("77", "pending", None), ("77", "pending", None)]
    assert jobs.pending() == 2
    jobs.huey.flush()


def test_the_next_indirect_job_finds_nothing_left_to_look_up(database: Database,
                                                             queue_url: str) -> None:
    owners = Owners({"activity:1": "77", "activity:2": "77"})
    store(database, "activity:1", "d1")
    store(database, "activity:2", "d2")
    jobs = jobs_with(owners, database, queue_url)
    jobs.resolve(ref("activity:1"))

    assert jobs.resolve(ref("activity:2")) == []
    assert len(owners.lookups) == 1
    jobs.huey.flush()


def lookups_until_settled(owners: Owners, database: Database, at: datetime,
                          rings: int = 3) -> list[datetime]:
    """Resolve as a burst of `rings` jobs would, at `at`, then each time the events may be
    tried again, until none waits; when the lookups were made. Errors are swallowed (the
    job's)."""
    made = []
    for _ in range(MAX_ROUNDS):
        if not any(status == "pending" for _, status, _ in events(database)):
            return made
        before = len(owners.lookups)
        for _ in range(rings):
            with contextlib.suppress(Exception):
                resolve_waiting(owners, database, "crm", "portal", at)
        made += [at] * (len(owners.lookups) - before)
        at = retry_at(database)
    raise AssertionError(f"events still wait after {MAX_ROUNDS} rounds of lookups")


MAX_ROUNDS = 1_000  # far more than 5 lookups, or 24 h of waits of up to 10 minutes each


def retry_at(database: Database) -> datetime:
    with database.session() as session:
        return max(session.scalars(select(EventRecord.lease_until)))


def test_a_lookup_the_platform_fails_leaves_the_events_waiting_for_a_day(
        database: Database) -> None:
    store(database, "activity:1", "d1")
    owners = Owners({}, fail=True)

    made = lookups_until_settled(owners, database, NOW + timedelta(minutes=3))
    assert events(database) == [("activity:1", "failed", "Transient: portal busy")]
    # an outage uses up no attempt: they fail after a day, one lookup per wait
    assert made[-1] - NOW >= GIVE_UP_AFTER
    assert min(later - earlier for earlier, later in itertools.pairwise(made)) >= RETRY_WAIT_MIN


def test_events_a_day_old_never_looked_up_get_their_wait_first(database: Database) -> None:
    """Workers down for a day: the first lookup meeting an outage fails nothing."""
    store(database, "activity:1", "d1")
    with pytest.raises(Transient):
        resolve_waiting(Owners({}, fail=True), database, "crm", "portal",
                        NOW + 2 * GIVE_UP_AFTER)
    assert events(database) == [("activity:1", "pending", "Transient: portal busy")]


def test_a_lookup_failing_otherwise_uses_up_the_events_attempts(database: Database) -> None:
    """Else its events would wait, and the sweep ring for them, for ever (a bug, a payload
    the connector cannot read)."""
    store(database, "activity:1", "d1")
    owners = Owners({}, fail=True)
    owners.error = ValueError("no such field")

    made = lookups_until_settled(owners, database, NOW)

    assert events(database) == [("activity:1", "failed", "ValueError: no such field")]
    assert len(made) == MAX_ATTEMPTS and len(set(made)) == MAX_ATTEMPTS  # each after a wait


def test_refs_the_connector_could_not_look_up_stay_waiting(database: Database,
                                                           queue_url: str) -> None:
    store(database, "activity:1", "d1")
    store(database, "activity:2", "d2")
    jobs = jobs_with(Owners({"activity:1": "77"}), database, queue_url)

    assert jobs.resolve(ref("activity:1")) == [ref("77")]
    assert events(database) == [("77", "pending", None),
                                ("activity:2", "pending", "its engagement could not be looked up")]
    jobs.huey.flush()


def test_a_ref_that_can_never_be_looked_up_fails_after_five_lookups(
        database: Database) -> None:
    """Else it would hold one of the 50 places in every later lookup for ever; a burst of
    rings uses up one lookup, not five."""
    store(database, "activity:1", "d1")
    owners = Owners({})

    made = lookups_until_settled(owners, database, NOW, rings=6)

    assert len(made) == MAX_ATTEMPTS and len(set(made)) == MAX_ATTEMPTS
    assert events(database) == [("activity:1", "failed", "its engagement could not be looked up")]


def test_two_workers_resolving_at_once_look_the_events_up_once(database: Database,
                                                               queue_url: str) -> None:
    store(database, "activity:1", "d1")
    looking = threading.Event()
    release = threading.Event()

    class SlowOwners(Owners):
        def resolve(self, refs):
            looking.set()
            release.wait(5)
            return super().resolve(refs)

    owners = SlowOwners({"activity:1": "77"})
    jobs = jobs_with(owners, database, queue_url)
    first = threading.Thread(target=jobs.resolve, args=(ref("activity:1"),))
    first.start()
    looking.wait(5)
    second = threading.Thread(target=jobs.resolve, args=(ref("activity:1"),))
    second.start()
    release.set()
    first.join()
    second.join()

    assert owners.lookups == [["activity:1"]]
    jobs.huey.flush()
