"""End to end on Jira Cloud, on the real app, database and queue: on a Jira Service
Management project the sticky comment goes out as a JSM internal note (created through the
service-desk API, edited through the platform API), on any other project
restricted to the configured role; every request to the Cloud platform REST API is
validated against Atlassian's OpenAPI spec (the servicedeskapi route is outside that spec and
checked by its body)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask
from responses import matchers

from plugin.app import close_app, create_app
from plugin.config import build_config
from tests.connectors.jira.openapi import assert_calls_match_spec
from tests.e2e.running import run_jobs_until_done, statuses
from tests.e2e.test_jira_pipeline import SECRET

SITE = "https://agency.atlassian.net"
FIXTURES = Path(__file__).parent.parent / "connectors" / "jira" / "fixtures"
ISSUE = json.loads((FIXTURES / "rest" / "issue__cloud_service_desk.json").read_text("utf-8"))
STATUS_LIST = json.loads((FIXTURES / "rest" / "status__cloud.json").read_text("utf-8"))
SERVICE_ACCOUNT = "5f8a1c2b3d4e5f6a7b8c9dff"


ROLE = {"type": "role", "value": "Agency Staff"}


@pytest.fixture
def app(database_url: str, queue_url: str) -> Iterator[Flask]:
    app = create_app(build_config({
        "service": {"database_url": database_url, "queue_url": queue_url,
                    "coalesce_seconds": 0.2},
        "jira": {"site": "agency", "base_url": SITE, "email": "guard@agency.example",
                 "api_token": "witness-token", "webhook_secret": SECRET,
                 "service_account": SERVICE_ACCOUNT, "internal_visibility": ROLE,
                 "agency_domains": ["agency.example"], "client_domains": ["acme.example"],
                 "fields": {"account_manager": "customfield_10100",
                            "project_manager": "customfield_10101"}},
    }))
    yield app
    app.extensions["clientguard.jobs"].huey.flush()
    close_app(app)


def deliver(app: Flask, delivery_id: str) -> None:
    payload = json.loads((FIXTURES / "comment_created__cloud.json").read_text("utf-8"))
    payload["issue"]["id"], payload["issue"]["key"] = ISSUE["id"], ISSUE["key"]
    body = json.dumps(payload).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = app.test_client().post("/hooks/jira", data=body, headers={
        "X-Hub-Signature": f"sha256={signature}", "X-Atlassian-Webhook-Identifier": delivery_id})
    assert response.status_code == 202, response.json


def test_a_jsm_ticket_gets_its_internal_note_updated_and_every_request_fits_the_spec(
        app: Flask):
    """The issue already carries ClientGuard's note (10206, by the service account, with the
    marker): it is found among the comments and edited in place as an internal note."""
    note = {"id": "10206", "body": "…", "jsdPublic": False,
            "author": {"accountId": SERVICE_ACCOUNT},
            "properties": [{"key": "sd.public.comment", "value": {"internal": True}}]}
    comment_url = f"{SITE}/rest/api/3/issue/{ISSUE['key']}/comment/10206"
    with responses.RequestsMock() as jira:
        jira.get(re.compile(rf"{SITE}/rest/api/3/issue/{ISSUE['id']}\?.*"), json=ISSUE)
        jira.get(f"{SITE}/rest/api/3/status", json=STATUS_LIST)
        updated = jira.put(comment_url, json=note,
                           match=[matchers.query_param_matcher({"notifyUsers": "false"})])
        jira.get(comment_url, json=note,
                 match=[matchers.query_param_matcher({"expand": "properties"})])
        for delivery_id in ("d-1", "d-1", "d-2"):
            deliver(app, delivery_id)
        run_jobs_until_done(app)
        assert statuses(app) == {"done"}
        assert updated.call_count == 1
        body: dict[str, Any] = json.loads(updated.calls[0].request.body)
        assert body["properties"] == [{"key": "sd.public.comment",
                                       "value": {"internal": True}}]
        assert "visibility" not in body  # role visibility would not hide it from the portal
        assert body["body"]["type"] == "doc"  # Cloud writes ADF
        assert_calls_match_spec(call.request for call in jira.calls)


def without_our_note(issue: dict[str, Any]) -> dict[str, Any]:
    """`issue` as it was before ClientGuard wrote its note (10206)."""
    issue = json.loads(json.dumps(issue))
    comments = issue["fields"]["comment"]
    comments["comments"] = [c for c in comments["comments"] if c["id"] != "10206"]
    comments["total"] = comments["maxResults"] = len(comments["comments"])
    return issue


def created_once(app: Flask, issue: dict[str, Any], create_url: str,
                 answer: dict[str, Any], read_back: dict[str, Any]) -> dict[str, Any]:
    """Deliver one event about `issue` and run the queue: exactly one comment is created at
    `create_url` (answered `answer`, read back as `read_back`), and every request to the
    platform API fits its spec. The body of the create."""
    with responses.RequestsMock() as jira:
        jira.get(re.compile(rf"{SITE}/rest/api/3/issue/{ISSUE['id']}\?.*"), json=issue)
        jira.get(f"{SITE}/rest/api/3/status", json=STATUS_LIST)
        created = jira.post(create_url, status=201, json=answer)
        jira.get(f"{SITE}/rest/api/3/issue/{ISSUE['key']}/comment/{read_back['id']}",
                 json=read_back, match=[matchers.query_param_matcher({"expand": "properties"})])
        deliver(app, "d-1")
        run_jobs_until_done(app)
        assert statuses(app) == {"done"}
        assert created.call_count == 1
        assert_calls_match_spec(call.request for call in jira.calls)
        return json.loads(created.calls[0].request.body)


def test_a_jsm_ticket_without_our_note_gets_one_created_as_an_internal_note(app: Flask):
    """The create path on a service desk: the JSM API with `public: false` (outside the
    Cloud platform spec, so its body is checked here), then the read-back through the
    platform API proves it internal."""
    note = {"id": "10300", "body": "…", "jsdPublic": False,
            "author": {"accountId": SERVICE_ACCOUNT},
            "properties": [{"key": "sd.public.comment", "value": {"internal": True}}]}
    body = created_once(app, without_our_note(ISSUE),
                        f"{SITE}/rest/servicedeskapi/request/{ISSUE['key']}/comment",
                        {"id": "10300", "body": "…", "public": False}, note)
    assert body["public"] is False
    assert "visibility" not in body
    assert "clientguard:sticky" in body["body"]


def test_a_software_project_ticket_gets_a_role_restricted_comment_and_every_request_fits_the_spec(
        app: Flask):
    """The same issue on a software project, without ClientGuard's note yet: it is created
    restricted to `internal_visibility`, and read back restricted."""
    issue = without_our_note(ISSUE)
    issue["fields"]["project"]["projectTypeKey"] = "software"
    for comment in issue["fields"]["comment"]["comments"]:
        comment.pop("jsdPublic", None)
    written = {"id": "10300", "body": {"type": "doc", "version": 1, "content": []},
               "visibility": {**ROLE, "identifier": ROLE["value"]},
               "author": {"accountId": SERVICE_ACCOUNT}}
    body = created_once(app, issue, f"{SITE}/rest/api/3/issue/{ISSUE['key']}/comment",
                        written, written)
    assert body["visibility"] == ROLE
    assert "properties" not in body
    assert body["body"]["type"] == "doc"
