"""manifest.json is valid and agrees with the code it describes."""

from __future__ import annotations

import tomllib
from pathlib import Path

from plugin.manifest import load_manifest
from plugin.rules import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent


def test_manifest_lists_exactly_the_catalogue_in_order() -> None:
    assert load_manifest()["rules"] == [rule.id for rule in CATALOGUE]


def test_manifest_version_is_the_package_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert load_manifest()["version"] == project["version"]


def test_bitrix24_binds_exactly_the_events_its_connector_handles() -> None:
    from connectors.bitrix24.events import SUPPORTED_EVENTS

    events = load_manifest()["platforms"]["bitrix24"]["events"]
    assert len(events) == len(set(events))
    assert set(events) == set(SUPPORTED_EVENTS)
