"""Platform connectors: one package per platform behind the interface in `connectors.base`.

Everything platform-specific (payload quirks, REST calls, markup, visibility) stays inside
its package. A new platform = one package + one line in `REGISTRY`; its configuration
section is `[<name>]`, validated by its `settings_schema`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Connector
from connectors.jira import JiraConnector

REGISTRY: dict[str, Any] = {
    JiraConnector.name: JiraConnector,
}


def build_connectors(settings: Mapping[str, Any]) -> dict[str, Connector]:
    """A connector for every platform that has a configuration section."""
    return {name: REGISTRY[name](section) for name, section in settings.items()}
