"""A worker's claim on an engagement's events, kept while its evaluation runs.

A claim is a lease (`service.lease_seconds`) so that the events of a worker that dies are
taken up again. But a live evaluation can outlast it: one platform call may wait out rate
limits for over a minute, and a snapshot takes several calls. Had the lease run out, a
second worker would claim the events and evaluate the ticket too — two sticky comments, or
an older snapshot written over a newer one. So the lease is renewed, a third of its length
at a time, from a thread of its own for as long as the evaluation runs; a dead worker
renews nothing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from datetime import UTC, datetime
from types import TracebackType

from plugin.storage import Database
from plugin.storage.repository import lease_end, renew_lease

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker holds the events now: this evaluation must write nothing and leave
    the events to it."""


class Lease:
    """`with Lease(database, ids, claimed_at, seconds) as lease:` keeps the claim that
    `claim_pending(…, claimed_at, seconds)` took on `ids` until the block ends."""

    def __init__(self, database: Database, ids: Collection[int], claimed_at: datetime,
                 seconds: float) -> None:
        self.database, self.ids, self.seconds = database, list(ids), seconds
        self._until = lease_end(claimed_at, seconds)
        self._lost = False
        self._renewing = threading.Lock()
        self._done = threading.Event()
        self._keeper = threading.Thread(target=self._keep, name="lease", daemon=True)

    def __enter__(self) -> Lease:
        self._keeper.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._done.set()
        self._keeper.join()

    def check(self) -> None:
        """Before writing: renew the lease, so the write has all of it; raises `LeaseLost`
        unless the events are still ours."""
        if not self.renew():
            raise LeaseLost(f"events {self.ids} were taken over by another worker")

    def _keep(self) -> None:
        while not self._done.wait(self.seconds / 3):
            try:
                if not self.renew():
                    return
            except Exception:  # the database is busy or down: the lease may still be live
                log.warning("could not renew the lease on events %s", self.ids, exc_info=True)

    def renew(self) -> bool:
        """Renew the lease now; False once the events are no longer ours (the lease had run
        out and another worker claimed them, or they were finished). Raises the database's
        error when it cannot tell."""
        with self._renewing:
            if self._lost:
                return False
            until = lease_end(datetime.now(UTC), self.seconds)
            with self.database.session() as session, session.begin():
                renewed = renew_lease(session, self.ids, self._until, until)
            if renewed:
                self._until = until
                return True
            self._lost = True
            if not self._done.is_set():  # else they were finished just now: all is well
                log.warning("the lease on events %s ran out and another worker took them "
                            "over; this evaluation writes nothing", self.ids)
            return False
