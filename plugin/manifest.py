"""`manifest.json`: the plugin's one self-description, loaded and validated.

Platform descriptors (the Jira webhook registration, the Bitrix24 `event.bind` and
`placement.bind` calls) are generated from it, so the plugin and its registrations cannot
disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from marshmallow import fields, validate

from plugin.core.schema import Strict

MANIFEST_PATH = Path(__file__).resolve().parent.parent / "manifest.json"


class _JiraWebhook(Strict):
    path = fields.String(required=True)
    events = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    exclude_body = fields.Boolean(required=True)


class _EntryPoint(Strict):
    kind = fields.String(required=True)
    name = fields.String(required=True)
    api = fields.String(required=True)


class _Jira(Strict):
    webhook = fields.Nested(_JiraWebhook, required=True)
    entry_points = fields.List(fields.Nested(_EntryPoint), required=True)
    permissions = fields.List(fields.String(), required=True)


class _Placement(Strict):
    code = fields.String(required=True)
    title = fields.String(required=True)
    path = fields.String(required=True)


class _Bitrix24(Strict):
    handler = fields.String(required=True)
    install = fields.String(required=True)
    events = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    placements = fields.List(fields.Nested(_Placement), required=True)
    scopes = fields.List(fields.String(), required=True)


class _Platforms(Strict):
    jira = fields.Nested(_Jira, required=True)
    bitrix24 = fields.Nested(_Bitrix24, required=True)


class _Vendor(Strict):
    name = fields.String(required=True)
    url = fields.String(required=True)


class ManifestSchema(Strict):
    key = fields.String(required=True)
    name = fields.String(required=True)
    version = fields.String(required=True)
    description = fields.String(required=True)
    vendor = fields.Nested(_Vendor, required=True)
    platforms = fields.Nested(_Platforms, required=True)
    rules = fields.List(fields.String(), required=True)


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, Any]:
    return ManifestSchema().load(json.loads(path.read_text(encoding="utf-8")))
