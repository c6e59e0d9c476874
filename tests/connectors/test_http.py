"""The platform session reads the environment once per host — and still honours it: an
agency behind a proxy, with hosts it must reach directly and its own CA bundle."""

from __future__ import annotations

from typing import Any

import pytest
import requests.sessions

from connectors.http import new_session

JIRA = "https://agency.atlassian.net/rest/api/3/issue/10001"
PORTAL = "https://agency.bitrix24.example/rest/crm.deal.get.json"


@pytest.fixture(autouse=True)
def agency_network(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy",
                 "no_proxy", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.agency.example:3128")
    monkeypatch.setenv("NO_PROXY", "agency.bitrix24.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/agency/ca.pem")


def settings(session: requests.Session, url: str, proxies: Any = None) -> dict[str, Any]:
    return session.merge_environment_settings(url, proxies or {}, None, None, None)


def test_proxies_no_proxy_and_the_ca_bundle_of_the_environment_apply() -> None:
    session = new_session()
    jira, portal = settings(session, JIRA), settings(session, PORTAL)

    assert jira["proxies"]["https"] == "http://proxy.agency.example:3128"
    assert "https" not in portal["proxies"]  # NO_PROXY: reached directly
    assert jira["verify"] == portal["verify"] == "/etc/agency/ca.pem"


def test_the_environment_is_read_once_per_host(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    read = requests.sessions.get_environ_proxies

    def counted(url: str, no_proxy: Any = None) -> dict[str, str]:
        reads.append(url)
        return read(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counted)
    session = new_session()
    for url in (JIRA, JIRA.replace("10001", "10002"), PORTAL, JIRA):
        settings(session, url)

    assert reads == [JIRA, PORTAL]


def test_a_call_with_its_own_proxy_uses_it() -> None:
    session = new_session()
    settings(session, JIRA)

    own = settings(session, JIRA, {"https": "http://other.example:8080"})
    assert own["proxies"]["https"] == "http://other.example:8080"
    assert settings(session, JIRA)["proxies"]["https"] == "http://proxy.agency.example:3128"
