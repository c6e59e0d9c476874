"""Accept one webhook delivery: verify and parse it through its connector, then store it
durably — before the platform gets its 2xx — unless it is a redelivery we already hold.

Deliveries arriving together are stored together (group commit): the first request thread
that finds none writing becomes the writer and stores every delivery waiting at that
moment in one transaction, so one commit (one fsync) serves many requests. Each request
still answers only after its own delivery is committed."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from connectors.base import Connector, Delivery, Event, Ignored
from plugin.storage import Database
from plugin.storage.repository import record_event, waiting_count


@dataclass(frozen=True)
class Stored:
    event: Event
    duplicate: bool  # already recorded: a redelivery, nothing new stored
    first_waiting: bool = False  # no other event of its engagement waits: ring the queue


OWN_WRITE = "caused by ClientGuard"


@dataclass
class _Waiting:
    """One parsed delivery waiting to be stored, and then its outcome."""

    event: Event
    body: bytes
    received_at: datetime
    outcome: Stored | None = None
    error: BaseException | None = None
    stored: threading.Event = field(default_factory=threading.Event)


class Intake:
    """Stores accepted deliveries for one database, a batch per transaction."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._queue: list[_Waiting] = []
        self._queue_lock = threading.Lock()
        self._writer = threading.Lock()

    def accept(self, delivery: Delivery, connector: Connector) -> Stored | Ignored:
        """Raises `connectors.errors.DeliveryRejected` for deliveries we refuse, and the
        storage error when the delivery could not be stored."""
        parsed = connector.parse_delivery(delivery)
        if isinstance(parsed, Ignored):
            return parsed
        if parsed.by_us:  # our own sticky comment echoing back: evaluating again would loop
            return Ignored(parsed.name, OWN_WRITE)
        waiting = _Waiting(parsed, delivery.body, delivery.received_at)
        with self._queue_lock:
            self._queue.append(waiting)
        with self._writer:  # either a writer already stored ours, or we store the batch
            if not waiting.stored.is_set():
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._store(batch)
        if waiting.error is not None:
            raise waiting.error
        assert waiting.outcome is not None
        return waiting.outcome

    def _store(self, batch: list[_Waiting]) -> None:
        """One transaction for the batch. The queue is rung for an engagement only by its
        first waiting event: the first new one of the batch when no older one waits."""
        try:
            with self.database.session() as session, session.begin():
                new = [record_event(session, item.event, item.body, item.received_at)
                       for item in batch]
                arrived = Counter(item.event.ref for item, is_new in zip(batch, new, strict=True)
                                  if is_new)
                first_of = {ref: waiting_count(session, ref) == count
                            for ref, count in arrived.items()}
            for item, is_new in zip(batch, new, strict=True):
                ref = item.event.ref
                first = is_new and first_of.pop(ref, False)
                item.outcome = Stored(item.event, duplicate=not is_new, first_waiting=first)
        except BaseException as error:  # nothing of the batch is stored: all of it says so
            for item in batch:
                item.error = error
        finally:
            for item in batch:
                item.stored.set()
