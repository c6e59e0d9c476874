"""docs/engagement-json.md cannot drift from the schema: every key of every object, every
mapped field and every enumerated value is documented, and its full example loads and means
what the text says it means."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import pytest
from marshmallow import Schema, fields

from plugin.config import build_config
from plugin.core.engine import evaluate
from plugin.core.fields import MAPPED_FIELDS
from plugin.core.model import DocumentKind, Side, StatusCategory, TimeKind, Visibility
from plugin.core.rule import Status
from plugin.core.schema import EngagementSchema, load_engagement

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "engagement-json.md"
DOC = DOC_PATH.read_text(encoding="utf-8")


def _keys(schema: Schema, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, JSON key) for every field of `schema` and of the schemas nested in it."""
    for name, field in schema.fields.items():
        key = field.data_key or name
        where = f"{path}{key}"
        yield where, key
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.Nested):
            yield from _keys(inner.schema, f"{where} → ")


SCHEMA_KEYS = sorted(set(_keys(EngagementSchema())))


def test_the_walk_reaches_every_nested_object() -> None:
    paths = {path for path, _ in SCHEMA_KEYS}
    assert {"comments → author → side", "roles → assignee → email", "changes → from",
            "fields → payment_method", "client → decision_makers → id"} <= paths


@pytest.mark.parametrize(("path", "key"), SCHEMA_KEYS, ids=[path for path, _ in SCHEMA_KEYS])
def test_every_schema_key_is_documented(path: str, key: str) -> None:
    assert f"`{key}`" in DOC, f"{path}: `{key}` is not in {DOC_PATH.name}"


@pytest.mark.parametrize("name", [field.name for field in MAPPED_FIELDS])
def test_every_mapped_field_has_a_row(name: str) -> None:
    assert f"| `{name}` |" in DOC


@pytest.mark.parametrize("enum", [Side, Visibility, StatusCategory, DocumentKind, TimeKind])
def test_every_enumerated_value_is_documented(enum: type[Enum]) -> None:
    for member in enum:
        assert f"`{member.value}`" in DOC, (enum.__name__, member.value)


def _example() -> dict:
    blocks = re.findall(r"```json\n(.*?)```", DOC, re.DOTALL)
    assert len(blocks) == 1, "the doc has one full JSON example"
    return json.loads(blocks[0])


def test_the_full_example_loads_and_uses_every_object() -> None:
    example = _example()
    engagement = load_engagement(example)
    assert engagement.key == "SHOE-42"
    for key in ("url", "project", "due", "labels", "client", "roles", "status_history",
                "documents", "comments", "time_entries", "invoices", "changes", "fields"):
        assert example[key], key


def test_the_full_example_means_what_the_doc_says() -> None:
    engagement = load_engagement(_example())
    report = evaluate(engagement, build_config({}), datetime(2026, 11, 20, 12, tzinfo=UTC))
    status = {result.rule.id: result.status
              for result in (*report.findings, *report.passed, *report.not_configured)}
    assert status["goals-defined"] is Status.FAIL  # input_data mapped but empty
    assert status["prepayment"] is Status.NOT_CONFIGURED  # prepayment_received not mapped
