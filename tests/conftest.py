"""Shared fixtures: the default configuration, and a fixed `now`."""

from __future__ import annotations

import pytest

from plugin.config import Config, build_config
from tests.builders import NOW


@pytest.fixture
def config() -> Config:
    return build_config({})


@pytest.fixture
def now():
    return NOW
