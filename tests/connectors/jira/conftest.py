"""The Jira stand-in every connector test here talks to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from tests.connectors.jira.openapi import assert_calls_match_spec


@pytest.fixture
def jira() -> Iterator[responses.RequestsMock]:
    """Jira's answers, each of which the test must use; afterwards every request sent is
    checked against Atlassian's spec."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock
        assert_calls_match_spec(call.request for call in mock.calls)
