"""A Jira connector built from a `[jira]` table as the service builds it, except that its
client's backoff waits take no time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.jira import JiraConnector
from connectors.jira.client import JiraClient
from connectors.jira.settings import JiraSettingsSchema


def connector_for(section: Mapping[str, Any]) -> JiraConnector:
    settings = JiraSettingsSchema().load(section)
    if settings.base_url is None:
        return JiraConnector(settings)
    auth: tuple[str, str] | str = (
        (settings.email, settings.api_token) if settings.flavour == "cloud"
        else settings.personal_access_token)
    return JiraConnector(settings, JiraClient(settings.base_url, auth, settings.flavour,
                                              sleep=lambda _: None))
