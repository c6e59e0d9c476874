"""The Jira connector (Cloud and Data Center): webhook deliveries in, snapshots of issues
out, one agency-internal sticky comment written back."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from connectors.base import (
    Delivery,
    EngagementRef,
    Event,
    Export,
    Ignored,
    PageReply,
    PageRequest,
    Snapshot,
    Written,
)
from connectors.errors import AuthError, ConnectorNotConfigured, NotFound
from connectors.http import CallObserver
from connectors.jira import events
from connectors.jira.client import JiraClient
from connectors.jira.comments import (
    delete_sticky,
    find_sticky,
    in_service_desk,
    is_service_desk,
    left_as_written,
    staff_only,
    user_ids,
    write_sticky,
)
from connectors.jira.export import loads_export
from connectors.jira.jql import narrowed, open_engagements_jql
from connectors.jira.settings import JiraSettings, JiraSettingsSchema
from connectors.jira.snapshot import build_engagement, fetch_issue_data
from connectors.mapping import as_time
from plugin.core.comment import StickyContent
from plugin.core.i18n import Language, Text
from plugin.core.model import StatusCategory

log = logging.getLogger(__name__)

AUDIENCE = {  # who may read the sticky comment (`JiraConnector.audience`)
    "service_desk": Text(en="as a JSM internal note", ru="как внутренняя заметка JSM",
                         da="som intern JSM-note"),
    "restricted": Text(en="restricted to {kind} {name}", ru="видно только {kind} {name}",
                       da="kun synlig for {kind} {name}"),
    "role": Text(en="role", ru="роли", da="rollen"),
    "group": Text(en="group", ru="группе", da="gruppen"),
}

GROUP_MEMBERS_SECONDS = 900.0  # how long the members of `agency_groups` are taken as read
ISSUE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*-[0-9]+|[0-9]+")  # ACME-12, or the issue id


class JiraConnector:
    """One Jira installation behind the `connectors.base.Connector` interface."""

    name = "jira"
    settings_schema = JiraSettingsSchema
    pages: Mapping[str, Callable[[PageRequest], PageReply]] = MappingProxyType({})

    def __init__(self, settings: JiraSettings, client: JiraClient | None = None, *,
                 observer: CallObserver | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._client = client
        self._observer = observer  # told of every call the client it builds makes
        # status id -> category (None: deleted), per site; see `fetch_issue_data`
        self._statuses: dict[str, StatusCategory | None] = {}
        self._clock = clock
        self._group_members: tuple[float, tuple[str, ...]] | None = None  # (read at, ids)

    @property
    def client(self) -> JiraClient:
        if self._client is None:
            self._client = _client_for(self.settings, self._observer)
        return self._client

    def parse_delivery(self, delivery: Delivery) -> Event | Ignored:
        """Verify and read one webhook delivery (see `events.parse_delivery`)."""
        return events.parse_delivery(delivery, self.settings)

    def fetch_snapshot(self, ref: EngagementRef, known_sticky_id: str | None) -> Snapshot:
        """The issue with every comment, worklog and change, in as few calls as Jira allows;
        our sticky comment is found among the comments and left out of the engagement."""
        data = fetch_issue_data(self.client, self.settings, ref, self._statuses)
        found = find_sticky(data.comments, known_sticky_id,
                            author=self.settings.service_account)
        # The sticky found by its stored id is ours even when another account wrote it (a
        # `service_account` naming the wrong one): never a comment the rules read.
        sticky_id = str(found.comment["id"]) if found.comment else None
        comments = [comment for comment in data.comments
                    if str(comment.get("id")) != sticky_id]
        engagement = build_engagement(ref, data.issue, comments, data.worklogs,
                                      data.changelog, self._statuses, self._who_is_who())
        as_written = found.comment is None or left_as_written(
            found.comment, service_desk=in_service_desk(data.issue.get("fields") or {}))
        return Snapshot(ref, engagement, sticky_id,
                        context=(data.issue, sticky_id or known_sticky_id),
                        sticky_as_written=as_written,
                        duplicates=tuple(str(comment["id"]) for comment in found.stale))

    def _who_is_who(self) -> JiraSettings:
        """The settings with every member of `agency_groups` among `agency_accounts`: the
        members are read from Jira once per `GROUP_MEMBERS_SECONDS`, not per snapshot."""
        if not self.settings.agency_groups:
            return self.settings
        now = self._clock()
        if self._group_members is None or now - self._group_members[0] > GROUP_MEMBERS_SECONDS:
            self._group_members = (now, tuple(dict.fromkeys(
                person_id for group in self.settings.agency_groups
                for user in self._group_members_of(group) for person_id in user_ids(user))))
        return replace(self.settings, agency_accounts=(
            *self.settings.agency_accounts, *self._group_members[1]))

    def _group_members_of(self, group: str) -> list[dict[str, Any]]:
        """The group's members; none, with a warning, when Jira will not list them (no such
        group, or no permission to browse groups): a setting to fix, which must neither hold
        every evaluation back nor pass for a deleted ticket (a 404). Its members then count
        by their e-mail domain; `clientguard doctor jira` says what is wrong."""
        try:
            return list(self.client.iter_group_members(group))
        except (NotFound, AuthError) as error:
            log.warning("jira %s: cannot read the members of agency group %r (%s); they "
                        "count by e-mail domain until it can be read", self.settings.site,
                        group, error)
            return []

    def recently_updated(self, minutes: int) -> dict[EngagementRef, datetime | None]:
        """Engagements changed in the last `minutes` (JQL `updated >= -Nm` within
        `engagement_jql`), with their `updated`: what the review re-evaluates in case a
        webhook was lost, unless the last evaluation already saw that change."""
        jql = narrowed(self.settings.engagement_jql, f"updated >= -{minutes}m")
        found: dict[EngagementRef, datetime | None] = {}
        for issue in self.client.search(jql, fields=("updated",)):
            updated = (issue.get("fields") or {}).get("updated")
            found[EngagementRef(self.name, self.settings.site, str(issue["id"]))] = as_time(
                updated)
        return found

    def engagements_in_scope(self) -> set[EngagementRef] | None:
        """The issues `engagement_jql` matches that are not done (`open_engagements`). The
        webhook's filter keeps other issues' events away, but without this an issue moved
        out of scope (to another project, a label removed) would still be re-evaluated and
        commented on every hour. None without `engagement_jql`: every issue is one."""
        if not self.settings.engagement_jql:
            return None
        return {ref for ref, _key in self.open_engagements(None)}

    def audience(self, snapshot: Snapshot, language: Language) -> str:
        """Who may read the sticky comment, decided as `write_sticky` decides it: "as a JSM
        internal note", or "restricted to role Developers". Raises `StickyRefused` where
        writing would."""
        issue = snapshot.context[0]
        if is_service_desk(issue):
            return AUDIENCE["service_desk"].render(language)
        visibility = staff_only(self.settings, issue["key"])
        return AUDIENCE["restricted"].render(
            language, kind=AUDIENCE[visibility["type"]].render(language),
            name=visibility["value"])

    # -- the command line (connectors.base.CommandLine) ----------------------------------

    label = "Jira"
    key_example = "ACME-12"

    def ready(self) -> None:
        self.client  # noqa: B018 -- building it names the missing setting

    def ref_for(self, key: str) -> EngagementRef:
        """Issue `key` (ACME-12, or its id) as the service keys it: by the issue's id, which
        a move to another project keeps. One `GET issue` with no fields; `NotFound` when
        there is no such issue (or the account may not see it)."""
        if not ISSUE_KEY.fullmatch(key):
            raise ValueError(f"{key!r} is not a Jira issue key (e.g. ACME-12)")
        issue = self.client.get_issue(key.upper(), fields=("id",), expand=())
        return EngagementRef(self.name, self.settings.site, str(issue["id"]))

    def open_engagements(self, query: str | None) -> list[tuple[EngagementRef, str]]:
        """Every issue the JQL `query` matches — by default `engagement_jql` narrowed to
        issues not done — as its ref and its key, every page read. The key is asked for:
        Cloud's search answers with ids only unless told otherwise."""
        jql = query or open_engagements_jql(self.settings)
        return [(EngagementRef(self.name, self.settings.site, str(issue["id"])),
                 str(issue["key"])) for issue in self.client.search(jql, fields=("key",))]

    def load_export(self, text: str) -> Export:
        """A saved issue (`GET issue?expand=changelog`), see `connectors.jira.export`."""
        return loads_export(text, self.settings)

    def delete_sticky(self, snapshot: Snapshot) -> None:
        """Remove the sticky comment and any duplicate (a comment already gone is fine)."""
        issue, existing = snapshot.context
        if existing is not None:
            delete_sticky(self.client, issue["key"], existing)
        self.delete_duplicates(snapshot)

    def delete_duplicates(self, snapshot: Snapshot) -> None:
        for comment_id in snapshot.duplicates:
            delete_sticky(self.client, snapshot.context[0]["key"], comment_id)

    def write_sticky(self, snapshot: Snapshot, content: StickyContent) -> Written:
        """Create or update the sticky comment (internal by construction), and remove
        duplicates a past crash left behind."""
        issue, existing = snapshot.context
        # Not seen among the comments but known: update it by id (a comment a person
        # deleted answers 404 and is written anew), never add a second one.
        written = write_sticky(self.client, self.settings, issue, content, existing)
        self.delete_duplicates(snapshot)
        return written


def _client_for(settings: JiraSettings, observer: CallObserver | None) -> JiraClient:
    if settings.base_url is None:
        raise ConnectorNotConfigured("jira → base_url is needed to talk to Jira")
    if settings.flavour == "cloud":
        if not (settings.email and settings.api_token):
            raise ConnectorNotConfigured(
                "jira → email and api_token are needed for Jira Cloud "
                "(CLIENTGUARD_JIRA__API_TOKEN)")
        return JiraClient(settings.base_url, (settings.email, settings.api_token), "cloud",
                          observer=observer)
    if not settings.personal_access_token:
        raise ConnectorNotConfigured(
            "jira → personal_access_token is needed for Jira Data Center "
            "(CLIENTGUARD_JIRA__PERSONAL_ACCESS_TOKEN)")
    return JiraClient(settings.base_url, settings.personal_access_token, "datacenter",
                      observer=observer)
