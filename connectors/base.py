"""What the service needs from a platform, and the small records that cross the boundary.

A connector turns one webhook delivery into an `Event` (or says it is `Ignored`), and later
turns an `EngagementRef` into a normalised snapshot and keeps the sticky comment. The
service never looks inside a platform payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

STICKY_MARKER = "clientguard:sticky"
"""Hidden in every sticky comment ClientGuard writes: how it finds its own comment again and
recognises the events its writes cause."""


@dataclass(frozen=True)
class Delivery:
    """One webhook request as it arrived: the raw body (signatures are over the raw bytes)
    and the headers with lower-case names."""

    body: bytes
    headers: Mapping[str, str]
    received_at: datetime


@dataclass(frozen=True)
class EngagementRef:
    """Which engagement: platform, installation (a Jira site, a Bitrix24 portal) and key."""

    connector: str
    site: str
    key: str


@dataclass(frozen=True)
class Event:
    """A delivery we act on: re-evaluate `ref`.

    `delivery_id` is the idempotency key (the platform's delivery id, or a hash of the
    body where the platform gives none); `by_us` marks events caused by our own writes,
    which must never start another evaluation."""

    ref: EngagementRef
    name: str
    delivery_id: str
    occurred_at: datetime | None
    actor: str | None
    by_us: bool = False


@dataclass(frozen=True)
class Ignored:
    """A delivery we accept and drop, with the reason (an event we do not handle)."""

    name: str
    reason: str


class Connector(Protocol):
    """The interface every platform package implements (grows with the pipeline)."""

    name: str

    def parse_delivery(self, delivery: Delivery) -> Event | Ignored:
        """Verify and read one delivery; raises `connectors.errors.DeliveryRejected`."""
        ...
