"""The `[jira]` configuration section, loaded into a frozen `JiraSettings`.

Our own configuration, so unknown keys are rejected and every error names its key
(`JiraSettingsSchema().load(...)` raises marshmallow's `ValidationError` keyed by field).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from marshmallow import (
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from connectors.mapping import (
    default_patterns,
    document_patterns,
    field_mapping,
    frozen_patterns,
    site_name,
)
from plugin.core.schema import Strict

Flavour = Literal["cloud", "datacenter"]
FLAVOURS: tuple[Flavour, ...] = ("cloud", "datacenter")


@dataclass(frozen=True)
class JiraSettings:
    """One Jira installation as ClientGuard sees it.

    `site` names the installation in every `EngagementRef`; `webhook_secret`, when set, makes
    signed deliveries mandatory; `service_account` is who ClientGuard writes as (accountId on
    Cloud, username on Data Center), so its own writes are recognised. Credentials: `email`
    and `api_token` on Cloud, `personal_access_token` on Data Center (secrets: give them as
    CLIENTGUARD_JIRA__API_TOKEN / CLIENTGUARD_JIRA__PERSONAL_ACCESS_TOKEN).

    Who is who: agency people by e-mail domain, account id or group (`agency_groups`, their
    members read from Jira); client people by e-mail domain, and every Jira Service
    Management customer (`accountType: customer`). `fields` maps the
    meaning of a field (`account_manager`, `project_manager`, `decision_maker`, `client`, or
    any name in `plugin.core.fields.MAPPED_FIELDS`) to the instance's field id
    (`customfield_10042`). `internal_visibility` is the role or group that may read the
    sticky comment on projects that are not service desks; without it ClientGuard writes
    nothing there. Attachments are classified as estimate, contract or brief by
    `document_patterns` (regular expressions on the file name).
    """

    site: str
    base_url: str | None
    flavour: Flavour
    webhook_secret: str | None = field(repr=False)
    service_account: str | None
    email: str | None = None
    api_token: str | None = field(default=None, repr=False)
    personal_access_token: str | None = field(default=None, repr=False)
    agency_domains: tuple[str, ...] = ()
    client_domains: tuple[str, ...] = ()
    agency_accounts: tuple[str, ...] = ()
    agency_groups: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)
    internal_visibility: Mapping[str, str] | None = None
    engagement_jql: str = ""
    document_patterns: Mapping[str, tuple[str, ...]] = field(default_factory=default_patterns)


class _VisibilitySchema(Strict):
    error_messages = {  # noqa: RUF012 -- marshmallow's own class attribute
        "type": 'must be a table: {type = "role" or "group", value = "<its name>"}'}

    type = fields.String(required=True, validate=validate.OneOf(("role", "group")))
    value = fields.String(required=True, validate=validate.Length(min=1))


class JiraSettingsSchema(Strict):
    """Validates the `[jira]` table and returns `JiraSettings`."""

    site = site_name("jira", "acme-jira")
    base_url = fields.Url(
        schemes={"https", "http"}, require_tld=False, load_default=None,
        error_messages={"invalid": "must be an absolute https:// URL, e.g. "
                                   "https://acme.atlassian.net (Data Center: http:// too)"})
    flavour = fields.String(load_default="cloud", validate=validate.OneOf(FLAVOURS))
    webhook_secret = fields.String(load_default=None, validate=validate.Length(min=1))
    service_account = fields.String(load_default=None, validate=validate.Length(min=1))
    email = fields.Email(load_default=None)
    api_token = fields.String(load_default=None, validate=validate.Length(min=1))
    personal_access_token = fields.String(load_default=None, validate=validate.Length(min=1))
    agency_domains = fields.List(fields.String(), load_default=list)
    client_domains = fields.List(fields.String(), load_default=list)
    agency_accounts = fields.List(fields.String(), load_default=list)
    agency_groups = fields.List(fields.String(validate=validate.Length(min=1)),
                                load_default=list)
    fields_ = field_mapping("customfield_10042")
    internal_visibility = fields.Nested(_VisibilitySchema, load_default=None)
    engagement_jql = fields.String(load_default="")
    document_patterns = document_patterns()

    @validates_schema
    def _https_on_cloud(self, data: dict[str, Any], **_: Any) -> None:
        """Jira Cloud is served over https only; a Data Center site inside the agency's
        network may be on plain http (`http://jira.internal:8080`)."""
        base_url = data.get("base_url")
        if (base_url and data.get("flavour", "cloud") == "cloud"
                and urlsplit(base_url).scheme != "https"):
            raise ValidationError('must be https: Jira Cloud is served over https only '
                                  '(plain http is for flavour = "datacenter")', "base_url")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> JiraSettings:
        for name in ("agency_domains", "client_domains", "agency_accounts", "agency_groups"):
            data[name] = tuple(item.lower() if name.endswith("domains") else item
                               for item in data[name])
        data["document_patterns"] = frozen_patterns(data["document_patterns"])
        return JiraSettings(**data)
