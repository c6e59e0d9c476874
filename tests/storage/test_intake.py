"""Group commit at intake: deliveries arriving together are stored in one transaction, and
each request still learns exactly what happened to its own delivery."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import Delivery, EngagementRef, Event
from plugin.pipeline.intake import Intake, Stored
from plugin.storage import Database
from plugin.storage.models import EventRecord

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
    results = all_at_once(Intake(database), [f"10001:d{n}" for n in range(THREADS)])

    assert stored_rows(database) == THREADS
    assert [r.duplicate for r in results] == [False] * THREADS
    assert sum(r.first_waiting for r in results) == 1


def test_each_ticket_of_a_burst_rings_once(database: Database) -> None:
    bodies = [f"{'10001' if n % 2 else '10002'}:d{n}" for n in range(THREADS)]
    results = all_at_once(Intake(database), bodies)

    rings = [r.event.ref for r in results if r.first_waiting]
    assert sorted(rings, key=lambda ref: ref.key) == [TICKET, OTHER]


def test_copies_of_one_delivery_arriving_together_are_stored_once(database: Database) -> None:
    results = all_at_once(Intake(database), ["10001:same"] * 8)

    assert stored_rows(database) == 1
    assert sorted(r.duplicate for r in results) == [False] + [True] * 7


def test_a_ticket_with_an_older_waiting_event_does_not_ring_again(database: Database) -> None:
    intake = Intake(database)
    assert intake.accept(deliver("10001:first"), EchoConnector()).first_waiting

    later = all_at_once(intake, [f"10001:later{n}" for n in range(4)])

    assert not any(r.first_waiting for r in later)


def test_when_storing_fails_every_request_of_the_batch_gets_the_error(database: Database
                                                                       ) -> None:
    intake = Intake(database)
    with database.engine.begin() as connection:  # the table is gone: every insert fails
        EventRecord.__table__.drop(connection)

    with pytest.raises(SQLAlchemyError):
        intake.accept(deliver("10001:lost"), EchoConnector())
