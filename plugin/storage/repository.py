"""Every query the service runs, as small functions over a `Session`.

The caller owns the transaction (`with database.session() as session, session.begin():`):
nothing here commits. Claims and leases only protect anything once committed, so commit a
claim before doing the slow work it stands for.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from connectors.base import INDIRECT, EngagementRef, Event
from plugin.storage.models import (
    CatchUpRecord,
    DailyScore,
    EngagementRecord,
    EventRecord,
    EventStatus,
    FindingRecord,
    FindingStatus,
    PeriodicRunRecord,
    UTCDateTime,
)
from plugin.storage.prepared import Insert, PreparedInsert, insert_for

MAX_ATTEMPTS = 5
REVIEW_PREFIX = "review:"  # the name of every event the service stores for itself
# A platform outage (unreachable, rate limiting, refused credentials) uses up no attempt: the
# events wait half their age between tries, within these bounds, and fail only after a day.
RETRY_WAIT_MIN, RETRY_WAIT_MAX = timedelta(minutes=1), timedelta(minutes=10)
GIVE_UP_AFTER = timedelta(hours=24)
FINDINGS = frozenset(FindingStatus)  # the statuses that are findings: warn, fail
WORKER_LOST = "lease expired on the last attempt: the worker stopped without finishing"


@dataclass(frozen=True)
class EngagementInfo:
    """What the weekly digest shows about an engagement, and what the review's catch-up
    compares, taken from its latest snapshot."""

    display_key: str | None = None
    title: str | None = None
    client_key: str | None = None
    account_manager: str | None = None
    open: bool = True
    platform_updated_at: datetime | None = None  # the snapshot's `Engagement.updated`


def _aware(value: datetime | None) -> ColumnElement[Any]:
    """A timestamp literal stored like the columns (UTC), where SQL would not infer it."""
    return literal(value, UTCDateTime())


# Statements run while SQLite's one write lock is held are built once, with bound
# parameters, on the tables (not the ORM entities): building an expression, and the ORM's
# bulk-update bookkeeping, cost more than running it. The filters below serve both those and
# the statements built per call.
_EVENTS = EventRecord.__table__.c
_NOW = bindparam("now", type_=UTCDateTime())


def _events_where(connector: Any, site: Any, key: Any) -> ColumnElement[bool]:
    """The events of one engagement, by values or by bound parameters."""
    return and_(_EVENTS.connector == connector, _EVENTS.site == site,
                _EVENTS.engagement_key == key)


def _events_of(ref: EngagementRef) -> ColumnElement[bool]:
    return _events_where(ref.connector, ref.site, ref.key)


_OF_REF = _events_where(bindparam("ref_connector"), bindparam("ref_site"), bindparam("ref_key"))


def _ref_params(ref: EngagementRef) -> dict[str, str]:
    """`_OF_REF`'s parameters."""
    return {"ref_connector": ref.connector, "ref_site": ref.site, "ref_key": ref.key}


def _lease_expired(now: datetime | ColumnElement[Any]) -> ColumnElement[bool]:
    return and_(_EVENTS.status == EventStatus.PROCESSING.value, _EVENTS.lease_until < now)


# --- events: the durable queue -------------------------------------------------------------


def record_event(session: Session, event: Event, body: bytes, received_at: datetime) -> bool:
    """Store one delivery (`record_events` with one): False when it is already stored."""
    return record_events(session.connection(), [Incoming(event, body, received_at)])[0]


@dataclass(frozen=True)
class Incoming:
    """A delivery to store: its parsed event, the raw body (for replay), when it came."""

    event: Event
    body: bytes
    received_at: datetime


def record_events(connection: Connection, incoming: Sequence[Incoming]) -> list[bool]:
    """Store deliveries before they are answered: for each, False (and nothing changed) when
    that delivery is already stored. The unique key decides, so two copies arriving at once
    make one row. An event caused by our own write is kept for replay but as `ignored`: never
    evaluated.

    A delivery known only by its body's hash (`Event.by_content`) is a duplicate only while
    an earlier copy still waits: once that copy was taken up, an identical body is a new
    change (stored under `<hash>#<n>`), else it would never be evaluated."""
    insert = _EVENT_INSERT.on(connection)
    stored = []
    for item in incoming:
        row = _event_row(item)
        stored.append(insert(row) or (item.event.by_content
                                      and _record_again(connection, item.event, row, insert)))
    return stored


def unstorable(event: Event, body: bytes) -> str | None:
    """Why a delivery cannot be stored as it is, or None: a value longer than its column,
    or text a database refuses — NUL (PostgreSQL) or a lone surrogate, which a JSON escape
    such as `\\ud800` decodes to (no UTF-8). Asked before the delivery joins a batch: such
    a value fails the whole transaction, every other delivery committed with it too."""
    values = {"connector": event.ref.connector, "site": event.ref.site,
              "engagement_key": event.ref.key, "delivery_id": event.delivery_id,
              "name": event.name, "actor": event.actor}
    for column, value in values.items():
        if value is None:
            continue
        limit = _EVENTS[column].type.length
        if len(value) > limit:
            return f"its {column} is over {limit} characters"
        if "\x00" in value or not _encodes(value):
            return f"its {column} holds a character no text can store (NUL, a lone surrogate)"
    if b"\x00" in body:
        return "the body holds a NUL byte"
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _event_row(item: Incoming) -> dict[str, Any]:
    event = item.event
    status = EventStatus.IGNORED if event.by_us else EventStatus.PENDING
    return {
        "connector": event.ref.connector, "site": event.ref.site,
        "delivery_id": event.delivery_id, "engagement_key": event.ref.key, "name": event.name,
        "received_at": item.received_at, "occurred_at": event.occurred_at,
        "actor": event.actor, "by_us": event.by_us,
        "body": item.body.decode("utf-8", errors="replace"),  # JSON is UTF-8; else noise
        "status": status.value, "attempts": 0,
    }


def _record_again(connection: Connection, event: Event, row: dict[str, Any],
                  insert: Insert) -> bool:
    """A known body hash: a new change unless a copy of it still waits."""
    copies = select(EventRecord.status).where(
        EventRecord.connector == event.ref.connector, EventRecord.site == event.ref.site,
        or_(EventRecord.delivery_id == event.delivery_id,
            EventRecord.delivery_id.startswith(event.delivery_id + "#", autoescape=True)))
    statuses = list(connection.scalars(copies))
    if EventStatus.PENDING.value in statuses:
        return False
    return insert({**row, "delivery_id": f"{event.delivery_id}#{len(statuses) + 1}"})


_EVENT_INSERT = PreparedInsert(EventRecord.__table__, conflict_on=(
    "connector", "site", "delivery_id"), columns=(
    "connector", "site", "delivery_id", "engagement_key", "name", "received_at",
    "occurred_at", "actor", "by_us", "body", "status", "attempts"))


def indirect_waiting(session: Session, connector: str, site: str, limit: int,
                     now: datetime) -> list[EngagementRef]:
    """Indirect refs (`EngagementRef.indirect`) with pending events on this installation,
    oldest first, but those whose last lookup failed and wait until later (`postpone`):
    what the next resolve step looks up."""
    oldest = func.min(EventRecord.id)
    keys = session.scalars(
        select(EventRecord.engagement_key)
        .where(EventRecord.connector == connector, EventRecord.site == site,
               EventRecord.status == EventStatus.PENDING,
               or_(EventRecord.lease_until.is_(None), EventRecord.lease_until <= now),
               EventRecord.engagement_key.contains(INDIRECT, autoescape=True))
        .group_by(EventRecord.engagement_key).order_by(oldest).limit(limit))
    return [EngagementRef(connector, site, key) for key in keys]


def file_under(session: Session, ref: EngagementRef, target: EngagementRef | None,
               now: datetime) -> int:
    """File the pending events of indirect `ref` under their engagement `target`, or mark
    them ignored when they belong to none. Returns how many events moved."""
    pending = and_(_events_of(ref), EventRecord.status == EventStatus.PENDING)
    if target is None:
        values: dict[str, Any] = {"status": EventStatus.IGNORED.value, "processed_at": now,
                                  "last_error": NO_ENGAGEMENT}
    else:
        values = {"engagement_key": target.key}
    return session.execute(update(EventRecord).where(pending).values(**values)).rowcount


NO_ENGAGEMENT = "not about an engagement"
UNRESOLVED = "its engagement could not be looked up"


def waiting_ids(session: Session, refs: Iterable[EngagementRef]) -> list[int]:
    """The pending events of `refs`."""
    return list(session.scalars(select(EventRecord.id).where(
        EventRecord.status == EventStatus.PENDING, or_(*map(_events_of, refs)))))


def claim_pending(session: Session, ref: EngagementRef, now: datetime, lease_seconds: float,
                  max_attempts: int = MAX_ATTEMPTS) -> list[int]:
    """Take this engagement's pending events, and those whose worker's lease ran out, for
    `lease_seconds`; their ids, oldest first — unless another worker holds a live lease on
    this engagement: one evaluation of a ticket at a time, so an older snapshot never
    overwrites a newer comment (that worker asks again for what arrived meanwhile).

    Claims of one engagement are serialised: on PostgreSQL by a transaction-scoped advisory
    lock on the engagement, on SQLite by the write lock BEGIN IMMEDIATE took. An event whose
    lease ran out on its last attempt is marked failed instead of being handed out forever."""
    _lock_engagement(session, ref)
    connection = session.connection()
    of_ref = {**_ref_params(ref), "now": now}
    if connection.execute(_BUSY, of_ref).first() is not None:
        return []
    claimed = connection.execute(_CLAIM, {
        **of_ref, "max_attempts": max_attempts,
        "lease_until": lease_end(now, lease_seconds)})
    return sorted(id_ for id_, status in claimed if status == EventStatus.PROCESSING)


def lease_end(now: datetime, lease_seconds: float) -> datetime:
    """When a lease taken or renewed at `now` runs out: also the token that says whose it
    is (`renew_lease`)."""
    return now + timedelta(seconds=lease_seconds)


def renew_lease(session: Session, ids: Collection[int], held_until: Collection[datetime],
                until: datetime) -> bool:
    """Move the lease on claimed events to `until` from the one it holds, any of
    `held_until` (the last renewal's outcome may be unknown); False unless every one of them
    was still processing under it (another worker claimed them once it ran out, or they
    were finished)."""
    renewed = session.connection().execute(_RENEW, {
        "ids": list(ids), "held": list(held_until), "until": until})
    return renewed.rowcount == len(ids)


_RENEW = (update(EventRecord.__table__)
          .where(_EVENTS.id.in_(bindparam("ids", expanding=True)),
                 _EVENTS.status == EventStatus.PROCESSING.value,
                 _EVENTS.lease_until.in_(bindparam("held", expanding=True,
                                                   type_=UTCDateTime())))
          .values(lease_until=bindparam("until", type_=UTCDateTime())))


_BUSY = select(_EVENTS.id).where(
    _OF_REF, _EVENTS.status == EventStatus.PROCESSING.value, _EVENTS.lease_until > _NOW,
).limit(1)
_SPENT = _EVENTS.attempts >= bindparam("max_attempts")  # only an expired lease gets here spent
_CLAIM = (
    update(EventRecord.__table__)
    .where(_EVENTS.id.in_(
        select(_EVENTS.id)
        .where(_OF_REF, or_(_EVENTS.status == EventStatus.PENDING.value,
                            _lease_expired(_NOW)))
        .with_for_update(skip_locked=True)))
    .values(
        status=case((_SPENT, EventStatus.FAILED.value), else_=EventStatus.PROCESSING.value),
        attempts=_EVENTS.attempts + case((_SPENT, 0), else_=1),
        lease_until=case((_SPENT, null()),
                         else_=bindparam("lease_until", type_=UTCDateTime())),
        last_error=case((_SPENT, WORKER_LOST), else_=_EVENTS.last_error),
        processed_at=case((_SPENT, _NOW), else_=_EVENTS.processed_at),
    )
    .returning(_EVENTS.id, _EVENTS.status)
)


def _lock_engagement(session: Session, ref: EngagementRef) -> None:
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.blake2b(f"{ref.connector}\0{ref.site}\0{ref.key}".encode(),
                                 digest_size=8).digest()
        session.execute(select(func.pg_advisory_xact_lock(
            int.from_bytes(digest, "big", signed=True))))


def oldest_waiting(session: Session, ref: EngagementRef) -> datetime | None:
    """When the engagement's oldest pending event arrived (None: nothing waits)."""
    return session.scalar(select(func.min(EventRecord.received_at)).where(
        _events_of(ref), EventRecord.status == EventStatus.PENDING))


def first_event_since(session: Session, connector: str, site: str,
                      since: datetime) -> EventRecord | None:
    """The first delivery stored for this installation since `since` (install's check
    that the platform reaches the service): not the service's own `review:*` events."""
    return session.scalars(
        select(EventRecord).where(EventRecord.connector == connector, EventRecord.site == site,
                                  EventRecord.received_at >= _aware(since),
                                  EventRecord.name.not_like(f"{REVIEW_PREFIX}%"))
        .order_by(EventRecord.id).limit(1)).first()


def waiting_count(session: Session, ref: EngagementRef) -> int:
    """How many of this engagement's events wait for an evaluation (pending)."""
    return waiting_counts(session.connection(), [ref])[ref]


def waiting_counts(connection: Connection, refs: Collection[EngagementRef], *,
                   untried_only: bool = False) -> dict[EngagementRef, int]:
    """`waiting_count` of several engagements, a query per installation (the webhook's hot
    path: keys in a list, so the (connector, site, key, status) index serves it).

    `untried_only` counts only events no evaluation has given back yet (no `last_error`):
    intake rings for a new event unless one of those waits, since their ring is still
    answered by a job. Events given back after a failure wait for the sweep, minutes
    away; the first new event after an outage must not wait behind them."""
    counts = dict.fromkeys(refs, 0)
    query = _UNTRIED_COUNTS if untried_only else _WAITING_COUNTS
    for (connector, site), keys in _keys_by_installation(counts):
        rows = connection.execute(query, {
            "connector": connector, "site": site, "keys": keys})
        for key, count in rows:
            counts[EngagementRef(connector, site, key)] = count
    return counts


KEYS_PER_QUERY = 1000


def _keys_by_installation(refs: Iterable[EngagementRef]
                          ) -> Iterator[tuple[tuple[str, str], list[str]]]:
    """The keys of `refs` per (connector, site), at most `KEYS_PER_QUERY` at a time: a query
    per installation with its keys in a list (a review after a week's outage may list tens
    of thousands; SQLite binds at most 32,766 values per statement)."""
    keys_of: dict[tuple[str, str], list[str]] = {}
    for ref in refs:
        keys_of.setdefault((ref.connector, ref.site), []).append(ref.key)
    for installation, keys in keys_of.items():
        for start in range(0, len(keys), KEYS_PER_QUERY):
            yield installation, keys[start:start + KEYS_PER_QUERY]


_WAITING_COUNTS = (
    select(EventRecord.engagement_key, func.count())
    .where(EventRecord.connector == bindparam("connector"),
           EventRecord.site == bindparam("site"),
           EventRecord.engagement_key.in_(bindparam("keys", expanding=True)),
           EventRecord.status == EventStatus.PENDING.value)
    .group_by(EventRecord.engagement_key))
_UNTRIED_COUNTS = _WAITING_COUNTS.where(EventRecord.last_error.is_(None))


def finish(session: Session, ids: Collection[int], now: datetime) -> None:
    """The evaluation these events asked for is done."""
    session.connection().execute(_FINISH, {"ids": list(ids), "now": now})


_FINISH = (update(EventRecord.__table__)
           .where(_EVENTS.id.in_(bindparam("ids", expanding=True)))
           .values(status=EventStatus.DONE.value, lease_until=None, processed_at=_NOW))


def fail(session: Session, ids: Collection[int], error: str, now: datetime,
         max_attempts: int = MAX_ATTEMPTS) -> int:
    """Give the events back for another try, or mark them failed once they had
    `max_attempts` (attempts count claims, so a crashing worker uses them up too); returns
    how many it marked failed."""
    return _release(session, ids, EventRecord.attempts >= max_attempts, error, now)


class Postponed(NamedTuple):
    retry_at: datetime  # when the events may be tried again
    given_up: int  # how many of them were marked failed instead


def postpone(session: Session, ids: Collection[int], error: str, now: datetime,
             at_least: float | None = None, *, attempts: int = -1,
             max_attempts: int = MAX_ATTEMPTS) -> Postponed:
    """Give the events back, not to be retried before a wait of half the oldest one's age
    (`RETRY_WAIT_MIN` to `RETRY_WAIT_MAX`, or `at_least` seconds, the platform's
    Retry-After) — the sweep rings for them then (a new event of the engagement tries at
    once: webhooks flow again). `attempts` is added to each one's count:

    - -1, the platform could not be used (`connectors.errors.Transient`, `AuthError`) while
      evaluating: nothing is wrong with the events, the attempt their claim took is given
      back;
    - 0, the platform could not be used while looking up indirect events (never claimed);
    - +1, an indirect lookup failed otherwise: one attempt is used, and at `max_attempts`
      they are marked failed.

    One waiting longer than `GIVE_UP_AFTER` that failed before is marked failed too; one
    that never had a try (workers were down) gets its wait first."""
    oldest = session.scalar(select(func.min(EventRecord.received_at))
                            .where(EventRecord.id.in_(ids))) or now
    wait = min(max((now - oldest) / 2, RETRY_WAIT_MIN), RETRY_WAIT_MAX)
    retry_at = now + max(wait, timedelta(seconds=at_least or 0))
    spent = and_(EventRecord.received_at < _aware(now - GIVE_UP_AFTER),
                 EventRecord.last_error.is_not(None))  # it failed before: at least one wait
    if attempts > 0:
        spent = or_(spent, EventRecord.attempts + attempts >= max_attempts)
    return Postponed(retry_at, _release(session, ids, spent, error, now,
                                          attempts=EventRecord.attempts + attempts,
                                          lease_until=case((spent, null()),
                                                           else_=_aware(retry_at))))


def _release(session: Session, ids: Collection[int], spent: ColumnElement[bool], error: str,
               now: datetime, **values: Any) -> int:
    """Mark the events failed where `spent`, else pending again (with `values`: `lease_until`
    None unless given); how many it marked failed."""
    statuses = session.scalars(update(EventRecord.__table__).where(_EVENTS.id.in_(ids)).values(
        status=case((spent, EventStatus.FAILED.value), else_=EventStatus.PENDING.value),
        last_error=error, processed_at=case((spent, _aware(now)), else_=None),
        **{"lease_until": None, **values}).returning(_EVENTS.status))
    return sum(status == EventStatus.FAILED.value for status in statuses)


def close_engagement(session: Session, ref: EngagementRef) -> None:
    """The engagement is gone from the platform (deleted, or out of the service account's
    sight): it is no longer reviewed, nor listed as open in the digest. An event about it
    later evaluates it again, and opens it if it is back."""
    session.execute(update(EngagementRecord).where(
        EngagementRecord.connector == ref.connector, EngagementRecord.site == ref.site,
        EngagementRecord.key == ref.key).values(open=False))


def stale_engagements(session: Session, now: datetime,
                      older_than_seconds: float) -> list[EngagementRef]:
    """Engagements whose events wait longer than they should: pending for over
    `older_than_seconds` (and not postponed past now), or claimed by a worker whose lease ran
    out. The queue is only a doorbell; the sweep rings it again for these."""
    waiting = and_(EventRecord.status == EventStatus.PENDING,
                   EventRecord.received_at < now - timedelta(seconds=older_than_seconds),
                   or_(EventRecord.lease_until.is_(None), EventRecord.lease_until <= now))
    rows = session.execute(
        select(EventRecord.connector, EventRecord.site, EventRecord.engagement_key)
        .where(or_(waiting, _lease_expired(now)))
        .distinct()
        .order_by(EventRecord.connector, EventRecord.site, EventRecord.engagement_key)
    )
    return [EngagementRef(connector, site, key) for connector, site, key in rows]


FINISHED = (EventStatus.DONE.value, EventStatus.IGNORED.value, EventStatus.FAILED.value)


def prune_events(session: Session, received_before: datetime, limit: int) -> int:
    """Forget up to `limit` finished events received before `received_before`, oldest
    first; how many. An event waiting or being evaluated is never forgotten."""
    oldest = (select(EventRecord.id)
              .where(EventRecord.status.in_(FINISHED),
                     EventRecord.received_at < _aware(received_before))
              .order_by(EventRecord.id).limit(limit))
    return session.execute(delete(EventRecord).where(
        EventRecord.id.in_(oldest.scalar_subquery()))).rowcount


def record_review(session: Session, ref: EngagementRef, now: datetime, reason: str,
                  change: datetime | None = None) -> bool:
    """Ask for a re-evaluation without a platform event (time-based rules, a missed
    webhook): a stored event like any other, so it takes the same claim path. Its delivery id
    names the `change` it catches up (the platform's time of it), so each change is asked
    about once however many reviews list it; without one it names the hour, so one reason
    asks at most once an hour per engagement."""
    when = (f"{change.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}" if change is not None
            else f"{now.astimezone(UTC):%Y-%m-%dT%H}")
    name = f"{REVIEW_PREFIX}{reason}"
    event = Event(ref, name, f"{name}:{ref.key}:{when}", now, None)
    return record_event(session, event, b"{}", now)


def seen_changes(session: Session, refs: Collection[EngagementRef]
                 ) -> dict[EngagementRef, datetime]:
    """The platform's time of the last change each engagement's latest evaluation saw
    (`EngagementInfo.platform_updated_at`), for those of `refs` that have one."""
    seen = {}
    for (connector, site), keys in _keys_by_installation(refs):
        rows = session.execute(
            select(EngagementRecord.key, EngagementRecord.platform_updated_at)
            .where(EngagementRecord.connector == connector, EngagementRecord.site == site,
                   EngagementRecord.key.in_(keys),
                   EngagementRecord.platform_updated_at.is_not(None)))
        seen.update({EngagementRef(connector, site, key): at for key, at in rows})
    return seen


def record_check(session: Session, ref: EngagementRef, now: datetime) -> str:
    """A person asked for an evaluation (`clientguard check`, `backfill`): a stored event, so
    it waits its turn on the claim path like any other; its delivery id."""
    name = f"{REVIEW_PREFIX}check"
    delivery_id = f"{name}:{ref.key}:{uuid.uuid4().hex}"
    record_event(session, Event(ref, name, delivery_id, now, None), b"{}", now)
    return delivery_id


def is_pending(session: Session, ref: EngagementRef, delivery_id: str) -> bool:
    """The event is stored and no evaluation has taken it yet."""
    return session.scalar(select(EventRecord.status).where(
        EventRecord.connector == ref.connector, EventRecord.site == ref.site,
        EventRecord.delivery_id == delivery_id)) == EventStatus.PENDING.value


def last_catch_up(session: Session, connector: str) -> datetime | None:
    """When the review last listed `connector`'s recent changes without error."""
    return session.scalar(select(CatchUpRecord.listed_at)
                          .where(CatchUpRecord.connector == connector))


def record_catch_up(session: Session, connector: str, listed_at: datetime) -> None:
    """Remember a listing of `connector`'s changes up to `listed_at` (never moved back). One
    upsert: the reviews of several worker processes may record at the same moment."""
    _move_forward(session, CatchUpRecord.__table__, "connector", connector, "listed_at",
                  listed_at)


def claim_period(session: Session, job: str, period: datetime) -> bool:
    """Claim the run of periodic `job` for the period starting at `period`: False when
    another process claimed it (or a later one) already."""
    return _move_forward(session, PeriodicRunRecord.__table__, "name", job, "period", period)


def _move_forward(session: Session, table: Table, key: str, value: str, moment: str,
                  to: datetime) -> bool:
    """Set the row's `moment` column to `to` unless it holds `to` or later already; one
    upsert, safe when several processes race. True when it was set (a row came back: the
    PostgreSQL driver reports no row count for an upsert)."""
    connection = session.connection()
    statement = insert_for(connection.dialect.name)(table)
    return connection.execute(statement.on_conflict_do_update(
        index_elements=[key], set_={moment: statement.excluded[moment]},
        where=table.c[moment] < statement.excluded[moment],
    ).returning(table.c[key]), {key: value, moment: to}).first() is not None


def due_for_review(session: Session, now: datetime,
                   older_than_seconds: float) -> list[EngagementRef]:
    """Open engagements last evaluated more than `older_than_seconds` ago: their time-based
    rules (an unanswered question, a silent week, an overdue invoice) change with time
    alone."""
    rows = session.execute(
        select(EngagementRecord.connector, EngagementRecord.site, EngagementRecord.key)
        .where(EngagementRecord.open.is_(True),
               EngagementRecord.last_evaluated_at < now - timedelta(seconds=older_than_seconds))
        .order_by(EngagementRecord.connector, EngagementRecord.site, EngagementRecord.key)
    )
    return [EngagementRef(connector, site, key) for connector, site, key in rows]


# --- engagements, findings, scores ---------------------------------------------------------


def get_engagement(session: Session, ref: EngagementRef) -> EngagementRecord | None:
    return session.scalars(_ENGAGEMENT, {"connector": ref.connector, "site": ref.site,
                                         "key": ref.key}).one_or_none()


_ENGAGEMENT = (select(EngagementRecord)
               .where(EngagementRecord.connector == bindparam("connector"),
                      EngagementRecord.site == bindparam("site"),
                      EngagementRecord.key == bindparam("key"))
               .execution_options(populate_existing=True))


def _upsert_engagement(session: Session, ref: EngagementRef, values: Mapping[str, Any]) -> int:
    """Create or update the engagement row and return its id. On PostgreSQL the upsert also
    locks the row until commit, so two evaluations of one engagement save one after the other
    (SQLite: BEGIN IMMEDIATE already did)."""
    connection = session.connection()
    statement = _engagement_upsert(connection.dialect.name, tuple(values))
    return connection.execute(statement, {
        "connector": ref.connector, "site": ref.site, "key": ref.key, **values}).scalar_one()


@functools.cache
def _engagement_upsert(dialect: str, names: tuple[str, ...]) -> Any:
    """The upsert of `_upsert_engagement` setting the columns `names`, per dialect."""
    table = EngagementRecord.__table__
    statement = insert_for(dialect)(table).values(
        {name: bindparam(name) for name in ("connector", "site", "key", *names)})
    changes = {name: statement.excluded[name] for name in names} or {
        "key": statement.excluded.key}  # a no-op update, so RETURNING has the id
    return statement.on_conflict_do_update(
        index_elements=["connector", "site", "key"], set_=changes).returning(table.c.id)


def save_evaluation(session: Session, ref: EngagementRef, score: int, band: str,
                    statuses: Mapping[str, str], now: datetime,
                    info: EngagementInfo | None = None) -> None:
    """Remember one evaluation: the engagement's latest score, its findings (new ones open,
    still-failing ones are seen again, fixed ones are resolved) and the score of the day.

    `statuses` maps each rule that ran to its status; a rule missing from it (it crashed)
    leaves its finding as it was. The day is `now.date()`: pass `now` in the agency's time
    zone so a day is the agency's day."""
    values: dict[str, Any] = {"last_score": score, "last_band": str(band),
                              "last_evaluated_at": now}
    if info is not None:
        values.update(asdict(info))
    engagement_id = _upsert_engagement(session, ref, values)
    connection = session.connection()
    _update_findings(connection, engagement_id, statuses, now)
    connection.execute(_daily_score_upsert(connection.dialect.name), {
        "engagement_id": engagement_id, "day": now.date(), "score": score, "band": str(band)})


@functools.cache
def _daily_score_upsert(dialect: str) -> Any:
    statement = insert_for(dialect)(DailyScore.__table__)
    return statement.on_conflict_do_update(
        index_elements=["engagement_id", "day"],
        set_={"score": statement.excluded.score, "band": statement.excluded.band})


def _update_findings(connection: Connection, engagement_id: int, statuses: Mapping[str, str],
                     now: datetime) -> None:
    found = {rule: str(status) for rule, status in statuses.items() if status in FINDINGS}
    seen_again, resolved = [], []
    for finding_id, rule_id in connection.execute(_OPEN_FINDINGS, {"engagement": engagement_id}):
        if rule_id in found:
            seen_again.append({"finding": finding_id, "new_status": found.pop(rule_id),
                               "now": now})
        elif rule_id in statuses:
            resolved.append({"finding": finding_id, "now": now})
    for statement, rows in ((_SEEN_AGAIN, seen_again), (_RESOLVED, resolved), (_OPENED, [
            {"engagement_id": engagement_id, "rule_id": rule, "status": status,
             "first_seen": now, "last_seen": now} for rule, status in found.items()])):
        if rows:
            connection.execute(statement, rows)


_FINDINGS = FindingRecord.__table__.c
_OPEN_FINDINGS = select(_FINDINGS.id, _FINDINGS.rule_id).where(
    _FINDINGS.engagement_id == bindparam("engagement"), _FINDINGS.resolved_at.is_(None))
_SEEN_AGAIN = (update(FindingRecord.__table__).where(_FINDINGS.id == bindparam("finding"))
               .values(status=bindparam("new_status"), last_seen=_NOW))
_RESOLVED = (update(FindingRecord.__table__).where(_FINDINGS.id == bindparam("finding"))
             .values(resolved_at=_NOW))
_OPENED = insert(FindingRecord.__table__)


def stop_writes(session: Session, ref: EngagementRef, reason: str | None) -> None:
    """Stop writing to the engagement, saying why (a leak); None resumes writing."""
    _upsert_engagement(session, ref, {"writes_stopped": reason})


def set_sticky(session: Session, ref: EngagementRef, comment_id: str | None,
               rendered_hash: str | None) -> None:
    """Remember the sticky comment we wrote and a hash of its text: the next evaluation
    writes nothing when the text hashes the same."""
    _upsert_engagement(session, ref, {"sticky_comment_id": comment_id,
                                      "sticky_hash": rendered_hash})
