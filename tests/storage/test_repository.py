"""The service's state on both backends: migrations, the durable event queue (dedupe,
exclusive claims, leases, retries, the sweep) and what evaluations leave behind."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from connectors.base import EngagementRef, Event
from plugin.storage import (
    MIGRATIONS,
    SQLITE_BUSY_TIMEOUT_MS,
    Database,
    open_database,
    upgrade,
)
from plugin.storage.models import Base, DailyScore, EventRecord, FindingRecord
from plugin.storage.repository import (
    WORKER_LOST,
    EngagementInfo,
    Incoming,
    claim_pending,
    fail,
    finish,
    get_engagement,
    last_catch_up,
    lease_end,
    record_catch_up,
    record_event,
    record_events,
    renew_lease,
    save_evaluation,
    seen_changes,
    set_sticky,
    stale_engagements,
    waiting_count,
    waiting_counts,
)

T = TypeVar("T")

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
REF = EngagementRef("jira", "https://acme.atlassian.net", "10001")
OTHER = EngagementRef("bitrix24", "acme.bitrix24.com", "42")
BODY = b'{"webhookEvent": "comment_created", "note": "\xc3\xa6\xc3\xb8\xc3\xa5"}'
LEASE = 60


def event(delivery_id: str, ref: EngagementRef = REF, by_us: bool = False) -> Event:
    return Event(ref, "comment_created", delivery_id, NOW - timedelta(minutes=1), "am-1", by_us)


def transaction(database: Database, work: Callable[[Session], T]) -> T:
    """Run `work` in one committed transaction of a new session."""
    with database.session() as session, session.begin():
        return work(session)


def record(database: Database, *delivery_ids: str, ref: EngagementRef = REF,
           received_at: datetime = NOW) -> None:
    for delivery_id in delivery_ids:
        transaction(database, lambda s, d=delivery_id: record_event(s, event(d, ref), BODY,
                                                                    received_at))


def claim(database: Database, now: datetime = NOW, ref: EngagementRef = REF,
          max_attempts: int = 5) -> list[int]:
    return transaction(database, lambda s: claim_pending(s, ref, now, LEASE, max_attempts))


def events(database: Database) -> list[EventRecord]:
    return transaction(database, lambda s: list(s.scalars(select(EventRecord)
                                                          .order_by(EventRecord.id))))


def in_threads(count: int, work: Callable[[], T]) -> list[T]:
    """Run `work` in `count` threads released at the same moment."""
    start = threading.Barrier(count)

    def run() -> T:
        start.wait()
        return work()

    with ThreadPoolExecutor(count) as pool:
        return [future.result() for future in [pool.submit(run) for _ in range(count)]]


# --- migrations ----------------------------------------------------------------------------


def test_upgrade_to_head_twice_gives_the_models_schema(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # nothing to do, nothing fails
    database = open_database(database_url)
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        assert context.get_current_revision() == head == "0006"
        assert compare_metadata(context, Base.metadata) == []
        tables = set(inspect(connection).get_table_names())
    database.close()
    assert tables == {"alembic_version", "events", "engagements", "findings", "daily_scores",
                      "installations", "catch_ups", "periodic_runs"}


def test_going_back_a_migration_keeps_findings_and_scores(database_url: str) -> None:
    """Dropping a column of `engagements` must not drop the table: its ON DELETE CASCADE
    would empty what hangs off it (SQLite copies a table to alter it in batch mode)."""
    from alembic import command
    from alembic.config import Config

    upgrade(database_url)
    database = open_database(database_url)
    save(database, {"pm-briefed": "fail"}, datetime(2026, 11, 20, 12, tzinfo=UTC))
    with database.engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    with database.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == "0002"
    assert transaction(database, lambda s: (s.scalar(select(func.count()).select_from(
        FindingRecord)), s.scalar(select(func.count()).select_from(DailyScore)))) == (1, 1)
    database.close()
    upgrade(database_url)  # and forward again


def test_services_starting_together_migrate_once(database_url: str) -> None:
    # Processes, not threads: Alembic keeps its migration context in a module global.
    script = f"from plugin.storage import upgrade; upgrade({database_url!r})"
    starts = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(3)]
    assert [start.wait(timeout=60) for start in starts] == [0, 0, 0]
    database = open_database(database_url)
    with database.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == "0006"
    database.close()


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    with database.engine.connect() as connection:
        pragmas = [connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                   for name in ("journal_mode", "foreign_keys", "busy_timeout")]
    database.close()
    assert pragmas == ["wal", 1, SQLITE_BUSY_TIMEOUT_MS]


def test_a_reading_session_does_not_wait_for_an_open_write(database: Database) -> None:
    """A worker's look at the queue must not queue behind webhooks being stored: it sees the
    last commit while a write transaction is still open."""
    record(database, "d-1")
    writing, read_done = threading.Event(), threading.Event()

    def write() -> None:
        with database.session() as session, session.begin():
            record_event(session, event("d-2"), BODY, NOW)
            writing.set()
            read_done.wait(timeout=30)  # hold the write lock until the read is over

    writer = threading.Thread(target=write)
    writer.start()
    assert writing.wait(timeout=30)
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.append(
        transaction_free_count(database)))
    reader.start()
    reader.join(timeout=20)
    blocked = reader.is_alive()
    read_done.set()
    writer.join()
    reader.join()
    assert not blocked, "the read waited for the writer"
    assert seen == [1]  # the open transaction's row is not seen
    assert len(events(database)) == 2


def transaction_free_count(database: Database) -> int:
    with database.reading() as session:
        return session.scalar(select(func.count()).select_from(EventRecord)) or 0


def test_ping_names_the_problem_when_the_database_does_not_answer(
        database: Database) -> None:
    assert database.ping() is None
    unreachable = open_database("postgresql://nobody@127.0.0.1:1/nothing")
    assert unreachable.ping() == "OperationalError"
    unreachable.close()


# --- record_event --------------------------------------------------------------------------


def test_a_redelivery_is_recorded_once(database: Database) -> None:
    first = transaction(database, lambda s: record_event(s, event("d-1"), BODY, NOW))
    again = transaction(database, lambda s: record_event(s, event("d-1"), BODY, NOW))
    assert (first, again) == (True, False)
    [stored] = events(database)
    assert (stored.status, stored.attempts, stored.body) == ("pending", 0, BODY.decode())
    assert (stored.connector, stored.site, stored.engagement_key) == (REF.connector, REF.site,
                                                                       REF.key)


def test_a_batch_stores_each_new_delivery_once_with_every_field(database: Database) -> None:
    """One call for what intake stores together: a copy within the batch is a duplicate, our
    own echo is kept as ignored, and every field reads back as it went in."""
    batch = [Incoming(event("d-1"), BODY, NOW), Incoming(event("d-1"), BODY, NOW),
             Incoming(event("d-2", by_us=True), b"{}", NOW + timedelta(microseconds=7))]
    with database.engine.begin() as connection:
        assert record_events(connection, batch) == [True, False, True]
    first, echo = events(database)
    assert (first.delivery_id, first.name, first.actor, first.occurred_at, first.by_us,
            first.status) == ("d-1", "comment_created", "am-1", NOW - timedelta(minutes=1),
                              False, "pending")
    assert (echo.delivery_id, echo.by_us, echo.status, echo.body, echo.received_at) == (
        "d-2", True, "ignored", "{}", NOW + timedelta(microseconds=7))


def test_the_same_delivery_id_on_another_site_is_another_event(database: Database) -> None:
    record(database, "d-1")
    record(database, "d-1", ref=OTHER)
    assert len(events(database)) == 2


def test_timestamps_come_back_as_the_same_instant_in_utc(database: Database) -> None:
    local = NOW.astimezone(timezone(timedelta(hours=2)))
    record(database, "d-1", received_at=local)
    [stored] = events(database)
    assert stored.received_at == NOW
    assert stored.received_at.tzinfo is UTC


def test_a_naive_timestamp_is_refused(database: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        record(database, "d-1", received_at=NOW.replace(tzinfo=None))


def test_an_event_caused_by_our_own_write_is_kept_but_never_claimed(database: Database) -> None:
    transaction(database, lambda s: record_event(s, event("d-1", by_us=True), BODY, NOW))
    assert [e.status for e in events(database)] == ["ignored"]
    assert claim(database) == []


def test_concurrent_copies_of_one_delivery_make_one_row(database: Database) -> None:
    results = in_threads(8, lambda: transaction(
        database, lambda s: record_event(s, event("d-1"), BODY, NOW)))
    assert sorted(results) == [False] * 7 + [True]
    assert len(events(database)) == 1


# --- claims, leases, retries ---------------------------------------------------------------


def test_claim_takes_this_engagements_pending_events_oldest_first(database: Database) -> None:
    record(database, "d-1", "d-2")
    record(database, "x-1", ref=OTHER)
    claimed = transaction(database, lambda s: claim_pending(s, REF, NOW, LEASE))
    taken = [e for e in events(database) if e.id in claimed]
    assert [(e.id, e.delivery_id) for e in taken] == list(zip(claimed, ["d-1", "d-2"],
                                                             strict=True))
    assert {(e.status, e.attempts, e.lease_until) for e in taken} == {
        ("processing", 1, NOW + timedelta(seconds=LEASE))}
    assert claim(database) == []  # nothing left to take
    assert len(claim(database, ref=OTHER)) == 1


def test_concurrent_claimers_take_each_event_exactly_once(database: Database) -> None:
    claimed: Counter[int] = Counter()
    for round_ in range(10):
        record(database, *(f"d-{round_}-{n}" for n in range(10)))
        takes = [ids for ids in in_threads(4, lambda: claim(database)) if ids]
        assert len(takes) == 1  # one worker evaluates the engagement; the others find it busy
        claimed.update(takes[0])
        transaction(database, lambda s, ids=takes[0]: finish(s, ids, NOW))
    assert len(claimed) == 100
    assert set(claimed.values()) == {1}


def test_an_engagement_under_evaluation_is_not_claimed_again_until_its_lease_ends(
        database: Database) -> None:
    record(database, "d-1")
    assert len(claim(database)) == 1
    record(database, "d-2")  # arrives during the evaluation
    assert claim(database) == []  # busy: its worker asks again when done
    assert transaction(database, lambda s: waiting_count(s, REF)) == 1
    later = NOW + timedelta(seconds=LEASE + 1)  # that worker died: its lease ran out
    assert len(claim(database, now=later)) == 2


def test_a_lease_is_renewed_only_by_the_worker_holding_it(database: Database) -> None:
    """The lease a worker took or last renewed is its token; a renewal whose commit failed
    may have landed all the same, so that value counts too. Another worker's claim, made
    once the lease ran out, holds neither."""
    record(database, "d-1", "d-2")
    ids = claim(database)
    taken, lost_renewal = lease_end(NOW, LEASE), lease_end(NOW + timedelta(seconds=20), LEASE)

    def renew(held: list[datetime], until: datetime) -> bool:
        return transaction(database, lambda s: renew_lease(s, ids, held, until))

    assert renew([taken], lost_renewal)  # it raised, but the row was written
    assert renew([taken, lost_renewal], lease_end(NOW + timedelta(seconds=40), LEASE))
    assert {e.lease_until for e in events(database)} == {
        lease_end(NOW + timedelta(seconds=40), LEASE)}
    later = NOW + timedelta(seconds=LEASE * 3)  # its renewals failed: the lease ran out
    assert claim(database, now=later) == ids  # another worker's now
    assert not renew([lease_end(NOW + timedelta(seconds=40), LEASE)], lease_end(later, LEASE))
    transaction(database, lambda s: finish(s, ids, later))
    assert not renew([lease_end(later, LEASE)], lease_end(later, LEASE * 2))  # finished


def test_finished_events_are_not_claimed_again(database: Database) -> None:
    record(database, "d-1")
    ids = claim(database)
    transaction(database, lambda s: finish(s, ids, NOW))
    [stored] = events(database)
    assert (stored.status, stored.processed_at, stored.lease_until) == ("done", NOW, None)
    assert claim(database, NOW + timedelta(hours=1)) == []


def test_an_expired_lease_makes_the_events_claimable_again(database: Database) -> None:
    record(database, "d-1", "d-2")
    ids = claim(database)  # this worker dies without finishing
    assert claim(database, NOW + timedelta(seconds=LEASE - 1)) == []
    assert claim(database, NOW + timedelta(seconds=LEASE + 1)) == ids
    assert {e.attempts for e in events(database)} == {2}


def test_failed_events_are_retried_then_given_up(database: Database) -> None:
    record(database, "d-1")
    for attempt in range(1, 4):
        ids = claim(database, max_attempts=3)
        assert len(ids) == 1, f"attempt {attempt}"
        transaction(database, lambda s, ids=ids: fail(s, ids, "boom", NOW, max_attempts=3))
    [stored] = events(database)
    assert (stored.status, stored.attempts, stored.last_error) == ("failed", 3, "boom")
    assert stored.processed_at == NOW
    assert claim(database, max_attempts=3) == []


def test_a_failure_before_the_last_attempt_goes_back_to_pending(database: Database) -> None:
    record(database, "d-1")
    ids = claim(database)
    transaction(database, lambda s: fail(s, ids, "timeout", NOW))
    [stored] = events(database)
    assert (stored.status, stored.lease_until, stored.last_error) == ("pending", None, "timeout")


def test_a_lease_running_out_on_the_last_attempt_fails_the_event(database: Database) -> None:
    record(database, "d-1")
    assert len(claim(database, max_attempts=2)) == 1
    assert len(claim(database, NOW + timedelta(seconds=LEASE + 1), max_attempts=2)) == 1
    assert claim(database, NOW + timedelta(seconds=2 * LEASE + 2), max_attempts=2) == []
    [stored] = events(database)
    assert (stored.status, stored.attempts, stored.last_error) == ("failed", 2, WORKER_LOST)


def test_stale_engagements_are_those_with_waiting_or_abandoned_events(
        database: Database) -> None:
    refs = {name: EngagementRef("jira", "s", name) for name in ("old", "new", "lost", "busy",
                                                                "done")}
    for name in ("old", "lost", "busy", "done"):
        record(database, f"{name}-1", ref=refs[name], received_at=NOW - timedelta(minutes=10))
    record(database, "new-1", ref=refs["new"], received_at=NOW - timedelta(seconds=30))
    claim(database, NOW - timedelta(minutes=5), ref=refs["lost"])  # lease long over
    claim(database, NOW, ref=refs["busy"])  # lease still running
    done = claim(database, NOW, ref=refs["done"])
    transaction(database, lambda s: finish(s, done, NOW))
    stale = transaction(database, lambda s: stale_engagements(s, NOW, older_than_seconds=120))
    assert stale == [refs["lost"], refs["old"]]


# --- evaluations -----------------------------------------------------------------------------


def findings(database: Database) -> list[FindingRecord]:
    return transaction(database, lambda s: list(s.scalars(
        select(FindingRecord).order_by(FindingRecord.rule_id, FindingRecord.id))))


def save(database: Database, statuses: dict[str, str], now: datetime, score: int = 70,
         band: str = "amber", info: EngagementInfo | None = None) -> None:
    transaction(database, lambda s: save_evaluation(s, REF, score, band, statuses, now, info))


def test_findings_open_stay_resolve_and_relapse(database: Database) -> None:
    day1, day2, day3 = NOW, NOW + timedelta(days=1), NOW + timedelta(days=2)
    save(database, {"pm-briefed": "fail", "regular-updates": "warn", "prepayment": "pass",
                    "service-cost": "fail", "goals-defined": "not_configured"}, day1)
    save(database, {"pm-briefed": "warn", "regular-updates": "pass", "prepayment": "fail"},
         day2)  # service-cost crashed: no verdict, its finding stays as it was
    save(database, {"pm-briefed": "warn", "regular-updates": "warn", "prepayment": "pass"},
         day3)
    assert [(f.rule_id, f.status, f.first_seen, f.last_seen, f.resolved_at)
            for f in findings(database)] == [
        ("pm-briefed", "warn", day1, day3, None),  # still failing: seen again, one row
        ("prepayment", "fail", day2, day2, day3),  # new on day 2, fixed on day 3
        ("regular-updates", "warn", day1, day1, day2),  # fixed on day 2 ...
        ("regular-updates", "warn", day3, day3, None),  # ... and back: a new episode
        ("service-cost", "fail", day1, day1, None),
    ]


def test_one_daily_score_per_engagement_per_day(database: Database) -> None:
    save(database, {}, NOW, score=90, band="green")
    save(database, {}, NOW + timedelta(hours=3), score=45, band="red")
    save(database, {}, NOW + timedelta(days=1), score=60, band="amber")
    scores = transaction(database, lambda s: [
        (row.day, row.score, row.band)
        for row in s.scalars(select(DailyScore).order_by(DailyScore.day))])
    assert scores == [(date(2026, 11, 20), 45, "red"), (date(2026, 11, 21), 60, "amber")]


def test_the_day_is_the_date_of_now_as_given(database: Database) -> None:
    late_evening_in_copenhagen = datetime(2026, 11, 20, 23, 30, tzinfo=timezone(timedelta(hours=1)))
    save(database, {}, late_evening_in_copenhagen)
    days = transaction(database, lambda s: list(s.scalars(select(DailyScore.day))))
    assert days == [date(2026, 11, 20)]


def test_evaluation_and_sticky_comment_are_remembered(database: Database) -> None:
    assert transaction(database, lambda s: get_engagement(s, REF)) is None
    transaction(database, lambda s: set_sticky(s, REF, "c-1", "hash-1"))
    info = EngagementInfo("ACME-1", "Website relaunch", "acme", "am-1", open=True)
    save(database, {"pm-briefed": "fail"}, NOW, score=75, band="amber", info=info)
    save(database, {}, NOW + timedelta(hours=1), score=100, band="green")  # info unchanged
    transaction(database, lambda s: set_sticky(s, REF, "c-1", "hash-2"))
    engagement = transaction(database, lambda s: get_engagement(s, REF))
    assert engagement is not None
    assert (engagement.display_key, engagement.title, engagement.client_key,
            engagement.account_manager, engagement.open) == (
        "ACME-1", "Website relaunch", "acme", "am-1", True)
    assert (engagement.last_score, engagement.last_band, engagement.last_evaluated_at) == (
        100, "green", NOW + timedelta(hours=1))
    assert (engagement.sticky_comment_id, engagement.sticky_hash) == ("c-1", "hash-2")


def test_concurrent_evaluations_of_one_engagement_keep_one_open_finding(
        database: Database) -> None:
    in_threads(4, lambda: save(database, {"pm-briefed": "fail", "prepayment": "warn"}, NOW))
    assert [(f.rule_id, f.resolved_at) for f in findings(database)] == [
        ("pm-briefed", None), ("prepayment", None)]
    count = transaction(database, lambda s: s.scalar(select(func.count()).select_from(
        DailyScore)))
    assert count == 1


def test_a_catch_up_is_remembered_per_connector_and_never_moved_back(
        database: Database) -> None:
    for connector, listed_at in [("jira", NOW), ("jira", NOW - timedelta(hours=1)),
                                 ("bitrix24", NOW - timedelta(hours=2))]:
        with database.session() as session, session.begin():
            record_catch_up(session, connector, listed_at)
    with database.reading() as session:
        assert last_catch_up(session, "jira") == NOW  # an older listing does not win
        assert last_catch_up(session, "bitrix24") == NOW - timedelta(hours=2)
    with database.session() as session, session.begin():
        record_catch_up(session, "jira", NOW + timedelta(minutes=15))
    with database.reading() as session:
        assert last_catch_up(session, "jira") == NOW + timedelta(minutes=15)


def test_what_the_review_reads_of_many_engagements_spans_every_query(database: Database):
    """Keys go a thousand per query: none may fall between two."""
    refs = [EngagementRef("jira", "agency", str(20000 + n)) for n in range(2500)]
    seen_at = NOW - timedelta(minutes=5)
    transaction(database, lambda s: [
        save_evaluation(s, ref, 90, "green", {}, NOW, EngagementInfo(platform_updated_at=seen_at))
        for ref in refs[999:1002] + refs[-1:]])
    transaction(database, lambda s: record_event(
        s, Event(refs[2000], "comment_created", "d-2000", None, None), b"{}", NOW))
    with database.reading() as session:
        seen = seen_changes(session, refs)
        waiting = waiting_counts(session.connection(), refs)
    assert seen == dict.fromkeys(refs[999:1002] + refs[-1:], seen_at)
    assert {ref for ref, count in waiting.items() if count} == {refs[2000]}
