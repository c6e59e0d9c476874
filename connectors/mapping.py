"""What every connector shares in mapping a platform onto the model: which platform field
means what (field mapping) and how its value is read (`CONVERTERS`), how attached files are
told apart (estimate, contract, brief) by their names, and a client's key from its name."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from marshmallow import fields, validate

from plugin.core.fields import FIELDS_BY_NAME, MAPPED_FIELDS
from plugin.core.model import DocumentKind
from plugin.core.schema import Table
from plugin.rules.text import valid_regex

ROLE_FIELDS = ("account_manager", "project_manager", "decision_maker", "client")
MAPPABLE = (*ROLE_FIELDS, *(mapped.name for mapped in MAPPED_FIELDS))

DOCUMENT_PATTERNS = {
    "estimate": [r"estimat", r"quote", r"смет", r"оценк", r"overslag", r"tilbud"],
    "contract": [r"contract", r"agreement", r"договор", r"контракт", r"kontrakt", r"aftale"],
    "brief": [r"brief", r"бриф", r"тз", r"техническое задание"],
}


def site_name(default: str, example: str) -> fields.String:
    """`site = "acme-jira"`: names one installation in stored state and engagement refs."""
    return fields.String(load_default=default, validate=validate.Regexp(
        r"^[a-z0-9][a-z0-9_-]{0,39}$",
        error=f"must be 1–40 lower-case letters, digits, '-' or '_' (e.g. {example})"))


def field_mapping(example: str) -> Table:
    """`fields = { account_manager = "<platform field id>", ... }`: keys from `MAPPABLE`."""
    return Table(keys=fields.String(validate=validate.OneOf(MAPPABLE)),
                 values=fields.String(validate=validate.Length(min=1)),
                 data_key="fields", attribute="fields", load_default=dict,
                 metadata={"example": example})


def document_patterns() -> Table:
    """`document_patterns = { estimate = [regex, ...], ... }`, each regex checked on load."""
    return Table(
        keys=fields.String(validate=validate.OneOf(tuple(DOCUMENT_PATTERNS))),
        values=fields.List(fields.String(validate=valid_regex)),
        load_default=lambda: {kind: list(p) for kind, p in DOCUMENT_PATTERNS.items()})


def frozen_patterns(loaded: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    return {kind: tuple(patterns) for kind, patterns in loaded.items()}


def default_patterns() -> dict[str, tuple[str, ...]]:
    return frozen_patterns(DOCUMENT_PATTERNS)


# -- classifying by name ----------------------------------------------------------------

def document_kind(name: str, patterns: Mapping[str, Iterable[str]]) -> DocumentKind:
    """The first kind (in the configured order) with a pattern found in `name`, ignoring
    case; else other. Shared so that the same `document_patterns` sort a Jira attachment and
    a Bitrix24 file the same way."""
    return next((DocumentKind(kind) for kind, kind_patterns in patterns.items()
                 if any(re.search(pattern, name, re.IGNORECASE) for pattern in kind_patterns)),
                DocumentKind.OTHER)


def client_key(name: str) -> str:
    """What `[clients.<key>]` matches: the name in lower case, every run of other
    characters a `-` ("Acme Shoes ApS" → `acme-shoes-aps`). One rule for every connector, so
    a client's settings follow it from one platform to another."""
    return re.sub(r"\W+", "-", name.casefold()).strip("-") or name


# -- ADF (Atlassian Document Format) ------------------------------------------------------
# Here rather than in the Jira connector because the `text` converter reads it (a Jira
# rich-text field arrives as ADF on Cloud), and the converters are every connector's.

_ADF_ATTR_TEXT = {"mention": "text", "emoji": "text", "status": "text",
                  "inlineCard": "url", "blockCard": "url", "embedCard": "url"}
_ADF_LINES = frozenset({"paragraph", "heading", "codeBlock", "tableHeader", "tableCell"})


def adf_text(document: Mapping[str, Any]) -> str:
    """The text of an ADF document: block nodes end lines, quotes start with `> `."""
    return re.sub(r"\n{3,}", "\n\n", _adf(document)).strip()


def _adf(node: Any) -> str:
    if not isinstance(node, dict):
        return ""
    kind, attrs = node.get("type"), node.get("attrs") or {}
    if kind == "text":
        return str(node.get("text") or "")
    if kind == "hardBreak":
        return "\n"
    if kind in _ADF_ATTR_TEXT:
        return str(attrs.get(_ADF_ATTR_TEXT[kind]) or attrs.get("shortName") or "")
    if kind == "date":  # attrs.timestamp: epoch milliseconds, as a string
        try:
            return datetime.fromtimestamp(int(attrs["timestamp"]) / 1000, UTC).date().isoformat()
        # none, or out of the years this machine's clock can show
        except (KeyError, TypeError, ValueError, OverflowError, OSError):
            return ""
    inner = "".join(_adf(child) for child in node.get("content") or ())
    if kind == "blockquote":
        return "".join(f"> {line}\n" for line in inner.strip("\n").split("\n"))
    return inner.rstrip("\n") + "\n" if kind in _ADF_LINES else inner


# -- mapped field values, by kind (plugin.core.fields) ----------------------------------

Converter = Callable[[Any], Any]

YES_WORDS = frozenset({"yes", "y", "true", "1", "on", "да", "ja"})
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def iso_day(value: Any) -> str | None:
    """The `YYYY-MM-DD` a date or date-time string starts with, as written (no time zone
    shift: the day the platform shows)."""
    match = ISO_DAY.match(value) if isinstance(value, str) else None
    return match.group() if match else None


def mapped_values(mapping: Mapping[str, str], read: Callable[[str], Any]) -> dict[str, Any]:
    """The model's `fields`: every mapped field that is a value (not a role) by its semantic
    name, `read` (the platform's raw value of a field id) converted by its kind. A mapped
    field left empty comes out `None`; an unmapped one is absent."""
    return {name: CONVERTERS[FIELDS_BY_NAME[name].kind](read(field_id))
            for name, field_id in mapping.items() if name in FIELDS_BY_NAME}


def as_text(value: Any) -> str | None:
    """A value as text: a string, an option's value, a user's name, ADF, a number, a list."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        if value.get("type") == "doc":
            return adf_text(value)
        return next((value[key] for key in ("value", "name", "displayName")
                     if isinstance(value.get(key), str)), None)
    if isinstance(value, list):
        return ", ".join(filter(None, map(as_text, value)))
    return str(value)


def as_flag(value: Any) -> bool | None:
    """Checkboxes: anything ticked; a select or text: yes/true (also да, ja); a boolean."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, list):
        return bool(value)
    return (as_text(value) or "").strip().casefold() in YES_WORDS


def as_number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float((as_text(value) or "").strip().replace(",", "."))
    except ValueError:
        return None


def as_time(value: Any) -> datetime | None:
    """A platform's ISO 8601 time (Bitrix24's `2024-08-30T14:29:00+02:00`, Jira's
    `2019-02-15T19:11:18.321-0800`) as an aware datetime, UTC when it names no offset; None
    when empty or not a time."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def as_date(value: Any) -> date | None:
    """A date picker's `2026-12-18`, or the day of a date-time field as written."""
    day = iso_day(as_text(value))
    try:
        return date.fromisoformat(day) if day else None
    except ValueError:  # text shaped like a date that is none (2027-02-29): as if empty
        return None


def as_list(value: Any) -> tuple[str, ...] | None:
    """Multi-select options, labels, or comma-separated text."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else (
        value if isinstance(value, list) else [value])
    return tuple(text.strip() for text in map(as_text, items) if text and text.strip())


CONVERTERS: dict[str, Converter] = {"text": as_text, "flag": as_flag, "number": as_number,
                                     "date": as_date, "list": as_list}
"""A mapped field's raw value → the model's value, by the field's kind. Platform-neutral: a
connector first makes its own oddities plain (Bitrix24 enumeration ids, money `100|EUR`)."""


def dig(node: Any, *path: str) -> Any:
    """The value at `path` through nested objects of a payload, or None where one is
    missing or not an object."""
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
