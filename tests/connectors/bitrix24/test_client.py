"""The Bitrix24 REST client against stubbed portal answers.

Every test runs inside `portal`, a `responses.RequestsMock` that fails on an unused stub.
Answers are the fixtures copied from the docs and from captured responses
(`fixtures/SOURCES.md`); nothing sleeps for real: the client and its bucket share a fake
clock that moves only when something sleeps.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from connectors.bitrix24.auth import REOPEN_HINT, PortalAuth, WebhookAuth
from connectors.bitrix24.client import (
    BatchResult,
    Bitrix24Client,
    TokenExpired,
    encode_query,
    error_code,
    parse_errors,
    retry_safe,
)
from connectors.bitrix24.throttle import LeakyBucket
from connectors.errors import (
    AuthError,
    Misrouted,
    NotFound,
    PayloadError,
    PlatformError,
    RateLimited,
    Transient,
)
from connectors.http import BACKOFF_FIRST, JITTER, MAX_ATTEMPTS, MAX_TOTAL_WAIT, USER_AGENT
from tests.connectors.bitrix24.stores import FakeClock, MemoryInstallationStore

FIXTURES = Path(__file__).parent / "fixtures"
WEBHOOK_CODE = "WITNESS0hook0code7q"
REST = f"https://acme.bitrix24.com/rest/1/{WEBHOOK_CODE}"
APP_REST = "https://acme.bitrix24.com/rest"
TOKEN_URL = "https://oauth.bitrix.info/oauth/token/"
MEMBER = "a223c6b3710f85df22e9377d6c4f7553"
CLIENT_ID = "local.6716ce0a1b2c34.56789012"
CLIENT_SECRET = "WITNESS-client-secret-Qm9vYXJzZWNyZXQ"
OLD_ACCESS = "WITNESS-old-access-3s6lr4kr3cv2od4v"
OLD_REFRESH = "WITNESS-old-refresh-nfhxkzk3gvrg375w"
NEW_ACCESS = "WITNESS-new-access-ydtj8pho532wydb5"
NEW_REFRESH = "WITNESS-new-refresh-4f9k4jpmg13usmyb"
WITNESSES = (WEBHOOK_CODE, CLIENT_SECRET, OLD_ACCESS, OLD_REFRESH, NEW_ACCESS, NEW_REFRESH)
NOW = 1_724_916_000.0

PORTAL_STATE = {
    "member_id": MEMBER, "domain": "acme.bitrix24.com", "client_endpoint": f"{APP_REST}/",
    "server_endpoint": "https://oauth.bitrix.info/rest/", "application_token": "x" * 32,
    "access_token": OLD_ACCESS, "refresh_token": OLD_REFRESH, "expires": 1_724_915_000,
    "scope": "crm,task,im,user,placement", "user_id": "1", "installed": True,
}
TOKEN_ANSWER = {
    "access_token": NEW_ACCESS, "client_endpoint": f"{APP_REST}/", "domain": "oauth.bitrix.info",
    "expires": 1_724_919_600, "expires_in": 3600, "member_id": MEMBER,
    "refresh_token": NEW_REFRESH, "scope": "crm,task,im,user,placement",
    "server_endpoint": "https://oauth.bitrix.info/rest/", "status": "L", "user_id": 1,
}
REFRESH_PARAMS = {"grant_type": "refresh_token", "client_id": CLIENT_ID,
                  "client_secret": CLIENT_SECRET, "refresh_token": OLD_REFRESH}
EXPIRED = {"error": "expired_token", "error_description": "The access token provided has expired."}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


ERRORS = fixture("errors.json")
BATCHES = fixture("response_batch.json")
DEAL = fixture("response_crm.deal.get.json")




class SpyBucket(LeakyBucket):
    """The real bucket, counting what the client asks of it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(2.0, 50, clock=clock, sleep=clock.sleep)
        self.acquired = 0
        self.penalised = 0

    def acquire(self) -> float:
        self.acquired += 1
        return super().acquire()

    def penalise(self) -> None:
        self.penalised += 1
        super().penalise()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def bucket(clock) -> SpyBucket:
    return SpyBucket(clock)


@pytest.fixture
def client(clock, bucket) -> Bitrix24Client:
    return Bitrix24Client(WebhookAuth(f"{REST}/", site="acme-b24"), bucket,
                          sleep=clock.sleep, clock=clock)


@pytest.fixture
def store() -> MemoryInstallationStore:
    return MemoryInstallationStore({MEMBER: PORTAL_STATE})


@pytest.fixture
def app_client(clock, bucket, store) -> Bitrix24Client:
    auth = PortalAuth(store, MEMBER, CLIENT_ID, CLIENT_SECRET, clock=clock)
    return Bitrix24Client(auth, bucket, sleep=clock.sleep, clock=clock)


def body(call: Any) -> Any:
    return json.loads(call.request.body)


# -- success -------------------------------------------------------------------------------

def test_a_call_posts_json_and_returns_the_result(portal, client, bucket):
    portal.post(f"{REST}/crm.deal.get", json=DEAL, match=[
        matchers.json_params_matcher({"id": 410}),
        matchers.header_matcher({"Accept": "application/json",
                                 "Content-Type": "application/json",
                                 "User-Agent": USER_AGENT})])
    deal = client.call("crm.deal.get", {"id": 410})
    assert (deal["ID"], deal["TITLE"], deal["STAGE_ID"]) == ("410", "New Deal #1", "PREPARATION")
    assert bucket.acquired == 1


def test_call_full_keeps_total_next_and_time(portal, client):
    portal.post(f"{REST}/crm.item.list", json=fixture("response_crm.item.list.captured.json"))
    page = client.call_full("crm.item.list", {"entityTypeId": 1038})
    assert [item["id"] for item in page.result["items"]] == [1, 2, 3]
    assert page.total == 3
    assert page.next is None
    assert page.time["start"] == 1716807327.463936


def test_an_installed_portal_sends_its_token_in_the_body(portal, app_client):
    portal.post(f"{APP_REST}/crm.deal.get", json=DEAL,
                match=[matchers.json_params_matcher({"id": 410, "auth": OLD_ACCESS})])
    assert app_client.call("crm.deal.get", {"id": 410})["ID"] == "410"


# -- pagination ----------------------------------------------------------------------------

def test_list_all_follows_next_with_start(portal, client):
    first = {"result": {"items": [{"id": 100 + n} for n in range(50)]}, "total": 53,
             "next": 50, "time": {}}
    portal.post(f"{REST}/crm.item.list", json=first, match=[matchers.json_params_matcher(
        {"entityTypeId": 2, "select": ["id", "title"], "start": 0})])
    portal.post(f"{REST}/crm.item.list", json=fixture("response_crm.item.list.captured.json"),
                match=[matchers.json_params_matcher(
                    {"entityTypeId": 2, "select": ["id", "title"], "start": 50})])
    items = client.list_all("crm.item.list", {"entityTypeId": 2, "select": ["id", "title"]},
                            items_key="items")
    assert len(items) == 53
    assert items[0] == {"id": 100}
    assert items[-1]["title"] == "Полезный вебинар Захар Технолоджи 06.06.2024 в 14:00 мск"


def test_list_all_reads_plain_list_results(portal, client):
    portal.post(f"{REST}/crm.deal.contact.items.get", json={
        "result": [{"CONTACT_ID": 55, "SORT": 100, "ROLE_ID": 0, "IS_PRIMARY": "Y"}],
        "time": {}})
    assert client.list_all("crm.deal.contact.items.get", {"id": 410}) == [
        {"CONTACT_ID": 55, "SORT": 100, "ROLE_ID": 0, "IS_PRIMARY": "Y"}]


def test_an_object_result_needs_items_key(portal, client):
    portal.post(f"{REST}/tasks.task.list", json={"result": {"tasks": []}, "total": 0})
    with pytest.raises(ValueError, match="items_key"):
        client.list_all("tasks.task.list")


# -- batch: encoding -----------------------------------------------------------------------

def test_batch_encodes_each_command_as_a_php_query_string(portal, client):
    portal.post(f"{REST}/batch", json=BATCHES["docs_example_halt0_success"], match=[
        matchers.json_params_matcher({"halt": 0, "cmd": {
            "deal": "crm.deal.get?id=410",
            "contacts": "crm.deal.contact.items.get?id=$result[deal][ID]",
            "comments": "crm.timeline.comment.list?filter[ENTITY_ID]=410"
                        "&filter[ENTITY_TYPE]=deal&select[0]=ID&select[1]=COMMENT"
                        "&order[ID]=DESC",
            "activities": "crm.activity.list?filter[%3E%3DCREATED]=2026-11-01T00%3A00%3A00"
                          "%2B03%3A00&filter[BINDINGS][0][OWNER_TYPE_ID]=2"
                          "&filter[BINDINGS][0][OWNER_ID]=410",
            "me": "user.current",
        }})])
    client.batch({
        "deal": ("crm.deal.get", {"id": 410}),
        "contacts": ("crm.deal.contact.items.get", {"id": "$result[deal][ID]"}),
        "comments": ("crm.timeline.comment.list", {
            "filter": {"ENTITY_ID": 410, "ENTITY_TYPE": "deal"}, "select": ["ID", "COMMENT"],
            "order": {"ID": "DESC"}}),
        "activities": ("crm.activity.list", {"filter": {
            ">=CREATED": "2026-11-01T00:00:00+03:00",
            "BINDINGS": [{"OWNER_TYPE_ID": 2, "OWNER_ID": 410}]}}),
        "me": ("user.current", {}),
    })


def test_batch_halt_is_sent_as_1(portal, client):
    portal.post(f"{REST}/batch", json=BATCHES["docs_example_halt0_success"], match=[
        matchers.json_params_matcher({"halt": 1, "cmd": {"get_user": "user.current"}})])
    client.batch({"get_user": ("user.current", {})}, halt=True)


@pytest.mark.parametrize(("params", "query"), [
    ({"fields": {"COMMENT": "a&b=c d ✓ 100%"}},
     "fields[COMMENT]=a%26b%3Dc%20d%20%E2%9C%93%20100%25"),
    ({"flag": True, "off": False, "skip": None, "empty": [], "none": {}}, "flag=1&off=0"),
    ({"id": "$result[deal][ID]"}, "id=$result[deal][ID]"),
    ({"text": "deal $result[deal][ID] & more"}, "text=deal%20%24result%5Bdeal%5D%5BID%5D%20%26"
                                               "%20more"),
    ({"filter": {"!STAGE_ID": ["WON", "LOSE"]}}, "filter[%21STAGE_ID][0]=WON"
                                                 "&filter[%21STAGE_ID][1]=LOSE"),
])
def test_encode_query(params, query):
    assert encode_query(params) == query


def test_batch_refuses_more_than_50_commands(client):
    commands = {f"d{n}": ("crm.deal.get", {"id": n}) for n in range(51)}
    with pytest.raises(ValueError, match="at most 50"):
        client.batch(commands)


@pytest.mark.parametrize("commands", [
    {"inner": ("batch", {"cmd": {}})},
    {"bad key": ("crm.deal.get", {"id": 1})},
    {"ok": ("crm.deal.get?id=1", {})},
])
def test_batch_refuses_nested_batches_odd_keys_and_odd_methods(client, commands):
    with pytest.raises(ValueError):
        client.batch(commands)


def test_an_empty_batch_sends_nothing(client):
    assert client.batch({}) == BatchResult()


# -- batch: decoding -----------------------------------------------------------------------

def test_batch_success_is_decoded_by_key(portal, client):
    portal.post(f"{REST}/batch", json=BATCHES["docs_example_halt0_success"])
    answer = client.batch({
        "get_user": ("user.current", {}),
        "get_department": ("department.get", {"ID": "$result[get_user][UF_DEPARTMENT][0]"}),
    })
    assert answer.results["get_user"]["NAME"] == "John"
    assert answer.value("get_department") == [{"ID": "1", "NAME": "DEMO", "SORT": 500}]
    assert answer.errors == {}
    assert answer.totals == {"get_department": 1}
    assert answer.nexts == {}
    assert answer.times["get_user"]["duration"] == 0.0032150745391845703


def test_batch_errors_by_key_become_typed_errors(portal, client):
    portal.post(f"{REST}/batch", json=BATCHES["docs_example_halt0_all_errors"])
    answer = client.batch({"get_user": ("user.current", {}),
                           "get_department": ("department.get", {"ID": 1})})
    assert answer.results == {}
    assert set(answer.errors) == {"get_user", "get_department"}
    assert all(type(error) is AuthError for error in answer.errors.values())
    assert error_code(answer.errors["get_user"]) == "INSUFFICIENT_SCOPE"
    assert str(answer.errors["get_user"]) == (
        "batch get_user (user.current): Bitrix24 answered insufficient_scope")
    with pytest.raises(AuthError):
        answer.value("get_department")


def test_batch_error_list_quirk_maps_positions_to_numeric_keys(portal, client):
    # Captured: commands keyed by lead id 0, 1 and 35943; PHP turns the error array keyed
    # 0 and 1 into a JSON list.
    portal.post(f"{REST}/batch", json=BATCHES["captured_mixed_success_and_errors__fast_bitrix24"])
    answer = client.batch({"0": ("crm.lead.get", {"ID": 0}), "1": ("crm.lead.get", {"ID": 1}),
                           "35943": ("crm.lead.get", {"ID": 35943})})
    assert answer.results == {"35943": {"ID": "35943"}}
    assert type(answer.errors["0"]) is PayloadError
    assert str(answer.errors["0"]) == (
        "batch 0 (crm.lead.get): Bitrix24 answered an error: ID is not defined or invalid.")
    assert type(answer.errors["1"]) is NotFound
    assert answer.unmapped_errors == []
    assert answer.times["35943"]["operating"] == 1.831031084060669


def test_batch_of_two_errors_quirk(portal, client):
    portal.post(f"{REST}/batch", json=BATCHES["captured_batch_of_two_errors__fast_bitrix24"])
    answer = client.batch({"0": ("crm.lead.get", {"ID": 0}), "1": ("crm.lead.get", {"ID": 1})})
    assert answer.results == {}
    assert [type(answer.errors[key]) for key in ("0", "1")] == [PayloadError, NotFound]


def test_batch_errors_tied_to_no_command_are_kept(portal, client):
    portal.post(f"{REST}/batch", json=BATCHES["captured_batch_of_two_errors__fast_bitrix24"])
    answer = client.batch({"lead_a": ("crm.lead.get", {"ID": 0}),
                           "lead_b": ("crm.lead.get", {"ID": 1})})
    assert answer.errors == {}
    assert [type(error) for error in answer.unmapped_errors] == [PayloadError, NotFound]
    with pytest.raises(PayloadError, match="did not run"):
        answer.value("lead_a")


# -- error mapping -------------------------------------------------------------------------

ERROR_CASES = [
    pytest.param("QUERY_LIMIT_EXCEEDED", RateLimited, id="503-query-limit"),
    pytest.param("OPERATION_TIME_LIMIT", RateLimited, id="429-operation-time"),
    pytest.param("expired_token", TokenExpired, id="401-expired-token"),
    pytest.param("NO_AUTH_FOUND", AuthError, id="401-no-auth"),
    pytest.param("insufficient_scope", AuthError, id="403-scope"),
    pytest.param("ACCESS_DENIED_event_offline_get", AuthError, id="403-access-denied"),
    pytest.param("crm.timeline.comment.add_NOT_FOUND", NotFound, id="400-not-found"),
    pytest.param("rest_v3_validation_tasks.task.chat.message.send", PayloadError,
                 id="400-rest-v3"),
]


def answered(portal: responses.RequestsMock, status: int, **kwargs: Any) -> requests.Response:
    portal.post(f"{REST}/x.y", status=status, **kwargs)
    return requests.post(f"{REST}/x.y", timeout=1)


@pytest.mark.parametrize(("name", "error"), ERROR_CASES)
def test_fixture_errors_become_typed_errors(portal, name, error):
    case = ERRORS[name]
    raised = parse_errors(answered(portal, case["http_status"], json=case["body"]),
                          where="POST x.y", now=NOW)
    assert type(raised) is error
    assert raised.status == case["http_status"]
    assert str(raised).startswith(f"POST x.y: Bitrix24 answered {case['http_status']} ")


def test_rest_v3_validation_messages_are_kept(portal):
    case = ERRORS["rest_v3_validation_tasks.task.chat.message.send"]
    raised = parse_errors(answered(portal, 400, json=case["body"]), where="POST x.y", now=NOW)
    assert str(raised) == (
        "POST x.y: Bitrix24 answered 400 BITRIX_REST_V3_EXCEPTION_VALIDATION_DTOVALIDATIONEXCEP"
        'TION: Error during object validation; The required field "taskId" is not filled')


def test_an_error_in_a_200_answer_is_an_error(portal):
    # the OAuth server's PAYMENT_REQUIRED; its HTTP status is not documented
    case = ERRORS["oauth_server_PAYMENT_REQUIRED"]
    raised = parse_errors(answered(portal, 200, json=case["body"]), where="POST x.y", now=NOW)
    assert type(raised) is AuthError


@pytest.mark.parametrize(("status", "kwargs", "error", "code"), [
    (500, {"json": {"error": "PORTAL_DELETED", "error_description": "Portal was deleted"}},
     AuthError, "PORTAL_DELETED"),
    (404, {"json": {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}},
     NotFound, "ERROR_METHOD_NOT_FOUND"),
    (400, {"json": {"error": "OWNER_NOT_FOUND", "error_description": "Owner not found."}},
     NotFound, "OWNER_NOT_FOUND"),
    (400, {"json": {"error": "", "error_description": "Not found"}}, NotFound, None),
    (403, {"json": {"error": "WRONG_AUTH_TYPE", "error_description": "Current authorization "
                    "type is denied for this method"}}, AuthError, "WRONG_AUTH_TYPE"),
    (403, {"json": {"error": "user_access_error", "error_description": "no access"}},
     AuthError, "USER_ACCESS_ERROR"),
    (401, {"json": {"error": "INVALID_CREDENTIALS", "error_description": "Invalid request "
                    "credentials"}}, AuthError, "INVALID_CREDENTIALS"),
    (500, {"json": {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server "
                    "error"}}, Transient, "INTERNAL_SERVER_ERROR"),
    (503, {"json": {"error": "OVERLOAD_LIMIT", "error_description": "REST API is blocked due "
                    "to overload."}}, RateLimited, "OVERLOAD_LIMIT"),
    (400, {"json": {"error": "INVALID_ARG_VALUE", "error_description": "Empty comment"}},
     PayloadError, "INVALID_ARG_VALUE"),
    (405, {"json": {"error": "ERROR_BATCH_METHOD_NOT_ALLOWED", "error_description": "Method "
                    "is not allowed for batch usage"}}, PayloadError,
     "ERROR_BATCH_METHOD_NOT_ALLOWED"),
    (502, {"body": "<html><head><title>502 Bad Gateway</title></head></html>",
           "content_type": "text/html"}, Transient, None),
    (503, {"body": "<html><body>503 | QUERY_LIMIT_EXCEEDED<br>Too many requestes<br></body>"
                   "</html>", "content_type": "text/html"}, RateLimited, "QUERY_LIMIT_EXCEEDED"),
    (200, {"body": "<html><title>Method is blocked due to operation time limit</title></html>",
           "content_type": "text/html"}, RateLimited, "OPERATION_TIME_LIMIT"),
    (200, {"body": "<html><title>Bitrix24</title></html>", "content_type": "text/html"},
     Transient, None),
    (504, {"body": ""}, Transient, None),
    (404, {"body": "<html><title>404 Not Found</title></html>", "content_type": "text/html"},
     Misrouted, None),  # a wrong portal URL or a proxy: not "the deal is gone"
])
def test_other_error_shapes(portal, status, kwargs, error, code):
    raised = parse_errors(answered(portal, status, **kwargs), where="POST x.y", now=NOW)
    assert type(raised) is error
    assert error_code(raised) == code
    assert "<" not in str(raised)


# -- retries, waits, limits ----------------------------------------------------------------

LIMIT = ERRORS["QUERY_LIMIT_EXCEEDED"]


def test_a_query_limit_storm_is_ridden_out_without_sleeping(portal, client, clock, bucket):
    for _ in range(3):
        portal.post(f"{REST}/crm.deal.get", status=503, json=LIMIT["body"])
    portal.post(f"{REST}/crm.deal.get", json=DEAL)
    assert client.call("crm.deal.get", {"id": 410})["ID"] == "410"
    assert len(portal.calls) == 4
    assert bucket.acquired == 4
    assert bucket.penalised == 3
    assert len(clock.sleeps) == 3
    for attempt, waited in enumerate(clock.sleeps, start=1):
        base = BACKOFF_FIRST * 2 ** (attempt - 1)
        assert base * JITTER[0] <= waited <= base * JITTER[1]


def test_a_storm_longer_than_the_bound_raises_rate_limited(portal, client, clock):
    portal.post(f"{REST}/crm.deal.get", status=503, json=LIMIT["body"])
    with pytest.raises(RateLimited, match="QUERY_LIMIT_EXCEEDED"):
        client.call("crm.deal.get", {"id": 410})
    assert len(portal.calls) <= MAX_ATTEMPTS
    assert sum(clock.sleeps) <= MAX_TOTAL_WAIT


def test_a_write_is_retried_when_the_portal_refused_it(portal, client, bucket):
    portal.post(f"{REST}/crm.timeline.comment.add", status=503, json=LIMIT["body"])
    portal.post(f"{REST}/crm.timeline.comment.add", json={"result": 999, "time": {}})
    assert client.call("crm.timeline.comment.add", {"fields": {
        "ENTITY_ID": 410, "ENTITY_TYPE": "deal", "COMMENT": "ClientGuard"}}) == 999
    assert bucket.penalised == 1


def test_operation_time_limit_waits_until_operating_reset_at(portal, client, clock):
    limited = {**ERRORS["OPERATION_TIME_LIMIT"]["body"],
               "time": {"operating": 481.2, "operating_reset_at": NOW + 12}}
    portal.post(f"{REST}/crm.activity.list", status=429, json=limited)
    portal.post(f"{REST}/crm.activity.list", json={"result": [], "total": 0, "time": {}})
    assert client.call("crm.activity.list", {"filter": {"OWNER_ID": 410}}) == []
    assert clock.sleeps == [12.0]


def test_operation_time_limit_without_a_time_block_waits_retry_after(portal, client, clock):
    portal.post(f"{REST}/crm.timeline.comment.add", status=429,
                json=ERRORS["OPERATION_TIME_LIMIT"]["body"], headers={"Retry-After": "20"})
    portal.post(f"{REST}/crm.timeline.comment.add", json={"result": 5, "time": {}})
    assert client.call("crm.timeline.comment.add", {"fields": {"COMMENT": "x"}}) == 5
    assert clock.sleeps == [20.0]


def test_an_operating_reset_past_the_bound_is_left_to_the_queue(portal, client, clock):
    limited = {**ERRORS["OPERATION_TIME_LIMIT"]["body"],
               "time": {"operating_reset_at": NOW + 300}}
    portal.post(f"{REST}/crm.activity.list", status=429, json=limited)
    with pytest.raises(RateLimited) as raised:
        client.call("crm.activity.list")
    assert raised.value.retry_after == 300.0
    assert clock.sleeps == []


@pytest.mark.parametrize("answer", [
    pytest.param({"status": 500, "json": {"error": "INTERNAL_SERVER_ERROR",
                                          "error_description": "Internal server error"}},
                 id="500"),
    pytest.param({"body": requests.exceptions.ReadTimeout("read timed out")}, id="timeout"),
])
def test_a_write_that_failed_ambiguously_is_not_repeated(portal, client, clock, answer):
    portal.post(f"{REST}/crm.timeline.comment.add", **answer)
    with pytest.raises(Transient):
        client.call("crm.timeline.comment.add", {"fields": {"COMMENT": "x"}})
    assert len(portal.calls) == 1
    assert clock.sleeps == []


def test_a_request_that_gets_no_answer_otherwise_fails_without_its_url(portal, client):
    """`requests` puts the URL, which holds the webhook's secret code, in its errors."""
    portal.post(f"{REST}/crm.deal.get", body=requests.exceptions.TooManyRedirects(
        f"Exceeded 30 redirects: {REST}/crm.deal.get"))
    with pytest.raises(PlatformError) as raised:
        client.call("crm.deal.get", {"id": 7})
    assert not isinstance(raised.value, Transient)  # not retried: it would go round again
    assert "TooManyRedirects" in str(raised.value)
    assert WEBHOOK_CODE not in str(raised.value) and raised.value.__cause__ is None


@pytest.mark.parametrize("method", ["crm.deal.get", "crm.timeline.comment.update",
                                    "crm.timeline.comment.delete"])
def test_reads_updates_and_deletes_are_retried_after_a_5xx(portal, client, method):
    portal.post(f"{REST}/{method}", status=502, body="Bad Gateway")
    portal.post(f"{REST}/{method}", body=requests.exceptions.ConnectionError("reset"))
    portal.post(f"{REST}/{method}", json={"result": True, "time": {}})
    assert client.call(method, {"id": 7}) is True
    assert len(portal.calls) == 3


def test_a_batch_with_a_write_is_not_repeated_after_a_5xx(portal, client):
    portal.post(f"{REST}/batch", status=500, json={"error": "INTERNAL_SERVER_ERROR",
                                                   "error_description": "Internal"})
    with pytest.raises(Transient):
        client.batch({"deal": ("crm.deal.get", {"id": 1}),
                      "note": ("crm.timeline.comment.add", {"fields": {"COMMENT": "x"}})})
    assert len(portal.calls) == 1


@pytest.mark.parametrize(("method", "safe"), [
    ("crm.deal.get", True), ("crm.item.list", True), ("crm.deal.fields", True),
    ("batch", True), ("app.info", True), ("profile", True), ("user.get", True),
    ("crm.timeline.comment.update", True), ("crm.timeline.comment.delete", True),
    ("crm.timeline.comment.add", False), ("im.notify.system.add", False),
    ("tasks.task.chat.message.send", False), ("event.offline.get", False),
    ("bizproc.event.send", False),
])
def test_retry_safe(method, safe):
    assert retry_safe(method) is safe


# -- expired tokens ------------------------------------------------------------------------

def test_expired_token_refreshes_once_and_repeats_the_call(portal, app_client, store, bucket):
    portal.post(f"{APP_REST}/crm.deal.get", status=401, json=EXPIRED,
                match=[matchers.json_params_matcher({"id": 410, "auth": OLD_ACCESS})])
    token_server = portal.get(TOKEN_URL, json=TOKEN_ANSWER,
                              match=[matchers.query_param_matcher(REFRESH_PARAMS)])
    portal.post(f"{APP_REST}/crm.deal.get", json=DEAL,
                match=[matchers.json_params_matcher({"id": 410, "auth": NEW_ACCESS})])
    assert app_client.call("crm.deal.get", {"id": 410})["ID"] == "410"
    assert token_server.call_count == 1
    assert store.load(MEMBER)["refresh_token"] == NEW_REFRESH
    assert store.load(MEMBER)["access_token"] == NEW_ACCESS
    assert bucket.acquired == 2  # the token server is not the portal


def test_a_write_is_repeated_after_a_refresh(portal, app_client):
    portal.post(f"{APP_REST}/crm.timeline.comment.add", status=401, json=EXPIRED)
    portal.get(TOKEN_URL, json=TOKEN_ANSWER)
    portal.post(f"{APP_REST}/crm.timeline.comment.add", json={"result": 999, "time": {}})
    assert app_client.call("crm.timeline.comment.add", {"fields": {"COMMENT": "x"}}) == 999


def test_still_expired_after_a_refresh_is_an_auth_error(portal, app_client):
    portal.post(f"{APP_REST}/crm.deal.get", status=401, json=EXPIRED)
    token_server = portal.get(TOKEN_URL, json=TOKEN_ANSWER)
    with pytest.raises(AuthError, match="still answers expired_token"):
        app_client.call("crm.deal.get", {"id": 410})
    assert token_server.call_count == 1


def test_an_expired_webhook_is_an_auth_error(portal, client):
    portal.post(f"{REST}/crm.deal.get", status=401, json=EXPIRED)
    with pytest.raises(AuthError, match="incoming webhook"):
        client.call("crm.deal.get", {"id": 410})


def test_a_refused_refresh_tells_the_admin_to_reopen_the_app(portal, app_client, store):
    portal.post(f"{APP_REST}/crm.deal.get", status=401, json=EXPIRED)
    portal.get(TOKEN_URL, status=400, json={"error": "invalid_grant",
                                            "error_description": "Invalid grant"})
    with pytest.raises(AuthError) as raised:
        app_client.call("crm.deal.get", {"id": 410})
    assert REOPEN_HINT in str(raised.value)
    assert store.load(MEMBER) == PORTAL_STATE


def test_two_workers_hitting_expired_token_at_once_refresh_once(portal, store, clock):
    both_expired = threading.Barrier(2)

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        token = json.loads(request.body)["auth"]
        if token == OLD_ACCESS:
            both_expired.wait(timeout=5)  # both calls were made with the old token
            return 401, {}, json.dumps(EXPIRED)
        assert token == NEW_ACCESS
        return 200, {}, json.dumps(DEAL)

    portal.add_callback(responses.POST, f"{APP_REST}/crm.deal.get", callback=answer,
                        content_type="application/json")
    token_server = portal.get(TOKEN_URL, json=TOKEN_ANSWER,
                              match=[matchers.query_param_matcher(REFRESH_PARAMS)])
    bucket = LeakyBucket(2.0, 50, clock=clock, sleep=clock.sleep)
    results: list[Any] = []
    failures: list[BaseException] = []

    def worker() -> None:
        auth = PortalAuth(store, MEMBER, CLIENT_ID, CLIENT_SECRET, clock=clock)
        client = Bitrix24Client(auth, bucket, sleep=clock.sleep, clock=clock)
        try:
            results.append(client.call("crm.deal.get", {"id": 410})["ID"])
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert failures == []
    assert results == ["410", "410"]
    assert token_server.call_count == 1
    assert store.load(MEMBER)["refresh_token"] == NEW_REFRESH


# -- secrets ---------------------------------------------------------------------------------

def test_witness_secrets_appear_in_no_log_record_and_no_error(portal, app_client, client,
                                                               caplog):
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    # app mode: expired -> refresh -> limit -> an error that echoes the token -> a timeout
    portal.post(f"{APP_REST}/crm.deal.get", status=401, json=EXPIRED)
    portal.get(TOKEN_URL, json=TOKEN_ANSWER)
    portal.post(f"{APP_REST}/crm.deal.get", status=503, json=LIMIT["body"])
    portal.post(f"{APP_REST}/crm.deal.get", status=400, json={
        "error": "INVALID_REQUEST", "error_description": f"Bad auth={NEW_ACCESS} for "
        f"https://acme.bitrix24.com/rest/1/{WEBHOOK_CODE}/x {NEW_REFRESH}"})
    portal.post(f"{APP_REST}/crm.timeline.comment.add",
                body=requests.exceptions.ConnectTimeout(f"{APP_REST}/x?auth={NEW_ACCESS}"))
    # webhook mode: a failing write and a non-JSON page with the webhook URL in it
    portal.post(f"{REST}/crm.timeline.comment.add", status=500,
                body=f"<html><title>Error at {REST}/crm.timeline.comment.add</title></html>")
    for call in (lambda: app_client.call("crm.deal.get", {"id": 410}),
                 lambda: app_client.call("crm.timeline.comment.add", {"fields": {}}),
                 lambda: client.call("crm.timeline.comment.add", {"fields": {}})):
        with pytest.raises(PlatformError) as raised:
            call()
        errors.append(str(raised.value))
        errors.append(repr(raised.value))
    messages = [record.getMessage() for record in caplog.records]
    assert any("refreshed" in message for message in messages)
    for text in [*messages, *errors]:
        for witness in WITNESSES:
            assert witness not in text, text
