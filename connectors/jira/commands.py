"""What the command line needs from Jira beyond the `Connector` interface: an issue key as
the engagement's ref, the open engagements a backfill scans, and how a planned sticky comment
reads — who may see it, and its text."""

from __future__ import annotations

from connectors.base import EngagementRef
from connectors.jira import JiraConnector
from connectors.jira.jql import narrowed
from connectors.jira.settings import JiraSettings

NOT_DONE = "statusCategory != Done"


def issue_ref(connector: JiraConnector, key: str) -> EngagementRef:
    """The ref of issue `key` (ACME-12) as the service keys it: by the issue's id, which a
    move to another project keeps. One `GET issue` with no fields; `NotFound` when there is
    no such issue (or the account may not see it)."""
    issue = connector.client.get_issue(key, fields=("id",), expand=())
    return EngagementRef(connector.name, connector.settings.site, str(issue["id"]))


def open_engagements_jql(settings: JiraSettings) -> str:
    """`[jira] engagement_jql` narrowed to issues that are not done; its ORDER BY, if any,
    stays last. Without `engagement_jql`: every issue not done."""
    return narrowed(settings.engagement_jql, NOT_DONE)


def find_engagements(connector: JiraConnector, jql: str) -> list[tuple[EngagementRef, str]]:
    """Every issue `jql` matches, as its ref and its key, every page read."""
    return [(EngagementRef(connector.name, connector.settings.site, str(issue["id"])),
             str(issue["key"])) for issue in connector.client.search(jql, fields=("id",))]
