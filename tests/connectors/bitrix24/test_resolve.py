"""Resolving indirect events to deals: one `batch` for every kind, and what each answer means.

Runs the real `Bitrix24Client` inside `portal`, a `responses.RequestsMock` that fails on an
unused stub. The batch answer is `fixtures/rest/batch__resolve_mixed.json` (composed from the
documented examples, see `fixtures/rest/SOURCES.md`); the request body is checked whole.
Expected values are written out. Nothing sleeps: the client and its bucket share a fake clock.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from responses import matchers

from connectors.base import EngagementRef
from connectors.bitrix24.auth import WebhookAuth
from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.resolve import resolve_owners
from connectors.bitrix24.throttle import LeakyBucket
from connectors.errors import AuthError
from tests.connectors.bitrix24.stores import FakeClock

FIXTURES = Path(__file__).parent / "fixtures"
REST = "https://acme.bitrix24.com/rest/1/WITNESS0hook0code7q"
SITE = "acme-b24"
BOT = "1"  # the webhook's user: ClientGuard writes as user 1


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


MIXED = fixture("rest/batch__resolve_mixed.json")




@pytest.fixture
def client() -> Bitrix24Client:
    clock = FakeClock(1_725_624_000.0)
    bucket = LeakyBucket(2.0, 50, clock=clock, sleep=clock.sleep)
    return Bitrix24Client(WebhookAuth(f"{REST}/", site=SITE), bucket, sleep=clock.sleep,
                          clock=clock)


def ref(key: str) -> EngagementRef:
    return EngagementRef("bitrix24", SITE, key)


DEAL_410 = ref("410")

MIXED_REFS = [
    ref("timeline-comment:999"), ref("timeline-comment:1001"), ref("timeline-comment:1003"),
    ref("timeline-comment:1010"), ref("timeline-comment:1011"), ref("timeline-comment:1012"),
    ref("activity:20"), ref("activity:21"), ref("activity:22"), ref("activity:23"),
    ref("task:8017"), ref("task:8018"), ref("task:8019"),
    ref("invoice:7"), ref("invoice:8"), ref("invoice:9"),
]
MIXED_BODY = {"halt": 0, "cmd": {
    "comment_999": "crm.timeline.comment.get?id=999",
    "comment_1001": "crm.timeline.comment.get?id=1001",
    "comment_1003": "crm.timeline.comment.get?id=1003",
    "comment_1010": "crm.timeline.comment.get?id=1010",
    "comment_1011": "crm.timeline.comment.get?id=1011",
    "comment_1012": "crm.timeline.comment.get?id=1012",
    "activity_20": "crm.activity.binding.list?activityId=20",
    "activity_21": "crm.activity.binding.list?activityId=21",
    "activity_22": "crm.activity.binding.list?activityId=22",
    "activity_23": "crm.activity.binding.list?activityId=23",
    "task_8017": "tasks.task.get?taskId=8017&select[0]=ID&select[1]=UF_CRM_TASK",
    "task_8018": "tasks.task.get?taskId=8018&select[0]=ID&select[1]=UF_CRM_TASK",
    "task_8019": "tasks.task.get?taskId=8019&select[0]=ID&select[1]=UF_CRM_TASK",
    "invoice_7": "crm.item.get?entityTypeId=31&id=7",
    "invoice_8": "crm.item.get?entityTypeId=31&id=8",
    "invoice_9": "crm.item.get?entityTypeId=31&id=9",
}}


# -- every kind in one batch ------------------------------------------------------------------

def test_every_kind_is_resolved_in_one_batch(portal, client):
    call = portal.post(f"{REST}/batch", json=MIXED,
                       match=[matchers.json_params_matcher(MIXED_BODY)])
    found = resolve_owners(client, MIXED_REFS, BOT)
    assert call.call_count == 1
    assert found == {
        # the documented comment: by user 1 (our user) but without the marker, so a person
        # writing through the same account
        ref("timeline-comment:999"): DEAL_410,
        ref("timeline-comment:1001"): None,  # our sticky comment: marker, by user 1
        ref("timeline-comment:1003"): DEAL_410,  # John Doe quoting it copies the marker
        ref("timeline-comment:1010"): None,  # on contact 84
        ref("timeline-comment:1011"): None,  # deleted: "Not found."
        # timeline-comment:1012 "Access denied.": left out, asked again later
        ref("activity:20"): DEAL_410,  # owned by contact 84, bound to deal 410 too
        ref("activity:21"): None,  # bound to contact 84 only
        # activity:22 OPERATION_TIME_LIMIT: left out
        ref("activity:23"): None,  # deleted: NOT_FOUND
        ref("task:8017"): DEAL_410,  # C_627, CO_591, D_410, D_411: the first deal
        ref("task:8018"): None,  # linked to company 591 only
        ref("task:8019"): None,  # result [] : gone, or not ours to see
        ref("invoice:7"): DEAL_410,  # parentId2 410
        ref("invoice:8"): None,  # deleted: NOT_FOUND
        # invoice:9 INTERNAL_SERVER_ERROR inside the batch: left out
    }


def test_without_a_bot_user_any_marked_comment_is_ours(portal, client):
    portal.post(f"{REST}/batch", json=MIXED, match=[matchers.json_params_matcher(
        {"halt": 0, "cmd": {"comment_1001": "crm.timeline.comment.get?id=1001",
                            "comment_1003": "crm.timeline.comment.get?id=1003"}})])
    found = resolve_owners(client, [ref("timeline-comment:1001"), ref("timeline-comment:1003")],
                           None)
    assert found == {ref("timeline-comment:1001"): None, ref("timeline-comment:1003"): None}


def test_a_task_linked_to_several_deals_logs_the_skipped_ones(portal, client, caplog):
    portal.post(f"{REST}/batch", json=MIXED, match=[matchers.json_params_matcher(
        {"halt": 0, "cmd": {"task_8017": MIXED_BODY["cmd"]["task_8017"]}})])
    with caplog.at_level(logging.DEBUG, logger="connectors.bitrix24.resolve"):
        found = resolve_owners(client, [ref("task:8017")], BOT)
    assert found == {ref("task:8017"): DEAL_410}
    assert "task 8017 is linked to deals 410, 411; taking 410, skipping 411" in caplog.messages


def test_a_ref_asked_twice_costs_one_command(portal, client):
    portal.post(f"{REST}/batch", json=MIXED, match=[matchers.json_params_matcher(
        {"halt": 0, "cmd": {"invoice_7": "crm.item.get?entityTypeId=31&id=7"}})])
    assert resolve_owners(client, [ref("invoice:7"), ref("invoice:7")], BOT) == {
        ref("invoice:7"): DEAL_410}


def test_fifty_activities_fit_one_batch(portal, client):
    refs = [ref(f"activity:{n}") for n in range(100, 150)]
    answer = {"result": {"result": {f"activity_{n}": [{"entityTypeId": 2, "entityId": n + 1000}]
                                    for n in range(100, 150)},
                         "result_error": [], "result_total": [], "result_next": [],
                         "result_time": []},
              "time": MIXED["time"]}
    call = portal.post(f"{REST}/batch", json=answer, match=[matchers.json_params_matcher(
        {"halt": 0, "cmd": {f"activity_{n}": f"crm.activity.binding.list?activityId={n}"
                            for n in range(100, 150)}})])
    found = resolve_owners(client, refs, BOT)
    assert call.call_count == 1
    assert found[ref("activity:100")] == ref("1100")
    assert found[ref("activity:149")] == ref("1149")
    assert len(found) == 50


# -- answers it cannot read: left out -----------------------------------------------------------

@pytest.mark.parametrize(("key", "command", "answer"), [
    ("task:5", "task_5", {"task": "deleted?"}),
    ("invoice:5", "invoice_5", {"item": {"parentId2": "four hundred"}}),
    ("activity:5", "activity_5", {"entityTypeId": 2, "entityId": 410}),
    ("timeline-comment:5", "comment_5", True),
])
def test_an_unreadable_answer_is_left_out(portal, client, key, command, answer, caplog):
    portal.post(f"{REST}/batch", json={"result": {"result": {command: answer},
                                                  "result_error": []}, "time": {}})
    with caplog.at_level(logging.WARNING, logger="connectors.bitrix24.resolve"):
        assert resolve_owners(client, [ref(key)], BOT) == {}
    assert len(caplog.records) == 1


def test_a_command_the_batch_did_not_answer_is_left_out(portal, client):
    portal.post(f"{REST}/batch", json={"result": {"result": [], "result_error": []},
                                       "time": {}})
    assert resolve_owners(client, [ref("task:5")], BOT) == {}


# -- the batch call itself fails: propagates ----------------------------------------------------

def test_a_failed_batch_call_propagates(portal, client):
    error = fixture("errors.json")["NO_AUTH_FOUND"]
    portal.post(f"{REST}/batch", status=error["http_status"], json=error["body"])
    with pytest.raises(AuthError, match="NO_AUTH_FOUND"):
        resolve_owners(client, [ref("task:5")], BOT)


def test_no_refs_no_call(portal, client):  # portal: any call would fail
    assert resolve_owners(client, [], BOT) == {}


# -- programming errors: ValueError before any call ----------------------------------------------

@pytest.mark.parametrize("bad", [
    ref("410"),  # a deal key: nothing to resolve
    ref("lead:5"),  # an unknown kind
    ref("task:"),  # no id
    ref("task:5a"),
    ref("timeline-comment:-1"),
    EngagementRef("jira", SITE, "task:5"),  # another connector
    EngagementRef("bitrix24", "other-portal", "task:5"),  # another portal
])
def test_a_ref_that_is_not_an_indirect_key_of_this_portal_is_refused(portal, client, bad):
    with pytest.raises(ValueError):
        resolve_owners(client, [ref("task:1"), bad], BOT)


def test_more_than_fifty_refs_are_refused(portal, client):
    with pytest.raises(ValueError, match="at most 50"):
        resolve_owners(client, [ref(f"task:{n}") for n in range(51)], BOT)
