"""Registering ClientGuard's admin webhook: the descriptor derived from manifest.json, the
registration, and the settings to enter by hand when the account may not register.

Every test runs inside `jira`, a `responses.RequestsMock` that fails on an unused stub; at the
end every request sent to a Cloud platform path is checked against Atlassian's OpenAPI spec
(`tests/connectors/jira/openapi.py`). `GET|POST /rest/webhooks/1.0/webhook` (admin webhooks)
is outside that spec, listed with its reason in `NOT_IN_CLOUD_PLATFORM_SPEC`; its request
bodies are checked by the `responses` matchers here. Answer shapes follow Atlassian's
webhooks page (`self`, `isSigned`) and the Data Center webhook REST examples.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from responses import matchers

from connectors.jira import JiraConnector
from connectors.jira.install import (
    ADMIN_PAGE,
    VERIFY_EVENT,
    WEBHOOKS_PATH,
    BadPublicUrl,
    Outcome,
    generate_secret,
    manual_settings,
    register_webhook,
    render_registration,
    webhook_descriptor,
)
from plugin.manifest import load_manifest
from tests.connectors.jira.sites import connector_for

SITE = "https://acme.atlassian.net"
DC_SITE = "https://jira.acme.example/jira"
PUBLIC = "https://clientguard.example.com"
HOOK_URL = f"{PUBLIC}/hooks/jira"
SECRET = "witness-secret-Qm9vZ2xl"
JQL = "project in (ACME, SHOE) AND issuetype = Engagement"
SECTION = {"base_url": SITE, "email": "guard-bot@agency.example", "api_token": "witness-token",
           "engagement_jql": JQL}


def connector(**section: Any) -> JiraConnector:
    return connector_for({**SECTION, **section})


def created(body: dict[str, Any], site: str = SITE, signed: bool | None = True
            ) -> dict[str, Any]:
    """Jira's answer to the registration: the webhook, with its link and `isSigned`."""
    answer = {**{k: v for k, v in body.items() if k != "secret"},
              "self": f"{site}{WEBHOOKS_PATH}/10042", "enabled": True,
              "lastUpdatedUser": "guard-admin", "lastUpdatedDisplayName": "Guard Admin",
              "lastUpdated": 1764000000000}
    if signed is not None:
        answer["isSigned"] = signed
    return answer


# -- the descriptor ---------------------------------------------------------------------

def test_the_descriptor_is_derived_from_the_manifest():
    manifest = load_manifest()
    hook = manifest["platforms"]["jira"]["webhook"]
    descriptor = webhook_descriptor(connector().settings, PUBLIC + "/")
    assert descriptor == {
        "name": "ClientGuard (jira)",
        "url": PUBLIC + hook["path"],
        "events": hook["events"],
        "filters": {"issue-related-events-section": JQL},
        "excludeBody": hook["exclude_body"],
    }
    assert descriptor["url"] == HOOK_URL
    assert descriptor["excludeBody"] is False
    assert VERIFY_EVENT in descriptor["events"]


def test_the_descriptor_follows_a_changed_manifest():
    manifest = load_manifest()
    manifest["platforms"]["jira"]["webhook"] = {"path": "/in/jira", "events": ["comment_created"],
                                                "exclude_body": True}
    descriptor = webhook_descriptor(connector().settings, PUBLIC + "/guard", manifest)
    assert descriptor["url"] == f"{PUBLIC}/guard/in/jira"
    assert descriptor["events"] == ["comment_created"]
    assert descriptor["excludeBody"] is True


def test_without_engagement_jql_there_is_no_filter():
    assert webhook_descriptor(connector(engagement_jql="").settings, PUBLIC)["filters"] == {}


@pytest.mark.parametrize(("flavour", "url", "why"), [
    ("cloud", "http://clientguard.example.com", "must be an https:// URL with a host"),
    ("cloud", "clientguard.example.com", "must be an https:// URL with a host"),
    ("cloud", "https://clientguard.example.com/?token=1", "must have no query or fragment"),
    ("datacenter", "ftp://clientguard.example.com",
     "must be an http:// or https:// URL with a host"),
])
def test_a_url_jira_cannot_deliver_to_is_refused(flavour, url, why):
    section = ({"flavour": flavour} if flavour == "cloud" else
               {"flavour": flavour, "email": None, "api_token": None,
                "personal_access_token": "witness-pat"})
    with pytest.raises(BadPublicUrl, match=why):
        webhook_descriptor(connector(**section).settings, url)


def test_data_center_may_deliver_over_plain_http_inside_the_network():
    settings = connector(flavour="datacenter", personal_access_token="witness-pat").settings
    assert webhook_descriptor(settings, "http://clientguard.internal:8080")["url"] == (
        "http://clientguard.internal:8080/hooks/jira")


def test_generated_secrets_are_long_random_and_url_safe():
    first, second = generate_secret(), generate_secret()
    assert first != second
    assert len(first) >= 43
    assert set(first) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


# -- registration -----------------------------------------------------------------------

def test_registration_posts_the_descriptor_with_the_secret(jira):
    guard = connector(webhook_secret=SECRET)
    body = {**webhook_descriptor(guard.settings, PUBLIC), "secret": SECRET}
    jira.get(SITE + WEBHOOKS_PATH, json=[{
        "name": "Slack", "url": "https://hooks.slack.example/T000/B000",
        "events": ["jira:issue_created"], "filters": {}, "excludeBody": False,
        "self": f"{SITE}{WEBHOOKS_PATH}/10001", "enabled": True, "isSigned": False}])
    jira.post(SITE + WEBHOOKS_PATH, status=201, json=created(body),
              match=[matchers.json_params_matcher(body, strict_match=True)])
    registration = register_webhook(guard, PUBLIC, SECRET)
    assert registration.outcome is Outcome.REGISTERED and registration.done
    assert registration.webhook == f"{SITE}{WEBHOOKS_PATH}/10042"
    assert registration.signed is True and registration.problems == ()
    assert not registration.secret_is_new
    assert SECRET not in repr(registration)
    text = render_registration(registration)
    assert text.startswith("registered: webhook registered\n")
    assert "by hand" not in text and SECRET not in text
    assert f'event="{VERIFY_EVENT}"' in text


def test_a_new_secret_is_printed_for_the_configuration(jira):
    guard = connector()
    secret = generate_secret()
    body = {**webhook_descriptor(guard.settings, PUBLIC), "secret": secret}
    jira.get(SITE + WEBHOOKS_PATH, json=[])
    jira.post(SITE + WEBHOOKS_PATH, status=201, json=created(body),
              match=[matchers.json_params_matcher(body)])
    registration = register_webhook(guard, PUBLIC, secret)
    assert registration.done and registration.secret_is_new
    assert f"CLIENTGUARD_JIRA__WEBHOOK_SECRET={secret}" in render_registration(registration)


def test_a_secret_jira_does_not_confirm_is_left_to_the_admin(jira):
    guard = connector(flavour="datacenter", base_url=DC_SITE, email=None, api_token=None,
                      personal_access_token="witness-pat")
    body = {**webhook_descriptor(guard.settings, PUBLIC), "secret": SECRET}
    jira.get(DC_SITE + WEBHOOKS_PATH, json=[])
    jira.post(DC_SITE + WEBHOOKS_PATH, status=201, json=created(body, DC_SITE, signed=None),
              match=[matchers.json_params_matcher(body)])
    registration = register_webhook(guard, PUBLIC, SECRET)
    assert registration.outcome is Outcome.REGISTERED and not registration.done
    assert registration.signed is None
    assert registration.problems[0].startswith("Jira did not confirm the secret")
    text = render_registration(registration)
    assert f"  Secret: {SECRET}" in text
    assert f"  Open: {DC_SITE}{ADMIN_PAGE} → ClientGuard" in text
    assert "Create a WebHook" not in text  # a second webhook would deliver every event twice


def test_non_admin_gets_the_settings_to_enter_by_hand(jira):
    guard = connector()
    secret = generate_secret()
    jira.get(SITE + WEBHOOKS_PATH, status=403, json={
        "errorMessages": ["You are not authorized to perform this operation. "
                          "Administrator privileges are required."], "errors": {}})
    registration = register_webhook(guard, PUBLIC, secret)
    assert registration.outcome is Outcome.NOT_PERMITTED and not registration.done
    assert "only a Jira administrator may register webhooks" in registration.message
    assert manual_settings(registration) == [
        f"Open: {SITE}{ADMIN_PAGE} → Create a WebHook",
        "Name: ClientGuard (jira)",
        f"URL: {HOOK_URL}",
        f"Secret: {secret}",
        f"JQL: {JQL}",
        "Events: " + ", ".join(load_manifest()["platforms"]["jira"]["webhook"]["events"]),
        "Exclude body: no",
    ]
    text = render_registration(registration)
    assert text.startswith("not permitted: only a Jira administrator")
    assert f"  Secret: {secret}" in text
    assert f"CLIENTGUARD_JIRA__WEBHOOK_SECRET={secret}" in text


def test_a_refused_post_also_gives_the_manual_settings(jira):
    guard = connector()
    jira.get(SITE + WEBHOOKS_PATH, json=[])
    jira.post(SITE + WEBHOOKS_PATH, status=403, json={
        "message": "Client must be authenticated as an administrator to access this resource.",
        "status-code": 403})
    registration = register_webhook(guard, PUBLIC, SECRET)
    assert registration.outcome is Outcome.NOT_PERMITTED
    assert "Enter it by hand:" in render_registration(registration)


# Jira's REST layer answers 401 "Client must be authenticated" when it does not know who is
# asking (wrong or expired token), and 403 "... as an administrator" when it does but that
# account is no administrator (atlassian-rest's AdminOnlyResourceFilter).
UNAUTHENTICATED = {"message": "Client must be authenticated to access this resource.",
                   "status-code": 401}


def test_refused_cloud_credentials_are_not_taken_for_missing_admin_rights(jira):
    jira.get(SITE + WEBHOOKS_PATH, status=401, json=UNAUTHENTICATED)
    registration = register_webhook(connector(), PUBLIC, SECRET)
    assert registration.outcome is Outcome.CREDENTIALS_REFUSED and not registration.done
    text = render_registration(registration)
    assert text.startswith("credentials refused: Jira did not accept the credentials of "
                           "[jira] (Jira answered 401 to GET /rest/webhooks/1.0/webhook: "
                           "Client must be authenticated to access this resource.): "
                           "check jira → email and jira → api_token")
    assert "administrator" not in registration.message
    assert "Enter it by hand:" in text and f"  URL: {HOOK_URL}" in text


def test_a_refused_data_center_token_names_the_personal_access_token(jira):
    guard = connector(base_url=DC_SITE, flavour="datacenter", email=None, api_token=None,
                      personal_access_token="witness-pat")
    jira.get(DC_SITE + WEBHOOKS_PATH, status=401, body="")
    registration = register_webhook(guard, PUBLIC, SECRET)
    assert registration.outcome is Outcome.CREDENTIALS_REFUSED
    assert "check jira → personal_access_token" in registration.message
    assert "api_token" not in registration.message
    assert "administrator" not in registration.message


def test_other_errors_fail_with_the_manual_settings(jira):
    guard = connector()
    jira.get(SITE + WEBHOOKS_PATH, json=[])
    jira.post(SITE + WEBHOOKS_PATH, status=400, json={
        "errorMessages": ["Invalid JQL: Field 'issuetype' does not exist."], "errors": {}})
    registration = register_webhook(guard, PUBLIC, SECRET)
    assert registration.outcome is Outcome.FAILED
    assert "Invalid JQL" in registration.message
    assert f"  URL: {HOOK_URL}" in render_registration(registration)


def test_an_unconfigured_connector_fails_with_the_manual_settings(jira):
    registration = register_webhook(connector(base_url=None), PUBLIC, SECRET)
    assert registration.outcome is Outcome.FAILED
    assert "base_url" in registration.message
    assert "Open: Jira settings → System → WebHooks → Create a WebHook" in (
        render_registration(registration))


def test_an_existing_webhook_for_our_url_is_left_alone_and_compared(jira):
    guard = connector(webhook_secret=SECRET)
    jira.get(SITE + WEBHOOKS_PATH, json=[{
        "name": "ClientGuard", "url": HOOK_URL, "events": ["jira:issue_created",
                                                           "jira:issue_updated"],
        "filters": {"issue-related-events-section": "project = ACME"}, "excludeBody": False,
        "self": f"{SITE}{WEBHOOKS_PATH}/10007", "enabled": True, "isSigned": True}])
    registration = register_webhook(guard, PUBLIC, SECRET)
    assert registration.outcome is Outcome.EXISTS and not registration.done
    assert registration.webhook == f"{SITE}{WEBHOOKS_PATH}/10007"
    missing, jql = registration.problems
    assert missing.startswith("it does not send jira:issue_deleted, comment_created")
    assert jql == f"its JQL is 'project = ACME', ClientGuard's is {JQL!r}"
    text = render_registration(registration)
    assert "Fix it by hand in Jira administration to read:" in text
    assert "CLIENTGUARD_JIRA__WEBHOOK_SECRET" not in text  # the configured secret is known


def test_an_existing_matching_webhook_is_done(jira):
    guard = connector(webhook_secret=SECRET)
    body = webhook_descriptor(guard.settings, PUBLIC)
    jira.get(SITE + WEBHOOKS_PATH, json=[created(body)])
    registration = register_webhook(guard, PUBLIC, SECRET)
    assert registration.outcome is Outcome.EXISTS and registration.done
    assert "by hand" not in render_registration(registration)


def test_an_existing_webhook_and_a_new_secret_need_the_admin(jira):
    guard = connector()  # no secret configured: the one given is new
    body = webhook_descriptor(guard.settings, PUBLIC)
    jira.get(SITE + WEBHOOKS_PATH, json=[created(body, signed=False)])
    registration = register_webhook(guard, PUBLIC, SECRET)
    assert not registration.done
    assert registration.problems == (
        "it has no secret",
        "its secret is not the one below: edit it in Jira administration and enter the new one")


def test_the_registration_body_is_json_with_every_manifest_event(jira):
    guard = connector()
    jira.get(SITE + WEBHOOKS_PATH, json=[])
    jira.post(SITE + WEBHOOKS_PATH, status=201, json={"self": f"{SITE}{WEBHOOKS_PATH}/1",
                                                      "isSigned": True})
    register_webhook(guard, PUBLIC, SECRET)
    sent = json.loads(jira.calls[1].request.body)
    assert sent["events"] == load_manifest()["platforms"]["jira"]["webhook"]["events"]
    assert sent["secret"] == SECRET
