"""Resolve indirect events: file events that named only an activity, a task or a comment
under the engagement it belongs to (see `connectors.base.EngagementRef`).

One step resolves every indirect ref waiting on an installation, up to `RESOLVE_AT_ONCE`, so
a connector can look them all up in one platform call (Bitrix24: one `batch`)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from connectors.base import EngagementRef, ResolvesIndirect
from plugin.pipeline.process import POSTPONED_BY
from plugin.storage import Database
from plugin.storage.repository import (
    UNRESOLVED,
    file_under,
    indirect_waiting,
    postpone,
    waiting_ids,
)

log = logging.getLogger(__name__)

RESOLVE_AT_ONCE = 50  # Bitrix24's batch takes 50 commands
LOGGED_REFS = 5  # of the refs whose events failed, named in the log line

_TURNS: dict[tuple[str, str], threading.Lock] = {}
_TURNS_GUARD = threading.Lock()


def _turn(connector: str, site: str) -> threading.Lock:
    """Worker threads of one process resolve an installation's events in turn: two at once
    would look the same waiting events up twice (the second files nothing, but costs a
    platform call)."""
    with _TURNS_GUARD:
        return _TURNS.setdefault((connector, site), threading.Lock())


def resolve_waiting(connector: ResolvesIndirect, database: Database, connector_name: str,
                    site: str, now: datetime | None = None) -> list[EngagementRef]:
    """Resolve the installation's waiting indirect events; returns the engagements that got
    events (to be evaluated). Events a lookup could not place wait before they are asked
    about again (`postpone`), so however many rings call for them, they use up their
    attempts no faster than an evaluation's events; a lookup that failed propagates."""
    with _turn(connector_name, site):
        return _resolve(connector, database, connector_name, site, now or datetime.now(UTC))


def _resolve(connector: ResolvesIndirect, database: Database, connector_name: str, site: str,
             now: datetime) -> list[EngagementRef]:
    with database.reading() as session:
        refs = indirect_waiting(session, connector_name, site, RESOLVE_AT_ONCE, now)
    if not refs:
        return []
    try:
        targets = connector.resolve(refs)
    except Exception as error:
        # the platform's failure uses up no attempt (`POSTPONED_BY`), any other one does
        with database.session() as session, session.begin():
            _postpone(session, refs, f"{type(error).__name__}: {error}", now,
                      getattr(error, "retry_after", None),
                      attempts=0 if isinstance(error, POSTPONED_BY) else 1)
        raise
    with database.session() as session, session.begin():
        moved = {ref: file_under(session, ref, target, now) for ref, target in targets.items()}
        if unresolved := [ref for ref in refs if ref not in targets]:
            _postpone(session, unresolved, UNRESOLVED, now, None, attempts=1)
    return sorted({target for ref, target in targets.items() if target and moved[ref]},
                  key=lambda ref: ref.key)


def _postpone(session: Session, refs: list[EngagementRef], reason: str, now: datetime,
              at_least: float | None, *, attempts: int) -> None:
    given_up = postpone(session, waiting_ids(session, refs), reason, now, at_least,
                        attempts=attempts).given_up
    if given_up:
        log.error("%s: %d indirect event(s) failed for good, their engagement never found: %s",
                  ", ".join(map(str, refs[:LOGGED_REFS])), given_up, reason)
