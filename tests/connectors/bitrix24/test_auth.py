"""Where a Bitrix24 call goes and how its tokens are kept: webhooks, installed portals, the
token refresh through the store, and the redaction of every secret."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import responses
from responses import matchers

from connectors.bitrix24.auth import REOPEN_HINT, PortalAuth, WebhookAuth, redact
from connectors.errors import AuthError, Transient
from tests.connectors.bitrix24.stores import MemoryInstallationStore

MEMBER = "a223c6b3710f85df22e9377d6c4f7553"
CLIENT_ID = "local.6716ce0a1b2c34.56789012"
CLIENT_SECRET = "WITNESS-client-secret-Qm9vYXJzZWNyZXQ"
OLD_ACCESS = "WITNESS-old-access-3s6lr4kr3cv2od4v"
OLD_REFRESH = "WITNESS-old-refresh-nfhxkzk3gvrg375w"
NEW_ACCESS = "WITNESS-new-access-ydtj8pho532wydb5"
NEW_REFRESH = "WITNESS-new-refresh-4f9k4jpmg13usmyb"
WEBHOOK_CODE = "WITNESS0hook0code7q"
WEBHOOK_URL = f"https://acme.bitrix24.com/rest/1/{WEBHOOK_CODE}/"
# the east-region token server: proves the endpoint comes from the stored state
TOKEN_URL = "https://oauth.bitrix24.tech/oauth/token/"

PORTAL = {
    "member_id": MEMBER, "domain": "acme.bitrix24.com",
    "client_endpoint": "https://acme.bitrix24.com/rest/",
    "server_endpoint": "https://oauth.bitrix24.tech/rest/",
    "application_token": "WITNESS-app-token-51856fefc120afa4b628cc82d3935cce",
    "access_token": OLD_ACCESS, "refresh_token": OLD_REFRESH, "expires": 1_780_000_000,
    "scope": "crm,task,im,user,placement", "user_id": "1", "installed": True,
}
REFRESH_PARAMS = {"grant_type": "refresh_token", "client_id": CLIENT_ID,
                  "client_secret": CLIENT_SECRET, "refresh_token": OLD_REFRESH}
TOKEN_ANSWER = {  # settings/oauth/auto-renewal.md (RU), with our witness tokens
    "access_token": NEW_ACCESS, "client_endpoint": "https://acme.bitrix24.com/rest/",
    "domain": "oauth.bitrix24.tech", "expires": 1_780_003_600, "expires_in": 3600,
    "member_id": MEMBER, "refresh_token": NEW_REFRESH, "scope": "crm,task,im,user,placement",
    "server_endpoint": "https://oauth.bitrix24.tech/rest/", "status": "L", "user_id": 1,
}
WITNESSES = (CLIENT_SECRET, OLD_ACCESS, OLD_REFRESH, NEW_ACCESS, NEW_REFRESH, WEBHOOK_CODE)


@pytest.fixture
def oauth() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def store() -> MemoryInstallationStore:
    return MemoryInstallationStore({MEMBER: PORTAL})


@pytest.fixture
def portal(store) -> PortalAuth:
    return PortalAuth(store, MEMBER, CLIENT_ID, CLIENT_SECRET, clock=lambda: 1_779_990_000.0,
                      sleep=lambda _: None)


def assert_no_witness(*texts: str) -> None:
    for text in texts:
        for witness in WITNESSES:
            assert witness not in text


# -- webhook ------------------------------------------------------------------------------

def test_webhook_calls_go_to_the_webhook_url_plus_the_method():
    auth = WebhookAuth(WEBHOOK_URL, site="acme-b24")
    prepared = auth.prepare("crm.deal.get")
    assert prepared.url == f"https://acme.bitrix24.com/rest/1/{WEBHOOK_CODE}/crm.deal.get"
    assert prepared.body == {}
    assert prepared.token is None
    assert auth.site == "acme-b24"
    assert auth.user_id == "1"
    assert WEBHOOK_CODE not in repr(auth) + repr(prepared)


def test_webhook_url_without_trailing_slash_is_accepted():
    auth = WebhookAuth(WEBHOOK_URL.rstrip("/"))
    assert auth.prepare("batch").url == f"https://acme.bitrix24.com/rest/1/{WEBHOOK_CODE}/batch"


@pytest.mark.parametrize("url", [
    "http://acme.bitrix24.com/rest/1/abc/", "https://acme.bitrix24.com/rest/abc/",
    "https://acme.bitrix24.com/1/abc/", "https://acme.bitrix24.com/rest/x/abc/"])
def test_webhook_url_must_be_the_rest_url(url):
    with pytest.raises(ValueError, match="webhook_url must be"):
        WebhookAuth(url)


def test_webhook_cannot_refresh():
    with pytest.raises(AuthError, match="incoming webhook"):
        WebhookAuth(WEBHOOK_URL).refresh(None)


@pytest.mark.parametrize("method", ["../crm.deal.get", "crm.deal.get?x=1", "crm/deal", "",
                                    "crm.deal.get/../../x"])
def test_a_method_name_cannot_leave_its_path_segment(method):
    with pytest.raises(ValueError, match="not a Bitrix24 REST method name"):
        WebhookAuth(WEBHOOK_URL).prepare(method)


# -- installed portal ---------------------------------------------------------------------

def test_portal_calls_go_to_the_client_endpoint_with_auth_in_the_body(portal):
    prepared = portal.prepare("crm.deal.get")
    assert prepared.url == "https://acme.bitrix24.com/rest/crm.deal.get"
    assert prepared.body == {"auth": OLD_ACCESS}
    assert prepared.token == OLD_ACCESS
    assert_no_witness(repr(prepared), repr(portal))


@pytest.mark.parametrize("state", [None, {**PORTAL, "installed": False}])
def test_a_portal_that_is_not_installed_cannot_be_called(state):
    store = MemoryInstallationStore({MEMBER: state} if state else {})
    with pytest.raises(AuthError, match="not installed"):
        PortalAuth(store, MEMBER, CLIENT_ID, CLIENT_SECRET).prepare("crm.deal.get")


def test_a_client_endpoint_that_is_not_https_is_refused():
    store = MemoryInstallationStore({MEMBER: {**PORTAL,
                                              "client_endpoint": "http://acme.example/rest/"}})
    with pytest.raises(AuthError, match="client_endpoint"):
        PortalAuth(store, MEMBER, CLIENT_ID, CLIENT_SECRET).prepare("crm.deal.get")


def test_refresh_asks_the_stored_token_server_and_stores_the_rotated_pair(
        oauth, store, portal, caplog):
    caplog.set_level(logging.DEBUG)
    token_server = oauth.get(TOKEN_URL, json=TOKEN_ANSWER,
                             match=[matchers.query_param_matcher(REFRESH_PARAMS)])
    portal.refresh(OLD_ACCESS)
    assert token_server.call_count == 1
    assert store.load(MEMBER) == {
        **PORTAL, "access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH,
        "expires": 1_780_003_600, "user_id": 1}
    assert portal.prepare("crm.deal.get").body == {"auth": NEW_ACCESS}
    assert_no_witness(*(record.getMessage() for record in caplog.records))


def test_refresh_computes_expires_from_expires_in_when_the_answer_has_no_expires(
        oauth, store, portal):
    answer = {key: value for key, value in TOKEN_ANSWER.items() if key != "expires"}
    oauth.get(TOKEN_URL, json=answer, match=[matchers.query_param_matcher(REFRESH_PARAMS)])
    portal.refresh(OLD_ACCESS)
    assert store.load(MEMBER)["expires"] == 1_779_993_600


def test_refresh_uses_a_token_another_worker_already_stored(oauth, store, portal):
    store.change(MEMBER, lambda state: {**state, "access_token": NEW_ACCESS,
                                        "refresh_token": NEW_REFRESH})
    portal.refresh(OLD_ACCESS)  # no token-server stub: a call would fail the test
    assert store.load(MEMBER)["access_token"] == NEW_ACCESS


@pytest.mark.parametrize("error", ["invalid_grant", "invalid_client"])
def test_a_refused_refresh_tells_the_admin_to_reopen_the_app(oauth, store, portal, error,
                                                             caplog):
    caplog.set_level(logging.DEBUG)
    oauth.get(TOKEN_URL, status=400, json={"error": error,
                                           "error_description": "Invalid grant"})
    with pytest.raises(AuthError) as raised:
        portal.refresh(OLD_ACCESS)
    assert REOPEN_HINT in str(raised.value)
    assert error in str(raised.value)
    assert store.load(MEMBER) == PORTAL  # nothing written
    assert_no_witness(str(raised.value), *(record.getMessage() for record in caplog.records))


def test_losing_a_refresh_race_to_another_process_uses_the_winners_tokens(oauth, store, portal):
    """Both processes met the expired token and asked with the same single-use refresh
    token; the other one's answer came first and it stored the new pair meanwhile."""
    def refused(request):
        store.change(MEMBER, lambda state: {**state, "access_token": NEW_ACCESS,
                                            "refresh_token": NEW_REFRESH})
        return 400, {}, json.dumps({"error": "invalid_grant",
                                    "error_description": "Invalid grant"})

    oauth.add_callback(responses.GET, TOKEN_URL, callback=refused)

    portal.refresh(OLD_ACCESS)  # no error: the winner's token is used

    assert store.load(MEMBER)["access_token"] == NEW_ACCESS
    assert portal.prepare("profile").body == {"auth": NEW_ACCESS}


def test_payment_required_is_an_auth_error(oauth, portal):
    oauth.get(TOKEN_URL, json={"error": "PAYMENT_REQUIRED",
                               "error_description": "Payment required"})
    with pytest.raises(AuthError, match="PAYMENT_REQUIRED"):
        portal.refresh(OLD_ACCESS)


def test_a_token_server_outage_is_transient_and_keeps_the_stored_tokens(oauth, store, portal):
    oauth.get(TOKEN_URL, status=503, body="<html><title>503 Service Unavailable</title></html>")
    with pytest.raises(Transient) as raised:
        portal.refresh(OLD_ACCESS)
    assert "503" in str(raised.value)
    assert store.load(MEMBER) == PORTAL
    assert_no_witness(str(raised.value))


def test_without_a_refresh_token_the_admin_must_reopen_the_app():
    store = MemoryInstallationStore({MEMBER: {**PORTAL, "refresh_token": None}})
    auth = PortalAuth(store, MEMBER, CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(AuthError, match="no refresh token stored") as raised:
        auth.refresh(OLD_ACCESS)
    assert REOPEN_HINT in str(raised.value)


# -- tokens delivered by events and placement frames --------------------------------------

def test_fresher_tokens_from_an_event_are_stored(store, portal):
    assert portal.accept_tokens({"access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH,
                                 "expires": "1780007200", "user_id": "1"})
    assert store.load(MEMBER) == {**PORTAL, "access_token": NEW_ACCESS,
                                  "refresh_token": NEW_REFRESH, "expires": 1_780_007_200}


def test_placement_tokens_with_expires_in_are_stored_without_a_refresh_token(store):
    portal = PortalAuth(store, MEMBER, CLIENT_ID, CLIENT_SECRET, clock=lambda: 1_779_999_000.0)
    assert portal.accept_tokens({"access_token": NEW_ACCESS, "expires_in": "3600"})
    assert store.load(MEMBER) == {**PORTAL, "access_token": NEW_ACCESS,
                                  "expires": 1_780_002_600}


@pytest.mark.parametrize("fields", [
    pytest.param({"access_token": NEW_ACCESS, "expires": 1_779_000_000}, id="older"),
    pytest.param({"access_token": NEW_ACCESS}, id="no-expiry"),
    pytest.param({"access_token": NEW_ACCESS, "expires": 1_780_007_200, "user_id": "7"},
                 id="another-user"),
    pytest.param({"refresh_token": NEW_REFRESH, "expires": 1_780_007_200}, id="no-access"),
])
def test_stale_or_foreign_tokens_are_ignored(store, portal, fields):
    assert not portal.accept_tokens(fields)
    assert store.load(MEMBER) == PORTAL


# -- redaction ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    (f"POST https://acme.bitrix24.com/rest/1/{WEBHOOK_CODE}/crm.deal.get",
     "POST https://acme.bitrix24.com/rest/1/<redacted>/crm.deal.get"),
    (f"GET /oauth/token/?grant_type=refresh_token&client_id={CLIENT_ID}"
     f"&client_secret={CLIENT_SECRET}&refresh_token={OLD_REFRESH}",
     f"GET /oauth/token/?grant_type=refresh_token&client_id={CLIENT_ID}"
     "&client_secret=<redacted>&refresh_token=<redacted>"),
    (f'{{"auth": "{OLD_ACCESS}", "id": 7}}', '{"auth": "<redacted>", "id": 7}'),
    (f"{{'access_token': '{OLD_ACCESS}'}}", "{'access_token': '<redacted>'}"),
    (f"auth[access_token]={OLD_ACCESS}&auth%5Brefresh_token%5D={OLD_REFRESH}&ts=1",
     "auth[access_token]=<redacted>&auth%5Brefresh_token%5D=<redacted>&ts=1"),
    ('"urlMachine": "https://acme.bitrix24.com/rest/crm.controller.item.getFile.json?'
     'auth=c2a8ad67&token=crm%7CYWN0"}', '"urlMachine": "<redacted>"}'),
    ("deal 410 moved to stage WON", "deal 410 moved to stage WON"),
    ('{"error": {"code": "BITRIX_REST_V3_EXCEPTION_VALIDATION"}}',
     '{"error": {"code": "BITRIX_REST_V3_EXCEPTION_VALIDATION"}}'),
])
def test_redact_hides_every_secret_shape(text, expected):
    assert redact(text) == expected


def test_redact_hides_exact_values_it_is_given():
    assert redact(f"Bitrix24 echoed {OLD_ACCESS} back", [OLD_ACCESS]) == \
        "Bitrix24 echoed <redacted> back"


def test_urllib3_request_lines_are_redacted(caplog):
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s %s', "https", "oauth.bitrix.info", 443, "GET",
        f"/oauth/token/?grant_type=refresh_token&client_id={CLIENT_ID}"
        f"&client_secret={CLIENT_SECRET}&refresh_token={OLD_REFRESH}", "HTTP/1.1", 200, 312)
    [record] = caplog.records
    assert record.getMessage() == (
        'https://oauth.bitrix.info:443 "GET /oauth/token/?grant_type=refresh_token&client_id='
        f'{CLIENT_ID}&client_secret=<redacted>&refresh_token=<redacted> HTTP/1.1" 200 312')
