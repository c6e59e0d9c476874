"""The review's queue of changes: Bitrix24's offline events.

Bitrix24 posts an online event once and never again, so a lost one is a change ClientGuard
never hears of. Listing deals by `updatedTime` catches only changes to the deal itself; an
e-mail, a call, a task or a timeline comment leaves the deal untouched. So in app mode the
install also binds the engagement events as offline events (`install.bind_portal`), and the
portal keeps a queue for the application: one record per changed object, holding only its
latest change (a deal edited a thousand times is one record)
[D:api-reference/events/offline-events.md].

`pull_offline` empties that queue for the review. `event.offline.get` with `clear: 1` returns
up to `limit` records (50 by default) and deletes them. Parallel calls each get different
records [D:api-reference/events/event-offline-get.md]. A record is
`{"ID", "TIMESTAMP_X", "EVENT_NAME", "EVENT_DATA", "EVENT_ADDITIONAL", "MESSAGE_ID"}`.
`EVENT_DATA` is the event's `data` as JSON, so ids may come as numbers
(`{"FIELDS": {"ID": 49}}`, `EVENT_ADDITIONAL: {"user_id": "1"}` in a third-party dump). They
are read as the form's strings and mapped by `events.event_key`, the same mapping the posted
events use, so the refs match intake's: deal ids, or indirect keys the pipeline resolves.

Why `clear: 1` and not the confirm-after-processing mode (`clear: 0`, then
`event.offline.clear {process_id}`): that mode needs the plan feature `rest_offline_extended`
(`feature.get`) [D:api-reference/common/system/feature-get.md], and the review has no step
that confirms once the refs are stored. If a record is lost between the pull and the store,
the next hourly review of open deals still finds that deal. Only an administrator's token
may read the queue. Anyone else gets `403 ACCESS_DENIED` (spec §1.6; fixtures errors.json),
raised as `AuthError` for the caller to log.
"""

from __future__ import annotations

import logging
from typing import Any

from connectors.base import EngagementRef, Ignored
from connectors.bitrix24.client import PAGE_SIZE, Bitrix24Client
from connectors.bitrix24.events import CONNECTOR, TIMELINE_COMMENT, event_key
from connectors.errors import MalformedDelivery, PayloadError, PlatformError

log = logging.getLogger(__name__)

METHOD = "event.offline.get"
MAX_PAGES = 20
"""At most this many calls per portal and review (1,000 records at the default limit). The
queue holds one record per changed object, so more means a flood, and the rest waits for the
next review rather than stalling this one."""


def pull_offline(client: Bitrix24Client, site: str, limit: int = PAGE_SIZE, *,
                 bot_user_id: str | None = None,
                 max_pages: int = MAX_PAGES) -> list[EngagementRef]:
    """Take the portal's queued offline events, and return the refs they name: deal ids
    and indirect keys, each once, in queue order.

    The call repeats while a full page (`limit` records) comes back, at most `max_pages`
    times. Records the connector does not act on (unknown events, another smart process, a
    record without its id) are skipped. So is a timeline comment written by `bot_user_id`:
    that is the echo of ClientGuard's own sticky comment, which intake ignores too.

    Raises the client's typed errors when the first call fails: nothing was taken then. A
    later failure is logged and ends the pull, and the refs already taken are returned:
    those records are gone from the queue."""
    refs: dict[EngagementRef, None] = {}
    for page in range(max_pages):
        try:
            records = _records(client.call(METHOD, {"clear": 1, "limit": limit}))
        except PlatformError as error:
            if page == 0:
                raise
            log.warning("Bitrix24 portal %s: reading the offline queue stopped (pages "
                        "taken: %d): %s", site, page, error)
            break
        for record in records:
            ref = _ref(record, site, bot_user_id)
            if ref is not None:
                refs.setdefault(ref)
        if len(records) < limit:
            break
    else:
        log.info("Bitrix24 portal %s: %d offline records taken, the most one review takes; "
                 "the next review takes any rest", site, max_pages * limit)
    return list(refs)


def _records(result: Any) -> list[dict[str, Any]]:
    """The records of one `event.offline.get` result (`{"process_id", "events": […]}`)."""
    if result in (None, [], {}):
        return []
    if not isinstance(result, dict) or "events" not in result:
        raise PayloadError(f"{METHOD}: Bitrix24 answered a result without events")
    events = result["events"]
    if events in (None, False, {}):  # PHP's empty array may come as {}
        return []
    if not isinstance(events, list):
        raise PayloadError(f"{METHOD}: result.events is not a list")
    return [record for record in events if isinstance(record, dict)]


def _ref(record: dict[str, Any], site: str, bot_user_id: str | None) -> EngagementRef | None:
    """The ref one record names, or None for a record to skip."""
    name = str(record.get("EVENT_NAME") or "").upper()  # codes may be camelCase
    try:
        key = event_key(name, _as_form(record.get("EVENT_DATA")))
    except MalformedDelivery as error:
        log.warning("Bitrix24 portal %s: offline record %s skipped: %s", site,
                    record.get("ID"), error)
        return None
    if isinstance(key, Ignored):
        log.debug("Bitrix24 portal %s: offline record %s skipped: %s (%s)", site,
                  record.get("ID"), key.name, key.reason)
        return None
    if key.startswith(TIMELINE_COMMENT) and bot_user_id and _actor(record) == bot_user_id:
        return None
    return EngagementRef(CONNECTOR, site, key)


def _actor(record: dict[str, Any]) -> str | None:
    """Who made the change: `EVENT_ADDITIONAL.user_id`, when the record says."""
    additional = record.get("EVENT_ADDITIONAL")
    user_id = additional.get("user_id") if isinstance(additional, dict) else None
    return None if user_id in (None, "") else str(user_id)


def _as_form(value: Any) -> Any:
    """JSON `EVENT_DATA` as the posted form reads: numbers as strings (ids are digits)."""
    if isinstance(value, dict):
        return {str(key): _as_form(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_as_form(inner) for inner in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value
