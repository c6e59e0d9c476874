"""The service's state, in portable types: one schema for SQLite (embedded) and PostgreSQL.

Timestamps are stored as UTC and always come back timezone-aware, on both backends.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC. SQLite keeps no offset, so UTC is stripped on the way
    in (the text then sorts in time order) and put back on the way out; naive values are
    refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Id = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER keys only


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class EventStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    IGNORED = "ignored"


def _one_of(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(value.value) for value in values)})"


class EventRecord(Base):
    """One webhook delivery, stored before it is answered; the table is the queue's truth.

    The unique (connector, site, delivery_id) makes the database itself recognise a
    redelivery, also when two copies arrive at once."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("connector", "site", "delivery_id"),
        CheckConstraint(_one_of("status", EventStatus), name="status"),
        Index(None, "connector", "site", "engagement_key", "status"),
        Index(None, "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    connector: Mapped[str] = mapped_column(String(32))
    site: Mapped[str] = mapped_column(String(255))
    delivery_id: Mapped[str] = mapped_column(String(255))
    engagement_key: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime]
    occurred_at: Mapped[datetime | None]
    actor: Mapped[str | None] = mapped_column(String(255))
    by_us: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str] = mapped_column(Text)  # the raw JSON, for replay
    status: Mapped[str] = mapped_column(String(16), default=EventStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # times a worker took it
    # processing: until when the worker's claim holds; pending after a platform outage:
    # the sweep rings for it no sooner (`repository.postpone`)
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None]


class EngagementRecord(Base):
    """What ClientGuard remembers about one engagement between evaluations."""

    __tablename__ = "engagements"
    __table_args__ = (UniqueConstraint("connector", "site", "key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    connector: Mapped[str] = mapped_column(String(32))
    site: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(255))
    display_key: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(Text)
    client_key: Mapped[str | None] = mapped_column(String(255))
    account_manager: Mapped[str | None] = mapped_column(String(255))
    sticky_comment_id: Mapped[str | None] = mapped_column(String(255))
    sticky_hash: Mapped[str | None] = mapped_column(String(128))  # of the last comment written
    last_score: Mapped[int | None] = mapped_column(Integer)
    last_band: Mapped[str | None] = mapped_column(String(16))
    last_evaluated_at: Mapped[datetime | None]
    # The engagement's last change on the platform (its own clock) as that evaluation's
    # snapshot showed it: the review's catch-up skips a listed change no later than this.
    platform_updated_at: Mapped[datetime | None]
    open: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set when a sticky comment written here turned out client-visible: when and what was
    # seen. Nothing is written to the ticket again until a person resumes it.
    writes_stopped: Mapped[str | None] = mapped_column(Text)


class FindingStatus(enum.StrEnum):
    WARN = "warn"
    FAIL = "fail"


class FindingRecord(Base):
    """One episode of a rule warning or failing on an engagement: from `first_seen` until
    `resolved_at`. A rule that fails again after a fix opens a new row, so the weekly digest
    can report both the fix and the relapse. At most one open episode per rule."""

    __tablename__ = "findings"
    __table_args__ = (
        CheckConstraint(_one_of("status", FindingStatus), name="status"),
        Index("uq_findings_open", "engagement_id", "rule_id", unique=True,
              sqlite_where=text("resolved_at IS NULL"),
              postgresql_where=text("resolved_at IS NULL")),
        Index(None, "first_seen"),
        Index(None, "resolved_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    engagement_id: Mapped[int] = mapped_column(
        ForeignKey("engagements.id", ondelete="CASCADE"), index=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(8))
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


class DailyScore(Base):
    """The health score of one engagement on one day: the last evaluation of the day wins."""

    __tablename__ = "daily_scores"

    engagement_id: Mapped[int] = mapped_column(
        ForeignKey("engagements.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    band: Mapped[str] = mapped_column(String(16))


class InstallationRecord(Base):
    """A connector's state for one installation (a Bitrix24 portal: member id, application
    token, OAuth tokens), as a JSON object. `version` grows with every write, so a writer can
    tell whether someone else wrote since it read."""

    __tablename__ = "installations"

    connector: Mapped[str] = mapped_column(String(32), primary_key=True)
    site: Mapped[str] = mapped_column(String(255), primary_key=True)
    data: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class CatchUpRecord(Base):
    """When the review last listed a connector's recent changes without error. The next
    listing looks back from there, so what changed while the service was down or the
    platform unreachable is caught up too, not only the last half hour."""

    __tablename__ = "catch_ups"

    connector: Mapped[str] = mapped_column(String(32), primary_key=True)
    listed_at: Mapped[datetime]


class PeriodicRunRecord(Base):
    """The latest period in which a periodic job (sweep, review, prune) ran. Every process's
    scheduler enqueues each periodic job, so with several processes on one queue each
    period's job comes several times: the first to claim the period runs it."""

    __tablename__ = "periodic_runs"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    period: Mapped[datetime]  # its start
