"""Platform connectors: one package per platform behind the interface in `connectors.base`.

Everything platform-specific (payload quirks, REST calls, markup, visibility) stays inside
its package. A new platform = one package + one line in `REGISTRY`; its configuration
section is `[<name>]`, validated by its `settings_schema`. A connector class is built as
`cls(settings, observer=...)`: its REST clients tell the observer about every platform call
(`connectors.http.CallObserver`; the service's metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from connectors.base import Connector, InstallationStore, KeepsInstallations
from connectors.bitrix24 import Bitrix24Connector
from connectors.http import CallObserver
from connectors.jira import JiraConnector

REGISTRY: dict[str, Any] = {
    JiraConnector.name: JiraConnector,
    Bitrix24Connector.name: Bitrix24Connector,
}
PLATFORMS = tuple(sorted(REGISTRY))  # as people see them listed


def build_connectors(settings: Mapping[str, Any],
                     installations: Callable[[str], InstallationStore] | None = None,
                     observer: CallObserver | None = None) -> dict[str, Connector]:
    """A connector for every platform that has a configuration section; those that keep
    per-installation state get their store from `installations(name)` (the service's
    database; offline commands pass none). `observer` hears of every platform call their
    clients make (the service's metrics; commands pass none)."""
    built = {name: REGISTRY[name](section, observer=observer)
             for name, section in settings.items()}
    for name, connector in built.items():
        if installations is not None and isinstance(connector, KeepsInstallations):
            connector.attach(installations(name))
    return built
