"""The Jira REST client against stubbed Jira answers.

Every test runs inside `jira`, a `responses.RequestsMock` that fails on an unused stub and,
at the end, checks every request sent to a Cloud platform path (`/rest/api/3/…`) against
Atlassian's OpenAPI spec (`tests/connectors/jira/openapi.py`). NOT checked against a spec,
each listed: in `NOT_IN_CLOUD_PLATFORM_SPEC` with its reason, the JSM route `POST
/rest/servicedeskapi/request/{key}/comment` (JSM has its own spec, not vendored); in
`DATA_CENTER_ONLY`, every Data Center v2 route (`/rest/api/2/…`: Atlassian publishes no DC
spec), allowed only on a site that is not Cloud; for those the tests check bodies and
parameters with `responses` matchers only.
Error bodies are the shapes Jira really answers with.
"""

from __future__ import annotations

import base64
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
from responses import matchers

from connectors.errors import (
    AuthError,
    Misrouted,
    NotFound,
    PayloadError,
    PlatformError,
    RateLimited,
    Transient,
)
from connectors.http import (
    BACKOFF_FIRST,
    JITTER,
    MAX_ATTEMPTS,
    backoff_seconds,
    retry_after_seconds,
)
from connectors.jira.client import IssueWriteSpacer, JiraClient
from tests.connectors.jira.openapi import (
    DATA_CENTER_ONLY,
    NOT_IN_CLOUD_PLATFORM_SPEC,
    assert_valid_jira_request,
    jira_cloud_spec,
)

SITE = "https://acme.atlassian.net"
DC_SITE = "https://jira.acme.example/jira"  # Data Center under a context path
EMAIL = "guard-bot@agency.example"
API_TOKEN = "ATATT3xFfGF0-WITNESS-api-token-9f2c"
PAT = "NjQ3MTk5-WITNESS-personal-access-token-Zk3q"

ISSUE = f"{SITE}/rest/api/3/issue/ACME-7"
COMMENTS = f"{ISSUE}/comment"
DC_ISSUE = f"{DC_SITE}/rest/api/2/issue/ACME-7"

STAFF_ONLY = {"type": "role", "value": "Agency Staff"}
ADF = {"type": "doc", "version": 1, "content": [
    {"type": "paragraph", "content": [{"type": "text", "text": "No project manager briefed."}]}]}
WIKI = "h3. ClientGuard\n* No project manager briefed."
STAFF_ONLY_ADF = [matchers.json_params_matcher({"body": ADF, "visibility": STAFF_ONLY})]


class FakeClock:
    """Monotonic time that moves only when something sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cloud(clock: FakeClock) -> JiraClient:
    return JiraClient(SITE, (EMAIL, API_TOKEN), sleep=clock.sleep, clock=clock)


@pytest.fixture
def dc(clock: FakeClock) -> JiraClient:
    return JiraClient(DC_SITE, PAT, flavour="datacenter", sleep=clock.sleep, clock=clock)


def comment(comment_id: int) -> dict:
    return {"id": str(comment_id), "body": ADF, "created": "2026-11-02T09:00:00.000+0000",
            "author": {"accountId": "5b10a2844c20165700ede21g", "accountType": "atlassian"},
            "jsdPublic": True, "properties": []}


# -- error mapping ---------------------------------------------------------------------

JSON = "application/json;charset=UTF-8"
ERROR_SHAPES = [
    pytest.param(400, JSON, '{"errorMessages":[],"errors":{"commentLevel":"You are currently not '
                 'a member of the project role: Agency Staff."}}', PayloadError,
                 "commentLevel: You are currently not a member of the project role: Agency Staff.",
                 id="400-field-errors"),
    pytest.param(401, JSON, '{"message":"Client must be authenticated to access this resource.",'
                 '"status-code":401}', AuthError,
                 "Client must be authenticated to access this resource.", id="401-gateway"),
    pytest.param(401, "text/plain;charset=UTF-8", "Basic authentication with passwords is "
                 "deprecated.  For more information, see: https://developer.atlassian.com/cloud/"
                 "confluence/deprecation-notice-basic-auth/", AuthError,
                 "Basic authentication with passwords is deprecated.", id="401-plain-text"),
    pytest.param(403, JSON, '{"errorMessages":["You do not have the permission to see the '
                 'specified issue."],"errors":{}}', AuthError,
                 "You do not have the permission to see the specified issue.", id="403"),
    pytest.param(404, JSON, '{"errorMessages":["Issue does not exist or you do not have '
                 'permission to see it."],"errors":{}}', NotFound,
                 "Issue does not exist or you do not have permission to see it.", id="404"),
    pytest.param(404, JSON, '{"message":"no Route matched with those values"}', Misrouted,
                 "check jira.base_url", id="404-gateway-json"),
    pytest.param(404, "text/html", "<html><title>404 Not Found</title></html>", Misrouted,
                 "404 Not Found", id="404-html-page"),
    pytest.param(410, JSON, '{"errorMessages":["The requested API has been removed. Please '
                 'migrate to the /rest/api/3/search/jql API. A full migration guideline is '
                 'available at https://developer.atlassian.com/changelog/#CHANGE-2046"],'
                 '"errors":{}}', PayloadError, "The requested API has been removed.", id="410"),
    pytest.param(500, JSON, '{"errorMessages":["Internal server error"],"errors":{}}',
                 Transient, "Internal server error", id="500-json"),
    pytest.param(502, "text/html", "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
                 "<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n",
                 Transient, ": 502 Bad Gateway", id="502-html-page"),
    pytest.param(503, "text/html", "", Transient, ": Service Unavailable", id="503-empty"),
]


@pytest.mark.parametrize(("status", "content_type", "body", "error", "detail"), ERROR_SHAPES)
def test_error_shapes_become_typed_errors_with_readable_detail(
        jira, cloud, clock, status, content_type, body, error, detail):
    jira.get(f"{SITE}/rest/api/3/myself", status=status, body=body, content_type=content_type)
    with pytest.raises(error) as raised:
        cloud.request("GET", "/rest/api/3/myself", idempotent=False)
    assert type(raised.value) is error
    assert raised.value.status == status
    assert str(raised.value).startswith(f"Jira answered {status} to GET /rest/api/3/myself: ")
    assert detail in str(raised.value)
    assert "<" not in str(raised.value)  # no markup from HTML pages


def test_429_is_rate_limited_with_retry_after(jira, cloud):
    jira.get(f"{SITE}/rest/api/3/myself", status=429, headers={"Retry-After": "7"})
    with pytest.raises(RateLimited) as raised:
        cloud.request("GET", "/rest/api/3/myself", idempotent=False)
    assert raised.value.retry_after == 7.0
    assert "Too Many Requests" in str(raised.value)


def test_jsm_error_shape(jira, cloud):
    jira.post(f"{SITE}/rest/servicedeskapi/request/ACME-7/comment", status=404, json={
        "errorMessage": "The request could not be found.",
        "i18nErrorMessage": {"i18nKey": "sd.request.error.not.found", "parameters": []}})
    with pytest.raises(NotFound, match=r"The request could not be found\."):
        cloud.add_servicedesk_internal_comment("ACME-7", "Internal: no PM briefed.")


def test_a_success_that_is_not_json_is_a_platform_error(jira, cloud):
    jira.get(f"{SITE}/rest/api/3/myself", body="<html><title>Log in</title></html>",
             content_type="text/html")
    with pytest.raises(PlatformError, match="not JSON"):
        cloud.myself()


# -- retries ---------------------------------------------------------------------------

def test_503_then_429_then_200_waits_backoff_then_retry_after(jira, cloud, clock):
    jira.get(ISSUE, status=503)
    jira.get(ISSUE, status=429, headers={"Retry-After": "3"})
    jira.get(ISSUE, json={"id": "10007", "key": "ACME-7", "fields": {}})
    assert cloud.get_issue("ACME-7")["key"] == "ACME-7"
    first, second = clock.sleeps
    assert BACKOFF_FIRST * JITTER[0] <= first <= BACKOFF_FIRST * JITTER[1]
    assert second == 3.0


def test_a_503_with_retry_after_waits_as_told(jira, cloud, clock):
    jira.get(ISSUE, status=503, headers={"Retry-After": "7"}, body="Service Unavailable")
    jira.get(ISSUE, json={"key": "ACME-7"})
    cloud.get_issue("ACME-7")
    assert clock.sleeps == [7.0]


def test_rate_limit_reset_header_is_the_wait_when_retry_after_is_missing(jira, cloud, clock):
    reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat(timespec="milliseconds")
    jira.get(ISSUE, status=429, headers={"X-RateLimit-Reset": reset,
                                         "RateLimit-Reason": "jira-burst-based"})
    jira.get(ISSUE, json={"key": "ACME-7"})
    cloud.get_issue("ACME-7")
    assert clock.sleeps == [pytest.approx(30, abs=2)]


def test_connection_errors_and_timeouts_are_retried(jira, cloud, clock):
    jira.get(ISSUE, body=requests.ConnectionError("refused"))
    jira.get(ISSUE, body=requests.ReadTimeout("read timed out"))
    jira.get(ISSUE, json={"key": "ACME-7"})
    cloud.get_issue("ACME-7")
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize(("status", "error"), [(400, PayloadError), (401, AuthError),
                                               (403, AuthError), (404, NotFound)])
def test_client_errors_are_not_retried(jira, cloud, clock, status, error):
    jira.get(ISSUE, status=status, json={"errorMessages": ["nope"], "errors": {}})
    with pytest.raises(error):
        cloud.get_issue("ACME-7")
    assert len(jira.calls) == 1
    assert clock.sleeps == []


def test_post_is_not_retried(jira, cloud, clock):
    jira.post(COMMENTS, status=503, match=STAFF_ONLY_ADF)
    with pytest.raises(Transient):
        cloud.add_comment("ACME-7", ADF, STAFF_ONLY)
    assert len(jira.calls) == 1
    assert clock.sleeps == []


def test_post_marked_idempotent_is_retried(jira, cloud, clock):
    search = f"{SITE}/rest/api/3/search/jql"
    jira.post(search, status=503)
    jira.post(search, json={"issues": [], "isLast": True})
    body = {"jql": "project = ACME AND updated >= -1d", "fields": ["summary"]}
    assert cloud.request("POST", "/rest/api/3/search/jql", json=body, idempotent=True) == {
        "issues": [], "isLast": True}
    assert len(clock.sleeps) == 1


def test_gives_up_after_the_last_attempt_with_the_typed_error(jira, cloud, clock):
    jira.get(ISSUE, status=503)  # repeats for every attempt
    with pytest.raises(Transient) as raised:
        cloud.get_issue("ACME-7")
    assert raised.value.status == 503
    assert len(jira.calls) == MAX_ATTEMPTS
    assert len(clock.sleeps) == MAX_ATTEMPTS - 1


def test_a_wait_past_the_total_bound_gives_up_at_once(jira, cloud, clock):
    jira.get(ISSUE, status=429, headers={"Retry-After": "3600",
                                         "RateLimit-Reason": "jira-quota-tenant-based"})
    with pytest.raises(RateLimited) as raised:
        cloud.get_issue("ACME-7")
    assert raised.value.retry_after == 3600.0  # for the queue to schedule the event later
    assert clock.sleeps == []


def test_waits_add_up_to_the_total_bound(jira, cloud, clock):
    jira.get(ISSUE, status=429, headers={"Retry-After": "40"})
    with pytest.raises(RateLimited):
        cloud.get_issue("ACME-7")
    assert clock.sleeps == [40.0]  # a second 40 s wait would pass the 60 s bound
    assert len(jira.calls) == 2


def test_retry_after_as_http_date_and_backoff_growth():
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=now) == 30
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:00:00 GMT"}, now=now) == 0
    assert retry_after_seconds({"Retry-After": "soon"}, now=now) is None
    assert retry_after_seconds({}, now=now) is None
    assert [backoff_seconds(n, rng=lambda low, high: 1.0) for n in (1, 2, 3, 4, 5, 6)] == [
        2, 4, 8, 16, 30, 30]


# -- pagination ------------------------------------------------------------------------

def page_params(start: int, **extra: str) -> list:
    return [matchers.query_param_matcher({"startAt": str(start), "maxResults": "100", **extra})]


def test_comments_are_read_page_by_page_with_properties(jira, cloud):
    extra = {"orderBy": "created", "expand": "properties"}
    for start, ids in ((0, [1, 2]), (2, [3, 4]), (4, [5])):
        jira.get(COMMENTS, match=page_params(start, **extra), json={
            "startAt": start, "maxResults": 2, "total": 5,
            "comments": [comment(10000 + i) for i in ids]})
    assert [c["id"] for c in cloud.iter_comments("ACME-7")] == [
        "10001", "10002", "10003", "10004", "10005"]


def test_worklogs_are_read_page_by_page(jira, cloud):
    worklog = {"timeSpentSeconds": 3600, "started": "2026-11-02T09:00:00.000+0000"}
    jira.get(f"{ISSUE}/worklog", match=page_params(0), json={
        "startAt": 0, "maxResults": 2, "total": 3,
        "worklogs": [{**worklog, "id": "1"}, {**worklog, "id": "2"}]})
    jira.get(f"{ISSUE}/worklog", match=page_params(2), json={
        "startAt": 2, "maxResults": 2, "total": 3, "worklogs": [{**worklog, "id": "3"}]})
    assert [w["id"] for w in cloud.iter_worklogs("ACME-7")] == ["1", "2", "3"]


def test_search_follows_next_page_token_until_the_last_page(jira, cloud):
    jql = "project = ACME AND statusCategory != Done AND updated >= -30d"
    base = {"jql": jql, "fields": "summary,status", "maxResults": "100"}
    jira.get(f"{SITE}/rest/api/3/search/jql", match=[matchers.query_param_matcher(base)],
             json={"issues": [{"id": "10001", "key": "ACME-1"}, {"id": "10002", "key": "ACME-2"}],
                   "nextPageToken": "CAEaAggB", "isLast": False})
    jira.get(f"{SITE}/rest/api/3/search/jql",
             match=[matchers.query_param_matcher({**base, "nextPageToken": "CAEaAggB"})],
             json={"issues": [{"id": "10003", "key": "ACME-3"}], "isLast": True})
    keys = [issue["key"] for issue in cloud.search(jql, fields=("summary", "status"))]
    assert keys == ["ACME-1", "ACME-2", "ACME-3"]


def test_data_center_search_pages_by_start_at(jira, dc):
    jql = "project = ACME AND updated >= -30d"
    for start, keys in ((0, ["ACME-1", "ACME-2"]), (2, ["ACME-3"])):
        jira.get(f"{DC_SITE}/rest/api/2/search",
                 match=page_params(start, jql=jql, fields="summary"),
                 json={"startAt": start, "maxResults": 2, "total": 3,
                       "issues": [{"key": key} for key in keys]})
    assert [issue["key"] for issue in dc.search(jql, fields=["summary"])] == [
        "ACME-1", "ACME-2", "ACME-3"]


def test_a_complete_embedded_changelog_needs_no_request(jira, cloud):
    embedded = {"startAt": 0, "maxResults": 2, "total": 2,
                "histories": [{"id": "1", "items": []}, {"id": "2", "items": []}]}
    assert [h["id"] for h in cloud.iter_changelog("ACME-7", embedded=embedded)] == ["1", "2"]
    assert len(jira.calls) == 0


def test_a_truncated_embedded_changelog_is_paged_from_the_changelog_resource(jira, cloud):
    embedded = {"startAt": 0, "maxResults": 100, "total": 101,
                "histories": [{"id": str(i)} for i in range(100)]}
    jira.get(f"{ISSUE}/changelog", match=page_params(0), json={
        "startAt": 0, "maxResults": 100, "total": 101, "isLast": False,
        "values": [{"id": str(i), "items": []} for i in range(100)]})
    jira.get(f"{ISSUE}/changelog", match=page_params(100), json={
        "startAt": 100, "maxResults": 100, "total": 101, "isLast": True,
        "values": [{"id": "100", "items": []}]})
    assert len(list(cloud.iter_changelog("ACME-7", embedded=embedded))) == 101


def test_data_center_changelog_comes_with_the_issue(jira, dc):
    jira.get(DC_ISSUE, match=[matchers.query_param_matcher(
        {"fields": "created", "expand": "changelog"})],
        json={"key": "ACME-7", "changelog": {"startAt": 0, "maxResults": 1, "total": 1,
                                             "histories": [{"id": "5", "items": []}]}})
    assert [h["id"] for h in dc.iter_changelog("ACME-7")] == ["5"]


# -- reads for the snapshot, doctor and install -----------------------------------------

def test_get_issue_asks_for_fields_and_changelog(jira, cloud):
    jira.get(ISSUE, match=[matchers.query_param_matcher(
        {"fields": "summary,status,assignee,comment", "expand": "changelog"})],
        json={"key": "ACME-7", "fields": {"summary": "Webshop relaunch"}})
    issue = cloud.get_issue("ACME-7", fields=["summary", "status", "assignee", "comment"])
    assert issue["fields"]["summary"] == "Webshop relaunch"


def test_list_fields_and_myself(jira, cloud):
    jira.get(f"{SITE}/rest/api/3/field", json=[
        {"id": "customfield_10042", "name": "Point of contact", "custom": True,
         "schema": {"type": "user", "customId": 10042}}])
    jira.get(f"{SITE}/rest/api/3/myself", json={"accountId": "712020:bot", "accountType": "app"})
    assert cloud.list_fields()[0]["id"] == "customfield_10042"
    assert cloud.myself()["accountId"] == "712020:bot"


def test_keys_from_payloads_cannot_leave_their_path_segment(jira, cloud):
    jira.get(f"{SITE}/rest/api/3/issue/ACME-7%2F..%2F..%2Fmyself", json={"key": "ACME-7"})
    cloud.get_issue("ACME-7/../../myself", expand=())


def test_absolute_urls_are_refused(jira, cloud):
    with pytest.raises(ValueError, match="relative"):
        cloud.request("GET", "https://evil.example/rest/api/3/myself")
    with pytest.raises(ValueError, match="relative"):
        cloud.request("GET", "//evil.example/rest/api/3/myself")


# -- auth ------------------------------------------------------------------------------

def test_cloud_sends_basic_auth_with_email_and_api_token(jira, cloud):
    basic = base64.b64encode(f"{EMAIL}:{API_TOKEN}".encode()).decode()
    jira.get(f"{SITE}/rest/api/3/myself", json={"accountId": "712020:bot"},
             match=[matchers.header_matcher({"Authorization": f"Basic {basic}",
                                             "Accept": "application/json"})])
    cloud.myself()


def test_data_center_sends_the_personal_access_token_as_bearer(jira, dc):
    jira.get(f"{DC_SITE}/rest/api/2/myself", json={"name": "guard-bot", "key": "JIRAUSER10100"},
             match=[matchers.header_matcher({"Authorization": f"Bearer {PAT}"})])
    assert dc.myself()["key"] == "JIRAUSER10100"


def test_auth_must_match_the_flavour_and_is_never_echoed():
    with pytest.raises(ValueError) as cloud_error:
        JiraClient(SITE, API_TOKEN)
    with pytest.raises(ValueError) as dc_error:
        JiraClient(DC_SITE, (EMAIL, PAT), flavour="datacenter")
    assert API_TOKEN not in str(cloud_error.value)
    assert PAT not in str(dc_error.value)


@pytest.mark.parametrize("flavour", ["cloud", "datacenter"])
def test_witness_secret_appears_in_no_log_record_and_no_error(jira, clock, caplog, flavour):
    caplog.set_level(logging.DEBUG)
    if flavour == "cloud":
        client = JiraClient(SITE, (EMAIL, API_TOKEN), sleep=clock.sleep, clock=clock)
        secret, api = API_TOKEN, f"{SITE}/rest/api/3"
        header = base64.b64encode(f"{EMAIL}:{API_TOKEN}".encode()).decode()
    else:
        client = JiraClient(DC_SITE, PAT, flavour="datacenter", sleep=clock.sleep, clock=clock)
        secret, api, header = PAT, f"{DC_SITE}/rest/api/2", PAT
    jira.get(f"{api}/myself", status=503)
    jira.get(f"{api}/myself", body=requests.ConnectionError(f"{api}/myself refused"))
    jira.get(f"{api}/myself", status=401,
             json={"errorMessages": ["You are not authenticated."], "errors": {}})
    jira.get(f"{api}/issue/ACME-7", body=requests.ReadTimeout("timed out"))
    errors: list[BaseException] = []
    for call in (client.myself, lambda: client.get_issue("ACME-7")):
        with pytest.raises(PlatformError) as raised:
            call()
        errors.append(raised.value)
    texts = [record.getMessage() for record in caplog.records]
    texts += [f"{error!s} {error!r} {error.__cause__!r} {error.__context__!r}" for error in errors]
    texts.append(repr(client))
    assert texts and not [text for text in texts if secret in text or header in text]


# -- comment writes: visibility always stated ------------------------------------------

def test_add_comment_states_visibility(jira, cloud):
    jira.post(COMMENTS, status=201, json=comment(10100), match=STAFF_ONLY_ADF)
    assert cloud.add_comment("ACME-7", ADF, STAFF_ONLY)["id"] == "10100"


def test_update_comment_restates_visibility_silently(jira, cloud):
    jira.put(f"{COMMENTS}/10100", json=comment(10100), match=[
        matchers.query_param_matcher({"notifyUsers": "false"}), *STAFF_ONLY_ADF])
    cloud.update_comment("ACME-7", "10100", ADF, STAFF_ONLY)


def test_data_center_comments_are_wiki_markup_with_visibility(jira, dc):
    group = {"type": "group", "value": "agency-staff"}
    jira.post(f"{DC_ISSUE}/comment", status=201, json={"id": "20001", "body": WIKI},
              match=[matchers.json_params_matcher({"body": WIKI, "visibility": group})])
    jira.put(f"{DC_ISSUE}/comment/20001", json={"id": "20001", "body": WIKI}, match=[
        matchers.query_param_matcher({"notifyUsers": "false"}),
        matchers.json_params_matcher({"body": WIKI, "visibility": group})])
    dc.add_comment("ACME-7", WIKI, group)
    dc.update_comment("ACME-7", "20001", WIKI, group)


@pytest.mark.parametrize("visibility", [None, {}, {"type": "role"}, {"type": "role", "value": ""},
                                        {"type": "everyone", "value": "Agency Staff"}])
def test_a_comment_write_without_visibility_sends_nothing(jira, cloud, visibility):
    with pytest.raises(ValueError, match="visibility"):
        cloud.add_comment("ACME-7", ADF, visibility)
    with pytest.raises(ValueError, match="visibility"):
        cloud.update_comment("ACME-7", "10100", ADF, visibility)
    assert len(jira.calls) == 0


def test_body_must_be_in_the_flavours_form(jira, cloud, dc):
    with pytest.raises(TypeError, match="ADF"):
        cloud.add_comment("ACME-7", WIKI, STAFF_ONLY)
    with pytest.raises(TypeError, match="wiki markup"):
        dc.add_comment("ACME-7", ADF, STAFF_ONLY)
    with pytest.raises(TypeError, match="plain string"):
        cloud.add_servicedesk_internal_comment("ACME-7", ADF)


def test_delete_comment(jira, cloud):
    jira.delete(f"{COMMENTS}/10100", status=204)
    assert cloud.delete_comment("ACME-7", "10100") is None


def test_jsm_internal_note_property(jira, cloud):
    jira.put(f"{SITE}/rest/api/3/comment/10100/properties/sd.public.comment", status=200,
             match=[matchers.json_params_matcher({"internal": True})])
    cloud.set_comment_property("ACME-7", "10100", "sd.public.comment", {"internal": True})


def test_jsm_internal_comment_is_never_public(jira, cloud):
    jira.post(f"{SITE}/rest/servicedeskapi/request/ACME-7/comment", status=201,
              json={"id": "10101", "body": "No PM briefed.", "public": False},
              match=[matchers.json_params_matcher({"body": "No PM briefed.", "public": False})])
    assert cloud.add_servicedesk_internal_comment("ACME-7", "No PM briefed.")["id"] == "10101"


# -- spacing of writes to one issue ----------------------------------------------------

def test_a_burst_of_21_writes_to_one_issue_waits_before_the_21st(jira, cloud, clock):
    jira.post(COMMENTS, status=201, json=comment(10100), match=STAFF_ONLY_ADF)
    for _ in range(21):
        cloud.add_comment("ACME-7", ADF, STAFF_ONLY)
    assert clock.sleeps == [2.0]
    assert len(jira.calls) == 21


def test_writes_to_different_issues_are_not_spaced(jira, cloud, clock):
    jira.post(COMMENTS, status=201, json=comment(10100), match=STAFF_ONLY_ADF)
    jira.post(f"{SITE}/rest/api/3/issue/ACME-8/comment", status=201, json=comment(10101),
              match=STAFF_ONLY_ADF)
    for _ in range(20):
        cloud.add_comment("ACME-7", ADF, STAFF_ONLY)
        cloud.add_comment("ACME-8", ADF, STAFF_ONLY)
    assert clock.sleeps == []


def test_spacer_keeps_both_per_issue_windows(clock):
    spacer = IssueWriteSpacer(clock=clock, sleep=clock.sleep)
    for _ in range(101):
        spacer.wait_turn("acme-7")
    # bursts of 20 at 0, 2, 4, 6 and 8 s; the 101st waits until 30 s (100 per 30 s)
    assert clock.sleeps == [2.0, 2.0, 2.0, 2.0, 22.0]


# -- the OpenAPI check itself ----------------------------------------------------------

@pytest.mark.parametrize(("method", "pattern"), [
    *(pytest.param(method, pattern, id=f"not validated: {method} {pattern} ({reason})")
      for (method, pattern), reason in NOT_IN_CLOUD_PLATFORM_SPEC.items()),
    *(pytest.param(method, pattern, id=f"not validated: {method} {pattern} (Data Center)")
      for method, pattern in sorted(DATA_CENTER_ONLY))])
def test_endpoints_exempt_from_the_spec_check_are_really_outside_the_cloud_spec(method, pattern):
    spec_paths = [re.sub(r"\{[^}]+\}", "X", path) for path in jira_cloud_spec()["paths"]]
    assert not pattern.startswith("/rest/api/3/")
    assert not [path for path in spec_paths if re.fullmatch(pattern, path)]


@pytest.mark.parametrize(("method", "path", "body"), [
    pytest.param("GET", "/rest/api/3/search?jql=project%3DACME", None, id="removed-api"),
    pytest.param("GET", "/rest/api/3/issue/ACME-7/comment?sort=created", None,
                 id="undeclared-parameter"),
    pytest.param("GET", "/rest/api/3/issue/ACME-7/comment?startAt=first", None,
                 id="parameter-type"),
    pytest.param("POST", "/rest/api/3/issue/ACME-7/comment",
                 {"body": ADF, "visibility": {"type": "team", "value": "Agency Staff"}},
                 id="body-schema"),
    pytest.param("PATCH", "/rest/api/3/issue/ACME-7/comment/1", {"body": ADF}, id="method"),
    pytest.param("GET", "/rest/api/3/issue/ACME-7/comments", None, id="path"),
    pytest.param("GET", "/rest/servicedeskapi/request/ACME-7/comment", None, id="not-exempt"),
    pytest.param("GET", "/rest/api/2/issue/ACME-7", None, id="data-center-route-on-cloud"),
    pytest.param("GET", "/jira/rest/api/2/issue/ACME-7", None, id="context-path-on-cloud"),
])
def test_the_spec_check_rejects_what_jira_would_reject(method, path, body):
    request = requests.Request(method, SITE + path, json=body, auth=(EMAIL, API_TOKEN)).prepare()
    with pytest.raises(AssertionError):
        assert_valid_jira_request(request)


@pytest.mark.parametrize(("path", "allowed"), [
    ("/rest/api/2/issue/PRJ-7", True),
    ("/jira/rest/api/2/issue/PRJ-7", True),  # a context path
    ("/a/b/rest/api/2/issue/PRJ-7", False),
    ("/rest/api/2/issue/PRJ-7/watchers", False),  # not a route the client calls
])
def test_data_center_requests_keep_to_the_routes_the_client_calls(path: str, allowed: bool):
    request = requests.Request("GET", "https://jira.agency.example" + path).prepare()
    if allowed:
        assert_valid_jira_request(request)
    else:
        with pytest.raises(AssertionError):
            assert_valid_jira_request(request)
