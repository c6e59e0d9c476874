"""Register ClientGuard's webhook on a Jira site: the step behind `clientguard install jira`.

The registration is an *admin webhook* (Jira administration → System → WebHooks), the one
kind whose deliveries Jira signs with a secret (`X-Hub-Signature`), on Cloud and Data Center
alike. Its REST resource is `/rest/webhooks/1.0/webhook` (not `/rest/api/3/webhook`, which is
for Connect and OAuth apps only and cannot subscribe to worklog or attachment events). Only a
Jira administrator may use it; for anyone else `register_webhook` returns the exact settings
to enter by hand instead of failing.

The descriptor is generated from `manifest.json` (path, events, excludeBody), so the
registration and the plugin cannot disagree about what is subscribed.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from connectors.errors import AuthError, ConnectorNotConfigured, PlatformError
from connectors.jira import JiraConnector
from connectors.jira.settings import JiraSettings
from plugin.manifest import load_manifest

WEBHOOKS_PATH = "/rest/webhooks/1.0/webhook"
ADMIN_PAGE = "/plugins/servlet/webhooks"
"""Jira administration → System → WebHooks, on Cloud and Data Center."""
JQL_FILTER_KEY = "issue-related-events-section"
VERIFY_EVENT = "jira:issue_updated"
"""What editing any watched issue delivers: the event to look for after installing."""


class BadPublicUrl(ValueError):
    """The public URL of ClientGuard is not one Jira can deliver to."""


class Outcome(enum.StrEnum):
    REGISTERED = "registered"  # created now
    EXISTS = "exists"  # a webhook for this URL was there already; left unchanged
    NOT_PERMITTED = "not permitted"  # the account is no Jira administrator: enter it by hand
    CREDENTIALS_REFUSED = "credentials refused"  # 401: Jira did not accept who we said we are
    FAILED = "failed"  # Jira refused or could not be reached: enter it by hand


@dataclass(frozen=True)
class Registration:
    """What `register_webhook` did, and everything needed to finish or redo it by hand.

    `secret_is_new`: the secret is not `[jira] webhook_secret` yet (ClientGuard must be given
    it). `signed`: Jira confirmed the webhook has a secret (`isSigned`); None when Jira did
    not say. `problems`: why the admin must act (an existing webhook that differs, a secret
    Jira did not confirm). `admin_page`: where an administrator manages webhooks.
    `webhook`: Jira's link to the webhook, when it exists."""

    outcome: Outcome
    message: str
    descriptor: Mapping[str, Any]
    secret: str = field(repr=False)
    secret_is_new: bool
    admin_page: str
    webhook: str | None = None
    signed: bool | None = None
    problems: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        """The webhook exists as described and Jira confirmed its secret."""
        return (self.outcome in (Outcome.REGISTERED, Outcome.EXISTS)
                and self.signed is True and not self.problems)


def generate_secret() -> str:
    """A new webhook secret: 32 random bytes, URL-safe text."""
    return secrets.token_urlsafe(32)


def webhook_descriptor(settings: JiraSettings, public_url: str,
                       manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The admin webhook for `/rest/webhooks/1.0/webhook`, from `manifest.json`: the URL is
    `public_url` plus the manifest's webhook path, the events are the manifest's, the JQL
    filter is `engagement_jql` when set. Raises `BadPublicUrl`."""
    manifest = manifest or load_manifest()
    hook = manifest["platforms"]["jira"]["webhook"]
    return {
        "name": f"{manifest['name']} ({settings.site})",
        "url": _public_base(public_url, settings.flavour) + hook["path"],
        "events": list(hook["events"]),
        "filters": {JQL_FILTER_KEY: settings.engagement_jql} if settings.engagement_jql else {},
        "excludeBody": hook["exclude_body"],
    }


def _public_base(public_url: str, flavour: str) -> str:
    parts = urlsplit(public_url.strip())
    schemes = ("https",) if flavour == "cloud" else ("https", "http")
    if parts.scheme not in schemes or not parts.netloc:
        need = "an https://" if flavour == "cloud" else "an http:// or https://"
        raise BadPublicUrl(f"the public URL must be {need} URL with a host, got {public_url!r}"
                           + ("; Jira Cloud delivers only to https with a valid certificate"
                              if flavour == "cloud" else ""))
    if parts.query or parts.fragment:
        raise BadPublicUrl(f"the public URL must have no query or fragment, got {public_url!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def register_webhook(connector: JiraConnector, public_url: str, secret: str) -> Registration:
    """Register the webhook with `secret`, unless one for the same URL exists already.

    Lists the site's admin webhooks first: an existing one for our URL is left as it is and
    compared with the descriptor. Never raises for Jira's answers: 403 (signed in, but no
    administrator) gives `NOT_PERMITTED`, 401 (the credentials were refused) gives
    `CREDENTIALS_REFUSED`, anything else `FAILED`, each with the settings to enter by hand
    (`render_registration`). Raises `BadPublicUrl`."""
    settings = connector.settings
    descriptor = webhook_descriptor(settings, public_url)
    new = secret != settings.webhook_secret
    page = (f"{settings.base_url.rstrip('/')}{ADMIN_PAGE}" if settings.base_url
            else "Jira settings → System → WebHooks")
    try:
        client = connector.client
        existing = next((hook for hook in client.request("GET", WEBHOOKS_PATH) or ()
                         if hook.get("url") == descriptor["url"]), None)
        if existing is not None:
            problems = _differences(existing, descriptor)
            if new:
                problems += ("its secret is not the one below: edit it in Jira "
                             "administration and enter the new one",)
            return Registration(
                Outcome.EXISTS,
                "a webhook for this URL exists already; ClientGuard left it unchanged",
                descriptor, secret, new, page, webhook=existing.get("self"),
                signed=existing.get("isSigned"), problems=problems)
        created = client.request("POST", WEBHOOKS_PATH, json={**descriptor, "secret": secret})
    except AuthError as error:
        if error.status == 401:
            return Registration(Outcome.CREDENTIALS_REFUSED,
                                f"Jira did not accept the credentials of [jira] ({error}): "
                                f"{_credentials(settings)}", descriptor, secret, new, page)
        return Registration(Outcome.NOT_PERMITTED,
                            f"only a Jira administrator may register webhooks ({error})",
                            descriptor, secret, new, page)
    except (PlatformError, ConnectorNotConfigured) as error:
        return Registration(Outcome.FAILED, f"could not register the webhook: {error}",
                            descriptor, secret, new, page)
    created = created or {}
    signed = created.get("isSigned")
    problems = () if signed is True else (
        "Jira did not confirm the secret (its answer lacks isSigned: true): open the webhook "
        "in Jira administration and enter the secret",)
    return Registration(Outcome.REGISTERED, "webhook registered", descriptor, secret, new, page,
                        webhook=created.get("self"), signed=signed, problems=problems)


def _credentials(settings: JiraSettings) -> str:
    """What to check when Jira answers 401: the credentials the flavour signs in with."""
    if settings.flavour == "cloud":
        return ("check jira → email and jira → api_token (CLIENTGUARD_JIRA__API_TOKEN): a "
                "classic API token of that e-mail's account, not expired")
    return ("check jira → personal_access_token (CLIENTGUARD_JIRA__PERSONAL_ACCESS_TOKEN): "
            "a personal access token of the service account, not expired or revoked")


def _differences(existing: Mapping[str, Any], descriptor: Mapping[str, Any]) -> tuple[str, ...]:
    problems = []
    sent = set(existing.get("events") or ())
    missing = [event for event in descriptor["events"] if event not in sent]
    if missing:
        problems.append(f"it does not send {', '.join(missing)}")
    want = descriptor["filters"].get(JQL_FILTER_KEY, "")
    have = (existing.get("filters") or {}).get(JQL_FILTER_KEY) or ""
    if have.strip() != want.strip():
        problems.append(f"its JQL is {have!r}, ClientGuard's is {want!r}")
    if existing.get("excludeBody") and not descriptor["excludeBody"]:
        problems.append("it excludes the body, which ClientGuard reads")
    if existing.get("enabled") is False:
        problems.append("it is disabled")
    if existing.get("isSigned") is not True:
        problems.append("it has no secret")
    return tuple(problems)


# -- text ----------------------------------------------------------------------------

def manual_settings(registration: Registration) -> list[str]:
    """The webhook as an administrator enters it in Jira administration, line by line."""
    descriptor = registration.descriptor
    jql = descriptor["filters"].get(JQL_FILTER_KEY) or "(empty: all issues)"
    return [
        f"Open: {registration.admin_page} → Create a WebHook",
        f"Name: {descriptor['name']}",
        f"URL: {descriptor['url']}",
        f"Secret: {registration.secret}",
        f"JQL: {jql}",
        "Events: " + ", ".join(descriptor["events"]),
        f"Exclude body: {'yes' if descriptor['excludeBody'] else 'no'}",
    ]


def render_registration(registration: Registration) -> str:
    """What happened and what is left to do, as text: the settings to enter by hand unless
    the webhook is `done`, and where to put a new secret."""
    lines = [f"{registration.outcome.value}: {registration.message}"]
    if registration.webhook:
        lines.append(f"  webhook: {registration.webhook}")
    lines += [f"  ! {problem}" for problem in registration.problems]
    if registration.outcome is Outcome.REGISTERED and not registration.done:
        # It exists: creating another would deliver every event twice.
        lines += ["", "Open the webhook just registered and set its secret:",
                  f"  Open: {registration.admin_page} → {registration.descriptor['name']}",
                  f"  Secret: {registration.secret}"]
    elif not registration.done:
        lines += ["", "Fix it by hand in Jira administration to read:"
                  if registration.outcome is Outcome.EXISTS else "Enter it by hand:"]
        lines += [f"  {line}" for line in manual_settings(registration)]
    if registration.secret_is_new:
        lines += ["", "Give ClientGuard the same secret (and restart it):",
                  f"  CLIENTGUARD_JIRA__WEBHOOK_SECRET={registration.secret}"]
    lines += ["", "Verify: edit an issue the webhook covers (as a person, not as the service "
              "account, whose changes are ignored); then GET /metrics shows "
              f'clientguard_events_received_total{{connector="jira",event="{VERIFY_EVENT}"}}.']
    return "\n".join(lines) + "\n"

