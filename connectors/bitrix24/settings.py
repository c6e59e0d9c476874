"""The `[bitrix24]` configuration section, loaded into a frozen `Bitrix24Settings`.

Two ways to connect (docs/bitrix24.md):
- a *local application* (recommended): `client_id` + `client_secret` issued by the portal and
  the service's `public_url`; each portal that installs the app is stored by the service
  (member_id, application token, OAuth tokens) and is its own site;
- a quick start with webhooks: `webhook_url` (an incoming webhook, for REST) plus
  `outgoing_token` (the application token of an outgoing webhook, for events); one portal,
  named `site`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

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
from plugin.core.schema import Strict, WholeNumber

Mode = Literal["app", "webhook"]
DEFAULT_RATE = 2.0  # requests per second a portal drains (Enterprise: 5)
DEFAULT_BURST = 50  # requests a portal lets through at once (Enterprise: 250)


@dataclass(frozen=True)
class Bitrix24Settings:
    """One Bitrix24 connection as ClientGuard sees it.

    `site` names the portal in every `EngagementRef` in webhook mode; in app mode each
    installed portal is named by its `member_id`. `bot_user_id` is the Bitrix24 user
    ClientGuard writes as (the webhook's or the installing admin's user id), so its own
    timeline comments are recognised when they echo back as events.

    `fields` maps a meaning (`account_manager`, `project_manager`, `decision_maker`,
    `client`, or any name in `plugin.core.fields.MAPPED_FIELDS`) to a deal field
    (`UF_CRM_1712345678`); the account manager defaults to the deal's responsible person
    (`ASSIGNED_BY_ID`), the client to its company. `deal_categories` limits which pipelines
    hold engagements (empty: all). `rate_per_second` and `burst` are the portal's REST limit,
    which every worker shares. `pin_sticky` pins the sticky comment to the top of the
    timeline; `notify_responsible` also sends the deal's responsible person a personal
    notification, once per change."""

    site: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    public_url: str | None = None
    webhook_url: str | None = field(default=None, repr=False)  # holds the webhook's secret
    outgoing_token: str | None = field(default=None, repr=False)
    member_id: str | None = None
    bot_user_id: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    deal_categories: tuple[str, ...] = ()
    rate_per_second: float = DEFAULT_RATE
    burst: int = DEFAULT_BURST
    pin_sticky: bool = False
    notify_responsible: bool = False
    document_patterns: Mapping[str, tuple[str, ...]] = field(default_factory=default_patterns)

    @property
    def mode(self) -> Mode:
        """How the portal is connected: a local application, or webhooks."""
        return "app" if self.client_id else "webhook"


class Bitrix24SettingsSchema(Strict):
    """Validates the `[bitrix24]` table and returns `Bitrix24Settings`."""

    site = site_name("bitrix24", "acme-b24")
    client_id = fields.String(load_default=None, validate=validate.Length(min=1))
    client_secret = fields.String(load_default=None, validate=validate.Length(min=1))
    public_url = fields.Url(schemes={"https"}, require_tld=False, load_default=None)
    webhook_url = fields.Url(schemes={"https"}, require_tld=False, load_default=None)
    outgoing_token = fields.String(load_default=None, validate=validate.Length(min=1))
    member_id = fields.String(load_default=None, validate=validate.Length(min=1))
    bot_user_id = fields.String(load_default=None, validate=validate.Regexp(
        r"^[0-9]+$", error="must be a Bitrix24 user id (digits)"))
    fields_ = field_mapping("UF_CRM_1712345678")
    deal_categories = fields.List(fields.String(validate=validate.Regexp(
        r"^[0-9]+$", error="must be a pipeline (category) id, e.g. 0")), load_default=list)
    rate_per_second = fields.Float(load_default=DEFAULT_RATE,
                                   validate=validate.Range(min=0.1, max=100))
    burst = WholeNumber(load_default=DEFAULT_BURST, validate=validate.Range(min=1, max=1000))
    pin_sticky = fields.Boolean(load_default=False)
    notify_responsible = fields.Boolean(load_default=False)
    document_patterns = document_patterns()

    @validates_schema
    def _one_way_to_connect(self, data: dict[str, Any], **_: Any) -> None:
        app = data.get("client_id") or data.get("client_secret")
        webhook = data.get("webhook_url") or data.get("outgoing_token")
        if app and webhook:
            raise ValidationError("give either client_id/client_secret (local application) "
                                  "or webhook_url/outgoing_token (webhooks), not both",
                                  "client_id")
        if app:
            for key in ("client_id", "client_secret", "public_url"):
                if not data.get(key):
                    raise ValidationError("required for a local application "
                                          "(client_id, client_secret, public_url)", key)
        if data.get("webhook_url") and not data["webhook_url"].rstrip("/").count("/") >= 5:
            raise ValidationError("must be the incoming webhook's REST URL, "
                                  "https://<portal>/rest/<user id>/<code>/", "webhook_url")

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Bitrix24Settings:
        if data["webhook_url"]:
            data["webhook_url"] = data["webhook_url"].rstrip("/") + "/"
            if data["bot_user_id"] is None:  # …/rest/<user id>/<code>/: we write as that user
                data["bot_user_id"] = data["webhook_url"].rstrip("/").split("/")[-2]
        data["deal_categories"] = tuple(data["deal_categories"])
        data["document_patterns"] = frozen_patterns(data["document_patterns"])
        return Bitrix24Settings(**data)
