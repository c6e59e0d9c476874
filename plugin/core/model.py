"""The normalised engagement: what every connector turns its platform's data into.

An engagement is one client ticket, project issue, epic or CRM deal. Everything is
immutable, and every sequence is kept in time order so rules can scan it once.

"Not available" and "empty" are different things (see product.md, "How the rules read"):
`None` means the platform or the agency's field mapping has no such data; an empty tuple or a
mapped field holding `None` means the data exists and is empty — a real finding.
"""

from __future__ import annotations

import enum
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from types import MappingProxyType
from typing import Any


class Side(enum.StrEnum):
    """Which side of the relationship a person is on."""

    AGENCY = "agency"
    CLIENT = "client"
    UNKNOWN = "unknown"


class Visibility(enum.StrEnum):
    PUBLIC = "public"  # the client can see it
    INTERNAL = "internal"  # agency only


class StatusCategory(enum.StrEnum):
    """Jira's three status categories; Bitrix24 deal stages map onto them too."""

    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class DocumentKind(enum.StrEnum):
    ESTIMATE = "estimate"
    CONTRACT = "contract"
    BRIEF = "brief"
    OTHER = "other"


class TimeKind(enum.StrEnum):
    WORK = "work"
    CALL = "call"
    MEETING = "meeting"


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    side: Side
    email: str | None = None


@dataclass(frozen=True)
class StatusChange:
    at: datetime
    status: str
    category: StatusCategory
    by: Person | None = None


@dataclass(frozen=True)
class Client:
    """The client company; `key` is what per-client configuration is matched on."""

    key: str
    name: str
    people: tuple[Person, ...] = ()
    decision_makers: tuple[Person, ...] | None = None


@dataclass(frozen=True)
class Roles:
    """Agency roles. `None` = the platform/mapping has no such field; `()` = nobody set."""

    points_of_contact: tuple[Person, ...] | None = None
    project_managers: tuple[Person, ...] | None = None
    assignee: Person | None = None


@dataclass(frozen=True)
class Document:
    id: str
    kind: DocumentKind
    name: str
    added_at: datetime
    author: Person | None = None
    approved: bool | None = None
    template_id: str | None = None
    reviewed_by_legal: bool | None = None
    line_items: int | None = None


@dataclass(frozen=True)
class Comment:
    id: str
    author: Person
    visibility: Visibility
    at: datetime
    text: str

    @property
    def side(self) -> Side:
        return self.author.side

    @property
    def is_public_agency(self) -> bool:
        return self.author.side is Side.AGENCY and self.visibility is Visibility.PUBLIC


@dataclass(frozen=True)
class TimeEntry:
    person: Person
    hours: float
    kind: TimeKind
    at: datetime


@dataclass(frozen=True)
class Invoice:
    id: str
    amount: Decimal
    issued: date
    due: date
    paid: bool
    paid_on: date | None = None
    currency: str | None = None


@dataclass(frozen=True)
class Change:
    """One field change, with canonical field names (`due`, `status`, `assignee`, ...)."""

    field: str
    at: datetime
    from_value: str | None = None
    to_value: str | None = None
    by: Person | None = None


def _at(item: Any) -> datetime:
    return item.at


def during(items: tuple[Any, ...], start: datetime, end: datetime) -> tuple[Any, ...]:
    """Those of the time-ordered `items` with `start <= at <= end` (two binary searches)."""
    return items[bisect_left(items, start, key=_at): bisect_right(items, end, key=_at)]


def _in_time_order(items: tuple[Any, ...], key: str) -> tuple[Any, ...]:
    return tuple(sorted(items, key=lambda item: getattr(item, key)))


@dataclass(frozen=True)
class Engagement:
    connector: str
    key: str
    title: str
    status: str
    status_category: StatusCategory
    created: datetime
    updated: datetime
    client: Client
    roles: Roles
    url: str | None = None
    project: str | None = None
    due: date | None = None
    labels: tuple[str, ...] = ()
    status_history: tuple[StatusChange, ...] = ()
    documents: tuple[Document, ...] = ()
    comments: tuple[Comment, ...] = ()
    time_entries: tuple[TimeEntry, ...] = ()
    invoices: tuple[Invoice, ...] | None = None
    changes: tuple[Change, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Frozen, so normalise through object.__setattr__: time order and a read-only mapping.
        setattr_ = object.__setattr__
        setattr_(self, "status_history", _in_time_order(self.status_history, "at"))
        setattr_(self, "documents", _in_time_order(self.documents, "added_at"))
        setattr_(self, "comments", _in_time_order(self.comments, "at"))
        setattr_(self, "time_entries", _in_time_order(self.time_entries, "at"))
        setattr_(self, "changes", _in_time_order(self.changes, "at"))
        if self.invoices is not None:
            setattr_(self, "invoices", _in_time_order(self.invoices, "due"))
        setattr_(self, "fields", MappingProxyType(dict(self.fields)))

    @cached_property
    def started_at(self) -> datetime | None:
        """When work started: the first move into an in-progress status.

        An engagement that is in progress or done with no recorded move is taken to have
        started when it was created (the earliest moment work could have begun).
        """
        for change in self.status_history:
            if change.category is StatusCategory.IN_PROGRESS:
                return change.at
        if self.status_category is StatusCategory.TODO:
            return None
        return self.created

    @cached_property
    def public_agency_comments(self) -> tuple[Comment, ...]:
        """What the agency wrote where the client can read it, in time order."""
        return tuple(comment for comment in self.comments if comment.visibility is
                     Visibility.PUBLIC and comment.author.side is Side.AGENCY)

    @cached_property
    def replies(self) -> tuple[tuple[Comment, Comment | None], ...]:
        """Each client comment with the first client-visible agency comment after it
        (`None` while unanswered). One pass over the time-ordered comments."""
        pairs: list[tuple[Comment, Comment | None]] = []
        waiting: list[Comment] = []
        client, agency, public = Side.CLIENT, Side.AGENCY, Visibility.PUBLIC
        for comment in self.comments:
            side = comment.author.side
            if side is client:
                waiting.append(comment)
            elif waiting and side is agency and comment.visibility is public:
                pairs += ((question, comment) for question in waiting)
                waiting = []
        return (*pairs, *((question, None) for question in waiting))

    def time_entries_until(self, now: datetime) -> tuple[TimeEntry, ...]:
        """The time logged up to `now` (later entries have not happened yet)."""
        return self.time_entries[: bisect_right(self.time_entries, now, key=_at)]

    @cached_property
    def _hours_by_kind(self) -> dict[datetime, dict[TimeKind, float]]:
        return {}

    def hours_by_kind(self, now: datetime) -> Mapping[TimeKind, float]:
        """Hours logged up to `now` per kind of time; summed once, read by several rules."""
        if now not in self._hours_by_kind:
            totals = dict.fromkeys(TimeKind, 0.0)
            for entry in self.time_entries_until(now):
                totals[entry.kind] += entry.hours
            self._hours_by_kind[now] = totals
        return self._hours_by_kind[now]

    @property
    def is_active(self) -> bool:
        return self.started_at is not None and self.status_category is not StatusCategory.DONE

    def field_mapped(self, name: str) -> bool:
        return name in self.fields

    def manager_ids(self) -> frozenset[str]:
        """Ids of the agency people who manage the engagement (points of contact and PMs)."""
        people = (*(self.roles.points_of_contact or ()), *(self.roles.project_managers or ()))
        return frozenset(person.id for person in people)
