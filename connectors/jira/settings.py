"""The `[jira]` configuration section, loaded into a frozen `JiraSettings`.

Our own configuration, so unknown keys are rejected and every error names its key
(`JiraSettingsSchema().load(...)` raises marshmallow's `ValidationError` keyed by field).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from marshmallow import RAISE, Schema, fields, post_load, validate

Flavour = Literal["cloud", "datacenter"]
FLAVOURS: tuple[Flavour, ...] = ("cloud", "datacenter")


@dataclass(frozen=True)
class JiraSettings:
    """One Jira installation as ClientGuard sees it.

    `site` names the installation in every `EngagementRef`; `webhook_secret`, when set, makes
    signed deliveries mandatory; `service_account` is who ClientGuard writes as (accountId on
    Cloud, username on Data Center), so its own writes are recognised. The REST client's
    credentials (email and API token on Cloud, personal access token on Data Center) join
    this section when the client is added.
    """

    site: str
    base_url: str | None
    flavour: Flavour
    webhook_secret: str | None = field(repr=False)
    service_account: str | None


class JiraSettingsSchema(Schema):
    """Validates the `[jira]` table and returns `JiraSettings`."""

    class Meta:
        unknown = RAISE

    site = fields.String(
        load_default="jira",
        validate=validate.Regexp(
            r"^[a-z0-9][a-z0-9_-]{0,39}$",
            error="must be 1–40 lower-case letters, digits, '-' or '_' (e.g. acme-jira)",
        ),
    )
    base_url = fields.Url(schemes={"https"}, require_tld=False, load_default=None)
    flavour = fields.String(load_default="cloud", validate=validate.OneOf(FLAVOURS))
    webhook_secret = fields.String(load_default=None, validate=validate.Length(min=1))
    service_account = fields.String(load_default=None, validate=validate.Length(min=1))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> JiraSettings:
        return JiraSettings(**data)
