"""The Jira connector (Cloud and Data Center): webhook deliveries in, events out."""

from __future__ import annotations

from connectors.base import Delivery, Event, Ignored
from connectors.jira import events
from connectors.jira.settings import JiraSettings, JiraSettingsSchema


class JiraConnector:
    """One Jira installation behind the `connectors.base.Connector` interface."""

    name = "jira"
    settings_schema = JiraSettingsSchema

    def __init__(self, settings: JiraSettings) -> None:
        self.settings = settings

    def parse_delivery(self, delivery: Delivery) -> Event | Ignored:
        """Verify and read one webhook delivery (see `events.parse_delivery`)."""
        return events.parse_delivery(delivery, self.settings)
