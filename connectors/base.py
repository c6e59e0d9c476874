"""What the service needs from a platform, and the small records that cross the boundary.

A connector turns one webhook delivery into an `Event` (or says it is `Ignored`), and later
turns an `EngagementRef` into a normalised snapshot and keeps the sticky comment. The
service never looks inside a platform payload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from plugin.core.comment import STICKY_MARKER, StickyContent
from plugin.core.i18n import Language
from plugin.core.model import Engagement

__all__ = ["STICKY_MARKER"]  # connectors match on the marker the core writes

@dataclass(frozen=True)
class Delivery:
    """One webhook request as it arrived: the raw body (signatures are over the raw bytes)
    and the headers with lower-case names."""

    body: bytes
    headers: Mapping[str, str]
    received_at: datetime


@dataclass(frozen=True)
class EngagementRef:
    """Which engagement: platform, installation (a Jira site, a Bitrix24 portal) and key.

    A key with a colon is *indirect* (`activity:42`): the event named only an object that
    belongs to some engagement, and finding which costs a platform call — too slow for the
    webhook's answer. Such events are stored under the indirect key and resolved in bulk by
    a worker (`ResolvesIndirect`), which files them under their engagement."""

    connector: str
    site: str
    key: str

    @property
    def indirect(self) -> bool:
        return INDIRECT in self.key

    def __str__(self) -> str:
        """As the log names it: `jira agency-dc/10231`."""
        return f"{self.connector} {self.site}/{self.key}"


INDIRECT = ":"


@dataclass(frozen=True)
class Event:
    """A delivery we act on: re-evaluate `ref`.

    `delivery_id` is the idempotency key: the platform's delivery id, or a hash of the body
    where the platform gives none. `by_content` marks a hash that cannot tell a redelivery
    from a second identical change (two edits of a Bitrix24 deal in one second: its bodies
    count seconds), so such a copy is a duplicate only while the first still waits. `by_us`
    marks events caused by our own writes, which must never start another evaluation."""

    ref: EngagementRef
    name: str
    delivery_id: str
    occurred_at: datetime | None
    actor: str | None
    by_us: bool = False
    by_content: bool = False


@dataclass(frozen=True)
class Ignored:
    """A delivery we accept and drop, with the reason (an event we do not handle)."""

    name: str
    reason: str


@dataclass(frozen=True)
class Snapshot:
    """An engagement as fetched, with what the connector needs to write to it later (the
    sticky comment it found among the comments, the platform's own details) — so writing
    costs no second read."""

    ref: EngagementRef
    engagement: Engagement
    sticky_id: str | None
    context: Any = None
    # False when someone else changed the sticky comment found (shared it with the client,
    # edited its text): it is written again even if its content is unchanged.
    sticky_as_written: bool = True
    # Other copies of the sticky comment (left by a crash between a write and storing its
    # id, or by two evaluations at once): the next write or delete removes them.
    duplicates: tuple[str, ...] = ()


@dataclass(frozen=True)
class Written:
    """The sticky comment as written: its id, and when the platform dated the change our
    write made to the engagement (Jira gives the issue a new comment's time), so the review
    does not take our own write for a change it missed; None where the write dates nothing
    the review lists by (docs/decisions.md, "Review events …")."""

    comment_id: str
    changed_at: datetime | None = None


@dataclass(frozen=True)
class Export:
    """An engagement read from a saved file instead of the platform, and what the file could
    not tell (one line each)."""

    engagement: Engagement
    warnings: tuple[str, ...]


class CommandLine(Protocol):
    """What `clientguard check`, `backfill` and friends need from a connector beyond the
    service's interface."""

    label: str  # the platform as people name it: "Jira"
    key_example: str  # what a KEY argument looks like: "ACME-12"

    def ready(self) -> None:
        """Raise `ConnectorNotConfigured` naming the missing setting, if any: before any
        call, so a person hears about configuration first."""
        ...

    def ref_for(self, key: str) -> EngagementRef:
        """The ref of the engagement a person names (raises ValueError when `key` cannot be
        one, `NotFound` when the platform has none)."""
        ...

    def open_engagements(self, query: str | None) -> list[tuple[EngagementRef, str]]:
        """Every open engagement (or those `query` selects), each with the key people know."""
        ...

    def load_export(self, text: str) -> Export:
        """An engagement from a saved file; raises `connectors.errors.ExportError`."""
        ...


@runtime_checkable
class ResolvesIndirect(Protocol):
    """A connector whose events may carry indirect keys (see `EngagementRef`)."""

    def resolve(self, refs: list[EngagementRef]) -> dict[EngagementRef, EngagementRef | None]:
        """The engagement each indirect ref belongs to — None when it belongs to none (not
        linked to an engagement, gone, or our own write echoing back) — in as few calls as
        the platform allows; refs it could not look up are left out (asked again later)."""
        ...


class InstallationStore(Protocol):
    """Durable state a connector keeps per installation (a Bitrix24 portal's member_id,
    application token and OAuth tokens), scoped to that connector; kept by the service's
    database so every web and worker process sees the same. Values are JSON objects."""

    def load(self, site: str) -> dict[str, Any] | None:
        """The installation's state, or None when `site` is not installed."""
        ...

    def change(self, site: str,
               edit: Callable[[dict[str, Any] | None], dict[str, Any] | None]
               ) -> dict[str, Any] | None:
        """Read, edit and write one installation's state atomically (no other process can
        change it in between): `edit` gets the current state (None: none yet) and returns the
        new one (None: remove it). Returns what was stored. Rotating OAuth refresh tokens go
        through here, so two workers refreshing at once cannot lose one."""
        ...

    def sites(self) -> list[str]:
        """Every installed site of this connector."""
        ...


@runtime_checkable
class KeepsInstallations(Protocol):
    """A connector that keeps per-installation state (Bitrix24: the portals that installed
    the app); the service hands it its store after building it."""

    def attach(self, installations: InstallationStore) -> None: ...


@dataclass(frozen=True)
class PageRequest:
    """A request to one of a connector's own pages (an install handler, an app frame): the
    form and query fields as sent, one value per name, and the raw body."""

    method: str
    query: Mapping[str, str]
    form: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(frozen=True)
class PageReply:
    status: int
    body: str
    content_type: str = "text/html; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


class Connector(Protocol):
    """The interface every platform package implements."""

    name: str
    # Pages the platform opens or calls besides webhooks, served at /apps/<name>/<page>
    # (e.g. a Bitrix24 local application's install handler); most connectors have none.
    pages: Mapping[str, Callable[[PageRequest], PageReply]]

    def parse_delivery(self, delivery: Delivery) -> Event | Ignored:
        """Verify and read one delivery; raises `connectors.errors.DeliveryRejected`."""
        ...

    def fetch_snapshot(self, ref: EngagementRef, known_sticky_id: str | None) -> Snapshot:
        """The engagement now, normalised; our own sticky comment is not among its comments."""
        ...

    def recently_updated(self, minutes: int) -> dict[EngagementRef, datetime | None]:
        """Engagements the platform changed in the last `minutes` (the review's catch-up
        for lost webhooks), each with the time of its last change as its snapshot's
        `Engagement.updated` shows it (the platform's clock), or None where the listing
        cannot tell (the change may not show there)."""
        ...

    def engagements_in_scope(self) -> set[EngagementRef] | None:
        """Every engagement open on the platform now, as the agency scoped engagements: the
        review closes, rather than re-evaluates, an open one of ours that is not among them.
        None where an evaluation tells anyway (`fetch_snapshot` raises `NotAnEngagement`),
        or where nothing narrows what an engagement is."""
        ...

    def audience(self, snapshot: Snapshot, language: Language) -> str:
        """Who may read the sticky comment as it would be written, in `language` (what
        `clientguard check` says it did, or would do)."""
        ...

    def delete_sticky(self, snapshot: Snapshot) -> None:
        """Remove the sticky comment (everything passes and the agency wants none)."""
        ...

    def delete_duplicates(self, snapshot: Snapshot) -> None:
        """Remove only the other copies (`snapshot.duplicates`); the comment stays as it is."""
        ...

    def write_sticky(self, snapshot: Snapshot, content: StickyContent) -> Written:
        """Create or update the one sticky comment, agency-internal by construction. There
        is no way to ask for a visible comment."""
        ...
