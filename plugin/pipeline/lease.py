"""A worker's claim on an engagement's events, kept while its evaluation runs.

A claim is a lease (`service.lease_seconds`) so that the events of a worker that dies are
taken up again. But a live evaluation can outlast it: one platform call may wait out rate
limits for over a minute, and a snapshot takes several calls. Had the lease run out, a
second worker would claim the events and evaluate the ticket too — two sticky comments, or
an older snapshot written over a newer one. So the lease is renewed, a third of its length
at a time, by one thread of the process for as long as the evaluation runs (a thread per
evaluation cost each one milliseconds in thread hand-overs); a dead worker renews nothing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from datetime import UTC, datetime
from types import TracebackType

from plugin.pipeline import LeaseLost
from plugin.storage import Database
from plugin.storage.repository import lease_end, renew_lease

__all__ = ["Lease", "LeaseLost"]

log = logging.getLogger(__name__)


class Lease:
    """`with Lease(database, ids, claimed_at, seconds) as lease:` keeps the claim that
    `claim_pending(…, claimed_at, seconds)` took on `ids` until the block ends."""

    def __init__(self, database: Database, ids: Collection[int], claimed_at: datetime,
                 seconds: float) -> None:
        self.database, self.ids, self.seconds = database, list(ids), seconds
        self._until = lease_end(claimed_at, seconds)
        self._lost = False
        self._attempted: datetime | None = None  # a renewal whose outcome is unknown
        self._renewing = threading.Lock()

    def __enter__(self) -> Lease:
        _KEEPER.keep(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        _KEEPER.forget(self)

    def check(self) -> None:
        """Before writing: raises `LeaseLost` unless the events are still ours."""
        if not self.held():
            raise LeaseLost(f"events {self.ids} were taken over by another worker")

    def held(self) -> bool:
        """Whether the events are still ours. Surely while a third of the lease is left (no
        other worker claims them before it runs out): the common case, which costs nothing.
        Else the database says, and the lease is renewed, so what follows has all of it.
        Raises the database's error when it cannot tell."""
        return (not self._lost and self._seconds_left() > self.seconds / 3) or self.renew()

    def seconds_to_renewal(self) -> float:
        """How long until a third of it has passed since it was taken or renewed, when the
        keeper renews it (0 or less: now)."""
        return self._seconds_left() - self.seconds * 2 / 3

    def _seconds_left(self) -> float:
        return (self._until - datetime.now(UTC)).total_seconds()

    def renew(self) -> bool:
        """Renew the lease now; False once the events are no longer ours (the lease had run
        out and another worker claimed them, or they were finished)."""
        with self._renewing:
            if self._lost:
                return False
            until = lease_end(datetime.now(UTC), self.seconds)
            held = [self._until] + ([self._attempted] if self._attempted else [])
            self._attempted = until  # a commit that failed may have landed all the same
            with self.database.session() as session, session.begin():
                renewed = renew_lease(session, self.ids, held, until)
            self._attempted = None
            if renewed:
                self._until = until
            else:
                self._lost = True
            return renewed


class _Keeper:
    """The one thread of a process that renews the leases of its running evaluations, each
    once a third of it has passed; started with the first."""

    IDLE_SECONDS = 60.0  # how long it sleeps with no lease to keep
    RETRY_SECONDS = 1.0  # after a renewal the database could not make

    def __init__(self) -> None:
        self._leases: set[Lease] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def keep(self, lease: Lease) -> None:
        with self._changed:
            self._leases.add(lease)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="leases", daemon=True)
                self._thread.start()
            self._changed.notify()

    def forget(self, lease: Lease) -> None:
        with self._changed:
            self._leases.discard(lease)

    def _run(self) -> None:
        while True:
            with self._changed:
                waits = {lease: lease.seconds_to_renewal() for lease in self._leases}
                due = [lease for lease, wait in waits.items() if wait <= 0]
                if not due:
                    self._changed.wait(min(waits.values(), default=self.IDLE_SECONDS))
                    continue
            failed = False
            for lease in due:
                try:
                    if not lease.renew():
                        self.forget(lease)
                except Exception:  # the database is busy or down: the lease may still be live
                    log.warning("could not renew the lease on events %s", lease.ids,
                                exc_info=True)
                    failed = True
            if failed:
                with self._changed:
                    self._changed.wait(self.RETRY_SECONDS)


_KEEPER = _Keeper()
