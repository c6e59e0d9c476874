"""Accept one webhook delivery: verify and parse it through its connector, then store it
durably — before the platform gets its 2xx — unless it is a redelivery we already hold;
then ring the job queue if no evaluation of its engagement is on its way yet.

Deliveries arriving together are stored together (group commit): the first request thread
that finds none writing becomes the writer and, once it holds the database's write lock,
stores every delivery waiting in one transaction, so one commit (one fsync) serves many
requests. Each request still answers only after its own delivery is committed."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.engine import Connection
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from connectors.base import Connector, Delivery, EngagementRef, Event, Ignored
from connectors.errors import MalformedDelivery
from plugin.storage import Database
from plugin.storage.repository import Incoming, record_events, unstorable, waiting_counts

log = logging.getLogger(__name__)


class Doorbell(Protocol):
    """The job queue as intake sees it (`plugin.jobs.Jobs`)."""

    delay_seconds: float  # a rung job starts no sooner than this after the ring

    def ring(self, ref: EngagementRef) -> None: ...


@dataclass(frozen=True)
class Stored:
    event: Event
    duplicate: bool  # already recorded: a redelivery, nothing new stored
    ring_failed: bool = False  # it rang the queue, which refused: the sweep rings instead


OWN_WRITE = "caused by ClientGuard"
UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)  # the database, not a delivery


@dataclass
class _Waiting:
    """One parsed delivery waiting to be stored, and then its outcome."""

    event: Event
    body: bytes
    received_at: datetime
    new: bool = False
    first_waiting: bool = False  # no other event of its engagement waits: ring the queue
    error: BaseException | None = None
    stored: threading.Event = field(default_factory=threading.Event)


class _Failed(Exception):
    """A transaction of `batch` failed with `error`; nothing of it is stored."""

    def __init__(self, batch: list[_Waiting], error: BaseException) -> None:
        super().__init__(str(error))
        self.batch, self.error = batch, error


class Intake:
    """Stores accepted deliveries for one database, a batch per transaction, and rings the
    queue for an engagement's first waiting event.

    A rung job starts `doorbell.delay_seconds` after the ring at the earliest, and then takes
    every event waiting. So for half that time after a ring, an event of the same engagement
    needs no ring and no database count to decide it (a webhook burst on one ticket is the
    common case); afterwards the database decides again."""

    def __init__(self, database: Database, doorbell: Doorbell,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.database = database
        self.doorbell = doorbell
        self._clock = clock
        self._queue: list[_Waiting] = []
        self._queue_lock = threading.Lock()
        self._writer = threading.Lock()
        self._job_coming: dict[EngagementRef, float] = {}  # ref -> until when it is sure
        self._connection: Connection | None = None  # the writer's; opened on first use

    def accept(self, delivery: Delivery, connector: Connector) -> Stored | Ignored:
        """Raises `connectors.errors.DeliveryRejected` for deliveries we refuse, and the
        storage error when the delivery could not be stored."""
        parsed = connector.parse_delivery(delivery)
        if isinstance(parsed, Ignored):
            return parsed
        if parsed.by_us:  # our own sticky comment echoing back: evaluating again would loop
            return Ignored(parsed.name, OWN_WRITE)
        problem = unstorable(parsed, delivery.body)
        if problem is not None:
            raise MalformedDelivery(f"the event cannot be stored: {problem}")
        waiting = _Waiting(parsed, delivery.body, delivery.received_at)
        with self._queue_lock:
            self._queue.append(waiting)
        with self._writer:  # either a writer already stored ours, or we store the batch
            if not waiting.stored.is_set():
                self._store()
        if waiting.error is not None:
            raise waiting.error
        if not waiting.first_waiting:
            return Stored(parsed, duplicate=not waiting.new)
        return Stored(parsed, duplicate=False, ring_failed=not self._ring(parsed.ref))

    def _take_batch(self) -> list[_Waiting]:
        with self._queue_lock:
            batch, self._queue = self._queue, []
        return batch

    def _store(self) -> None:
        """One transaction for every delivery waiting once it holds the database's write lock
        (those arriving while it waited for a worker's transaction join it, rather than wait
        for the next one). If it fails over one of its deliveries, each is tried again in a
        transaction of its own, so one that cannot be stored fails alone; not when the
        database itself failed (down, locked past its timeout): each would fail the same,
        only later. A kept connection the database dropped (a restart, an idle timeout) is
        no failure of the deliveries: the batch is tried once more on a new one."""
        try:
            try:
                self._store_batch(None)
            except _Failed as dropped:
                if not getattr(dropped.error, "connection_invalidated", False):
                    raise
                self._store_batch(dropped.batch)
        except _Failed as failed:
            # the error every delivery left gets without another try: the database's own
            shared = (failed.error if len(failed.batch) == 1
                      or isinstance(failed.error, UNAVAILABLE) else None)
            for item in failed.batch:
                if shared is not None:
                    item.error = shared
                else:
                    try:
                        self._store_batch([item])
                    except _Failed as alone:
                        item.error = alone.error
                        if isinstance(alone.error, UNAVAILABLE):
                            shared = alone.error
                item.stored.set()

    def _store_batch(self, batch: list[_Waiting] | None) -> None:
        """Store `batch` (None: every delivery waiting once the transaction holds the write
        lock) in one transaction; raises `_Failed` with the batch when it could not.
        An engagement's first new event of the batch is its first waiting one when no older
        untried one waits (given back after a failure, one waits for the sweep) and no job
        is known to be coming."""
        try:
            connection = self._writer_connection()
            with connection.begin():
                if batch is None:
                    batch = self._take_batch()
                new = record_events(connection, [
                    Incoming(item.event, item.body, item.received_at) for item in batch])
                now = self._clock()
                arrived = Counter(item.event.ref for item, is_new in zip(batch, new, strict=True)
                                  if is_new and self._job_coming.get(item.event.ref, 0) <= now)
                waiting = (waiting_counts(connection, arrived, untried_only=True)
                           if arrived else {})
        except BaseException as error:  # nothing of it is stored: each of it says so
            self._discard_connection()  # the next transaction starts on a fresh one
            raise _Failed(batch if batch is not None else self._take_batch(), error) from error
        first = {ref for ref, count in arrived.items() if waiting[ref] == count}
        for item, is_new in zip(batch, new, strict=True):
            item.new = is_new
            if is_new and item.event.ref in first:
                item.first_waiting = True
                first.discard(item.event.ref)
            item.stored.set()

    def _writer_connection(self) -> Connection:
        """One connection kept for the writer: taking one from the pool and giving it back
        for every batch cost more than the batch's SQL."""
        if self._connection is None:
            self._connection = self.database.engine.connect()
        return self._connection

    def _discard_connection(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                connection.close()
            except Exception:
                log.warning("could not close the intake's database connection", exc_info=True)

    def close(self) -> None:
        """Give the writer's connection back (shutdown, tests)."""
        with self._writer:
            self._discard_connection()

    def _ring(self, ref: EngagementRef) -> bool:
        """Ring for `ref`; False when the queue failed (the event is stored: the sweep rings
        for it later, and the platform still gets its 202)."""
        try:
            self.doorbell.ring(ref)
        except Exception:
            log.exception("could not queue %s; the sweep will", ref)
            return False
        now = self._clock()
        with self._queue_lock:
            if len(self._job_coming) > MAX_REMEMBERED:
                self._job_coming = {r: t for r, t in self._job_coming.items() if t > now}
            self._job_coming[ref] = now + self.doorbell.delay_seconds / 2
        return True


MAX_REMEMBERED = 10_000  # engagements with a job coming; past that, forget the expired
