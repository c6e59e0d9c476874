"""The engagement JSON format (docs/engagement-json.md), loaded and dumped with marshmallow.

Our own format, so unknown keys are rejected and every error names its path. Loading
returns `Engagement` dataclasses; nothing un-loaded reaches the rules.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from plugin.core.fields import MAPPED_FIELDS
from plugin.core.model import (
    Change,
    Client,
    Comment,
    Document,
    DocumentKind,
    Engagement,
    Invoice,
    Person,
    Roles,
    Side,
    StatusCategory,
    StatusChange,
    TimeEntry,
    TimeKind,
    Visibility,
)


class Table(fields.Dict):
    """A TOML table of named entries (`[clients.<key>]`, `fields = {…}`): a problem is said
    of the entry, `clients → acme → rules`, where marshmallow's Dict says it of its own
    `value` within (`clients → acme → value → rules`); a bad name keeps its `key` line."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ValidationError as error:
            if not isinstance(error.messages, dict):
                raise
            messages = {name: problem["value"] if isinstance(problem, dict)
                        and set(problem) == {"value"} else problem
                        for name, problem in error.messages.items()}
            raise ValidationError(messages, valid_data=error.valid_data) from None


class WholeNumber(fields.Integer):
    """An integer setting or value, which may come as text (an environment variable) but is
    never a fraction cut short: `2.9` is refused, where marshmallow's Integer takes 2."""

    def _validated(self, value: Any) -> int:
        if isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class Moment(fields.AwareDateTime):
    """An ISO-8601 date and time with an offset; a naive time is ambiguous across time zones,
    so it is rejected with a message that says how to fix it."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid_awareness": "Not a valid aware datetime: add a time-zone offset, "
        "e.g. 2026-11-20T12:00:00+01:00 or 2026-11-20T11:00:00Z.",
    }


class Strict(Schema):
    """Base of every schema people write by hand (the configuration, engagement JSON, the
    manifest): an unknown key is refused, with the nearest known key when one is close
    (`emial: Unknown field; did you mean email?`), since a misspelt key would otherwise
    fall back to its default without a word."""

    class Meta:
        unknown = RAISE

    also_known: ClassVar[tuple[str, ...]] = ()  # keys loaded beside this schema, not by it

    def handle_error(self, error: ValidationError, data: Any, *, many: bool,
                     **kwargs: Any) -> None:
        if many or not isinstance(error.messages, dict):
            return
        unknown = [self.error_messages["unknown"]]
        known = [*(field.data_key or name for name, field in self.load_fields.items()),
                 *self.also_known]
        for key, messages in error.messages.items():
            hint = did_you_mean(str(key), known) if messages == unknown else ""
            if hint:
                error.messages[key] = [unknown[0].rstrip(".") + hint]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`; did you mean <the nearest of known>?` for a misspelt `name`, or '' when none is
    near: said after every unknown key, rule id, client or project a person typed."""
    near = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {near[0]}?" if near else ""


class PersonSchema(Strict):
    id = fields.String(required=True)
    name = fields.String(required=True)
    side = fields.Enum(Side, by_value=True, required=True)
    email = fields.String(load_default=None)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Person:
        return Person(**data)


def _people(**kwargs: Any) -> fields.List:
    return fields.List(fields.Nested(PersonSchema), **kwargs)


def _as_tuples(data: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        if data.get(name) is not None:
            data[name] = tuple(data[name])
    return data


class ClientSchema(Strict):
    key = fields.String(required=True)
    name = fields.String(required=True)
    people = _people(load_default=())
    decision_makers = _people(load_default=None, allow_none=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Client:
        return Client(**_as_tuples(data, "people", "decision_makers"))


class RolesSchema(Strict):
    points_of_contact = _people(load_default=None, allow_none=True)
    project_managers = _people(load_default=None, allow_none=True)
    assignee = fields.Nested(PersonSchema, load_default=None, allow_none=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Roles:
        return Roles(**_as_tuples(data, "points_of_contact", "project_managers"))


class StatusChangeSchema(Strict):
    at = Moment(required=True)
    status = fields.String(required=True)
    category = fields.Enum(StatusCategory, by_value=True, required=True)
    by = fields.Nested(PersonSchema, load_default=None, allow_none=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> StatusChange:
        return StatusChange(**data)


class DocumentSchema(Strict):
    id = fields.String(required=True)
    kind = fields.Enum(DocumentKind, by_value=True, required=True)
    name = fields.String(required=True)
    added_at = Moment(required=True)
    author = fields.Nested(PersonSchema, load_default=None, allow_none=True)
    approved = fields.Boolean(load_default=None, allow_none=True)
    template_id = fields.String(load_default=None, allow_none=True)
    reviewed_by_legal = fields.Boolean(load_default=None, allow_none=True)
    line_items = WholeNumber(
        load_default=None, allow_none=True, validate=validate.Range(min=0)
    )

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Document:
        return Document(**data)


class CommentSchema(Strict):
    id = fields.String(required=True)
    author = fields.Nested(PersonSchema, required=True)
    visibility = fields.Enum(Visibility, by_value=True, required=True)
    at = Moment(required=True)
    text = fields.String(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Comment:
        return Comment(**data)


class TimeEntrySchema(Strict):
    person = fields.Nested(PersonSchema, required=True)
    hours = fields.Float(required=True, validate=validate.Range(min=0))
    kind = fields.Enum(TimeKind, by_value=True, required=True)
    at = Moment(required=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> TimeEntry:
        return TimeEntry(**data)


class InvoiceSchema(Strict):
    id = fields.String(required=True)
    amount = fields.Decimal(required=True, as_string=True, validate=validate.Range(min=0))
    issued = fields.Date(required=True)
    due = fields.Date(required=True)
    paid = fields.Boolean(required=True)
    paid_on = fields.Date(load_default=None, allow_none=True)
    currency = fields.String(load_default=None, allow_none=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Invoice:
        return Invoice(**data)


class ChangeSchema(Strict):
    field = fields.String(required=True)
    at = Moment(required=True)
    from_value = fields.String(data_key="from", load_default=None, allow_none=True)
    to_value = fields.String(data_key="to", load_default=None, allow_none=True)
    by = fields.Nested(PersonSchema, load_default=None, allow_none=True)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Change:
        return Change(**data)


MappedFieldsSchema = Strict.from_dict(
    {field.name: field.marshmallow_field() for field in MAPPED_FIELDS}, name="MappedFieldsSchema"
)


class EngagementSchema(Strict):
    connector = fields.String(required=True)
    key = fields.String(required=True, validate=validate.Length(min=1))
    url = fields.String(load_default=None, allow_none=True)
    project = fields.String(load_default=None, allow_none=True)
    title = fields.String(required=True)
    status = fields.String(required=True)
    status_category = fields.Enum(StatusCategory, by_value=True, required=True)
    created = Moment(required=True)
    updated = Moment(required=True)
    due = fields.Date(load_default=None, allow_none=True)
    labels = fields.List(fields.String(), load_default=())
    client = fields.Nested(ClientSchema, required=True)
    roles = fields.Nested(RolesSchema, load_default=Roles)
    status_history = fields.List(fields.Nested(StatusChangeSchema), load_default=())
    documents = fields.List(fields.Nested(DocumentSchema), load_default=())
    comments = fields.List(fields.Nested(CommentSchema), load_default=())
    time_entries = fields.List(fields.Nested(TimeEntrySchema), load_default=())
    invoices = fields.List(fields.Nested(InvoiceSchema), load_default=None, allow_none=True)
    changes = fields.List(fields.Nested(ChangeSchema), load_default=())
    fields_ = fields.Nested(MappedFieldsSchema, data_key="fields", attribute="fields",
                            load_default=dict)

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Engagement:
        data = _as_tuples(
            data, "labels", "status_history", "documents", "comments", "time_entries",
            "invoices", "changes",
        )
        return Engagement(**data)


ENGAGEMENT_SCHEMA = EngagementSchema()


class EngagementFormatError(ValueError):
    """The input is not a valid engagement; `str()` names every problem with its path."""


def error_lines(messages: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Flatten marshmallow's nested error dict into lines like `comments → 3 → at: ...`
    (marshmallow's `_schema`, an error of the whole object, is said of the object's path)."""
    if isinstance(messages, dict):
        lines: list[str] = []
        for key, value in messages.items():
            lines.extend(error_lines(value, path if key == "_schema" else (*path, str(key))))
        return lines
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        where = " → ".join(path) if path else "(top level)"
        return [f"{where}: {' '.join(messages)}"]
    if isinstance(messages, list):
        return [line for item in messages for line in error_lines(item, path)]
    return [f"{' → '.join(path)}: {messages}"]


def load_engagement(data: Any) -> Engagement:
    """Validate a decoded engagement JSON document and build the model."""
    if not isinstance(data, dict):
        raise EngagementFormatError("(top level): an engagement must be a JSON object")
    try:
        return ENGAGEMENT_SCHEMA.load(data)
    except ValidationError as error:
        raise EngagementFormatError("\n".join(error_lines(error.messages))) from None


def decode_json(text: str, error_type: Callable[[str], Exception]) -> Any:
    """`json.loads`, with every decoding problem raised as `error_type` with a message
    saying where, never a traceback: bad syntax, nesting past the recursion limit, and an
    integer over Python's 4,300 digits (a plain `ValueError`)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise error_type(
            f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    except RecursionError:
        raise error_type("not valid JSON: nested too deeply") from None
    except ValueError as error:
        raise error_type(f"not JSON we accept: {error}") from None


def loads_engagement(text: str) -> Engagement:
    """Decode engagement JSON text and build the model; every problem is an
    `EngagementFormatError`."""
    return load_engagement(decode_json(text, EngagementFormatError))


def dump_engagement(engagement: Engagement) -> dict[str, Any]:
    data = ENGAGEMENT_SCHEMA.dump(engagement)
    data["fields"] = MappedFieldsSchema().dump(dict(engagement.fields))
    return data
