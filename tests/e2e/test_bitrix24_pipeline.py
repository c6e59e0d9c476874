"""End to end on the real app, the real database and the real queue (SQLite files, and
PostgreSQL + Redis): Bitrix24 events in, as the form bodies a portal posts, one
agency-internal sticky comment on the deal's timeline out. Only the portal is stood in for:
`FakePortal` (tests/connectors/bitrix24/portal.py) behind `responses`, built from the samples
in tests/connectors/bitrix24/fixtures/. Nothing waits for real: the REST client's retry
waits and the portal's leaky bucket run on injected sleeps."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
from flask import Flask
from sqlalchemy import select

import connectors.bitrix24
from connectors.base import EngagementRef
from connectors.bitrix24.auth import REOPEN_HINT
from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.throttle import LeakyBucket
from connectors.errors import AuthError, RateLimited, Transient
from plugin.app import close_app, create_app
from plugin.config import build_config
from plugin.pipeline.process import Processed, process
from plugin.rules import RULES_BY_ID
from plugin.storage.models import EventRecord
from plugin.storage.repository import due_for_review
from tests.connectors.bitrix24.portal import (
    APPLICATION_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    MEMBER_ID,
    OUTGOING_TOKEN,
    WEBHOOK_CODE,
    WEBHOOK_URL,
    FakePortal,
    app_auth,
    event_body,
    queue_offline,
    sub_commands,
    webhook_auth,
)
from tests.e2e.running import run_jobs_until_done, statuses

SITE = "acme-b24"
REF = EngagementRef("bitrix24", SITE, "410")
APP_REF = EngagementRef("bitrix24", MEMBER_ID, "410")
FIELDS = {"account_manager": "UF_CRM_1725001000"}  # the deal's "Project manager": John Doe
WEBHOOKS = {"webhook_url": WEBHOOK_URL, "outgoing_token": OUTGOING_TOKEN}
LOCAL_APP = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
             "public_url": "https://clientguard.agency.example"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MARKER = "clientguard:sticky"
SNAPSHOT = ("crm.item.get", "crm.item.get", "crm.timeline.comment.list", "crm.activity.list",
            "tasks.task.list", "crm.item.list", "crm.documentgenerator.document.list",
            "crm.stagehistory.list")  # the warm batch that reads a deal


class Waits:
    """Every wait the connector asked for, none of them taken: the client's retry waits, and
    the leaky bucket's, on a clock that moves only when the bucket sleeps."""

    def __init__(self) -> None:
        self.retries: list[float] = []
        self.throttle: list[float] = []
        self._clock = 0.0

    def clock(self) -> float:
        return self._clock

    def throttle_sleep(self, seconds: float) -> None:
        self.throttle.append(seconds)
        self._clock += seconds


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> Waits:
    waits = Waits()
    bucket = LeakyBucket(2.0, 50, clock=waits.clock, sleep=waits.throttle_sleep)
    monkeypatch.setattr(connectors.bitrix24, "bucket_for", lambda *_: bucket)
    monkeypatch.setattr(connectors.bitrix24, "Bitrix24Client",
                        functools.partial(Bitrix24Client, sleep=waits.retries.append))
    return waits


@pytest.fixture
def portal() -> Iterator[FakePortal]:
    portal = FakePortal(deals=2)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        portal.mock(mock)
        yield portal


def service(database_url: str, queue_url: str, bitrix24: dict[str, Any]) -> Flask:
    return create_app(build_config({
        "service": {"database_url": database_url, "queue_url": queue_url,
                    "coalesce_seconds": 0.2},
        "bitrix24": {"site": SITE, "fields": FIELDS, **bitrix24},
    }))


def close(app: Flask) -> None:
    app.extensions["clientguard.jobs"].huey.flush()
    close_app(app)


@pytest.fixture
def app(database_url: str, queue_url: str) -> Iterator[Flask]:
    app = service(database_url, queue_url, WEBHOOKS)
    yield app
    close(app)


@pytest.fixture
def app_mode(database_url: str, queue_url: str, portal: FakePortal) -> Iterator[Flask]:
    """The service as a local application, with the portal installed in its store."""
    app = service(database_url, queue_url, LOCAL_APP)
    installations(app).change(MEMBER_ID, lambda _: portal.installation())
    yield app
    close(app)


def installations(app: Flask) -> Any:
    return app.extensions["clientguard.connectors"]["bitrix24"].installations


# -- helpers ----------------------------------------------------------------------------

def post(app: Flask, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return app.test_client().post("/hooks/bitrix24", data=body,
                                  headers=FORM if headers is None else headers)


def deliver(app: Flask, body: bytes) -> dict[str, Any]:
    response = post(app, body)
    assert response.status_code == 202, response.json
    return response.json


def deal_updated(ts: int = 1_766_047_200) -> bytes:
    """`ONCRMDEALUPDATE` of deal 410 from the outgoing webhook; `ts` tells events apart."""
    return event_body("ONCRMDEALUPDATE", 410, ts=ts)




def process_now(app: Flask, ref: EngagementRef = REF, now: datetime | None = None
                ) -> Processed:
    """Evaluate `ref` once in this thread, as one job attempt would."""
    return process(ref, app.extensions["clientguard.connectors"]["bitrix24"],
                   app.extensions["clientguard.database"], app.extensions["clientguard.config"],
                   app.extensions["clientguard.metrics"], now=now)



def stored(app: Flask) -> list[tuple[str, str, str]]:
    with app.extensions["clientguard.database"].session() as session:
        rows = session.scalars(select(EventRecord).order_by(EventRecord.id)).all()
        return [(row.engagement_key, row.name, row.status) for row in rows]


def written(portal: FakePortal) -> list[tuple[str, Any]]:
    """Every write: (method, the comment id for updates and deletes, else the owner)."""
    shown = []
    for write in portal.writes:
        fields = write.params.get("fields") or {}
        if write.method == "crm.timeline.comment.add":
            shown.append((write.method, (fields["ENTITY_TYPE"], fields["ENTITY_ID"])))
        else:
            shown.append((write.method, write.params.get("id")))
    return shown


def ours(portal: FakePortal, deal: int = 410) -> list[dict[str, Any]]:
    """The deal's timeline comments that are ClientGuard's: the marker, by the webhook's
    user (a person quoting ours copies the marker, as John Doe's comment 1003 does)."""
    return [c for c in portal.deal_comments(deal) if c["AUTHOR_ID"] == "1" and MARKER in
            c["COMMENT"]]


def lookups(portal: FakePortal) -> list[tuple[str, ...]]:
    """The batches that looked up which deal indirect events belong to."""
    return [commands for commands in sub_commands(portal.calls)
            if {"crm.activity.binding.list", "crm.timeline.comment.get", "tasks.task.get"}
            & set(commands) or commands == ("crm.item.get",)]


def snapshots(portal: FakePortal) -> int:
    """How many times a deal was read (batches that get the deal)."""
    return sum(1 for call in portal.calls if "deal" in call.keys)


# -- one event, one comment -------------------------------------------------------------

def test_a_deal_update_writes_one_internal_comment_on_the_deal_timeline(app: Flask,
                                                                       portal: FakePortal):
    assert deliver(app, deal_updated()) == {"status": "accepted", "event": "ONCRMDEALUPDATE"}
    run_jobs_until_done(app)
    assert statuses(app) == {"done"}
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410))]
    assert MARKER in portal.writes[0].params["fields"]["COMMENT"]
    assert len(ours(portal)) == 1


def test_a_deal_outside_the_configured_pipelines_is_not_written_to(
        database_url: str, queue_url: str, portal: FakePortal):
    """Bitrix24 sends every deal's events; `deal_categories` says which pipelines hold
    client engagements (deal 410 is in pipeline 0)."""
    app = service(database_url, queue_url, {**WEBHOOKS, "deal_categories": ["2"]})
    try:
        deliver(app, deal_updated())
        run_jobs_until_done(app)
        assert statuses(app) == {"done"}
        assert written(portal) == []
        assert app.extensions["clientguard.metrics"].registry.get_sample_value(
            "clientguard_evaluations_total", {"connector": "bitrix24", "outcome": "excluded"}
        ) == 1
        with app.extensions["clientguard.database"].reading() as session:  # not reviewed
            assert REF not in due_for_review(session, datetime.now(UTC) + timedelta(days=1),
                                             3600)
    finally:
        close(app)


def test_a_redelivered_event_is_stored_once(app: Flask, portal: FakePortal):
    assert deliver(app, deal_updated())["status"] == "accepted"
    assert deliver(app, deal_updated()) == {"status": "duplicate", "event": "ONCRMDEALUPDATE"}
    assert stored(app) == [("410", "ONCRMDEALUPDATE", "pending")]
    run_jobs_until_done(app)
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410))]


def test_a_burst_of_ten_events_on_one_deal_is_one_evaluation_and_one_comment(
        app: Flask, portal: FakePortal):
    for second in range(10):
        deliver(app, deal_updated(ts=1_766_047_200 + second))
    run_jobs_until_done(app)
    assert stored(app) == [("410", "ONCRMDEALUPDATE", "done")] * 10
    assert snapshots(portal) == 1
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410))]


def test_nothing_is_written_when_nothing_changed(app: Flask, portal: FakePortal):
    deliver(app, deal_updated(ts=1))
    run_jobs_until_done(app)
    deliver(app, deal_updated(ts=2))  # a new event, the same deal
    run_jobs_until_done(app)
    assert snapshots(portal) == 2
    assert "crm.timeline.comment.update" not in portal.methods()
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410))]


def test_a_change_of_findings_updates_the_comment_in_place(app: Flask, portal: FakePortal):
    deliver(app, deal_updated(ts=1))
    run_jobs_until_done(app)
    comment_id = int(ours(portal)[0]["ID"])
    portal.change_deal(410, UF_CRM_1725001000=None)  # nobody is the account manager now
    deliver(app, deal_updated(ts=2))
    run_jobs_until_done(app)
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410)),
                               ("crm.timeline.comment.update", comment_id)]
    assert [int(c["ID"]) for c in ours(portal)] == [comment_id]


def test_two_workers_on_one_deal_at_once_write_one_comment(app: Flask, portal: FakePortal):
    deliver(app, deal_updated(ts=1))
    deliver(app, deal_updated(ts=2))
    first_reading, second_done = threading.Event(), threading.Event()

    def hold_the_first_reader(call: Any) -> None:
        if call.method == "batch" and not first_reading.is_set():
            first_reading.set()
            assert second_done.wait(10), "the second worker never finished"

    portal.before_call = hold_the_first_reader
    results: dict[str, Processed] = {}
    first = threading.Thread(target=lambda: results.update(first=process_now(app)))
    first.start()
    assert first_reading.wait(10)  # the first worker holds the deal and is reading it
    results["second"] = process_now(app)  # the second worker, meanwhile
    second_done.set()
    first.join(10)
    assert (results["first"].events, results["second"].events) == (2, 0)
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410))]


def test_a_clean_deal_loses_its_comment_when_the_agency_wants_none(app: Flask,
                                                                  portal: FakePortal):
    deliver(app, deal_updated(ts=1))
    run_jobs_until_done(app)
    comment_id = int(ours(portal)[0]["ID"])
    everything_off = {rule_id: {"enabled": False} for rule_id in RULES_BY_ID}
    app.extensions["clientguard.config"] = build_config({
        "service": {"comment_when_clean": "delete"}, "rules": everything_off})
    deliver(app, deal_updated(ts=2))
    process_now(app)
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410)),
                               ("crm.timeline.comment.delete", comment_id)]
    assert portal.writes[1].params == {"id": comment_id, "ownerTypeId": 2, "ownerId": 410}
    assert ours(portal) == []


def test_pinned_and_the_responsible_person_notified_once_per_change(
        database_url: str, queue_url: str, portal: FakePortal):
    app = service(database_url, queue_url,
                  {**WEBHOOKS, "pin_sticky": True, "notify_responsible": True})
    try:
        deliver(app, deal_updated(ts=1))
        run_jobs_until_done(app)
        comment_id = int(ours(portal)[0]["ID"])
        assert written(portal) == [("crm.timeline.comment.add", ("deal", 410)),
                                   ("crm.timeline.item.pin", comment_id),
                                   ("im.notify.system.add", None)]
        notification = portal.notifications[0]
        assert (notification["USER_ID"], notification["TAG"], notification["CLIENT_ID"]) == (
            1, "CLIENTGUARD|DEAL|410", "clientguard")
        assert notification["MESSAGE"].endswith(
            "[url=https://acme.bitrix24.example/crm/deal/details/410/]New Deal #1[/url]")
        deliver(app, deal_updated(ts=2))  # nothing changed: no write, no notification
        run_jobs_until_done(app)
        assert len(portal.writes) == 3
    finally:
        close(app)


def test_a_deal_changed_without_an_event_is_caught_up_by_the_review(app: Flask,
                                                                   portal: FakePortal):
    portal.change_deal(411, title="Webshop relaunch")  # the portal's event never arrived
    assert app.extensions["clientguard.jobs"].review() == [EngagementRef("bitrix24", SITE,
                                                                         "411")]
    run_jobs_until_done(app)
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 411))]


def test_an_activity_whose_event_was_lost_is_caught_by_the_review_from_the_offline_queue(
        app_mode: Flask, portal: FakePortal):
    """An e-mail leaves the deal's `updatedTime` as it is: only the offline queue the
    install bound tells the review about it. The client's second discount request turns
    the discount-pressure rule red."""
    installations(app_mode).change(MEMBER_ID, lambda state: {**state, "offline_events": True})
    portal.client_writes(410, "Could you give us a discount on the launch?")
    deliver(app_mode, event_body("ONCRMDEALUPDATE", 410, auth=app_auth(portal)))
    run_jobs_until_done(app_mode)
    comment_id = int(ours(portal)[0]["ID"])
    # A second e-mail: its ONCRMACTIVITYADD never arrives, the offline queue keeps a record.
    email = portal.client_writes(410, "We still need a discount before we sign.")
    queue_offline(portal, "ONCRMACTIVITYADD", {"FIELDS": {"ID": email}})
    assert app_mode.extensions["clientguard.jobs"].review() == [
        EngagementRef("bitrix24", MEMBER_ID, f"activity:{email}")]
    run_jobs_until_done(app_mode)
    assert stored(app_mode) == [("410", "ONCRMDEALUPDATE", "done"),
                                ("410", "review:catch-up", "done")]
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410)),
                               ("crm.timeline.comment.update", comment_id)]
    assert "No repeated discount pressure" in ours(portal)[0]["COMMENT"]
    assert app_mode.extensions["clientguard.jobs"].review() == []  # the queue is empty now


# -- indirect events --------------------------------------------------------------------

def test_indirect_events_are_filed_under_their_deal_by_one_batch_and_evaluated(
        app: Flask, portal: FakePortal):
    email = portal.client_writes(410)
    note = portal.person_comments(410)
    task, invoice = portal.task_of(410), portal.invoice_of(410)
    deliver(app, event_body("ONCRMACTIVITYADD", email, ts=1))
    deliver(app, event_body("ONCRMTIMELINECOMMENTADD", note, ts=2))
    deliver(app, event_body("ONTASKUPDATE", task, ts=3))
    deliver(app, event_body("ONCRMDYNAMICITEMUPDATE", invoice, ts=4))
    assert [key for key, _, _ in stored(app)] == [
        f"activity:{email}", f"timeline-comment:{note}", f"task:{task}", f"invoice:{invoice}"]
    # One worker: two jobs resolving at the same instant would each look the waiting refs up
    # (harmless: the second files nothing, but it is a second call).
    run_jobs_until_done(app, workers=1)
    assert lookups(portal) == [("crm.activity.binding.list", "crm.timeline.comment.get",
                                "tasks.task.get", "crm.item.get")]
    assert stored(app) == [("410", "ONCRMACTIVITYADD", "done"),
                           ("410", "ONCRMTIMELINECOMMENTADD", "done"),
                           ("410", "ONTASKUPDATE", "done"),
                           ("410", "ONCRMDYNAMICITEMUPDATE", "done")]
    assert snapshots(portal) == 1
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410))]


def test_the_echo_of_our_comment_by_our_user_is_ignored_at_intake(app: Flask,
                                                                  portal: FakePortal):
    deliver(app, deal_updated())
    run_jobs_until_done(app)
    echo = event_body("ONCRMTIMELINECOMMENTADD", ours(portal)[0]["ID"],
                      auth=webhook_auth(user_id="1"))
    assert deliver(app, echo) == {"status": "ignored", "event": "ONCRMTIMELINECOMMENTADD",
                                  "reason": "caused by ClientGuard"}
    assert stored(app) == [("410", "ONCRMDEALUPDATE", "done")]


def test_the_echo_of_our_comment_without_its_author_is_resolved_to_no_deal(
        app: Flask, portal: FakePortal):
    deliver(app, deal_updated())
    run_jobs_until_done(app)
    comment_id = ours(portal)[0]["ID"]
    deliver(app, event_body("ONCRMTIMELINECOMMENTADD", comment_id))  # no auth[user_id]
    run_jobs_until_done(app)
    assert stored(app) == [("410", "ONCRMDEALUPDATE", "done"),
                           (f"timeline-comment:{comment_id}", "ONCRMTIMELINECOMMENTADD",
                            "ignored")]
    assert lookups(portal) == [("crm.timeline.comment.get",)]
    assert snapshots(portal) == 1  # not evaluated again
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410))]


# -- the portal's limits and outages ----------------------------------------------------

def test_a_short_rate_limit_storm_is_ridden_out_within_the_call(app: Flask, portal: FakePortal,
                                                                waits: Waits):
    portal.limit_storm(4)  # one attempt and four retries: the fifth gets through
    deliver(app, deal_updated())
    run_jobs_until_done(app)
    assert statuses(app) == {"done"}
    assert portal.methods()[:5] == ["batch"] * 5
    assert len(waits.retries) == 4  # backed off four times, without sleeping
    assert waits.throttle[:4] == [0.5] * 4  # and every worker slowed to the drain rate
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410))]


def test_a_longer_rate_limit_storm_loses_no_event(app: Flask, portal: FakePortal):
    portal.limit_storm(6)
    deliver(app, deal_updated())
    with pytest.raises(RateLimited):
        process_now(app)  # five refusals: this attempt gives up, the event waits again
    assert stored(app) == [("410", "ONCRMDEALUPDATE", "pending")]
    assert portal.writes == []
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert app.extensions["clientguard.jobs"].sweep(later) == [REF]
    run_jobs_until_done(app)
    assert statuses(app) == {"done"}
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410))]


def test_an_outage_longer_than_the_retries_loses_no_event(app: Flask, portal: FakePortal):
    portal.outage(1000)
    deliver(app, deal_updated())
    with pytest.raises(Transient):
        process_now(app)
    with pytest.raises(Transient):
        process_now(app)  # the sweep's next try: still down
    assert stored(app) == [("410", "ONCRMDEALUPDATE", "pending")]
    portal.restore()  # the portal is back
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert app.extensions["clientguard.jobs"].sweep(later) == [REF]
    run_jobs_until_done(app)
    assert statuses(app) == {"done"}
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410))]


# -- what it costs ----------------------------------------------------------------------

def test_a_deal_is_read_with_two_calls_cold_and_one_warm(app: Flask, portal: FakePortal):
    deliver(app, deal_updated(ts=1))
    process_now(app)
    assert portal.methods() == ["batch", "batch", "crm.timeline.comment.add"]
    deliver(app, deal_updated(ts=2))
    process_now(app)
    assert portal.methods()[3:] == ["batch"]  # the portal's catalogue is known: one call
    assert sub_commands(portal.calls)[2] == SNAPSHOT


# -- intake -----------------------------------------------------------------------------

def test_a_wrong_token_is_refused_with_401_and_nothing_stored(app: Flask, portal: FakePortal):
    response = post(app, event_body("ONCRMDEALUPDATE", 410,
                                    auth=webhook_auth(token="not-the-token")))
    assert (response.status_code, response.json["error"]) == (401, "signature")
    assert stored(app) == []


def test_a_json_body_is_refused_with_400(app: Flask, portal: FakePortal):
    response = post(app, b'{"event": "ONCRMDEALUPDATE", "data": {"FIELDS": {"ID": "410"}}}',
                    {"Content-Type": "application/json"})
    assert (response.status_code, response.json["error"]) == (400, "malformed")
    assert "application/x-www-form-urlencoded" in response.json["detail"]
    assert stored(app) == []


def test_an_oversized_body_is_refused_with_413(app: Flask, portal: FakePortal):
    response = post(app, deal_updated() + b"&pad=" + b"x" * (1024 * 1024))
    assert (response.status_code, response.json["error"]) == (413, "request_entity_too_large")
    assert stored(app) == []


def test_unknown_and_unhandled_events_get_202_and_are_not_stored(app: Flask,
                                                                 portal: FakePortal):
    unknown = deal_updated().replace(b"event=ONCRMDEALUPDATE", b"event=ONCRMDEALTELEPORT")
    assert deliver(app, unknown) == {"status": "ignored", "event": "ONCRMDEALTELEPORT",
                                     "reason": "unknown event"}
    contact = event_body("ONCRMCONTACTADD", 84)
    assert deliver(app, contact) == {"status": "ignored", "event": "ONCRMCONTACTADD",
                                     "reason": "not handled"}
    assert stored(app) == []


def test_an_unknown_portal_is_refused_with_401_in_app_mode(app_mode: Flask,
                                                          portal: FakePortal):
    body = event_body("ONCRMDEALUPDATE", 410, auth=app_auth(
        portal, member_id="b334d7c4821f96e33f0a488e7d5f8664"))
    response = post(app_mode, body)
    assert (response.status_code, response.json["error"]) == (401, "signature")
    assert stored(app_mode) == []


# -- secrets ----------------------------------------------------------------------------

def assert_not_logged(records: list[logging.LogRecord], *secrets: str) -> None:
    assert records, "nothing was logged: the witness test would prove nothing"
    for record in records:
        text = record.getMessage() + str(record.args)
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        for secret in secrets:
            assert secret not in text, record


def test_no_webhook_secret_reaches_any_log_record(app: Flask, portal: FakePortal,
                                                  caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    post(app, event_body("ONCRMDEALUPDATE", 410, auth=webhook_auth(token="not-the-token")))
    portal.outage(5)
    deliver(app, deal_updated(ts=1))
    with pytest.raises(Transient):
        process_now(app)  # errors and retries get logged
    portal.limit_storm(2)
    deliver(app, deal_updated(ts=2))
    later = datetime.now(UTC) + timedelta(minutes=5)
    app.extensions["clientguard.jobs"].sweep(later)
    run_jobs_until_done(app)
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410))]
    assert_not_logged(caplog.records, WEBHOOK_CODE, OUTGOING_TOKEN)


# -- app mode: OAuth tokens -------------------------------------------------------------

def test_an_expired_token_is_refreshed_once_stored_and_the_call_repeated(
        app_mode: Flask, portal: FakePortal):
    old = installations(app_mode).load(MEMBER_ID)
    portal.expire_access_token()
    stored_when_repeated: list[str] = []

    def note_the_store(call: Any) -> None:
        if call.token not in (None, old["access_token"]) and not stored_when_repeated:
            stored_when_repeated.append(installations(app_mode).load(MEMBER_ID)["refresh_token"])

    portal.before_call = note_the_store
    deliver(app_mode, event_body("ONCRMDEALUPDATE", 410, auth=app_auth(portal)))
    run_jobs_until_done(app_mode)
    assert statuses(app_mode) == {"done"}
    assert [(r["grant_type"], r["refresh_token"]) for r in portal.token_requests] == [
        ("refresh_token", old["refresh_token"])]
    assert [call.token for call in portal.calls[:2]] == [old["access_token"],
                                                         portal.access_token]
    now = installations(app_mode).load(MEMBER_ID)
    assert (now["access_token"], now["refresh_token"]) == (portal.access_token,
                                                           portal.refresh_token)
    assert stored_when_repeated == [portal.refresh_token]  # stored before the call repeated
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410))]


def test_two_workers_meeting_an_expired_token_at_once_refresh_once(app_mode: Flask,
                                                                   portal: FakePortal):
    expired = installations(app_mode).load(MEMBER_ID)["access_token"]
    portal.expire_access_token()
    both_expired = threading.Barrier(2, timeout=10)

    def meet_at_the_portal(call: Any) -> None:
        if call.token == expired:  # each worker's first call waits for the other's
            both_expired.wait()

    portal.before_call = meet_at_the_portal
    for deal in (410, 411):
        deliver(app_mode, event_body("ONCRMDEALUPDATE", deal, auth=app_auth(portal)))
    other = threading.Thread(target=process_now,
                             args=(app_mode, EngagementRef("bitrix24", MEMBER_ID, "411")))
    other.start()
    process_now(app_mode, APP_REF)
    other.join(10)
    assert len(portal.token_requests) == 1
    assert [call.token for call in portal.calls[:2]] == [expired, expired]
    assert sorted(written(portal)) == [("crm.timeline.comment.add", ("deal", 410)),
                                       ("crm.timeline.comment.add", ("deal", 411))]


class ProcessKilled(BaseException):
    """The worker process dies: nothing after this point runs, no `except Exception` sees
    it."""


class DiesBeforeStoring:
    """The installation store of a worker killed after the token server answered and before
    the answer was stored: the edit runs (the refresh happens), the write never does."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def load(self, site: str) -> Any:
        return self.store.load(site)

    def sites(self) -> list[str]:
        return self.store.sites()

    def change(self, site: str, edit: Callable[[Any], Any]) -> Any:
        def edit_then_die(state: Any) -> Any:
            edit(state)
            raise ProcessKilled

        return self.store.change(site, edit_then_die)


def test_a_refresh_lost_to_a_crash_leaves_the_stored_tokens_and_fails_loudly_after(
        app_mode: Flask, portal: FakePortal, database_url: str, queue_url: str):
    store = installations(app_mode)
    before = store.load(MEMBER_ID)
    app_mode.extensions["clientguard.connectors"]["bitrix24"].attach(DiesBeforeStoring(store))
    portal.expire_access_token()
    deliver(app_mode, event_body("ONCRMDEALUPDATE", 410, auth=app_auth(portal)))
    with pytest.raises(ProcessKilled):
        process_now(app_mode, APP_REF)
    assert store.load(MEMBER_ID) == before  # nothing half-written
    assert portal.refresh_token != before["refresh_token"]  # but the old one is spent
    assert stored(app_mode) == [("410", "ONCRMDEALUPDATE", "processing")]

    restarted = service(database_url, queue_url, LOCAL_APP)  # the next worker process
    try:
        after_the_lease = datetime.now(UTC) + timedelta(minutes=10)
        with pytest.raises(AuthError, match="invalid_grant") as refused:
            process_now(restarted, APP_REF, now=after_the_lease)
        assert REOPEN_HINT in str(refused.value)
        with restarted.extensions["clientguard.database"].session() as session:
            event = session.scalars(select(EventRecord)).one()
            assert (event.status, REOPEN_HINT in (event.last_error or "")) == ("pending", True)
        assert portal.writes == []

        delivered = portal.reopen_app()  # an administrator opens the application
        store.change(MEMBER_ID, lambda state: {**state, **delivered})
        process_now(restarted, APP_REF, now=after_the_lease)
        assert stored(restarted) == [("410", "ONCRMDEALUPDATE", "done")]
        assert written(portal) == [("crm.timeline.comment.add", ("deal", 410))]
    finally:
        close(restarted)


def test_no_token_or_client_secret_reaches_any_log_record(app_mode: Flask, portal: FakePortal,
                                                          caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    old = installations(app_mode).load(MEMBER_ID)
    portal.expire_access_token()
    deliver(app_mode, event_body("ONCRMDEALUPDATE", 410, auth=app_auth(portal)))
    run_jobs_until_done(app_mode)
    assert written(portal) == [("crm.timeline.comment.add", ("deal", 410))]
    assert_not_logged(caplog.records, CLIENT_SECRET, APPLICATION_TOKEN, old["access_token"],
                      old["refresh_token"], portal.access_token, portal.refresh_token)
