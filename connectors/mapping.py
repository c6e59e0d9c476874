"""Configuration every connector shares: which platform field means what (field mapping) and
how attached files are told apart (estimate, contract, brief) by their names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import fields, validate

from plugin.core.fields import MAPPED_FIELDS
from plugin.rules.text import valid_regex

ROLE_FIELDS = ("account_manager", "project_manager", "decision_maker", "client")
MAPPABLE = (*ROLE_FIELDS, *(mapped.name for mapped in MAPPED_FIELDS))

DOCUMENT_PATTERNS = {
    "estimate": [r"estimat", r"quote", r"смет", r"оценк", r"overslag", r"tilbud"],
    "contract": [r"contract", r"agreement", r"договор", r"контракт", r"kontrakt", r"aftale"],
    "brief": [r"brief", r"бриф", r"тз", r"техническое задание"],
}


def field_mapping(example: str) -> fields.Dict:
    """`fields = { account_manager = "<platform field id>", ... }`: keys from `MAPPABLE`."""
    return fields.Dict(keys=fields.String(validate=validate.OneOf(MAPPABLE)),
                       values=fields.String(validate=validate.Length(min=1)),
                       data_key="fields", attribute="fields", load_default=dict,
                       metadata={"example": example})


def document_patterns() -> fields.Dict:
    """`document_patterns = { estimate = [regex, ...], ... }`, each regex checked on load."""
    return fields.Dict(
        keys=fields.String(validate=validate.OneOf(tuple(DOCUMENT_PATTERNS))),
        values=fields.List(fields.String(validate=valid_regex)),
        load_default=lambda: {kind: list(p) for kind, p in DOCUMENT_PATTERNS.items()})


def frozen_patterns(loaded: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    return {kind: tuple(patterns) for kind, patterns in loaded.items()}


def default_patterns() -> dict[str, tuple[str, ...]]:
    return frozen_patterns(DOCUMENT_PATTERNS)
