"""Connecting a portal: the local application's install page, the portal lifecycle events and
the text of `clientguard install bitrix24`.

Every test runs inside `portal`, a `responses.RequestsMock` that fails on an unused stub,
against the real client. Shapes come from the docs: the frame's POST from
local-integrations/serverside-local-app-with-ui.md and settings/oauth/simple-way.md; the
OAuth server's `app.info` answer from b24pysdk's `B24AppInfoResultData`
(api/responses; the portal's own `app.info`, api-reference/common/system/app-info.md, has no
`client_id`); `event.get` from api-reference/events/event-get.md; `placement.get` from
api-reference/widgets/placement-get.md; batch answers from
settings/how-to-call-rest-api/batch.md; lifecycle events from the copied fixtures
(`fixtures/SOURCES.md`). Tokens are witnesses that must appear in no log record.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from connectors.base import Delivery, PageRequest
from connectors.bitrix24.auth import PortalAuth
from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.events import PortalChange, parse_delivery
from connectors.bitrix24.form import encode_form
from connectors.bitrix24.install import (
    BadPublicUrl,
    apply_portal_change,
    install_page,
    rebind_portal,
    render_setup,
    verify_tokens,
)
from connectors.bitrix24.settings import Bitrix24Settings, Bitrix24SettingsSchema
from connectors.bitrix24.throttle import LeakyBucket
from connectors.errors import BadSignature
from tests.connectors.bitrix24.stores import MemoryInstallationStore

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1_724_916_000.0
MEMBER = "a223c6b3710f85df22e9377d6c4f7553"
DOMAIN = "acme.bitrix24.com"
CLIENT_ID = "local.6716ce0a1b2c34.56789012"
CLIENT_SECRET = "WITNESS-client-secret-Qm9vYXJzZWNyZXQ"
AUTH = "WITNESS-auth-id-9d4c7166007e9c94001e30ba"
REFRESH = "WITNESS-refresh-id-8c3b9966007e9c94001e"
APP_TOKEN = "WITNESS-app-token-ec1b2074a9d3f5c81b6e"
OLD_ACCESS = "WITNESS-old-access-3s6lr4kr3cv2od4v"
OLD_REFRESH = "WITNESS-old-refresh-nfhxkzk3gvrg375w"
OLD_APP_TOKEN = "WITNESS-old-app-token-51856fefc120afa4"
WITNESSES = (CLIENT_SECRET, AUTH, REFRESH, APP_TOKEN, OLD_ACCESS, OLD_REFRESH, OLD_APP_TOKEN)
APP_INFO_URL = "https://oauth.bitrix.info/rest/app.info"
BATCH_URL = f"https://{DOMAIN}/rest/batch"
PUBLIC = "https://clientguard.example.com"
HOOK = "https%3A%2F%2Fclientguard.example.com%2Fhooks%2Fbitrix24"
PAGE = "https%3A%2F%2Fclientguard.example.com%2Fapps%2Fbitrix24%2Fhealth-check"
SCOPE = "crm,task,tasks,im,user_brief,placement"
EVENTS = (
    "ONAPPINSTALL", "ONAPPUPDATE", "ONAPPUNINSTALL",
    "ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE", "ONCRMDEALMOVETOCATEGORY",
    "ONCRMTIMELINECOMMENTADD", "ONCRMTIMELINECOMMENTUPDATE", "ONCRMTIMELINECOMMENTDELETE",
    "ONCRMACTIVITYADD", "ONCRMACTIVITYUPDATE", "ONCRMACTIVITYDELETE",
    "ONTASKADD", "ONTASKUPDATE", "ONTASKDELETE",
    "ONTASKCOMMENTADD", "ONTASKCOMMENTUPDATE", "ONTASKCOMMENTDELETE",
    "ONCRMDYNAMICITEMADD", "ONCRMDYNAMICITEMUPDATE", "ONCRMDYNAMICITEMDELETE",
)
OFFLINE = EVENTS[3:]  # the engagement events, bound as offline events too (not ONAPP*)
RU_TITLE = ("%D0%9F%D1%80%D0%BE%D0%B2%D0%B5%D1%80%D0%BA%D0%B0%20%D0%BA%D0%B0%D1%87%D0%B5%D1%81"
            "%D1%82%D0%B2%D0%B0%20%D1%81%D0%B5%D1%80%D0%B2%D0%B8%D1%81%D0%B0")  # Проверка…
PLACEMENT_CMD = ("placement.bind?PLACEMENT={code}&HANDLER=" + PAGE + "&TITLE=Health%20check"
                 "&LANG_ALL[en][TITLE]=Health%20check&LANG_ALL[ru][TITLE]=" + RU_TITLE
                 + "&LANG_ALL[da][TITLE]=Sundhedstjek")
BIND_ALL = {
    **{f"bind_{event}": f"event.bind?event={event}&handler={HOOK}" for event in EVENTS},
    "placement_CRM_DEAL_DETAIL_TAB": PLACEMENT_CMD.format(code="CRM_DEAL_DETAIL_TAB"),
    "placement_CRM_DEAL_DETAIL_TOOLBAR": PLACEMENT_CMD.format(code="CRM_DEAL_DETAIL_TOOLBAR"),
    **{f"offline_{event}": f"event.bind?event={event}&event_type=offline" for event in OFFLINE},
}
INSTALLED = {
    "member_id": MEMBER, "domain": DOMAIN, "client_endpoint": f"https://{DOMAIN}/rest/",
    "server_endpoint": "https://oauth.bitrix.info/rest/", "application_token": APP_TOKEN,
    "access_token": AUTH, "refresh_token": REFRESH, "expires": 1_724_919_600,
    "scope": SCOPE, "user_id": "1", "installed": True, "offline_events": True,
}
UNFINISHED = {**{key: value for key, value in INSTALLED.items() if key != "offline_events"},
              "installed": False}
"""A portal stored while its bindings are made, or after they failed."""
TIME = {"start": 1724916000.1, "finish": 1724916000.2, "duration": 0.1, "processing": 0.05,
        "date_start": "2024-08-29T07:20:00+00:00", "date_finish": "2024-08-29T07:20:00+00:00",
        "operating": 0}


def settings(**section: Any) -> Bitrix24Settings:
    return Bitrix24SettingsSchema().load({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                          "public_url": PUBLIC + "/", **section})


def no_sleep(_: float) -> None:
    raise AssertionError("nothing may sleep here")


def client_with(auth: Any) -> Bitrix24Client:
    return Bitrix24Client(auth, LeakyBucket(2.0, 50, clock=lambda: NOW, sleep=no_sleep),
                          sleep=no_sleep, clock=lambda: NOW)


def frame(lang: str = "en", **form: str) -> PageRequest:
    """The POST the portal sends to the initial installation path
    [D:local-integrations/serverside-local-app-with-ui.md]."""
    return PageRequest(
        method="POST",
        query={"DOMAIN": DOMAIN, "PROTOCOL": "1", "LANG": lang,
               "APP_SID": "0f5a2e9b6c1d4a8e7f30b21c5d9e4a6b"},
        form={"AUTH_ID": AUTH, "AUTH_EXPIRES": "3600", "REFRESH_ID": REFRESH,
              "SERVER_ENDPOINT": "https://oauth.bitrix.info/rest/",
              "APPLICATION_TOKEN": APP_TOKEN, "APPLICATION_SCOPE": SCOPE, "member_id": MEMBER,
              "status": "L", "PLACEMENT": "DEFAULT", **form},
        headers={"content-type": "application/x-www-form-urlencoded"})


def app_info(client_id: str = CLIENT_ID, member_id: str = MEMBER, domain: str = DOMAIN,
             installed: bool = False) -> dict[str, Any]:
    """The OAuth server's app.info answer (b24pysdk `BitrixAppInfoResponseData`)."""
    return {"result": {
        "client_id": client_id, "scope": SCOPE, "expires": "2024-08-29T08:20:00+00:00",
        "user_id": 1,
        "install": {"installed": installed, "version": 1, "status": "L", "scope": SCOPE,
                    "domain": domain, "uri": f"https://{domain}",
                    "client_endpoint": f"https://{domain}/rest/", "member_id": member_id,
                    "member_type": "PORTAL"}},
        "time": TIME}


def stub_app_info(portal: responses.RequestsMock, answer: dict[str, Any] | None = None,
                  token: str = AUTH, status: int = 200) -> None:
    portal.get(APP_INFO_URL, json=answer if answer is not None else app_info(), status=status,
               match=[matchers.query_param_matcher({"auth": token})])


def batch_answer(results: dict[str, Any], errors: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    return {"result": {"result": results, "result_error": errors or [], "result_total": [],
                       "result_next": [], "result_time": []}, "time": TIME}


def stub_lists(portal: responses.RequestsMock, events: list[dict[str, Any]],
               placements: list[dict[str, Any]], token: str = AUTH,
               errors: dict[str, Any] | None = None) -> None:
    results: dict[str, Any] = {"events": events, "placements": placements}
    for key in errors or {}:
        results.pop(key)
    portal.post(BATCH_URL, json=batch_answer(results, errors), match=[
        matchers.json_params_matcher({"halt": 0, "cmd": {"events": "event.get",
                                                          "placements": "placement.get"},
                                      "auth": token})])


def stub_binds(portal: responses.RequestsMock, cmd: dict[str, str], token: str = AUTH,
               errors: dict[str, Any] | None = None, **kwargs: Any) -> None:
    results = {key: True for key in cmd if key not in (errors or {})}
    portal.post(BATCH_URL, json=batch_answer(results, errors), match=[
        matchers.json_params_matcher({"halt": 0, "cmd": cmd, "auth": token})], **kwargs)


def bound_event(event: str, handler: str = f"{PUBLIC}/hooks/bitrix24",
                auth_type: str = "0") -> dict[str, Any]:
    return {"event": event, "handler": handler, "auth_type": auth_type, "offline": 0}


def bound_offline(event: str) -> dict[str, Any]:
    """An offline registration as `event.get` lists it: no handler, `offline: 1`
    [D:api-reference/events/event-get.md]."""
    return {"event": event, "handler": "", "auth_type": "0", "offline": 1}


def bound_placement(code: str, handler: str = f"{PUBLIC}/apps/bitrix24/health-check"
                    ) -> dict[str, Any]:
    return {"placement": code, "userId": 0, "handler": handler, "options": [],
            "title": "Health check", "description": "",
            "langAll": {"en": {"TITLE": "Health check", "DESCRIPTION": "", "GROUP_NAME": ""}}}


def fixture_error(name: str) -> dict[str, Any]:
    """An error body of `fixtures/errors.json`, as a batch reports it per command."""
    errors = json.loads((FIXTURES / "errors.json").read_text(encoding="utf-8"))
    return dict(errors[name]["body"])


def no_witness(records: list[logging.LogRecord]) -> None:
    for record in records:
        text = record.getMessage()
        for witness in WITNESSES:
            assert witness not in text, (record.name, text)


# -- the install page -------------------------------------------------------------------

def test_a_full_install_checks_the_token_stores_binds_and_finishes(
        portal: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = MemoryInstallationStore()
    stub_app_info(portal)
    stub_lists(portal, [], [])
    seen_while_binding: list[dict[str, Any] | None] = []

    def binds(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        seen_while_binding.append(store.load(MEMBER))
        return 200, {}, json.dumps(batch_answer({key: True for key in BIND_ALL}))

    portal.add_callback(responses.POST, BATCH_URL, callback=binds, match=[
        matchers.json_params_matcher({"halt": 0, "cmd": BIND_ALL, "auth": AUTH})])

    reply = install_page(frame(), settings(), store, client_with, clock=lambda: NOW)

    assert reply.status == 200
    assert reply.content_type == "text/html; charset=utf-8"
    assert "X-Frame-Options" not in reply.headers and "Content-Security-Policy" not in reply.headers
    assert '<script src="//api.bitrix24.com/api/v1/"></script>' in reply.body
    assert "<script>BX24.init(function(){ BX24.installFinish(); });</script>" in reply.body
    assert "<h1>ClientGuard is installed</h1>" in reply.body
    assert ("<p>ClientGuard now checks this portal's deals and writes its warnings as the "
            "administrator who installed it (user 1).</p>") in reply.body
    assert f"<p>Events sent to {PUBLIC}/hooks/bitrix24:</p>" in reply.body
    assert "<li>ONCRMDEALUPDATE</li>" in reply.body
    assert "<li>CRM_DEAL_DETAIL_TOOLBAR</li>" in reply.body
    assert store.load(MEMBER) == INSTALLED
    assert seen_while_binding == [UNFINISHED]
    assert any("installed by user 1" in record.getMessage() for record in caplog.records)
    no_witness(caplog.records)
    for witness in WITNESSES:
        assert witness not in reply.body


def test_the_page_speaks_the_portal_language(portal: responses.RequestsMock) -> None:
    stub_app_info(portal)
    stub_lists(portal, [], [])
    stub_binds(portal, BIND_ALL)

    reply = install_page(frame(lang="ru"), settings(), MemoryInstallationStore(), client_with,
                         clock=lambda: NOW)

    assert '<html lang="ru">' in reply.body
    assert "<h1>ClientGuard установлен</h1>" in reply.body
    assert "<p>Кнопки и вкладки:</p>" in reply.body


@pytest.mark.parametrize(("answer", "reason"), [
    (app_info(client_id="local.99999999999999.00000000"),
     "the token belongs to application &#x27;local.99999999999999.00000000&#x27;, not to "
     "&#x27;local.6716ce0a1b2c34.56789012&#x27;"),
    (app_info(member_id="d897063e1ce7c5eb9f04b9751eef5915"),
     "the token belongs to portal &#x27;d897063e1ce7c5eb9f04b9751eef5915&#x27;, not to "
     "&#x27;a223c6b3710f85df22e9377d6c4f7553&#x27;"),
    (app_info(domain="evil.bitrix24.com"),
     "the token belongs to &#x27;evil.bitrix24.com&#x27;, not to &#x27;acme.bitrix24.com&#x27;"),
])
def test_a_forged_auth_id_is_refused_and_nothing_is_stored(
        portal: responses.RequestsMock, caplog: pytest.LogCaptureFixture,
        answer: dict[str, Any], reason: str) -> None:
    caplog.set_level(logging.DEBUG)
    store = MemoryInstallationStore()
    stub_app_info(portal, answer)

    reply = install_page(frame(), settings(), store, client_with, clock=lambda: NOW)

    assert reply.status == 403
    assert "<h1>Request refused</h1>" in reply.body
    assert reason in reply.body
    assert "installFinish" not in reply.body
    assert store.sites() == [] and store.changes == 0
    no_witness(caplog.records)


def test_a_token_the_oauth_server_does_not_know_is_refused(
        portal: responses.RequestsMock) -> None:
    store = MemoryInstallationStore()
    stub_app_info(portal, {"error": "invalid_token", "error_description":
                           "The access token provided is invalid."}, status=401)

    reply = install_page(frame(), settings(), store, client_with, clock=lambda: NOW)

    assert reply.status == 403
    assert "invalid_token" in reply.body and AUTH not in reply.body
    assert store.sites() == []


def test_an_oauth_server_named_by_the_request_is_not_asked(
        portal: responses.RequestsMock) -> None:
    store = MemoryInstallationStore()

    reply = install_page(frame(SERVER_ENDPOINT="https://oauth.evil.example/rest/"), settings(),
                         store, client_with, clock=lambda: NOW)

    assert reply.status == 403
    assert ("the OAuth server &#x27;https://oauth.evil.example/rest/&#x27; is not one of "
            "oauth.bitrix.info, oauth.bitrix24.tech") in reply.body
    assert store.sites() == []


def test_a_token_of_an_installed_portal_cannot_reinstall_it(
        portal: responses.RequestsMock) -> None:
    """Any user's frame token would pass app.info; the portal opens the install path only
    while the application is not installed, so an installed portal keeps its installer."""
    store = MemoryInstallationStore({MEMBER: {**INSTALLED, "access_token": OLD_ACCESS}})
    stub_app_info(portal, app_info(installed=True))

    reply = install_page(frame(), settings(), store, client_with, clock=lambda: NOW)

    assert reply.status == 403
    assert "ClientGuard is already installed on this portal." in reply.body
    assert store.load(MEMBER) == {**INSTALLED, "access_token": OLD_ACCESS}


def test_a_non_administrator_gets_advice_and_no_install_finish(
        portal: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = MemoryInstallationStore()
    stub_app_info(portal)
    stub_lists(portal, [], [], errors={"placements": {
        "error": "ACCESS_DENIED", "error_description": "Access denied!"}})

    reply = install_page(frame(), settings(), store, client_with, clock=lambda: NOW)

    assert reply.status == 200
    assert "installFinish" not in reply.body and "api.bitrix24.com" not in reply.body
    assert "<h1>ClientGuard is not installed yet</h1>" in reply.body
    assert ("<p>Only a Bitrix24 administrator can install ClientGuard: ask one to open it.</p>"
            in reply.body)
    assert store.load(MEMBER) == UNFINISHED
    no_witness(caplog.records)


def test_a_refused_binding_leaves_the_portal_not_installed(
        portal: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = MemoryInstallationStore()
    stub_app_info(portal)
    stub_lists(portal, [], [])
    refused = {"error": "WRONG_AUTH_TYPE", "error_description": "Current authorization type "
               "is denied for this method Application context required"}
    stub_binds(portal, BIND_ALL, errors={"placement_CRM_DEAL_DETAIL_TAB": refused,
                                         "placement_CRM_DEAL_DETAIL_TOOLBAR": refused})

    reply = install_page(frame(), settings(), store, client_with, clock=lambda: NOW)

    assert reply.status == 200
    assert "installFinish" not in reply.body
    assert ("<p>Bitrix24 answered: batch placement_CRM_DEAL_DETAIL_TAB (placement.bind): "
            "Bitrix24 answered WRONG_AUTH_TYPE: Current authorization type is denied for this "
            "method Application context required</p>") in reply.body
    assert ("<p>Bitrix24 allows this only to the local application itself: open ClientGuard "
            "from Applications, not through a webhook.</p>") in reply.body
    assert "the installation picks up where it stopped" in reply.body
    assert store.load(MEMBER) == UNFINISHED
    warnings = [record.getMessage() for record in caplog.records
                if record.levelno == logging.WARNING]
    assert warnings == [f"Bitrix24 portal {MEMBER} not installed: placement.bind "
                        "CRM_DEAL_DETAIL_TAB: WRONG_AUTH_TYPE; placement.bind "
                        "CRM_DEAL_DETAIL_TOOLBAR: WRONG_AUTH_TYPE"]
    no_witness(caplog.records)


def test_an_event_the_portal_does_not_know_is_skipped(portal: responses.RequestsMock) -> None:
    store = MemoryInstallationStore()
    stub_app_info(portal)
    stub_lists(portal, [], [])
    stub_binds(portal, BIND_ALL, errors={"bind_ONCRMDYNAMICITEMADD": {
        "error": "ERROR_EVENT_NOT_FOUND", "error_description": "Event not found"}})

    reply = install_page(frame(), settings(), store, client_with, clock=lambda: NOW)

    assert "BX24.installFinish()" in reply.body
    assert "<p>Not available on this portal, skipped: ONCRMDYNAMICITEMADD</p>" in reply.body
    assert store.load(MEMBER) == INSTALLED


def test_offline_events_the_portal_refuses_do_not_stop_the_install(
        portal: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    """Offline events are for administrators, and the plan decides
    [D:api-reference/events/event-bind.md, offline-events.md]: without them the review
    falls back on `updatedTime`, and the portal is installed all the same."""
    caplog.set_level(logging.INFO)
    store = MemoryInstallationStore()
    stub_app_info(portal)
    stub_lists(portal, [], [])
    denied = fixture_error("ACCESS_DENIED_event_offline_get")
    stub_binds(portal, BIND_ALL, errors={f"offline_{event}": denied for event in OFFLINE})

    reply = install_page(frame(), settings(), store, client_with, clock=lambda: NOW)

    assert "BX24.installFinish()" in reply.body
    assert store.load(MEMBER) == {**INSTALLED, "offline_events": False}
    installed = [record.getMessage() for record in caplog.records
                 if "installed by user 1" in record.getMessage()]
    assert len(installed) == 1
    assert ("0 offline events bound, 0 kept, offline refused: event.bind ONCRMDEALADD "
            "(offline) (ACCESS_DENIED); event.bind ONCRMDEALUPDATE (offline) (ACCESS_DENIED)"
            in installed[0])
    no_witness(caplog.records)


def test_an_offline_event_the_portal_does_not_know_is_skipped(
        portal: responses.RequestsMock) -> None:
    store = MemoryInstallationStore()
    stub_app_info(portal)
    stub_lists(portal, [], [])
    stub_binds(portal, BIND_ALL, errors={"offline_ONCRMDYNAMICITEMADD": {
        "error": "ERROR_EVENT_NOT_FOUND", "error_description": "Event not found"}})

    reply = install_page(frame(), settings(), store, client_with, clock=lambda: NOW)

    assert "BX24.installFinish()" in reply.body
    assert store.load(MEMBER) == INSTALLED


def test_a_rebind_records_that_offline_events_were_refused(
        portal: responses.RequestsMock) -> None:
    store = MemoryInstallationStore({MEMBER: {**INSTALLED, "needs_rebind": True}})
    client = client_with(PortalAuth(store, MEMBER, CLIENT_ID, CLIENT_SECRET, clock=lambda: NOW))
    stub_lists(portal, [], [])
    denied = fixture_error("ACCESS_DENIED_event_offline_get")
    stub_binds(portal, BIND_ALL, errors={f"offline_{event}": denied for event in OFFLINE})

    binding = rebind_portal(MEMBER, settings(), store, client)

    assert binding.ok and binding.offline_events is False
    assert [failure.code for failure in binding.offline_refused] == ["ACCESS_DENIED"] * 19
    assert store.load(MEMBER) == {**INSTALLED, "offline_events": False}


def test_reinstalling_binds_nothing_twice_and_removes_stale_registrations(
        portal: responses.RequestsMock) -> None:
    """The Reinstall button: the portal says not installed again; what is bound to our URL
    stays, what points elsewhere (an old public URL, a fixed auth_type) is removed."""
    store = MemoryInstallationStore({MEMBER: {
        **INSTALLED, "access_token": OLD_ACCESS, "refresh_token": OLD_REFRESH,
        "application_token": OLD_APP_TOKEN, "expires": 1_724_000_000, "needs_rebind": True}})
    stub_app_info(portal)
    events = [bound_event(event) for event in EVENTS if event != "ONCRMDEALADD"]
    events += [bound_event("ONCRMDEALADD", "https://old.example.com/hooks/bitrix24"),
               bound_event("ONCRMDEALUPDATE", auth_type="1"),
               {"event": "ONCRMDEALUPDATE", "handler": "", "auth_type": "0", "offline": 1}]
    placements = [bound_placement("CRM_DEAL_DETAIL_TAB"),
                  bound_placement("CRM_DEAL_DETAIL_TOOLBAR", "https://old.example.com/b24")]
    stub_lists(portal, events, placements)
    stub_binds(portal, {
        "unbind_event_0": "event.unbind?event=ONCRMDEALADD&handler=https%3A%2F%2Fold.example.com"
                          "%2Fhooks%2Fbitrix24&auth_type=0",
        "unbind_event_1": f"event.unbind?event=ONCRMDEALUPDATE&handler={HOOK}&auth_type=1",
        "unbind_placement_0": "placement.unbind?PLACEMENT=CRM_DEAL_DETAIL_TOOLBAR&HANDLER="
                              "https%3A%2F%2Fold.example.com%2Fb24",
        "bind_ONCRMDEALADD": f"event.bind?event=ONCRMDEALADD&handler={HOOK}",
        "placement_CRM_DEAL_DETAIL_TOOLBAR": PLACEMENT_CMD.format(code="CRM_DEAL_DETAIL_TOOLBAR"),
        **{key: command for key, command in BIND_ALL.items()
           if key.startswith("offline_") and key != "offline_ONCRMDEALUPDATE"},
    })

    reply = install_page(frame(), settings(), store, client_with, clock=lambda: NOW)

    assert "BX24.installFinish()" in reply.body
    assert store.load(MEMBER) == INSTALLED


def test_reinstalling_with_everything_bound_makes_no_binding_call(
        portal: responses.RequestsMock) -> None:
    store = MemoryInstallationStore()
    stub_app_info(portal)
    stub_lists(portal, [bound_event(event) for event in EVENTS]
               + [bound_offline(event) for event in OFFLINE],
               [bound_placement("CRM_DEAL_DETAIL_TAB"), bound_placement("CRM_DEAL_DETAIL_TOOLBAR")])

    reply = install_page(frame(), settings(), store, client_with, clock=lambda: NOW)

    assert "BX24.installFinish()" in reply.body
    assert "<li>ONCRMDYNAMICITEMDELETE</li>" in reply.body
    assert store.load(MEMBER) == INSTALLED


def test_a_request_without_tokens_is_refused(portal: responses.RequestsMock) -> None:
    reply = install_page(PageRequest("GET", {}, {}, {}), settings(), MemoryInstallationStore(),
                         client_with)

    assert reply.status == 400
    assert "it was not sent by Bitrix24" in reply.body


def test_webhook_mode_has_no_install_page(portal: responses.RequestsMock) -> None:
    hooks = Bitrix24SettingsSchema().load({"webhook_url": "https://acme.bitrix24.com/rest/1/x/",
                                           "outgoing_token": "t" * 32})

    reply = install_page(frame(), hooks, MemoryInstallationStore(), client_with)

    assert reply.status == 503
    assert "ClientGuard is configured for webhooks, not as a local application" in reply.body


# -- the script-only install callback ---------------------------------------------------

SCRIPT_AUTH = {
    "access_token": AUTH, "expires_in": "3600", "scope": SCOPE, "domain": DOMAIN,
    "server_endpoint": "https://oauth.bitrix.info/rest/", "status": "L",
    "client_endpoint": f"https://{DOMAIN}/rest/", "member_id": MEMBER,
    "refresh_token": REFRESH, "application_token": APP_TOKEN,
}


@pytest.mark.parametrize("flask_parsed_the_form", [False, True])
def test_a_script_only_install_is_stored_bound_and_answered_with_json(
        portal: responses.RequestsMock, caplog: pytest.LogCaptureFixture,
        flask_parsed_the_form: bool) -> None:
    """[D:settings/app-installation/local-apps/installation-callback.md]. Flask's
    `request.get_data()` is empty once `request.form` was read: the flat fields serve."""
    caplog.set_level(logging.DEBUG)
    store = MemoryInstallationStore()
    body = encode_form({"auth": SCRIPT_AUTH})
    flat = {f"auth[{key}]": value for key, value in SCRIPT_AUTH.items()}
    request = PageRequest("POST", {}, flat if flask_parsed_the_form else {},
                          {"content-type": "application/x-www-form-urlencoded"},
                          b"" if flask_parsed_the_form else body)
    stub_app_info(portal)
    stub_lists(portal, [], [])
    stub_binds(portal, BIND_ALL)

    reply = install_page(request, settings(), store, client_with, clock=lambda: NOW)

    assert reply.status == 200
    assert reply.content_type == "application/json"
    assert json.loads(reply.body) == {"installed": True, "events": list(EVENTS),
                                      "placements": ["CRM_DEAL_DETAIL_TAB",
                                                     "CRM_DEAL_DETAIL_TOOLBAR"]}
    assert store.load(MEMBER) == INSTALLED
    no_witness(caplog.records)


def test_a_script_callback_whose_bindings_are_refused_says_which_and_stays_unfinished(
        portal: responses.RequestsMock) -> None:
    """The same install as the frame's, answered in JSON: 200 (the callback was heard), not
    installed, each refused binding named."""
    store = MemoryInstallationStore()
    refused = {"error": "WRONG_AUTH_TYPE", "error_description": "Application context required"}
    stub_app_info(portal)
    stub_lists(portal, [], [])
    stub_binds(portal, BIND_ALL, errors={"placement_CRM_DEAL_DETAIL_TAB": refused})

    reply = install_page(PageRequest("POST", {}, {}, {}, encode_form({"auth": SCRIPT_AUTH})),
                         settings(), store, client_with, clock=lambda: NOW)

    assert reply.status == 200
    assert json.loads(reply.body) == {
        "installed": False,
        "error": "placement.bind CRM_DEAL_DETAIL_TAB: WRONG_AUTH_TYPE"}
    assert store.load(MEMBER) == UNFINISHED


def test_a_script_callback_cannot_replace_an_installed_portal(
        portal: responses.RequestsMock) -> None:
    store = MemoryInstallationStore({MEMBER: {**INSTALLED, "application_token": OLD_APP_TOKEN}})
    stub_app_info(portal, app_info(installed=True))

    reply = install_page(PageRequest("POST", {}, {}, {}, encode_form({"auth": SCRIPT_AUTH})),
                         settings(), store, client_with, clock=lambda: NOW)

    assert reply.status == 403
    assert json.loads(reply.body) == {"installed": False,
                                      "error": "the portal is installed already"}
    assert store.load(MEMBER) == {**INSTALLED, "application_token": OLD_APP_TOKEN}


# -- portal lifecycle events ------------------------------------------------------------

FIXTURE_MEMBER = "a223c6b3710f85df22e9377d6c4f7553"


def fixture_change(name: str, stored_token: str | None = None,
                   **auth: str) -> PortalChange:
    """A lifecycle event as the intake parses it (`events.parse_delivery`)."""
    payload = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    payload["auth"].update(auth)
    delivery = Delivery(encode_form(payload),
                        {"content-type": "application/x-www-form-urlencoded"},
                        datetime.fromtimestamp(NOW, UTC))
    change = parse_delivery(delivery, settings(), lambda member: stored_token)
    assert isinstance(change, PortalChange)
    return change


class Verifier:
    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def __call__(self, auth: dict[str, Any]) -> bool:
        self.calls.append(auth)
        return self.answer


def test_an_unverified_install_event_is_checked_then_stored() -> None:
    store = MemoryInstallationStore()
    change = fixture_change("event_ONAPPINSTALL.json")
    verify = Verifier(True)

    said = apply_portal_change(change, settings(), store, verify, clock=lambda: NOW)

    assert change.verified is False
    assert verify.calls == [{
        "domain": "some-domain.bitrix24.com", "client_endpoint":
        "https://some-domain.bitrix24.com/rest/", "server_endpoint":
        "https://oauth.bitrix.info/rest/", "application_token": "51856fefc120afa4b628cc82d3935cce",
        "access_token": "s6p6eclrvim6da22ft9ch94ekreb52lv",
        "refresh_token": "4s386p3q0tr8dy89xvmt96234v3dljg8", "expires_in": "3600",
        "scope": "imbot", "member_id": FIXTURE_MEMBER}]
    assert store.load(FIXTURE_MEMBER) == {
        "member_id": FIXTURE_MEMBER, "installed": False, "domain": "some-domain.bitrix24.com",
        "client_endpoint": "https://some-domain.bitrix24.com/rest/",
        "server_endpoint": "https://oauth.bitrix.info/rest/",
        "application_token": "51856fefc120afa4b628cc82d3935cce",
        "access_token": "s6p6eclrvim6da22ft9ch94ekreb52lv",
        "refresh_token": "4s386p3q0tr8dy89xvmt96234v3dljg8", "expires": 1_724_919_600,
        "scope": "imbot"}
    assert said == (f"portal {FIXTURE_MEMBER}: install recorded; tokens stored; application "
                    "token changed")


def test_an_install_event_the_oauth_server_denies_is_rejected() -> None:
    store = MemoryInstallationStore()

    with pytest.raises(BadSignature, match="did not confirm its access token"):
        apply_portal_change(fixture_change("event_ONAPPINSTALL.json"), settings(), store,
                            Verifier(False), clock=lambda: NOW)

    assert store.sites() == []


def test_a_verified_install_event_is_not_checked_again_and_keeps_addresses() -> None:
    """The stored addresses win: a delivery cannot point ClientGuard's calls elsewhere."""
    store = MemoryInstallationStore({FIXTURE_MEMBER: {
        **INSTALLED, "member_id": FIXTURE_MEMBER, "application_token":
        "51856fefc120afa4b628cc82d3935cce", "expires": 1_724_916_100}})
    change = fixture_change("event_ONAPPINSTALL.json", "51856fefc120afa4b628cc82d3935cce",
                            client_endpoint="https://evil.example/rest/")
    verify = Verifier(False)

    apply_portal_change(change, settings(), store, verify, clock=lambda: NOW)

    assert change.verified is True and verify.calls == []
    assert store.load(FIXTURE_MEMBER) == {
        **INSTALLED, "member_id": FIXTURE_MEMBER,
        "application_token": "51856fefc120afa4b628cc82d3935cce",
        "access_token": "s6p6eclrvim6da22ft9ch94ekreb52lv",
        "refresh_token": "4s386p3q0tr8dy89xvmt96234v3dljg8", "expires": 1_724_919_600,
        "scope": "imbot"}


def test_an_update_stores_the_new_application_token_and_asks_for_a_rebind() -> None:
    update_member = "d41d8cd98f00b204e9800998ecf8427e"
    store = MemoryInstallationStore({update_member: {**INSTALLED, "member_id": update_member,
                                                     "application_token": OLD_APP_TOKEN}})

    said = apply_portal_change(fixture_change("event_ONAPPUPDATE.json"), settings(), store,
                               Verifier(True), clock=lambda: NOW)

    state = store.load(update_member)
    assert state is not None
    assert state["application_token"] == "c917d38f6bdb84e9d9e0bfe9d585be73"
    assert state["needs_rebind"] is True and state["installed"] is True
    assert state["access_token"] == AUTH  # expires no later than the stored token: kept
    assert said == (f"portal {update_member}: update recorded; tokens kept; application token "
                    "changed; bindings must be renewed (needs_rebind)")


def test_uninstall_marks_the_portal_not_installed_and_drops_its_tokens() -> None:
    store = MemoryInstallationStore({FIXTURE_MEMBER: {
        **INSTALLED, "member_id": FIXTURE_MEMBER,
        "application_token": "51856fefc120afa4b628cc82d3935cce"}})
    change = fixture_change("event_ONAPPUNINSTALL.json", "51856fefc120afa4b628cc82d3935cce")

    said = apply_portal_change(change, settings(), store, Verifier(False), clock=lambda: NOW)

    assert said == f"portal {FIXTURE_MEMBER}: uninstalled; tokens dropped"
    assert store.load(FIXTURE_MEMBER) == {
        "member_id": FIXTURE_MEMBER, "domain": DOMAIN,
        "client_endpoint": f"https://{DOMAIN}/rest/",
        "server_endpoint": "https://oauth.bitrix.info/rest/", "scope": SCOPE, "user_id": "1",
        "installed": False, "offline_events": True,
        "uninstalled_at": "2024-08-29T07:20:00+00:00"}


def test_rebind_portal_binds_with_the_stored_tokens_and_clears_the_flag(
        portal: responses.RequestsMock) -> None:
    store = MemoryInstallationStore({MEMBER: {**INSTALLED, "needs_rebind": True}})
    client = client_with(PortalAuth(store, MEMBER, CLIENT_ID, CLIENT_SECRET, clock=lambda: NOW))
    stub_lists(portal, [], [])
    stub_binds(portal, BIND_ALL)

    binding = rebind_portal(MEMBER, settings(), store, client)

    assert binding.ok and len(binding.events_bound) == 22
    assert binding.offline_bound == OFFLINE
    assert store.load(MEMBER) == INSTALLED


# -- verify_tokens ----------------------------------------------------------------------

def test_verify_tokens_asks_app_info(portal: responses.RequestsMock) -> None:
    stub_app_info(portal)

    assert verify_tokens({"access_token": AUTH, "member_id": MEMBER, "domain": DOMAIN,
                          "server_endpoint": "https://oauth.bitrix.info/rest/"}, settings())


def test_verify_tokens_refuses_another_application(portal: responses.RequestsMock,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    stub_app_info(portal, app_info(client_id="local.99999999999999.00000000"))

    assert not verify_tokens({"access_token": AUTH, "member_id": MEMBER,
                              "server_endpoint": "https://oauth.bitrix.info/rest/"}, settings())
    no_witness(caplog.records)


def test_verify_tokens_never_asks_an_unknown_server(portal: responses.RequestsMock) -> None:
    assert not verify_tokens({"access_token": AUTH, "member_id": MEMBER,
                              "server_endpoint": "https://evil.example/rest/"}, settings())


# -- `clientguard install bitrix24` -----------------------------------------------------

SETUP = """\
Bitrix24: connect a portal to ClientGuard at https://clientguard.example.com

A. Local application (recommended: events, REST calls and the Health check button)
  In the portal: Applications → Developer resources → Other → Local application
    Type: server; leave "Script only (no user interface)" off
    Your handler path: https://clientguard.example.com/apps/bitrix24/health-check
    Initial installation path: https://clientguard.example.com/apps/bitrix24/install
    Menu item text (English): ClientGuard
    Assign permissions (scopes): crm, task, tasks, im, user_brief, placement
  Save: the application card shows its client_id (local.…) and client_secret.
  Configure ClientGuard and restart it:
    [bitrix24]
    client_id = "local.6716ce0a1b2c34.56789012"
    public_url = "https://clientguard.example.com"
    and in the environment: CLIENTGUARD_BITRIX24__CLIENT_SECRET=<client_secret>
  Then open the application in the portal as an administrator: its install page
  checks the token with the OAuth server, binds what follows and finishes the
  installation. That administrator is the user ClientGuard writes as.
    22 events → https://clientguard.example.com/hooks/bitrix24
    placements CRM_DEAL_DETAIL_TAB, CRM_DEAL_DETAIL_TOOLBAR ("Health check")
      → https://clientguard.example.com/apps/bitrix24/health-check

B. Webhooks (quick start: one portal, no Health check button)
  Applications → Developer resources → Other → Incoming webhook
    Assign permissions (scopes): crm, task, tasks, im, user_brief
    Copy its REST URL https://<portal>/rest/<user id>/<code>/; ClientGuard writes as
    that user.
  Applications → Developer resources → Other → Outgoing webhook
    Handler URL: https://clientguard.example.com/hooks/bitrix24
    Events: ONCRMDEALADD, ONCRMDEALUPDATE, ONCRMDEALDELETE, ONCRMTIMELINECOMMENTADD,
      ONCRMTIMELINECOMMENTUPDATE, ONCRMTIMELINECOMMENTDELETE, ONCRMACTIVITYADD,
      ONCRMACTIVITYUPDATE, ONCRMACTIVITYDELETE, ONTASKADD, ONTASKUPDATE, ONTASKDELETE,
      ONTASKCOMMENTADD, ONTASKCOMMENTUPDATE, ONTASKCOMMENTDELETE, ONCRMDYNAMICITEMADD,
      ONCRMDYNAMICITEMUPDATE, ONCRMDYNAMICITEMDELETE
    Copy its application token.
  Configure ClientGuard and restart it:
    [bitrix24]
    site = "bitrix24"
    and in the environment:
    CLIENTGUARD_BITRIX24__WEBHOOK_URL=https://<portal>/rest/<user id>/<code>/
    CLIENTGUARD_BITRIX24__OUTGOING_TOKEN=<application token>
  ONCRMDEALMOVETOCATEGORY reaches applications only: a deal moved to another pipeline
  is caught by the review instead.

Now configured: local application local.6716ce0a1b2c34.56789012
"""


def test_render_setup_prints_the_local_application_and_the_webhooks() -> None:
    assert render_setup(settings()) == SETUP


def test_render_setup_takes_the_url_given_on_the_command_line() -> None:
    text = render_setup(Bitrix24SettingsSchema().load({"site": "acme"}),
                        "https://guard.agency.example/")

    assert "    Initial installation path: https://guard.agency.example/apps/bitrix24/install\n" \
        in text
    assert '    client_id = "local.…"\n' in text and '    site = "acme"\n' in text
    assert text.endswith("Now configured: nothing yet ([bitrix24] has neither client_id nor "
                         "webhook_url)\n")


def test_render_setup_needs_a_public_https_url() -> None:
    with pytest.raises(BadPublicUrl, match="must be https://"):
        render_setup(Bitrix24SettingsSchema().load({}), "http://guard.agency.example")
