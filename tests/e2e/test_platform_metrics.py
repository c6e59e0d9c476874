"""`GET /metrics` on the real app tells how the platforms answer: every call is timed and
every failed one counted — each attempt, so a storm the client's retries ride out still
shows. Jira and Bitrix24 are stood in for by `responses` (`FakeJira` of the Jira pipeline
tests, `FakePortal`); nothing waits for real."""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
from flask import Flask

import connectors.bitrix24
from connectors.base import EngagementRef
from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.throttle import LeakyBucket
from connectors.errors import AuthError, PayloadError, Transient
from plugin.app import close_app, create_app
from plugin.config import build_config
from plugin.pipeline.process import process
from tests.connectors.bitrix24.portal import OUTGOING_TOKEN, WEBHOOK_URL, FakePortal, event_body
from tests.e2e.running import run_jobs_until_done, scrape, statuses
from tests.e2e.test_jira_pipeline import (
    COMMENT_URL,
    JIRA,
    FakeJira,
    checked_jira,
    deliver,
    post,
    running_app,
)

JIRA_REF = EngagementRef("jira", "agency-dc", "10231")
ISSUE_URL = re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*")
COMMENTS_URL = f"{JIRA}/rest/api/2/issue/PRJA-7/comment"


def errors(app: Flask, connector: str) -> dict[str, float]:
    """`clientguard_platform_errors_total` of `connector`, by status."""
    return {dict(labels)["status"]: value
            for labels, value in scrape(app, "clientguard_platform_errors_total").items()
            if dict(labels)["connector"] == connector}


def timed(app: Flask, connector: str) -> dict[str, float]:
    """How many calls `clientguard_platform_call_seconds` observed for `connector`, by
    method."""
    return {dict(labels)["method"]: value
            for labels, value in scrape(app, "clientguard_platform_call_seconds_count").items()
            if dict(labels)["connector"] == connector}


# -- Jira ---------------------------------------------------------------------------------

jira = pytest.fixture(checked_jira, name="jira")


@pytest.fixture
def jira_app(database_url: str, queue_url: str) -> Iterator[Flask]:
    yield from running_app(database_url, queue_url)


def test_a_503_the_retry_rides_out_is_one_error_and_every_attempt_is_timed(
        jira_app: Flask, jira: FakeJira):
    answers = iter([(503, {"Retry-After": "0"}, "Service Unavailable")])

    def unavailable_once(_request: Any) -> tuple[int, dict[str, str], str]:
        return next(answers, None) or (200, {}, json.dumps(jira.issue))

    jira.mock.replace(responses.CallbackResponse(responses.GET, ISSUE_URL,
                                                 callback=unavailable_once))
    deliver(jira_app, "d-1")
    run_jobs_until_done(jira_app)

    assert statuses(jira_app) == {"done"}  # the evaluation succeeded in the end
    assert [c["method"] for c in jira.written] == ["POST"]
    assert errors(jira_app, "jira") == {"503": 1.0}
    sent = [call.request.method for call in jira.mock.calls]
    assert sent.count("GET") >= 2  # the issue twice (503, then 200), and more
    assert timed(jira_app, "jira") == {method: float(sent.count(method))
                                       for method in set(sent)}


@pytest.mark.parametrize(("failure", "status"), [
    (requests.ConnectionError("connection refused"), "connection"),
    (requests.ReadTimeout("read timed out"), "timeout"),
])
def test_a_call_that_gets_no_answer_is_counted_by_what_happened(
        jira_app: Flask, jira: FakeJira, failure: Exception, status: str):
    jira.mock.replace(responses.POST, COMMENTS_URL, body=failure)  # a write: not retried
    deliver(jira_app, "d-1")
    with pytest.raises(Transient):
        process(JIRA_REF, jira_app.extensions["clientguard.connectors"]["jira"],
                jira_app.extensions["clientguard.database"],
                jira_app.extensions["clientguard.config"],
                jira_app.extensions["clientguard.metrics"])

    assert errors(jira_app, "jira") == {status: 1.0}
    assert timed(jira_app, "jira")["POST"] == 1.0  # timed although unanswered


def test_each_evaluation_run_is_counted_by_its_outcome(jira_app: Flask, jira: FakeJira):
    def run_once() -> None:
        with contextlib.suppress(AuthError, PayloadError):
            process(JIRA_REF, jira_app.extensions["clientguard.connectors"]["jira"],
                    jira_app.extensions["clientguard.database"],
                    jira_app.extensions["clientguard.config"],
                    jira_app.extensions["clientguard.metrics"])

    deliver(jira_app, "d-1")
    run_once()  # done
    jira.issue["fields"]["customfield_10100"] = None  # a change: an update is due
    jira.mock.replace(responses.PUT, COMMENT_URL, status=400,
                      json={"errorMessages": ["Comment body can not be empty!"]})
    deliver(jira_app, "d-2")
    run_once()  # failed: Jira refuses the request
    jira.mock.replace(responses.GET, ISSUE_URL, status=401,
                      json={"errorMessages": ["You are not authenticated."]})
    deliver(jira_app, "d-3")
    run_once()  # postponed: Jira refuses the credentials (someone revoked the token)
    jira.mock.replace(responses.GET, ISSUE_URL, status=404, json={
        "errorMessages": ["Issue does not exist or you do not have permission to see it."]})
    run_once()  # gone
    assert {dict(labels)["outcome"]: value for labels, value in
            scrape(jira_app, "clientguard_evaluations_total").items()} == {
        "done": 1.0, "failed": 1.0, "postponed": 1.0, "gone": 1.0}


def by(app: Flask, name: str, label: str) -> dict[str, float]:
    """The samples of `name` by the value of one label."""
    return {dict(labels)[label]: value for labels, value in scrape(app, name).items()}


def test_metrics_count_every_answer_and_every_comment_decision(jira_app: Flask,
                                                               jira: FakeJira):
    client = jira_app.test_client()
    deliver(jira_app, "d-1")
    deliver(jira_app, "d-1")  # Jira redelivers
    assert client.post("/hooks/jira", data=b'{"webhookEvent": "comment_created"}', headers={
        "X-Hub-Signature": "sha256=" + "0" * 64}).status_code == 401
    post(jira_app, {"webhookEvent": "jira:version_released", "timestamp": 1}, "d-version")
    assert scrape(jira_app, "clientguard_queue_depth") == {(): 1.0}  # d-1's job waits
    run_jobs_until_done(jira_app)
    assert scrape(jira_app, "clientguard_queue_depth") == {(): 0.0}
    deliver(jira_app, "d-2")  # nothing ClientGuard reads changed
    run_jobs_until_done(jira_app)
    jira.issue["fields"]["customfield_10100"] = None
    deliver(jira_app, "d-3")
    run_jobs_until_done(jira_app)

    assert by(jira_app, "clientguard_events_received_total", "event") == {
        "comment_created": 3.0}
    assert by(jira_app, "clientguard_events_duplicate_total", "connector") == {"jira": 1.0}
    assert by(jira_app, "clientguard_events_rejected_total", "reason") == {"signature": 1.0}
    assert by(jira_app, "clientguard_events_ignored_total", "reason") == {"not handled": 1.0}
    assert by(jira_app, "clientguard_comments_total", "action") == {
        "created": 1.0, "skipped": 1.0, "updated": 1.0}
    assert scrape(jira_app, "clientguard_evaluation_seconds_count") == {(): 3.0}
    assert by(jira_app, "clientguard_intake_seconds_count", "connector") == {"jira": 6.0}


def test_the_labels_name_no_issue_and_no_url(jira_app: Flask, jira: FakeJira):
    deliver(jira_app, "d-1")
    run_jobs_until_done(jira_app)

    labels = scrape(jira_app, "clientguard_platform_call_seconds_count")
    assert labels, "no platform call was timed"
    assert {dict(pairs)["method"] for pairs in labels} <= {"GET", "POST", "PUT", "DELETE"}
    text = jira_app.test_client().get("/metrics").get_data(as_text=True)
    assert "PRJA-7" not in text and "10231" not in text and "/rest/" not in text


# -- Bitrix24 -----------------------------------------------------------------------------

@pytest.fixture
def retry_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The Bitrix24 client's retry waits, none taken; the portal's leaky bucket on a clock
    that moves only when the bucket sleeps."""
    waits: list[float] = []
    slept: list[float] = []
    bucket = LeakyBucket(2.0, 50, clock=lambda: sum(slept), sleep=slept.append)
    monkeypatch.setattr(connectors.bitrix24, "bucket_for", lambda *_: bucket)
    monkeypatch.setattr(connectors.bitrix24, "Bitrix24Client",
                        functools.partial(Bitrix24Client, sleep=waits.append))
    return waits


@pytest.fixture
def portal() -> Iterator[FakePortal]:
    portal = FakePortal(deals=1)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        portal.mock(mock)
        yield portal


@pytest.fixture
def bitrix24_app(database_url: str, queue_url: str, retry_waits: list[float]
                 ) -> Iterator[Flask]:
    app = create_app(build_config({
        "service": {"database_url": database_url, "queue_url": queue_url,
                    "coalesce_seconds": 0.2},
        "bitrix24": {"site": "acme-b24", "fields": {"account_manager": "UF_CRM_1725001000"},
                     "webhook_url": WEBHOOK_URL, "outgoing_token": OUTGOING_TOKEN},
    }))
    yield app
    app.extensions["clientguard.jobs"].huey.flush()
    close_app(app)


def test_a_bitrix24_limit_storm_the_retries_ride_out_shows_every_refusal(
        bitrix24_app: Flask, portal: FakePortal, retry_waits: list[float]):
    portal.limit_storm(2)  # 503 QUERY_LIMIT_EXCEEDED twice, then answered
    response = bitrix24_app.test_client().post(
        "/hooks/bitrix24", data=event_body("ONCRMDEALUPDATE", 410),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 202, response.json
    run_jobs_until_done(bitrix24_app)

    assert statuses(bitrix24_app) == {"done"}
    assert retry_waits  # the client did retry
    assert errors(bitrix24_app, "bitrix24") == {"503": 2.0}
    methods = portal.methods()
    assert timed(bitrix24_app, "bitrix24") == {method: float(methods.count(method))
                                               for method in set(methods)}
    assert methods.count("batch") >= 3  # the refused batch twice, then the one answered


def test_a_bitrix24_batch_command_refused_inside_a_200_answer_is_counted(
        bitrix24_app: Flask, portal: FakePortal):
    response = bitrix24_app.test_client().post(
        "/hooks/bitrix24", data=event_body("ONCRMDEALUPDATE", 410),
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 202, response.json
    del portal.deals[410]  # deleted on the portal before the evaluation reads it
    run_jobs_until_done(bitrix24_app)

    assert statuses(bitrix24_app) == {"done"}  # the deal is gone: nothing left to do
    assert ("crm.item.get", "NOT_FOUND") in portal.refused_in_batch
    assert errors(bitrix24_app, "bitrix24") == {
        "batch NotFound": float(len(portal.refused_in_batch))}
