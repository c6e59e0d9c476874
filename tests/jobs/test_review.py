"""The sweep, the review and the prune on the real database and queue: lost doorbells are
rung again, open engagements are re-evaluated for their time-based rules, engagements Jira
changed without a webhook reaching us are caught up — once per change, and not when an
evaluation already saw it — and finished events are forgotten after `keep_events_days`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
from flask import Flask
from responses import matchers
from sqlalchemy import event, select, update

from connectors.base import EngagementRef, Event
from plugin.app import close_app, create_app
from plugin.config import build_config
from plugin.storage.models import EventRecord, PeriodicRunRecord
from plugin.storage.repository import (
    EngagementInfo,
    due_for_review,
    get_engagement,
    record_event,
    save_evaluation,
)
from tests.connectors.jira.openapi import assert_calls_match_spec

JIRA = "https://agency.atlassian.net"
NOW = datetime(2026, 11, 20, 12, 5, tzinfo=UTC)


def service(database_url: str, queue_url: str) -> Flask:
    return create_app(build_config({
        "service": {"database_url": database_url, "queue_url": queue_url,
                    "keep_events_days": 30},
        "jira": {"site": "agency", "base_url": JIRA, "email": "guard@agency.example",
                 "api_token": "witness-token", "engagement_jql": "project = ACME"},
    }))


@pytest.fixture
def app(database_url: str, queue_url: str) -> Iterator[Flask]:
    app = service(database_url, queue_url)
    yield app
    app.extensions["clientguard.jobs"].huey.flush()
    close_app(app)


@contextlib.contextmanager
def jira_cloud() -> Iterator[responses.RequestsMock]:
    """Jira Cloud stood in for; every request the review sent is checked against the spec."""
    with responses.RequestsMock() as jira:
        yield jira
        assert_calls_match_spec(call.request for call in jira.calls)


def ref(key: str) -> EngagementRef:
    return EngagementRef("jira", "agency", key)


def events(app: Flask) -> list[tuple[str, str, str]]:
    with app.extensions["clientguard.database"].session() as session:
        rows = session.execute(select(EventRecord.engagement_key, EventRecord.name,
                                      EventRecord.status).order_by(EventRecord.id))
        return [tuple(row) for row in rows]


def queued(app: Flask) -> int:
    return app.extensions["clientguard.jobs"].pending()


def test_the_sweep_rings_again_for_events_whose_job_was_lost(app: Flask) -> None:
    database = app.extensions["clientguard.database"]
    with database.session() as session, session.begin():
        record_event(session, Event(ref("10001"), "comment_created", "d-1", None, None), b"{}",
                     NOW - timedelta(minutes=5))
        record_event(session, Event(ref("10002"), "comment_created", "d-2", None, None), b"{}",
                     NOW - timedelta(seconds=30))  # its job is still due
    assert app.extensions["clientguard.jobs"].sweep(NOW) == [ref("10001")]
    assert queued(app) == 1


CHANGED_JQL = "(project = ACME) AND updated >= -30m"  # the catch-up's listing
IN_SCOPE_JQL = "(project = ACME) AND statusCategory != Done"  # the open engagements


def listing(jira: responses.RequestsMock, jql: str, issues: list[dict[str, Any]],
            status: int = 200) -> responses.BaseResponse:
    """Jira's search answering `jql` with `issues` (or an error `status`)."""
    return jira.get(f"{JIRA}/rest/api/3/search/jql", status=status,
                    match=[matchers.query_param_matcher({"jql": jql}, strict_match=False)],
                    json={"issues": issues} if status == 200 else {
                        "errorMessages": ["Error in the JQL Query."]})


def test_the_review_re_evaluates_open_engagements_and_catches_up_with_jira(app: Flask):
    database = app.extensions["clientguard.database"]
    with database.session() as session, session.begin():
        save_evaluation(session, ref("10001"), 60, "amber", {}, NOW - timedelta(hours=2))
        save_evaluation(session, ref("10003"), 90, "green", {}, NOW - timedelta(minutes=10))
    with jira_cloud() as jira:
        listing(jira, CHANGED_JQL, [
            {"id": "10002", "key": "ACME-2", "fields": {"updated": "2026-11-20T11:50:00.000+0000"}},
            {"id": "10003", "key": "ACME-3", "fields": {"updated": "2026-11-20T12:01:00.000+0000"}},
        ])
        listing(jira, IN_SCOPE_JQL, [{"id": f"1000{n}", "key": f"ACME-{n}"} for n in (1, 2, 3)])
        rung = app.extensions["clientguard.jobs"].review(NOW)
    assert rung == [ref("10001"), ref("10002"), ref("10003")]
    assert events(app) == [("10001", "review:time", "pending"),
                           ("10002", "review:catch-up", "pending"),
                           ("10003", "review:catch-up", "pending")]
    assert queued(app) == 3
    with jira_cloud() as jira:  # the same change listed again, the same hour: nothing new
        listing(jira, CHANGED_JQL, [
            {"id": "10002", "key": "ACME-2", "fields": {"updated": "2026-11-20T11:50:00.000+0000"}},
        ])
        listing(jira, IN_SCOPE_JQL, [{"id": f"1000{n}", "key": f"ACME-{n}"} for n in (1, 2, 3)])
        assert app.extensions["clientguard.jobs"].review(NOW + timedelta(minutes=15)) == []
    assert len(events(app)) == 3


def is_open(app: Flask, key: str) -> bool:
    with app.extensions["clientguard.database"].reading() as session:
        return get_engagement(session, ref(key)).open


def test_an_engagement_moved_out_of_the_engagement_jql_is_closed_not_commented_on_hourly(
        app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="plugin.jobs")
    with app.extensions["clientguard.database"].session() as session, session.begin():
        for key in ("10001", "10004"):  # both up for their hourly re-evaluation
            save_evaluation(session, ref(key), 60, "amber", {}, NOW - timedelta(hours=2))
    for quarter in range(2):  # 10004 left project ACME (or is done): Jira no longer lists it
        with jira_cloud() as jira:
            listing(jira, CHANGED_JQL, [])
            in_scope = listing(jira, IN_SCOPE_JQL, [{"id": "10001", "key": "ACME-1"}])
            rung = app.extensions["clientguard.jobs"].review(NOW + timedelta(minutes=15 * quarter))
            assert {name: in_scope.calls[0].request.params[name] for name in (
                "fields", "maxResults")} == {"fields": "key", "maxResults": "1000"}  # big pages
        assert rung == ([ref("10001")] if quarter == 0 else [])  # the same hour: asked once
        # missing once is no proof (offset paging can skip one): closed at the second miss
        assert is_open(app, "10004") is (quarter == 0)
    assert events(app) == [("10001", "review:time", "pending")]
    assert is_open(app, "10001")
    assert "closed 1 engagement(s) on jira" in caplog.text and "10004" in caplog.text
    with app.extensions["clientguard.database"].reading() as session:  # for good, until
        # an event brings it back
        assert due_for_review(session, NOW + timedelta(hours=1), 3600) == [ref("10001")]


def test_an_engagement_missing_from_one_listing_only_is_evaluated_not_closed(
        app: Flask) -> None:
    """Data Center pages its search by offset: an issue leaving the results while they are
    read shifts another out of them once."""
    with app.extensions["clientguard.database"].session() as session, session.begin():
        save_evaluation(session, ref("10004"), 60, "amber", {}, NOW - timedelta(hours=2))
    for quarter, listed in enumerate(([], [{"id": "10004", "key": "ACME-4"}])):
        with jira_cloud() as jira:
            listing(jira, CHANGED_JQL, [])
            listing(jira, IN_SCOPE_JQL, listed)
            rung = app.extensions["clientguard.jobs"].review(NOW + timedelta(minutes=15 * quarter))
        assert rung == ([] if quarter == 0 else [ref("10004")])  # looked for again, found
    assert is_open(app, "10004")
    assert events(app) == [("10004", "review:time", "pending")]


def test_when_jira_cannot_list_the_open_engagements_every_due_one_is_evaluated(
        app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    with app.extensions["clientguard.database"].session() as session, session.begin():
        save_evaluation(session, ref("10004"), 60, "amber", {}, NOW - timedelta(hours=2))
    with jira_cloud() as jira:
        listing(jira, CHANGED_JQL, [])
        listing(jira, IN_SCOPE_JQL, [], status=400)
        assert app.extensions["clientguard.jobs"].review(NOW) == [ref("10004")]
    assert is_open(app, "10004")
    assert "cannot list the open engagements on jira" in caplog.text


def jira_time(moment: datetime) -> str:
    """As Jira writes `updated`: `2026-11-20T11:45:00.000+0000`."""
    return f"{moment:%Y-%m-%dT%H:%M:%S.000%z}"


def review_listing(app: Flask, now: datetime, updated: dict[str, datetime]) -> list[str]:
    """Run the review at `now` with Jira listing `updated` (issue id -> its `updated`); the
    keys it asked to evaluate."""
    with jira_cloud() as jira:
        search = jira.get(f"{JIRA}/rest/api/3/search/jql", json={"issues": [
            {"id": key, "key": f"ACME-{key}", "fields": {"updated": jira_time(at)}}
            for key, at in updated.items()]})
        rung = app.extensions["clientguard.jobs"].review(now)
        assert search.calls[0].request.params["fields"] == "updated"
    return [ref.key for ref in rung]


def evaluated(app: Flask, key: str, saw: datetime, at: datetime) -> None:
    """What a worker's evaluation of `key` leaves: its events done, the change it saw."""
    with app.extensions["clientguard.database"].session() as session, session.begin():
        session.execute(update(EventRecord).where(EventRecord.engagement_key == key)
                        .values(status="done"))
        save_evaluation(session, ref(key), 90, "green", {}, at,
                        EngagementInfo(platform_updated_at=saw))


def test_the_catch_up_asks_once_per_change_and_not_for_one_an_evaluation_saw(app: Flask):
    seen = NOW - timedelta(minutes=20)  # Jira's `updated` as the last snapshots showed it
    with app.extensions["clientguard.database"].session() as session, session.begin():
        for key in ("10002", "10003"):
            save_evaluation(session, ref(key), 90, "green", {}, seen + timedelta(seconds=2),
                            EngagementInfo(platform_updated_at=seen))
    listing = {"10002": seen,  # its webhook came, and its evaluation saw this change
               "10003": seen + timedelta(minutes=5)}  # changed again; that webhook was lost
    assert review_listing(app, NOW, listing) == ["10003"]
    assert review_listing(app, NOW + timedelta(minutes=15), listing) == []  # its event waits
    evaluated(app, "10003", listing["10003"], NOW + timedelta(minutes=16))
    assert review_listing(app, NOW + timedelta(minutes=20), listing) == []  # seen now
    listing["10003"] = NOW + timedelta(minutes=20)  # another lost webhook, the same hour
    assert review_listing(app, NOW + timedelta(minutes=30), listing) == ["10003"]
    assert [name for key, name, _ in events(app) if key == "10003"] == ["review:catch-up"] * 2
    assert catch_ups(app) == 2  # lost webhooks, for alerts


def catch_ups(app: Flask) -> float | None:
    return app.extensions["clientguard.metrics"].registry.get_sample_value(
        "clientguard_catch_ups_total", {"connector": "jira"})


def test_a_change_whose_event_waits_is_left_to_that_event_and_undated_ones_are_not_counted(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    database = app.extensions["clientguard.database"]
    with database.session() as session, session.begin():  # its webhook came; not yet evaluated
        record_event(session, Event(ref("10004"), "comment_created", "d-4", None, None), b"{}",
                     NOW - timedelta(seconds=1))
    assert review_listing(app, NOW, {"10004": NOW - timedelta(seconds=2)}) == []
    # a change the platform does not date (as Bitrix24's offline queue names them): asked,
    # at most once an hour, but not counted as a lost webhook
    jira = app.extensions["clientguard.connectors"]["jira"]
    monkeypatch.setattr(jira, "recently_updated", lambda minutes: {ref("10005"): None})
    assert app.extensions["clientguard.jobs"].review(NOW + timedelta(minutes=15)) == [
        ref("10005")]
    assert catch_ups(app) is None


def test_a_jira_outage_does_not_stop_the_review(app: Flask) -> None:
    database = app.extensions["clientguard.database"]
    with database.session() as session, session.begin():
        save_evaluation(session, ref("10001"), 60, "amber", {}, NOW - timedelta(hours=2))
    with jira_cloud() as jira:
        jira.get(f"{JIRA}/rest/api/3/search/jql", status=401, json={
            "errorMessages": ["Client must be authenticated to access this resource."]})
        assert app.extensions["clientguard.jobs"].review(NOW) == [ref("10001")]


def listed_since(app: Flask, now: datetime, status: int = 200) -> str:
    """Run the review at `now` with Jira answering `status`; the JQL it sent."""
    with jira_cloud() as jira:
        search = jira.get(f"{JIRA}/rest/api/3/search/jql", status=status,
                          json={"issues": []} if status == 200 else {
                              "errorMessages": ["Client must be authenticated to access "
                                                "this resource."]})
        app.extensions["clientguard.jobs"].review(now)
        return search.calls[0].request.params["jql"].removeprefix("(project = ACME) AND ")


def test_after_an_outage_the_review_catches_up_everything_since_its_last_listing(
        app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    assert listed_since(app, NOW) == "updated >= -30m"  # first ever: the usual window
    assert listed_since(app, NOW + timedelta(minutes=15)) == "updated >= -30m"
    # the listing refused for two hours (a revoked token): four failures, each looking back
    # further
    for quarter in range(2, 6):
        assert listed_since(app, NOW + timedelta(minutes=15 * quarter), status=401) == (
            f"updated >= -{15 * (quarter - 1) + 15}m")
    # back: everything since the last listing that worked (12:20), plus the margin
    assert listed_since(app, NOW + timedelta(minutes=135)) == "updated >= -135m"
    assert listed_since(app, NOW + timedelta(minutes=150)) == "updated >= -30m"
    # the service down for a fortnight: a week at most, and a word to run a backfill
    assert listed_since(app, NOW + timedelta(days=14)) == f"updated >= -{7 * 24 * 60}m"
    assert "run `clientguard backfill`" in caplog.text


def test_processes_sharing_a_queue_run_each_periodic_job_once_a_period(
        app: Flask, database_url: str, queue_url: str) -> None:
    """Each process's scheduler enqueues every periodic job: the first copy runs it."""
    other = service(database_url, queue_url)  # another `clientguard worker`
    try:
        with jira_cloud() as jira:
            search = jira.get(f"{JIRA}/rest/api/3/search/jql", json={"issues": []})
            for process in (app, other, app):
                process.extensions["clientguard.jobs"].periodic_jobs["review"].call_local()
            assert len(search.calls) == 1
            with app.extensions["clientguard.database"].session() as session, \
                    session.begin():  # as if this period ended: the next one runs again
                claimed = session.get(PeriodicRunRecord, "review")
                claimed.period -= timedelta(minutes=15)
            other.extensions["clientguard.jobs"].periodic_jobs["review"].call_local()
            assert len(search.calls) == 2
    finally:
        close_app(other)


def store(app: Flask, key: str, status: str, received_at: datetime) -> None:
    database = app.extensions["clientguard.database"]
    with database.session() as session, session.begin():
        record_event(session, Event(ref(key), "comment_created", f"d-{key}", None, None),
                     b'{"comment": "client text"}', received_at)
        session.execute(update(EventRecord).where(EventRecord.delivery_id == f"d-{key}")
                        .values(status=status))


def test_the_prune_forgets_finished_events_after_the_kept_days_never_a_waiting_one(
        app: Flask) -> None:
    old, recent = NOW - timedelta(days=30, minutes=1), NOW - timedelta(days=29, hours=23)
    for key, status in [("1", "done"), ("2", "ignored"), ("3", "failed"), ("4", "pending"),
                        ("5", "processing")]:
        store(app, key, status, old)
    store(app, "6", "done", recent)

    assert app.extensions["clientguard.jobs"].prune(NOW) == 3
    assert events(app) == [("4", "comment_created", "pending"),
                           ("5", "comment_created", "processing"),
                           ("6", "comment_created", "done")]
    assert app.extensions["clientguard.jobs"].prune(NOW) == 0


def test_the_prune_deletes_a_batch_per_transaction_until_none_is_left(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("plugin.jobs.PRUNE_BATCH", 2)
    commits = []
    event.listen(app.extensions["clientguard.database"].engine, "commit",
                 lambda _connection: commits.append(1))
    for key in "12345":
        store(app, key, "done", NOW - timedelta(days=40))
    commits.clear()

    assert app.extensions["clientguard.jobs"].prune(NOW) == 5
    assert events(app) == []
    assert len(commits) == 3  # 2 + 2 + 1
