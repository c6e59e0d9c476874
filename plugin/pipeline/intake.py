"""Accept one webhook delivery: verify and parse it through its connector, then store it
durably — before the platform gets its 2xx — unless it is a redelivery we already hold."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.base import Connector, Delivery, Event, Ignored
from plugin.storage import Database
from plugin.storage.repository import record_event, waiting_count


@dataclass(frozen=True)
class Stored:
    event: Event
    duplicate: bool  # already recorded: a redelivery, nothing new stored
    first_waiting: bool = False  # no other event of its engagement waits: ring the queue


OWN_WRITE = "caused by ClientGuard"


def accept(delivery: Delivery, connector: Connector, database: Database) -> Stored | Ignored:
    """Raises `connectors.errors.DeliveryRejected` for deliveries we refuse."""
    parsed = connector.parse_delivery(delivery)
    if isinstance(parsed, Ignored):
        return parsed
    if parsed.by_us:  # our own sticky comment echoing back: evaluating again would loop
        return Ignored(parsed.name, OWN_WRITE)
    with database.session() as session, session.begin():
        new = record_event(session, parsed, delivery.body, delivery.received_at)
        first = new and waiting_count(session, parsed.ref) == 1
    return Stored(parsed, duplicate=not new, first_waiting=first)
