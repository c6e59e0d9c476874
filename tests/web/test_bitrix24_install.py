"""A portal installs the local application through the real app and database: the install
page checks the token, stores the portal and binds events; from then on the portal's events
are accepted with its application token and refused with any other."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import responses
from flask import Flask
from sqlalchemy import func, select

from connectors.bitrix24.form import encode_form
from plugin.app import close_app, create_app
from plugin.config import build_config
from plugin.storage.models import EventRecord

MEMBER = "a223c6b3710f85df22e9377d6c4f7553"
DOMAIN = "acme.bitrix24.com"
CLIENT_ID = "local.6716ce0a1b2c34.56789012"
AUTH = "witness-auth-id-9d4c7166"
APP_TOKEN = "witness-app-token-ec1b2074"
PUBLIC = "https://clientguard.example.com"


@pytest.fixture
def app(database_url: str, queue_url: str) -> Iterator[Flask]:
    app = create_app(build_config({
        "service": {"database_url": database_url, "queue_url": queue_url},
        "bitrix24": {"client_id": CLIENT_ID, "client_secret": "witness-client-secret",
                     "public_url": PUBLIC},
    }))
    yield app
    app.extensions["clientguard.jobs"].huey.flush()
    close_app(app)


def portal_answers(mock: responses.RequestsMock) -> list[dict]:
    """The OAuth server's app.info, and the portal's batch: nothing bound yet, then every
    bind accepted. Returns the batch bodies sent."""
    mock.get("https://oauth.bitrix.info/rest/app.info", json={"result": {
        "client_id": CLIENT_ID, "scope": "crm,task,tasks,im,user_brief,placement",
        "user_id": 1, "install": {"installed": False, "domain": DOMAIN, "member_id": MEMBER,
                                  "client_endpoint": f"https://{DOMAIN}/rest/"}}})
    sent: list[dict] = []

    def batch(request) -> tuple[int, dict, str]:
        body = json.loads(request.body)
        sent.append(body)
        results = {key: [] if key in ("events", "placements") else True
                   for key in body["cmd"]}
        return 200, {}, json.dumps({"result": {"result": results, "result_error": [],
                                               "result_total": [], "result_next": [],
                                               "result_time": []}})

    mock.add_callback(responses.POST, f"https://{DOMAIN}/rest/batch", callback=batch)
    return sent


def install(app: Flask) -> tuple[int, str, list[dict]]:
    with responses.RequestsMock() as mock:
        sent = portal_answers(mock)
        response = app.test_client().post(
            "/apps/bitrix24/install?" + urlencode({"DOMAIN": DOMAIN, "PROTOCOL": "1",
                                                   "LANG": "en", "APP_SID": "abc"}),
            data={"AUTH_ID": AUTH, "AUTH_EXPIRES": "3600", "REFRESH_ID": "witness-refresh",
                  "SERVER_ENDPOINT": "https://oauth.bitrix.info/rest/",
                  "APPLICATION_TOKEN": APP_TOKEN, "member_id": MEMBER, "status": "L",
                  "PLACEMENT": "DEFAULT"})
    return response.status_code, response.get_data(as_text=True), sent


def deal_event(token: str, member_id: str = MEMBER) -> bytes:
    return encode_form({"event": "ONCRMDEALUPDATE", "data": {"FIELDS": {"ID": "410"}},
                        "ts": "1724916000",
                        "auth": {"domain": DOMAIN, "member_id": member_id,
                                 "application_token": token}})


def post_event(app: Flask, body: bytes):
    return app.test_client().post("/hooks/bitrix24", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})


def test_the_install_page_stores_the_portal_binds_and_finishes(app: Flask) -> None:
    status, page, sent = install(app)

    assert status == 200
    assert "BX24.installFinish()" in page
    binds = sent[-1]["cmd"]
    assert binds["bind_ONCRMDEALUPDATE"] == (
        "event.bind?event=ONCRMDEALUPDATE&handler="
        "https%3A%2F%2Fclientguard.example.com%2Fhooks%2Fbitrix24")
    assert len([key for key in binds if key.startswith("bind_")]) == 22
    assert binds["placement_CRM_DEAL_DETAIL_TAB"].startswith(
        "placement.bind?PLACEMENT=CRM_DEAL_DETAIL_TAB&HANDLER="
        "https%3A%2F%2Fclientguard.example.com%2Fapps%2Fbitrix24%2Fhealth-check")
    portals = app.extensions["clientguard.connectors"]["bitrix24"]
    assert portals.sites() == [MEMBER]


def test_after_installing_the_portals_events_are_accepted(app: Flask) -> None:
    install(app)

    response = post_event(app, deal_event(APP_TOKEN))

    assert response.status_code == 202
    assert response.json["status"] == "accepted"


@pytest.mark.parametrize(("installed", "token", "member_id"), [
    (True, "forged-token", MEMBER),
    (True, APP_TOKEN, "f" * 32),
    (False, APP_TOKEN, MEMBER),
], ids=["another token", "a portal that never installed the app", "before any install"])
def test_an_event_not_from_an_installed_app_is_refused_and_not_stored(
        app: Flask, installed: bool, token: str, member_id: str) -> None:
    if installed:
        assert install(app)[0] == 200

    response = post_event(app, deal_event(token, member_id))

    assert (response.status_code, response.json["error"]) == (401, "signature")
    with app.extensions["clientguard.database"].session() as session:
        assert session.scalar(select(func.count()).select_from(EventRecord)) == 0
