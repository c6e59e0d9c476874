"""Resolve indirect events: file events that named only an activity, a task or a comment
under the engagement it belongs to (see `connectors.base.EngagementRef`).

One step resolves every indirect ref waiting on an installation, up to `RESOLVE_AT_ONCE`, so
a connector can look them all up in one platform call (Bitrix24: one `batch`)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from connectors.base import EngagementRef, ResolvesIndirect
from plugin.pipeline.process import POSTPONED_BY
from plugin.storage import Database
from plugin.storage.repository import count_unresolved, file_under, indirect_waiting

RESOLVE_AT_ONCE = 50  # Bitrix24's batch takes 50 commands

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
    events (to be evaluated). A lookup that fails is counted against the events it asked
    about (`count_unresolved`), then propagates."""
    with _turn(connector_name, site):
        return _resolve(connector, database, connector_name, site, now or datetime.now(UTC))


def _resolve(connector: ResolvesIndirect, database: Database, connector_name: str, site: str,
             now: datetime) -> list[EngagementRef]:
    with database.reading() as session:
        refs = indirect_waiting(session, connector_name, site, RESOLVE_AT_ONCE)
    if not refs:
        return []
    try:
        targets = connector.resolve(refs)
    except Exception as error:  # counted against them, or the sweep would ring for ever
        with database.session() as session, session.begin():
            for ref in refs:
                count_unresolved(session, ref, now, f"{type(error).__name__}: {error}",
                                 platform_failed=isinstance(error, POSTPONED_BY))
        raise
    with database.session() as session, session.begin():
        moved = {ref: file_under(session, ref, target, now) for ref, target in targets.items()}
        for ref in refs:
            if ref not in targets:  # asked again next time, for a bounded number of times
                count_unresolved(session, ref, now)
    return sorted({target for ref, target in targets.items() if target and moved[ref]},
                  key=lambda ref: ref.key)
