"""The `[jira]` configuration section: defaults, validation naming the key, secret hygiene."""

from __future__ import annotations

from pathlib import Path

import pytest
from marshmallow import ValidationError

from connectors.jira.settings import JiraSettings, JiraSettingsSchema
from plugin.config import ConfigError, load_config


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


def test_a_data_center_site_may_be_on_plain_http() -> None:
    settings = JiraSettingsSchema().load({"base_url": "http://jira.internal:8080/jira",
                                          "flavour": "datacenter"})
    assert settings.base_url == "http://jira.internal:8080/jira"


@pytest.mark.parametrize("base_url", ["http://acme.atlassian.net", "http://jira.internal:8080"])
def test_a_cloud_site_on_plain_http_is_told_it_must_be_https(base_url: str) -> None:
    with pytest.raises(ValidationError) as raised:
        JiraSettingsSchema().load({"base_url": base_url})  # flavour: cloud by default
    assert raised.value.messages == {"base_url": [
        'must be https: Jira Cloud is served over https only (plain http is for '
        'flavour = "datacenter")']}


@pytest.mark.parametrize("flavour", ["cloud", "datacenter"])
@pytest.mark.parametrize("base_url", ["acme.atlassian.net", "ftp://jira.internal"])
def test_a_base_url_that_is_no_web_address_says_what_is_expected(base_url: str,
                                                                  flavour: str) -> None:
    with pytest.raises(ValidationError) as raised:
        JiraSettingsSchema().load({"base_url": base_url, "flavour": flavour})
    assert raised.value.messages == {"base_url": [
        "must be an absolute https:// URL, e.g. https://acme.atlassian.net "
        "(Data Center: http:// too)"]}


def test_the_configuration_error_names_the_key_and_https(tmp_path: Path) -> None:
    path = tmp_path / "clientguard.toml"
    path.write_text('[jira]\nbase_url = "http://acme.atlassian.net"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    assert "jira → base_url: must be https" in str(raised.value)
    assert "Not a valid URL" not in str(raised.value)


def test_internal_visibility_given_as_a_name_says_what_it_must_look_like(
        tmp_path: Path) -> None:
    path = tmp_path / "clientguard.toml"
    path.write_text('[jira]\ninternal_visibility = "Agency Staff"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    assert ('jira → internal_visibility: must be a table: {type = "role" or "group", '
            'value = "<its name>"}') in str(raised.value)


def test_secret_never_appears_in_repr() -> None:
    settings = JiraSettingsSchema().load({"webhook_secret": "witness-7f3a"})
    assert "witness-7f3a" not in repr(settings)


