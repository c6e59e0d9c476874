"""`connectors.base.InstallationStore` on the service's database: what a connector keeps per
installed site, seen alike by every web and worker process."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from plugin.storage import Database
from plugin.storage.models import InstallationRecord

State = dict[str, Any]
MAX_CONFLICTS = 20  # another process wrote in between this often: give up loudly

_LOCKS: dict[tuple[int, str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _site_lock(database: Database, connector: str, site: str) -> threading.Lock:
    """One lock per site for the threads sharing one `Database` (a process's engine)."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault((id(database.engine), connector, site), threading.Lock())


class ConflictingWrites(RuntimeError):
    """Other processes kept changing an installation while we tried to."""


class Installations:
    """One connector's installations.

    `change` never holds a database lock while `edit` runs — `edit` may call the platform
    (an OAuth refresh), and on SQLite a held write lock would stall every webhook. Threads of
    one process take turns on a lock per site; between processes an optimistic version check
    decides, and `edit` runs again on the newer state when another process won."""

    def __init__(self, database: Database, connector: str) -> None:
        self.database, self.connector = database, connector

    def load(self, site: str) -> State | None:
        return self._read(site)[0]

    def sites(self) -> list[str]:
        with self.database.reading() as session:
            return list(session.scalars(
                select(InstallationRecord.site)
                .where(InstallationRecord.connector == self.connector)
                .order_by(InstallationRecord.site)))

    def change(self, site: str, edit: Callable[[State | None], State | None]) -> State | None:
        with _site_lock(self.database, self.connector, site):
            for _ in range(MAX_CONFLICTS):
                current, version = self._read(site)
                wanted = edit(None if current is None else dict(current))
                if self._write(site, version, wanted):
                    return wanted
        raise ConflictingWrites(f"{self.connector} installation {site!r} kept changing "
                                f"under us ({MAX_CONFLICTS} tries)")

    def _read(self, site: str) -> tuple[State | None, int | None]:
        with self.database.reading() as session:
            row = session.execute(
                select(InstallationRecord.data, InstallationRecord.version)
                .where(InstallationRecord.connector == self.connector,
                       InstallationRecord.site == site)).first()
        return (None, None) if row is None else (json.loads(row.data), row.version)

    def _write(self, site: str, version: int | None, state: State | None) -> bool:
        """Store `state` if the row is still at `version` (None: no row); False otherwise."""
        try:
            return self._write_at(site, version, state)
        except IntegrityError:  # another process created the row first
            return False

    def _write_at(self, site: str, version: int | None, state: State | None) -> bool:
        mine = (InstallationRecord.connector == self.connector,
                InstallationRecord.site == site)
        with self.database.session() as session, session.begin():
            if version is None:
                if session.scalar(select(InstallationRecord.version).where(*mine)) is not None:
                    return False
                if state is not None:
                    session.execute(insert(InstallationRecord).values(
                        connector=self.connector, site=site, data=json.dumps(state),
                        version=1, updated_at=datetime.now(UTC)))
                return True
            current = (*mine, InstallationRecord.version == version)
            if state is None:
                return session.execute(delete(InstallationRecord).where(*current)).rowcount == 1
            return session.execute(update(InstallationRecord).where(*current).values(
                data=json.dumps(state), version=version + 1,
                updated_at=datetime.now(UTC))).rowcount == 1
