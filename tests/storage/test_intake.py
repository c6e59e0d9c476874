"""Group commit at intake: deliveries arriving together are stored in one transaction, and
each request still learns exactly what happened to its own delivery."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from connectors.base import Delivery, EngagementRef, Event
from plugin import storage
from plugin.pipeline.intake import Intake, Stored
from plugin.storage import Database
from plugin.storage.models import EventRecord
from plugin.storage.repository import claim_pending, fail, postpone

TICKET = EngagementRef("jira", "acme", "10001")
OTHER = EngagementRef("jira", "acme", "10002")
THREADS = 16


class EchoConnector:
    """Parses a body `<ticket key>:<delivery id>` into an event."""

    name = "jira"

    def parse_delivery(self, delivery: Delivery) -> Event:
        key, delivery_id = delivery.body.decode().split(":")
        return Event(EngagementRef("jira", "acme", key), "comment_created", delivery_id,
                     None, None)


class Doorbell:
    """Records rings; `delay_seconds` as the queue's coalescing delay; `broken` refuses."""

    def __init__(self, delay_seconds: float = 2.0, broken: bool = False) -> None:
        self.delay_seconds, self.broken = delay_seconds, broken
        self.rings: list[EngagementRef] = []

    def ring(self, ref: EngagementRef) -> None:
        if self.broken:
            raise ConnectionError("queue down")
        self.rings.append(ref)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def deliver(body: str) -> Delivery:
    return Delivery(body.encode(), {}, datetime.now(UTC))


def all_at_once(intake: Intake, bodies: list[str]) -> list[Stored]:
    """Accept `bodies` from one thread each, released together."""
    start, results = threading.Barrier(len(bodies)), [None] * len(bodies)

    def post(index: int) -> None:
        start.wait()
        results[index] = intake.accept(deliver(bodies[index]), EchoConnector())

    threads = [threading.Thread(target=post, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results  # type: ignore[return-value]


def stored_rows(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(EventRecord)) or 0


def test_a_burst_on_one_ticket_is_all_stored_and_rings_the_queue_once(database: Database
                                                                      ) -> None:
    doorbell = Doorbell()
    results = all_at_once(Intake(database, doorbell), [f"10001:d{n}" for n in range(THREADS)])

    assert stored_rows(database) == THREADS
    assert [r.duplicate for r in results] == [False] * THREADS
    assert doorbell.rings == [TICKET]


def test_each_ticket_of_a_burst_rings_once(database: Database) -> None:
    bodies = [f"{'10001' if n % 2 else '10002'}:d{n}" for n in range(THREADS)]
    doorbell = Doorbell()
    all_at_once(Intake(database, doorbell), bodies)

    assert sorted(doorbell.rings, key=lambda ref: ref.key) == [TICKET, OTHER]


def test_copies_of_one_delivery_arriving_together_are_stored_once(database: Database) -> None:
    results = all_at_once(Intake(database, Doorbell()), ["10001:same"] * 8)

    assert stored_rows(database) == 1
    assert sorted(r.duplicate for r in results) == [False] + [True] * 7


def test_a_ticket_with_an_older_waiting_event_does_not_ring_again(database: Database) -> None:
    doorbell = Doorbell()
    intake = Intake(database, doorbell)
    intake.accept(deliver("10001:first"), EchoConnector())
    assert doorbell.rings == [TICKET]

    all_at_once(intake, [f"10001:later{n}" for n in range(4)])

    assert doorbell.rings == [TICKET]


@pytest.mark.parametrize("give_back", [
    lambda session, ids, now: postpone(session, ids, "Transient: Jira is down", now),
    lambda session, ids, now: fail(session, ids, "ValueError: a bug", now),
], ids=["postponed", "failed"])
def test_a_new_event_rings_though_older_ones_wait_after_a_failed_evaluation(
        database: Database, give_back: Callable[..., object]) -> None:
    """Events given back after a failure wait for the sweep, minutes away: the first
    change after the platform is back is evaluated at once, with them."""
    doorbell, clock = Doorbell(), Clock()
    intake = Intake(database, doorbell, clock)
    intake.accept(deliver("10001:before"), EchoConnector())
    now = datetime.now(UTC)
    with database.session() as session, session.begin():
        claimed = claim_pending(session, TICKET, now, lease_seconds=300)
        give_back(session, claimed, now)
    clock.now += 60  # the job rung for it came and failed

    intake.accept(deliver("10001:after"), EchoConnector())
    intake.accept(deliver("10001:later"), EchoConnector())

    assert doorbell.rings == [TICKET, TICKET]  # once for the burst after the failure


def test_a_delivery_that_could_not_be_stored_raises_the_storage_error(database: Database
                                                                        ) -> None:
    intake = Intake(database, Doorbell())
    with database.engine.begin() as connection:  # the table is gone: every insert fails
        EventRecord.__table__.drop(connection)

    with pytest.raises(SQLAlchemyError):
        intake.accept(deliver("10001:lost"), EchoConnector())


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server to restart
def test_a_connection_the_database_dropped_fails_no_delivery(database: Database) -> None:
    """The writer keeps its connection between batches; a restarted server (or a proxy's
    idle timeout) drops it. The next delivery is stored on a new one, not answered 503 —
    a Bitrix24 delivery refused is never delivered again."""
    intake = Intake(database, Doorbell())
    intake.accept(deliver("10001:before"), EchoConnector())
    with database.engine.connect() as connection:  # every other session of the database
        connection.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"))

    assert not intake.accept(deliver("10001:after"), EchoConnector()).duplicate
    assert stored_rows(database) == 2


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # one lock for all writers
def test_when_the_database_fails_a_batch_is_not_tried_again_one_by_one(database: Database
                                                                        ) -> None:
    """The database's own error (`OperationalError`: here its table gone; as when it is
    down, or locked past its timeout): each delivery would fail the same, only later."""
    intake, transactions = Intake(database, Doorbell()), []
    with database.engine.begin() as connection:  # the table is gone: every insert fails
        EventRecord.__table__.drop(connection)
    event.listen(database.engine, "begin", lambda _connection: transactions.append(1))
    outcomes = in_one_batch(database, intake, [f"10001:d{n}" for n in range(4)])

    assert all(isinstance(outcome, OperationalError) for outcome in outcomes.values())
    assert len(transactions) == 2  # the transaction holding the lock, and the batch's;
    # no one-by-one retry


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a SQLite trigger
def test_a_database_going_down_during_the_one_by_one_retry_fails_the_rest_at_once(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a retry finds the database itself failing, the others need not each try."""
    refuse(database, "refused")
    intake, connecting = Intake(database, Doorbell()), []
    connect = intake._writer_connection

    def going_down() -> Connection:  # the batch's connection works; then the server is gone
        connecting.append(1)
        if len(connecting) > 1:
            raise OperationalError("connect", None, ConnectionRefusedError("server is down"))
        return connect()

    monkeypatch.setattr(intake, "_writer_connection", going_down)
    outcomes = in_one_batch(database, intake, ["10001:first", "10001:refused", "10002:later",
                                               "10001:latest"])

    assert all(isinstance(outcome, OperationalError) for outcome in outcomes.values())
    assert len(connecting) == 2  # the batch, the first retry; the other three not again


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # one lock for all writers
def test_a_write_lock_held_past_its_timeout_fails_the_batch_once(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's lock is taken in a `begin` listener, whose errors SQLAlchemy does not wrap:
    raised raw, it passed for a delivery's fault, and each delivery waited out the timeout
    again on its own."""
    monkeypatch.setattr(storage, "SQLITE_BUSY_TIMEOUT_MS", 1000)
    attempts = []
    take_lock = storage._WriterQueueConnection.begin_immediate

    def counted(connection: storage._WriterQueueConnection) -> None:
        attempts.append(1)
        take_lock(connection)

    monkeypatch.setattr(storage._WriterQueueConnection, "begin_immediate", counted)
    outcomes = in_one_batch(database, Intake(database, Doorbell()),
                            [f"10001:d{n}" for n in range(4)], held_throughout=True)

    assert all(isinstance(outcome, OperationalError) and "database is locked" in str(outcome)
               for outcome in outcomes.values())
    assert len(attempts) == 2  # the transaction holding the lock, and the batch's


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def in_one_batch(database: Database, intake: Intake, bodies: list[str], *,
                 held_throughout: bool = False) -> dict[str, Stored | SQLAlchemyError]:
    """Accept `bodies`, one thread each, as one batch: a worker's transaction holds the write
    lock while the first thread waits for it as the writer and the others queue behind it
    (`held_throughout`: until all are answered). Each body's outcome, or the error raised."""
    outcomes: dict[str, Stored | SQLAlchemyError] = {}

    def post(body: str) -> None:
        try:
            outcomes[body] = intake.accept(deliver(body), EchoConnector())
        except SQLAlchemyError as error:
            outcomes[body] = error

    threads = [threading.Thread(target=post, args=(body,)) for body in bodies]
    with database.session() as worker, worker.begin():
        worker.execute(text("SELECT 1"))
        threads[0].start()
        until(intake._writer.locked)
        for thread in threads[1:]:
            thread.start()
        until(lambda: len(intake._queue) == len(bodies))  # taken once it may write
        if held_throughout:
            for thread in threads:
                thread.join()
    for thread in threads:
        thread.join()
    assert len(outcomes) == len(bodies)
    return outcomes


def refuse(database: Database, delivery_id: str) -> None:
    """Make the database refuse to store `delivery_id` (a SQLite trigger)."""
    with database.engine.begin() as connection:
        connection.execute(text(
            f"CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.delivery_id = "
            f"'{delivery_id}' BEGIN SELECT RAISE(ABORT, 'refused by the database'); END"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # one lock for all writers
def test_deliveries_arriving_while_the_writer_waits_for_the_write_lock_join_its_batch(
        database: Database) -> None:
    """Else each would wait for the transaction ahead and then for one more of its own."""
    intake, commits = Intake(database, Doorbell()), []
    event.listen(database.engine, "commit", lambda _connection: commits.append(1))
    in_one_batch(database, intake, ["10001:first", "10001:later1", "10002:later2",
                                    "10001:later3"])

    assert stored_rows(database) == 4
    assert len(commits) == 2  # the worker's, then one for all four deliveries


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a SQLite trigger
def test_a_delivery_the_database_refuses_fails_alone_not_its_whole_batch(
        database: Database) -> None:
    """Group commit must not make one bad delivery everyone's problem: the batch is tried
    again one delivery at a time, and only the refused one fails."""
    refuse(database, "refused")
    outcomes = in_one_batch(database, Intake(database, Doorbell()), [
        "10001:first", "10001:refused", "10002:later", "10001:latest"])

    assert isinstance(outcomes.pop("10001:refused"), SQLAlchemyError)
    assert all(isinstance(outcome, Stored) and not outcome.duplicate
               for outcome in outcomes.values())
    assert delivery_ids(database) == ["first", "later", "latest"]


class ContentConnector(EchoConnector):
    """A platform without delivery ids: the id is the body's hash (`by_content`)."""

    def parse_delivery(self, delivery: Delivery) -> Event:
        event = super().parse_delivery(delivery)
        return Event(event.ref, event.name, event.delivery_id, None, None, by_content=True)


def finish_all(database: Database) -> None:
    with database.session() as session, session.begin():
        session.execute(EventRecord.__table__.update().values(status="done"))


def delivery_ids(database: Database) -> list[str]:
    with database.session() as session:
        return list(session.scalars(select(EventRecord.delivery_id).order_by(EventRecord.id)))


def test_a_hashed_copy_is_a_duplicate_while_the_first_still_waits(database: Database) -> None:
    intake = Intake(database, Doorbell())
    intake.accept(deliver("10001:h"), ContentConnector())

    assert intake.accept(deliver("10001:h"), ContentConnector()).duplicate
    assert delivery_ids(database) == ["h"]


def test_a_hashed_copy_after_the_first_was_taken_up_is_a_new_change(database: Database) -> None:
    """Two edits of one Bitrix24 deal within a second have identical bodies: the second
    must be evaluated too, or it is lost."""
    doorbell = Doorbell(delay_seconds=0)  # every ring asks the database
    intake = Intake(database, doorbell)
    intake.accept(deliver("10001:h"), ContentConnector())
    finish_all(database)

    assert not intake.accept(deliver("10001:h"), ContentConnector()).duplicate
    assert doorbell.rings == [TICKET, TICKET]  # the new change is evaluated
    assert intake.accept(deliver("10001:h"), ContentConnector()).duplicate  # #2 waits
    finish_all(database)
    assert not intake.accept(deliver("10001:h"), ContentConnector()).duplicate

    assert delivery_ids(database) == ["h", "h#2", "h#3"]


def test_a_real_delivery_id_stays_a_duplicate_after_processing(database: Database) -> None:
    intake = Intake(database, Doorbell())
    intake.accept(deliver("10001:d1"), EchoConnector())
    finish_all(database)

    assert intake.accept(deliver("10001:d1"), EchoConnector()).duplicate
    assert delivery_ids(database) == ["d1"]


def test_within_half_the_delay_of_a_ring_its_job_is_known_to_be_coming(database: Database
                                                                     ) -> None:
    """The rung job cannot have started yet, so it takes the new event: no ring, even though
    the events it was rung for were taken up by another job meanwhile."""
    doorbell, clock = Doorbell(delay_seconds=2.0), Clock()
    intake = Intake(database, doorbell, clock)
    intake.accept(deliver("10001:a"), EchoConnector())
    finish_all(database)

    clock.now += 0.9
    intake.accept(deliver("10001:b"), EchoConnector())
    assert doorbell.rings == [TICKET]
    finish_all(database)
    clock.now += 0.2  # past half the delay: the database decides again
    intake.accept(deliver("10001:c"), EchoConnector())
    assert doorbell.rings == [TICKET, TICKET]


def test_a_queue_that_refuses_the_ring_is_reported_and_asked_again_next_time(
        database: Database) -> None:
    doorbell = Doorbell(broken=True)
    intake = Intake(database, doorbell)

    assert intake.accept(deliver("10001:a"), EchoConnector()).ring_failed
    assert stored_rows(database) == 1  # stored all the same: the sweep rings for it
    finish_all(database)
    doorbell.broken = False
    assert not intake.accept(deliver("10001:b"), EchoConnector()).ring_failed
    assert doorbell.rings == [TICKET]
