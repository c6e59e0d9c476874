"""Fixtures of the Bitrix24 tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses


@pytest.fixture
def portal() -> Iterator[responses.RequestsMock]:
    """The portal stood in for by `responses`: a stub the test does not use fails it."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock
