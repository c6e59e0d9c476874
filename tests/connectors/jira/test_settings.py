"""The `[jira]` configuration section: defaults, validation naming the key, secret hygiene."""

from __future__ import annotations

import dataclasses

import pytest
from marshmallow import ValidationError

from connectors.jira.settings import JiraSettings, JiraSettingsSchema


def test_defaults() -> None:
    assert JiraSettingsSchema().load({}) == JiraSettings(
        site="jira", base_url=None, flavour="cloud", webhook_secret=None,
        service_account=None,
    )


def test_full_section_for_a_data_center_site() -> None:
    assert JiraSettingsSchema().load({
        "site": "acme-dc",
        "base_url": "https://jira.acme.internal",
        "flavour": "datacenter",
        "webhook_secret": "hook-secret",
        "service_account": "clientguard",
    }) == JiraSettings(
        site="acme-dc", base_url="https://jira.acme.internal", flavour="datacenter",
        webhook_secret="hook-secret", service_account="clientguard",
    )


@pytest.mark.parametrize(("section", "key"), [
    ({"webhook_secert": "typo"}, "webhook_secert"),
    ({"base_url": "http://acme.atlassian.net"}, "base_url"),
    ({"flavour": "server"}, "flavour"),
    ({"site": "Acme Jira"}, "site"),
    ({"webhook_secret": ""}, "webhook_secret"),
    ({"service_account": ""}, "service_account"),
])
def test_errors_name_the_key(section: dict[str, object], key: str) -> None:
    with pytest.raises(ValidationError) as raised:
        JiraSettingsSchema().load(section)
    assert list(raised.value.messages) == [key]


def test_secret_never_appears_in_repr() -> None:
    settings = JiraSettingsSchema().load({"webhook_secret": "witness-7f3a"})
    assert "witness-7f3a" not in repr(settings)


def test_settings_are_frozen() -> None:
    settings = JiraSettingsSchema().load({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.site = "other"  # type: ignore[misc]
