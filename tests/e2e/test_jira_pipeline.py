"""End to end on the real app, the real database and the real queue (SQLite files, and
PostgreSQL + Redis): a signed Jira webhook in, one agency-internal sticky comment out.
Only Jira itself is stood in for, by `responses` serving the REST answers in
tests/connectors/jira/fixtures/rest/."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from connectors.base import EngagementRef
from connectors.errors import AuthError, LeakPrevented, Misrouted, NotFound, Transient
from connectors.jira import JiraConnector
from connectors.jira.client import JiraClient
from plugin.app import close_app, create_app
from plugin.config import build_config
from plugin.jobs import REVIEW_AFTER_SECONDS
from plugin.pipeline.lease import Lease
from plugin.pipeline.process import (
    Action,
    CommentPlan,
    Processed,
    carry_out,
    plan_comment,
    process,
    review,
)
from plugin.rules import RULES_BY_ID
from plugin.storage.models import EventRecord
from plugin.storage.repository import (
    GIVE_UP_AFTER,
    MAX_ATTEMPTS,
    RETRY_WAIT_MAX,
    claim_pending,
    due_for_review,
    get_engagement,
)
from tests.connectors.jira.openapi import assert_calls_match_spec
from tests.e2e.running import run_jobs_until, run_jobs_until_done, scrape, statuses

JIRA = "https://jira.agency.example"
FIXTURES = Path(__file__).parent.parent / "connectors" / "jira" / "fixtures"
SECRET = "hook-secret"
ISSUE = json.loads((FIXTURES / "rest" / "issue__datacenter.json").read_text("utf-8"))
STATUSES = [{"id": "1", "name": "Open", "statusCategory": {"key": "new"}},
            {"id": "3", "name": "In Progress", "statusCategory": {"key": "indeterminate"}},
            {"id": "6", "name": "Closed", "statusCategory": {"key": "done"}}]
ROLE = {"type": "role", "value": "Developers"}
COMMENT_URL = re.compile(rf"{JIRA}/rest/api/2/issue/PRJA-7/comment/(\d+)")
REF = EngagementRef("jira", "agency-dc", "10231")


def running_app(database_url: str, queue_url: str, service: dict[str, Any] | None = None,
                **jira: Any) -> Iterator[Flask]:
    """The service on one Data Center site (PRJA-7 is its engagement; `service` and `jira`
    override settings), until the test ends: the body of this module's `app` fixture, and
    of others'."""
    app = create_app(build_config({
        "service": {"database_url": database_url, "queue_url": queue_url,
                    "coalesce_seconds": 0.2, **(service or {})},
        "jira": {"site": "agency-dc", "base_url": JIRA, "flavour": "datacenter",
                 "personal_access_token": "witness-pat-7c1f", "webhook_secret": SECRET,
                 "service_account": "clientguard", "internal_visibility": ROLE,
                 "agency_domains": ["agency.example"], "client_domains": ["acme.example"],
                 "fields": {"account_manager": "customfield_10100",
                            "project_manager": "customfield_10101"}, **jira},
    }))
    yield app
    app.extensions["clientguard.jobs"].huey.flush()
    close_app(app)


@pytest.fixture
def app(database_url: str, queue_url: str) -> Iterator[Flask]:
    yield from running_app(database_url, queue_url)


class FakeJira:
    """Jira's REST answers for one issue, and a record of every comment written and
    deleted. With `ignores_visibility`, a site whose restriction does not hold (a role the
    client is in): every comment reads back visible to all."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.mock = mock
        self.issue = copy.deepcopy(ISSUE)
        self.written: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.ignores_visibility = False
        mock.add_callback(responses.GET, re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*"),
                          callback=lambda request: (200, {}, json.dumps(self.issue)))
        mock.get(f"{JIRA}/rest/api/2/status", json=STATUSES)
        mock.add_callback(responses.POST, f"{JIRA}/rest/api/2/issue/PRJA-7/comment",
                          callback=self._write)
        mock.add_callback(responses.PUT, COMMENT_URL, callback=self._write)
        mock.add_callback(responses.GET, COMMENT_URL, callback=self._read_back)
        mock.add_callback(responses.DELETE, COMMENT_URL, callback=self._delete)

    def _write(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        match = COMMENT_URL.match(request.url)
        comment = {"id": match.group(1) if match else str(90001 + len(self.written)),
                   "body": body["body"], "visibility": body.get("visibility"),
                   "author": {"name": "clientguard"}, "updateAuthor": {"name": "clientguard"},
                   "created": "2026-11-20T10:00:00.000+0000",
                   "updated": "2026-11-20T10:00:00.000+0000"}
        self.written.append({"method": request.method, **comment,
                             "url": request.url})
        comments = self.issue["fields"]["comment"]
        comments["comments"] = [c for c in comments["comments"] if c["id"] != comment["id"]]
        comments["comments"].append(comment)  # Jira lists it with the issue from now on
        comments["total"] = comments["maxResults"] = len(comments["comments"])
        if not match:  # Jira gives the issue the new comment's time (edits: unconfirmed)
            self.issue["fields"]["updated"] = comment["updated"]
        return 200 if match else 201, {}, json.dumps(comment)

    def _read_back(self, request: Any) -> tuple[int, dict[str, str], str]:
        comment_id = COMMENT_URL.match(request.url).group(1)
        latest = [c for c in self.written if c["id"] == comment_id][-1]
        answer = {key: latest[key] for key in ("id", "body", "visibility", "author",
                                               "updateAuthor", "created", "updated")}
        if self.ignores_visibility:
            answer["visibility"] = None
        return 200, {}, json.dumps(answer)

    def _delete(self, request: Any) -> tuple[int, dict[str, str], str]:
        comment_id = COMMENT_URL.match(request.url).group(1)
        self.deleted.append(comment_id)
        comments = self.issue["fields"]["comment"]
        comments["comments"] = [c for c in comments["comments"] if c["id"] != comment_id]
        comments["total"] = comments["maxResults"] = len(comments["comments"])
        return 204, {}, ""


def checked_jira() -> Iterator[FakeJira]:
    """Jira for one test (the `jira` fixture); afterwards every request it got is checked
    against Atlassian's spec, and every comment written to be restricted to the role."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru("http://127.0.0.1")  # nothing of ours goes through here
        fake = FakeJira(mock)
        yield fake
        assert_calls_match_spec(call.request for call in mock.calls)
        assert [(c["method"], c["visibility"]) for c in fake.written if c["visibility"] != ROLE
                ] == [], "a comment was written without the agency-internal restriction"


jira = pytest.fixture(checked_jira, name="jira")


def deliver(app: Flask, delivery_id: str, text: str = "Any news on the launch?") -> None:
    payload = json.loads((FIXTURES / "comment_created__datacenter_no_issue.json")
                         .read_text("utf-8"))
    payload["comment"]["self"] = f"{JIRA}/rest/api/2/issue/10231/comment/555"
    payload["comment"]["body"] = text
    post(app, payload, delivery_id)


def post(app: Flask, payload: dict[str, Any], delivery_id: str) -> None:
    body = json.dumps(payload).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = app.test_client().post("/hooks/jira", data=body, headers={
        "X-Hub-Signature": f"sha256={signature}", "X-Atlassian-Webhook-Identifier": delivery_id})
    assert response.status_code == 202, response.json





def test_a_burst_with_redeliveries_gives_one_internal_comment(app: Flask, jira: FakeJira):
    for delivery_id in ("d-1", "d-1", "d-2", "d-3", "d-2"):  # redeliveries, out of order
        deliver(app, delivery_id)
    run_jobs_until_done(app)
    assert statuses(app) == {"done"}
    snapshots = [call for call in jira.mock.calls if call.request.method == "GET"
                 and "/rest/api/2/issue/10231?" in call.request.url]
    assert len(snapshots) == 1  # one evaluation answered the whole burst
    assert [(c["method"], c["visibility"]) for c in jira.written] == [("POST", ROLE)]
    assert "clientguard:sticky" in jira.written[0]["body"]


def test_nothing_is_written_when_nothing_changed_and_updated_in_place_when_it_did(
        app: Flask, jira: FakeJira):
    deliver(app, "d-1")
    run_jobs_until_done(app)
    deliver(app, "d-2")  # a new event, same issue state
    run_jobs_until_done(app)
    assert [c["method"] for c in jira.written] == ["POST"]
    jira.issue["fields"]["customfield_10100"] = None  # nobody is the account manager now
    deliver(app, "d-3")
    run_jobs_until_done(app)
    assert [(c["method"], c["visibility"]) for c in jira.written] == [("POST", ROLE),
                                                                      ("PUT", ROLE)]
    assert jira.written[1]["id"] == jira.written[0]["id"]  # the same comment, edited


def test_a_check_while_the_service_evaluates_the_ticket_waits_and_writes_no_second_comment(
        app: Flask, jira: FakeJira):
    """`clientguard check KEY` run just as a worker evaluates the same ticket: the worker
    read it before either wrote, so both would create the comment. The check waits for the
    worker's claim to end, then finds the comment the worker wrote."""
    deliver(app, "d-1")
    connector = app.extensions["clientguard.connectors"]["jira"]
    database, config = app.extensions["clientguard.database"], app.extensions[
        "clientguard.config"]
    metrics, now = app.extensions["clientguard.metrics"], datetime.now(UTC)
    with database.session() as session, session.begin():  # the worker's run, as `process`
        claimed = claim_pending(session, REF, now, config.service.lease_seconds)
    worker_plan = plan_comment(REF, connector, config, metrics, now, None)
    checked: list[CommentPlan] = []
    check = threading.Thread(target=lambda: checked.append(
        review(REF, connector, database, config, metrics, now)))
    check.start()
    check.join(timeout=1.0)
    assert check.is_alive() and jira.written == [], "the check must wait for the worker"
    with Lease(database, claimed, now, config.service.lease_seconds) as lease:
        carry_out(worker_plan, connector, database, config, metrics, now, lease)
    check.join(timeout=15)
    assert not check.is_alive()
    assert [(c["method"], c["visibility"]) for c in jira.written] == [("POST", ROLE)]
    assert checked[0].action is Action.UNCHANGED
    assert statuses(app) == {"done"}  # d-1 and the check's own event


@pytest.mark.parametrize(("announced_by", "editor"), [
    ("the edit of the comment", "levbrouk"), ("another event", "levbrouk"),
    ("another event", None),  # our edit, as Jira shows it, yet open to all (a role deleted)
])
def test_a_sticky_comment_someone_shared_with_the_client_is_made_internal_again(
        app: Flask, jira: FakeJira, announced_by: str, editor: str | None):
    """Its content is what was written last, but it is open to everyone: the event of a
    person's edit is not taken for our own echo, and the evaluation writes it again."""
    deliver(app, "d-1")
    run_jobs_until_done(app)
    sticky = jira.issue["fields"]["comment"]["comments"][-1]
    sticky["visibility"] = None
    if editor is not None:
        sticky["updateAuthor"] = {"name": editor}
    deliver(app, "d-2", text=sticky["body"] if announced_by == "the edit of the comment"
            else "Any news on the launch?")
    run_jobs_until_done(app)
    assert statuses(app) == {"done"}
    assert [(c["method"], c["visibility"]) for c in jira.written] == [("POST", ROLE),
                                                                      ("PUT", ROLE)]
    assert jira.written[1]["id"] == jira.written[0]["id"]


def test_a_copy_of_the_sticky_comment_is_deleted_though_nothing_else_changed(
        app: Flask, jira: FakeJira, caplog: pytest.LogCaptureFixture):
    """Two evaluations at once (a lease run out) may each have created the comment: the
    next evaluation keeps one, even when its content is what was written last."""
    deliver(app, "d-1")
    run_jobs_until_done(app)
    comments = jira.issue["fields"]["comment"]
    copy_of_it = {**copy.deepcopy(comments["comments"][-1]), "id": "90007"}
    comments["comments"].append(copy_of_it)
    comments["total"] = comments["maxResults"] = len(comments["comments"])
    deliver(app, "d-2")
    run_jobs_until_done(app)
    assert jira.deleted == ["90007"]
    assert [c["method"] for c in jira.written] == ["POST"]  # the stored one stays, unedited
    assert "1 more copies of the sticky comment (90007), to delete" in caplog.text


def test_a_leak_stops_every_write_to_the_ticket_until_a_person_resumes_them(
        app: Flask, jira: FakeJira, caplog: pytest.LogCaptureFixture):
    """The restriction does not hold on this site (a role the client is in): the comment
    read back visible is deleted, and nothing more is written to the ticket — not on the
    retry, not for the webhook of that delete, not for new events — until `check --resume`."""
    leaks = "clientguard_leaks_prevented_total"
    assert scrape(app, leaks) == {(("connector", "jira"),): 0.0}  # an alert's baseline
    jira.ignores_visibility = True
    deliver(app, "d-1")
    with pytest.raises(LeakPrevented):
        process_at(app, datetime.now(UTC))
    assert (jira.written[0]["method"], jira.deleted) == ("POST", ["90001"])
    assert scrape(app, leaks) == {(("connector", "jira"),): 1.0}
    assert "client-visible after writing; deleted it" in (writes_stopped(app) or "")
    deleted = json.loads((FIXTURES / "comment_deleted__cloud.json").read_text("utf-8"))
    deleted["issue"]["id"] = "10231"
    deleted["comment"].update(id="90001", body=jira.written[0]["body"],
                              author={"name": "clientguard"},
                              updateAuthor={"name": "clientguard"})
    post(app, deleted, "our-delete")  # Jira does not say who deleted it: it is evaluated
    deliver(app, "d-2")
    run_jobs_until_done(app)  # and d-1 is retried
    assert statuses(app) == {"done"}
    assert len(jira.written) == 1
    assert "nothing is written here since a sticky comment turned out client-visible" in (
        caplog.text)

    issue_url = re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*")
    jira.mock.replace(responses.GET, issue_url, status=401,
                      json={"errorMessages": ["token revoked"], "errors": {}})
    with pytest.raises(AuthError):  # a resume that writes nothing lifts nothing
        review(REF, app.extensions["clientguard.connectors"]["jira"],
               app.extensions["clientguard.database"], app.extensions["clientguard.config"],
               app.extensions["clientguard.metrics"], datetime.now(UTC), resume=True)
    assert writes_stopped(app) is not None
    jira.mock.remove(responses.GET, issue_url)
    jira.mock.add_callback(responses.GET, issue_url,
                           callback=lambda request: (200, {}, json.dumps(jira.issue)))
    jira.ignores_visibility = False  # the agency fixed the role
    review(REF, app.extensions["clientguard.connectors"]["jira"],
           app.extensions["clientguard.database"], app.extensions["clientguard.config"],
           app.extensions["clientguard.metrics"], datetime.now(UTC), resume=True)
    assert [(c["method"], c["visibility"]) for c in jira.written] == [("POST", ROLE)] * 2
    assert writes_stopped(app) is None


def writes_stopped(app: Flask) -> str | None:
    with app.extensions["clientguard.database"].reading() as session:
        return get_engagement(session, REF).writes_stopped


def test_a_service_account_set_to_another_account_costs_no_rewrite_loop(
        database_url: str, queue_url: str, jira: FakeJira):
    """The echoes of our writes then look like someone else's events: each costs one more
    evaluation, which finds the comment as written (by its own author) and writes nothing."""
    for app in running_app(database_url, queue_url, service_account="clientguard-bot"):
        deliver(app, "d-1")
        run_jobs_until_done(app)
        for n in range(3):  # Jira's webhook of our own write, by the account we write as
            sticky = jira.issue["fields"]["comment"]["comments"][-1]
            deliver(app, f"echo-{n}", text=sticky["body"])
            run_jobs_until_done(app)
        assert [c["method"] for c in jira.written] == ["POST"]


def rate_limited_reads(jira: FakeJira, refusals: int, retry_after: str) -> list[int]:
    """The issue read answers 429 with `retry_after` `refusals` times, then as before; the
    list (filled as they are served) holds each answer's status."""
    served: list[int] = []

    def read(_request: Any) -> tuple[int, dict[str, str], str]:
        if len(served) < refusals:
            served.append(429)
            return 429, {"Retry-After": retry_after}, ""
        served.append(200)
        return 200, {}, json.dumps(jira.issue)

    jira.mock.replace(responses.CallbackResponse(
        responses.GET, re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*"), callback=read))
    return served


def test_a_rate_limit_storm_is_ridden_out(app: Flask, jira: FakeJira):
    waits = use_client_without_waits(app)
    served = rate_limited_reads(jira, 3, retry_after="7")
    deliver(app, "d-1")
    run_jobs_until_done(app)
    assert served[:4] == [429, 429, 429, 200]
    assert waits == [7.0] * 3  # as long as Jira told, each time
    assert statuses(app) == {"done"}
    assert [c["method"] for c in jira.written] == ["POST"]


def test_an_evaluation_outlasting_its_lease_keeps_the_ticket_to_itself(
        database_url: str, queue_url: str, jira: FakeJira):
    """Rate limits waited out make an evaluation outlast the lease it claimed the events
    with: it renews the lease meanwhile, so a second worker takes nothing — else both would
    write the comment, the older snapshot last."""
    for app in running_app(database_url, queue_url, service={"lease_seconds": 1}):
        served = rate_limited_reads(jira, 2, retry_after="1")  # two seconds of waiting
        deliver(app, "d-1")
        first = threading.Thread(target=process_at, args=(app, datetime.now(UTC)))
        first.start()
        time.sleep(1.5)  # the first worker's claim would have run out by now
        second = process_at(app, datetime.now(UTC))
        first.join(timeout=15)

        assert second.events == 0
        assert served == [429, 429, 200]  # only the first worker read the issue
        assert [(c["method"], c["visibility"]) for c in jira.written] == [("POST", ROLE)]
        assert statuses(app) == {"done"}


def test_an_evaluation_whose_events_another_worker_took_writes_nothing(
        database_url: str, queue_url: str, jira: FakeJira, monkeypatch: pytest.MonkeyPatch):
    """Its lease could not be renewed in time (the database refused, longer than the
    lease) and another worker claimed the events: the first must neither write nor give
    the events back under the other's feet."""
    def locked(*_args: object) -> bool:
        raise OperationalError("UPDATE events …", {}, Exception("database is locked"))

    for app in running_app(database_url, queue_url, service={"lease_seconds": 1}):
        rate_limited_reads(jira, 2, retry_after="1")  # two seconds of waiting
        deliver(app, "d-1")
        monkeypatch.setattr("plugin.pipeline.lease.renew_lease", locked)
        first = threading.Thread(target=process_at, args=(app, datetime.now(UTC)))
        first.start()
        try:
            time.sleep(1.3)  # its lease ran out, not renewed
            with app.extensions["clientguard.database"].session() as session, \
                    session.begin():
                assert claim_pending(session, REF, datetime.now(UTC), 300)  # another worker
            monkeypatch.undo()  # the database is back
        finally:
            first.join(timeout=15)

        assert jira.written == []
        assert statuses(app) == {"processing"}  # still the other worker's


def test_a_rate_limit_longer_than_the_client_waits_postpones_the_events_as_long(
        app: Flask, jira: FakeJira):
    use_client_without_waits(app)
    served = rate_limited_reads(jira, 100, retry_after="3600")
    deliver(app, "d-1")
    now = datetime.now(UTC)
    with pytest.raises(Transient):
        process_at(app, now)
    assert set(served) == {429}
    status, attempts, retry_at = only_event(app)
    assert (status, attempts) == ("pending", 0)
    assert retry_at >= now + timedelta(seconds=3600)  # not the 1 minute of our own back-off
    assert jira.written == []


def listing(updated: str) -> str:
    """Data Center's search answer: PRJA-7, with its `updated`."""
    return json.dumps({"startAt": 0, "maxResults": 50, "total": 1, "issues": [
        {"id": "10231", "key": "PRJA-7", "fields": {"updated": updated}}]})


def test_the_review_catches_up_a_lost_webhook_but_not_a_change_already_evaluated(
        app: Flask, jira: FakeJira):
    deliver(app, "d-1")
    run_jobs_until_done(app)
    assert jira.issue["fields"]["updated"] != ISSUE["fields"]["updated"]  # our comment's time
    reads = len(jira.mock.calls)
    search = jira.mock.get(f"{JIRA}/rest/api/2/search",
                           body=listing(jira.issue["fields"]["updated"]))
    jobs = app.extensions["clientguard.jobs"]
    assert jobs.review() == []  # the last change is our own comment: nothing asked or read
    assert len(jira.mock.calls) == reads + 1
    # someone unsets the account manager, and that webhook never arrives
    jira.issue["fields"]["customfield_10100"] = None
    jira.issue["fields"]["updated"] = "2026-11-20T10:05:00.000+0000"
    search.body = listing(jira.issue["fields"]["updated"])
    assert jobs.review() == [REF]
    run_jobs_until_done(app)
    assert [(c["method"], c["visibility"]) for c in jira.written] == [("POST", ROLE),
                                                                      ("PUT", ROLE)]
    assert jobs.review() == []  # the same change listed again


def test_a_deleted_issue_finishes_its_events_and_is_no_longer_reviewed(app: Flask,
                                                                       jira: FakeJira):
    deliver(app, "d-1")
    run_jobs_until_done(app)
    jira.mock.replace(responses.GET, re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*"),
                      status=404, json={"errorMessages": [
                          "Issue does not exist or you do not have permission to see it."],
                          "errors": {}})
    deleted = json.loads((FIXTURES / "jira_issue_deleted__server.json").read_text("utf-8"))
    deleted["issue"]["id"] = "10231"
    post(app, deleted, "d-2")
    run_jobs_until_done(app)
    assert statuses(app) == {"done"}  # answered, not retried until they fail
    assert [c["method"] for c in jira.written] == ["POST"]
    with app.extensions["clientguard.database"].reading() as session:
        assert REF not in due_for_review(session, datetime.now(UTC) + timedelta(days=1),
                                         REVIEW_AFTER_SECONDS)


def test_a_404_answering_a_write_is_a_failure_not_a_deleted_issue(app: Flask,
                                                                   jira: FakeJira):
    """Only the issue read proves the issue gone; a write refused with 404 uses up an
    attempt, and the engagement stays open."""
    jira.mock.replace(responses.POST, f"{JIRA}/rest/api/2/issue/PRJA-7/comment", status=404,
                      json={"errorMessages": ["Issue does not exist."], "errors": {}})
    deliver(app, "d-1")
    with pytest.raises(NotFound):
        process_at(app, datetime.now(UTC))
    assert only_event(app)[:2] == ("pending", 1)


def test_events_failing_every_attempt_fail_for_good_and_the_log_names_the_ticket(
        app: Flask, jira: FakeJira, caplog: pytest.LogCaptureFixture):
    jira.mock.replace(responses.POST, f"{JIRA}/rest/api/2/issue/PRJA-7/comment", status=404,
                      json={"errorMessages": ["Issue does not exist."], "errors": {}})
    deliver(app, "d-1")
    for _ in range(MAX_ATTEMPTS):
        with pytest.raises(NotFound):
            process_at(app, datetime.now(UTC))
    assert only_event(app)[:2] == ("failed", MAX_ATTEMPTS)
    said = [(record.levelname, record.getMessage()) for record in caplog.records
            if record.name == "plugin.pipeline.process"]
    assert [level for level, _ in said] == ["WARNING"] * (MAX_ATTEMPTS - 1) + ["ERROR"]
    assert all(message.startswith(f"{REF}: ") and message.endswith(
        ": NotFound: Jira answered 404 to POST /rest/api/2/issue/PRJA-7/comment: Issue does "
        "not exist.") for _, message in said)
    assert said[-1][1].startswith(
        f"{REF}: 1 of 1 event(s) failed for good (tried {MAX_ATTEMPTS} times;")


def test_a_404_that_is_not_jiras_answer_closes_nothing(app: Flask, jira: FakeJira):
    """A wrong base URL or a proxy answers an HTML 404 for everything: that says nothing
    about the issue, so its events wait for the configuration to be put right."""
    use_client_without_waits(app)
    jira.mock.replace(responses.GET, re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*"),
                      status=404, body="<html><title>404 Not Found</title></html>",
                      content_type="text/html")
    deliver(app, "d-1")
    with pytest.raises(Misrouted, match=r"check jira\.base_url"):
        process_at(app, datetime.now(UTC))
    assert statuses(app) == {"pending"}


def test_an_outage_of_hours_loses_no_event_and_retries_ever_less_often(app: Flask,
                                                                         jira: FakeJira):
    use_client_without_waits(app)
    jira.mock.replace(responses.GET, re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*"),
                      status=503, body="Service Unavailable")
    deliver(app, "d-1")
    jobs = app.extensions["clientguard.jobs"]
    at, waits = datetime.now(UTC) + timedelta(minutes=3), []
    for _ in range(MAX_ATTEMPTS * 2):  # twice as many tries as an event has attempts
        with pytest.raises(Transient):
            process_at(app, at)
        status, attempts, retry_at = only_event(app)
        assert (status, attempts) == ("pending", 0)  # an outage uses up no attempt
        assert jobs.sweep(retry_at - timedelta(seconds=1)) == []  # not rung before its time
        assert jobs.sweep(retry_at) == [REF]
        waits.append(retry_at - at)
        at = retry_at
    assert waits == sorted(waits) and waits[0] < waits[-1] == RETRY_WAIT_MAX
    assert jira.written == []
    jira.mock.replace(responses.GET, re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*"),
                      json=jira.issue)  # Jira is back
    run_jobs_until_done(app)
    assert statuses(app) == {"done"}
    assert [c["method"] for c in jira.written] == ["POST"]


def test_the_log_names_a_ticket_by_its_key_once_an_evaluation_stored_it(
        app: Flask, jira: FakeJira, caplog: pytest.LogCaptureFixture):
    """The ref holds the issue id (it survives a move to another project); people know
    the ticket by its key."""
    use_client_without_waits(app)
    jira.mock.replace(responses.GET, re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*"),
                      status=503, body="Service Unavailable")
    deliver(app, "d-1")
    with pytest.raises(Transient):
        process_at(app, datetime.now(UTC))  # never evaluated yet: only the id is known
    assert f"{REF}: its events are tried again from " in caplog.text
    jira.mock.replace(responses.GET, re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*"),
                      json=jira.issue)
    process_at(app, datetime.now(UTC) + timedelta(hours=1))
    jira.mock.replace(responses.GET, re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*"),
                      status=503, body="Service Unavailable")
    deliver(app, "d-2")
    with pytest.raises(Transient):
        process_at(app, datetime.now(UTC) + timedelta(hours=2))
    assert f"{REF} (PRJA-7): its events are tried again from " in caplog.text


def test_a_job_meeting_an_outage_leaves_the_next_try_to_the_sweep(app: Flask,
                                                                   jira: FakeJira):
    """No job retry 30 s later: the events wait their turn (`postpone`), then the sweep
    rings for them."""
    use_client_without_waits(app)
    jira.mock.replace(responses.GET, re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*"),
                      status=503, body="Service Unavailable")
    deliver(app, "d-1")
    run_jobs_until(app, lambda: only_event(app)[0] == "pending"
                   and only_event(app)[2] is not None)  # tried once, postponed
    status, attempts, retry_at = only_event(app)
    assert (status, attempts) == ("pending", 0)
    assert retry_at > datetime.now(UTC)
    assert app.extensions["clientguard.jobs"].huey.scheduled_count() == 0


def test_an_outage_of_more_than_a_day_fails_the_events_it_held(app: Flask, jira: FakeJira):
    """Failed only after a try that failed before: events stored a day ago while the workers
    were down get their wait first."""
    use_client_without_waits(app)
    jira.mock.replace(responses.GET, re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*"),
                      status=503, body="Service Unavailable")
    deliver(app, "d-1")
    day_later = datetime.now(UTC) + GIVE_UP_AFTER + timedelta(minutes=1)
    with pytest.raises(Transient):
        process_at(app, day_later)  # its first try
    assert only_event(app)[0] == "pending"
    with pytest.raises(Transient):
        process_at(app, day_later + RETRY_WAIT_MAX)
    assert only_event(app)[0] == "failed"


def use_client_without_waits(app: Flask) -> list[float]:
    """The same connector, its backoff waits taking no time; the waits it was told, in
    seconds."""
    waits: list[float] = []
    connectors = app.extensions["clientguard.connectors"]
    connectors["jira"] = JiraConnector(
        connectors["jira"].settings,
        JiraClient(JIRA, "witness-pat-7c1f", "datacenter", sleep=waits.append))
    return waits


def process_at(app: Flask, now: datetime) -> Processed:
    return process(REF, app.extensions["clientguard.connectors"]["jira"],
            app.extensions["clientguard.database"], app.extensions["clientguard.config"],
            app.extensions["clientguard.metrics"], now)


def only_event(app: Flask) -> tuple[str, int, datetime]:
    """The one stored event's status, attempts used, and when it may be retried."""
    with app.extensions["clientguard.database"].reading() as session:
        (event,) = session.scalars(select(EventRecord)).all()
        return event.status, event.attempts, event.lease_until


def test_a_worker_that_dies_mid_event_loses_nothing(app: Flask, jira: FakeJira):
    deliver(app, "d-1")
    database = app.extensions["clientguard.database"]
    crashed_at = datetime.now(UTC) - timedelta(minutes=10)
    with database.session() as session, session.begin():  # a worker claims, then dies
        assert claim_pending(session, REF, crashed_at, 300)
    assert statuses(app) == {"processing"}
    app.extensions["clientguard.jobs"].huey.flush()  # its job is gone with it
    assert app.extensions["clientguard.jobs"].sweep() == [REF]  # the lease has run out
    run_jobs_until_done(app)
    assert statuses(app) == {"done"}
    assert [c["method"] for c in jira.written] == ["POST"]


def test_a_failure_saving_the_evaluation_gives_its_events_back_at_once(
        app: Flask, jira: FakeJira, monkeypatch: pytest.MonkeyPatch):
    deliver(app, "d-1")

    def disk_full(*_args: object) -> None:
        raise OperationalError("UPDATE events", {}, Exception("database or disk is full"))

    monkeypatch.setattr("plugin.pipeline.process.finish", disk_full)
    with pytest.raises(OperationalError):
        process(REF, app.extensions["clientguard.connectors"]["jira"],
                app.extensions["clientguard.database"], app.extensions["clientguard.config"],
                app.extensions["clientguard.metrics"])
    # Saved and finished in one transaction: neither happened, and the event is waiting
    # again now, not held by a lease that runs out in minutes.
    assert statuses(app) == {"pending"}
    monkeypatch.undo()
    run_jobs_until_done(app)
    assert statuses(app) == {"done"}
    assert [(c["method"], c["visibility"]) for c in jira.written] == [("POST", ROLE),
                                                                      ("PUT", ROLE)]
    assert jira.written[1]["id"] == jira.written[0]["id"]  # found by its marker: no copy


def test_no_secret_reaches_any_log_record(app: Flask, jira: FakeJira,
                                          caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    jira.mock.replace(responses.GET, re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*"),
                      status=401, json={"errorMessages": ["You are not authenticated."]})
    deliver(app, "d-1")  # fails at Jira: errors and retries get logged
    with pytest.raises(AuthError):
        process(REF, app.extensions["clientguard.connectors"]["jira"],
                app.extensions["clientguard.database"], app.extensions["clientguard.config"],
                app.extensions["clientguard.metrics"])
    jira.mock.replace(responses.GET, re.compile(rf"{JIRA}/rest/api/2/issue/10231\b.*"),
                      json=jira.issue)
    deliver(app, "d-2")
    run_jobs_until_done(app)
    assert caplog.records, "nothing was logged: the witness test would prove nothing"
    for record in caplog.records:
        text = record.getMessage() + str(record.args)
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        assert "witness-pat-7c1f" not in text and SECRET not in text, record


def test_the_service_in_dry_run_decides_and_logs_but_writes_nothing(
        app: Flask, jira: FakeJira, caplog: pytest.LogCaptureFixture):
    config = app.extensions["clientguard.config"]
    app.extensions["clientguard.config"] = dataclasses.replace(
        config, service=dataclasses.replace(config.service, dry_run=True))
    caplog.set_level(logging.INFO, logger="plugin.pipeline.process")
    deliver(app, "d-1")
    process(REF, app.extensions["clientguard.connectors"]["jira"],
            app.extensions["clientguard.database"], app.extensions["clientguard.config"],
            app.extensions["clientguard.metrics"])
    assert jira.written == []
    assert statuses(app) == {"done"}
    assert ("dry run, jira PRJA-7: would create the sticky comment, restricted to role "
            "Developers\n") in caplog.text
    assert "    Agency-internal: the client cannot see this." in caplog.text  # the comment


def test_a_clean_ticket_loses_its_comment_when_the_agency_wants_none(app: Flask,
                                                                     jira: FakeJira):
    deliver(app, "d-1")
    run_jobs_until_done(app)
    comment_id = jira.written[0]["id"]
    config = app.extensions["clientguard.config"]
    everything_off = {rule_id: {"enabled": False} for rule_id in RULES_BY_ID}
    app.extensions["clientguard.config"] = build_config({
        "service": {"comment_when_clean": "delete"}, "rules": everything_off})
    deliver(app, "d-2")
    process(REF, app.extensions["clientguard.connectors"]["jira"],
            app.extensions["clientguard.database"], app.extensions["clientguard.config"],
            app.extensions["clientguard.metrics"])
    assert jira.deleted == [comment_id]
    assert [c["method"] for c in jira.written] == ["POST"]  # nothing written, one removed
    app.extensions["clientguard.config"] = config
