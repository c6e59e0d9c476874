"""The review's offline queue: `pull_offline` against stubbed `event.offline.get` answers,
and `Bitrix24Connector.recently_updated`, which adds what the queue names on the portals that
bound offline events.

Every test runs inside `portal`, a `responses.RequestsMock` that fails on an unused stub,
against the real client, whose bucket and retries never sleep. The answers are
`fixtures/rest/event.offline.get__*.json`, shaped like the docs' example
(api-reference/events/event-offline-get.md; provenance in `fixtures/rest/SOURCES.md`), the
captured `crm.item.list` answer, and the 403 of `fixtures/errors.json`.
"""

from __future__ import annotations

import functools
import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import responses
from responses import matchers

import connectors.bitrix24
from connectors.base import Delivery, EngagementRef, Event
from connectors.bitrix24 import Bitrix24Connector
from connectors.bitrix24.auth import PortalAuth
from connectors.bitrix24.client import Bitrix24Client, error_code
from connectors.bitrix24.events import parse_delivery
from connectors.bitrix24.form import encode_form
from connectors.bitrix24.offline import pull_offline
from connectors.bitrix24.settings import Bitrix24SettingsSchema
from connectors.bitrix24.throttle import LeakyBucket
from connectors.errors import AuthError, MalformedDelivery, PayloadError
from tests.connectors.bitrix24.stores import MemoryInstallationStore

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1_724_916_000.0
CLIENT_ID = "local.6716ce0a1b2c34.56789012"
CLIENT_SECRET = "WITNESS-client-secret-Qm9vYXJzZWNyZXQ"
ACME = "a223c6b3710f85df22e9377d6c4f7553"
BETA = "d41d8cd98f00b204e9800998ecf8427e"
ACME_TOKEN = "WITNESS-acme-access-3s6lr4kr3cv2od4v"
BETA_TOKEN = "WITNESS-beta-access-ydtj8pho532wydb5"
ACME_REST = "https://acme.bitrix24.com/rest"
BETA_REST = "https://beta.bitrix24.com/rest"
WEBHOOK_REST = "https://acme.bitrix24.com/rest/1/WITNESS0hook0code7q"
MIXED_REFS = ["410", "activity:20", "timeline-comment:999", "task:8017", "invoice:7", "411"]
"""What `event.offline.get__mixed.json` names, in queue order: deal 410 (updated, then added:
once), activity 20, timeline comment 999 (1001 is ClientGuard's own, by user 1), task 8017
(updated and commented: once), smart invoice 7 (not the item of smart process 128), deal 411
(`onCrmDealUpdate`). The lead, and the activity update without its id, name nothing."""
UPDATED_REFS = ["1", "2", "3"]  # the captured crm.item.list answer
FORM = {"content-type": "application/x-www-form-urlencoded"}
RECEIVED = datetime.fromtimestamp(NOW, UTC)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def rest(name: str) -> Any:
    return fixture(f"rest/{name}")


def state(member_id: str, domain: str, token: str, *, offline: bool) -> dict[str, Any]:
    """An installed portal as `install.py` stores it."""
    return {"member_id": member_id, "domain": domain, "client_endpoint": f"https://{domain}/rest/",
            "server_endpoint": "https://oauth.bitrix.info/rest/", "application_token": "x" * 32,
            "access_token": token, "refresh_token": "WITNESS-refresh", "expires": 4_102_444_800,
            "scope": "crm,task,tasks,im,user_brief,placement", "user_id": "1", "installed": True,
            "offline_events": offline}


def no_sleep(_: float) -> None:
    raise AssertionError("nothing may sleep here")


def never_sleeping_bucket(*_: Any) -> LeakyBucket:
    return LeakyBucket(2.0, 50, clock=lambda: NOW, sleep=no_sleep)


@pytest.fixture
def client() -> Bitrix24Client:
    store = MemoryInstallationStore({ACME: state(ACME, "acme.bitrix24.com", ACME_TOKEN,
                                                 offline=True)})
    auth = PortalAuth(store, ACME, CLIENT_ID, CLIENT_SECRET, clock=lambda: NOW)
    return Bitrix24Client(auth, never_sleeping_bucket(), sleep=no_sleep, clock=lambda: NOW)


def stub_queue(portal: responses.RequestsMock, answer: Any, *, base: str = ACME_REST,
               token: str = ACME_TOKEN, limit: int = 50, status: int = 200) -> None:
    portal.post(f"{base}/event.offline.get", json=answer, status=status, match=[
        matchers.json_params_matcher({"clear": 1, "limit": limit, "auth": token})])


def stub_updated(portal: responses.RequestsMock, *, base: str = ACME_REST,
                 token: str | None = ACME_TOKEN, answer: Any = None, status: int = 200) -> None:
    """`crm.item.list` of deals by `updatedTime` (the time in the filter is not matched)."""
    wanted: dict[str, Any] = {"entityTypeId": 2, "select": ["id", "updatedTime"],
                              "order": {"id": "ASC"}, "start": 0}
    if token is not None:
        wanted["auth"] = token
    portal.post(f"{base}/crm.item.list", status=status,
                json=answer if answer is not None else
                fixture("response_crm.item.list.captured.json"),
                match=[matchers.json_params_matcher(wanted, strict_match=False)])


def refs(site: str, keys: list[str]) -> list[EngagementRef]:
    return [EngagementRef("bitrix24", site, key) for key in keys]


# -- pull_offline -----------------------------------------------------------------------

def test_records_become_the_refs_intake_names(portal: responses.RequestsMock,
                                              client: Bitrix24Client,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    stub_queue(portal, rest("event.offline.get__mixed.json"))

    assert pull_offline(client, ACME, bot_user_id="1") == refs(ACME, MIXED_REFS)
    assert [record.getMessage() for record in caplog.records] == [
        f"Bitrix24 portal {ACME}: offline record 11 skipped: ONCRMACTIVITYUPDATE has no "
        "data[FIELDS][ID]"]


def test_the_mapping_is_intakes(portal: responses.RequestsMock) -> None:
    """Each record posted as an online event (its `EVENT_DATA` as the form's `data`, its
    `EVENT_ADDITIONAL.user_id` as `auth[user_id]`) is read by intake as the same key."""
    settings = Bitrix24SettingsSchema().load({"webhook_url": f"{WEBHOOK_REST}/",
                                              "outgoing_token": "t" * 32})
    keys = []
    for record in rest("event.offline.get__mixed.json")["result"]["events"]:
        if not isinstance(record["EVENT_DATA"], dict):
            continue  # a form cannot carry `data` false
        body = encode_form({"event": record["EVENT_NAME"], "data": record["EVENT_DATA"],
                            "ts": "1721298751",
                            "auth": {"application_token": "t" * 32,
                                     "user_id": record["EVENT_ADDITIONAL"]["user_id"]}})
        try:
            event = parse_delivery(Delivery(body, FORM, RECEIVED), settings, lambda _: None)
        except MalformedDelivery:
            continue  # the activity update without its id
        if isinstance(event, Event) and not event.by_us and event.ref.key not in keys:
            keys.append(event.ref.key)

    assert keys == MIXED_REFS


def test_full_pages_are_read_until_a_short_one(portal: responses.RequestsMock,
                                               client: Bitrix24Client) -> None:
    stub_queue(portal, rest("event.offline.get__page_1.json"), limit=2)
    stub_queue(portal, rest("event.offline.get__page_2.json"), limit=2)

    assert pull_offline(client, ACME, limit=2) == refs(ACME, ["410", "activity:21"])
    assert len(portal.calls) == 2


def test_an_empty_queue_costs_one_call(portal: responses.RequestsMock,
                                       client: Bitrix24Client) -> None:
    stub_queue(portal, rest("event.offline.get__empty.json"))

    assert pull_offline(client, ACME) == []
    assert len(portal.calls) == 1


def test_the_pull_is_bounded(portal: responses.RequestsMock, client: Bitrix24Client,
                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    stub_queue(portal, rest("event.offline.get__page_1.json"), limit=2)

    assert pull_offline(client, ACME, limit=2, max_pages=3) == refs(ACME, ["410", "activity:21"])
    assert len(portal.calls) == 3
    assert (f"Bitrix24 portal {ACME}: 6 offline records taken, the most one review takes; "
            "the next review takes any rest") in [record.getMessage() for record in caplog.records]


def test_a_non_administrator_is_refused_and_nothing_was_taken(
        portal: responses.RequestsMock, client: Bitrix24Client) -> None:
    denied = fixture("errors.json")["ACCESS_DENIED_event_offline_get"]
    stub_queue(portal, denied["body"], status=denied["http_status"])

    with pytest.raises(AuthError) as refused:
        pull_offline(client, ACME)

    assert (refused.value.status, error_code(refused.value)) == (403, "ACCESS_DENIED")
    assert ACME_TOKEN not in str(refused.value)


def test_a_failure_after_records_were_taken_keeps_them(
        portal: responses.RequestsMock, client: Bitrix24Client,
        caplog: pytest.LogCaptureFixture) -> None:
    """What a page handed over is deleted from the queue: it is returned, not dropped with
    the error. The call is not repeated (it deletes what it returns)."""
    stub_queue(portal, rest("event.offline.get__page_1.json"), limit=2)
    stub_queue(portal, {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal error"},
               limit=2, status=500)

    assert pull_offline(client, ACME, limit=2) == refs(ACME, ["410", "activity:21"])
    warnings = [record.getMessage() for record in caplog.records
                if record.levelno == logging.WARNING]
    assert warnings == [f"Bitrix24 portal {ACME}: reading the offline queue stopped (pages "
                        "taken: 1): POST event.offline.get: Bitrix24 answered 500 "
                        "INTERNAL_SERVER_ERROR: Internal error"]


def test_an_answer_without_events_is_a_payload_error(portal: responses.RequestsMock,
                                                     client: Bitrix24Client) -> None:
    stub_queue(portal, {"result": {"process_id": None}, "time": {}})

    with pytest.raises(PayloadError, match="without events"):
        pull_offline(client, ACME)


# -- Bitrix24Connector.recently_updated ---------------------------------------------------

@pytest.fixture
def quiet_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """The connector's clients on buckets and retries that never sleep."""
    monkeypatch.setattr(connectors.bitrix24, "bucket_for", never_sleeping_bucket)
    monkeypatch.setattr(connectors.bitrix24, "Bitrix24Client",
                        functools.partial(Bitrix24Client, sleep=no_sleep))


def app_connector(*, acme_offline: bool = True, beta_offline: bool = True
                  ) -> Bitrix24Connector:
    connector = Bitrix24Connector(Bitrix24SettingsSchema().load({
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "public_url": "https://clientguard.example.com"}))
    connector.attach(MemoryInstallationStore({
        ACME: state(ACME, "acme.bitrix24.com", ACME_TOKEN, offline=acme_offline),
        BETA: state(BETA, "beta.bitrix24.com", BETA_TOKEN, offline=beta_offline)}))
    return connector


@pytest.mark.usefixtures("quiet_clients")
def test_portals_with_offline_events_add_what_their_queue_names(
        portal: responses.RequestsMock) -> None:
    stub_updated(portal)
    stub_queue(portal, rest("event.offline.get__mixed.json"))
    stub_updated(portal, base=BETA_REST, token=BETA_TOKEN,
                 answer={"result": {"items": []}, "total": 0, "time": {}})

    found = app_connector(beta_offline=False).recently_updated(30)

    assert list(found) == refs(ACME, UPDATED_REFS + MIXED_REFS)
    assert set(found.values()) == {None}  # the captured answer has no time; the queue none
    assert [call.request.url for call in portal.calls] == [
        f"{ACME_REST}/crm.item.list", f"{ACME_REST}/event.offline.get",
        f"{BETA_REST}/crm.item.list"]


@pytest.mark.usefixtures("quiet_clients")
def test_a_portal_that_refuses_its_queue_does_not_stop_the_review(
        portal: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    denied = fixture("errors.json")["ACCESS_DENIED_event_offline_get"]
    stub_updated(portal)
    stub_queue(portal, denied["body"], status=denied["http_status"])
    stub_updated(portal, base=BETA_REST, token=BETA_TOKEN, status=401,
                 answer=fixture("errors.json")["NO_AUTH_FOUND"]["body"])
    stub_queue(portal, rest("event.offline.get__page_2.json"), base=BETA_REST,
               token=BETA_TOKEN)

    found = app_connector().recently_updated(30)

    assert list(found) == refs(ACME, UPDATED_REFS) + refs(BETA, ["activity:21"])
    assert [record.getMessage() for record in caplog.records] == [
        f"Bitrix24 portal {ACME}: cannot read offline events: POST event.offline.get: "
        "Bitrix24 answered 403 ACCESS_DENIED: Access denied!",
        f"Bitrix24 portal {BETA}: cannot read recently updated deals: POST crm.item.list: "
        "Bitrix24 answered 401 NO_AUTH_FOUND: Wrong authorization data"]


@pytest.mark.usefixtures("quiet_clients")
def test_when_every_call_fails_the_review_gets_the_first_error(
        portal: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    denied = fixture("errors.json")["ACCESS_DENIED_event_offline_get"]
    stub_updated(portal, status=401, answer=fixture("errors.json")["NO_AUTH_FOUND"]["body"])
    stub_queue(portal, denied["body"], status=denied["http_status"])
    connector = app_connector()
    connector.installations.change(BETA, lambda _: None)  # one portal

    with pytest.raises(AuthError, match="NO_AUTH_FOUND"):
        connector.recently_updated(30)

    assert [record.getMessage() for record in caplog.records] == [
        f"Bitrix24 portal {ACME}: cannot read offline events: POST event.offline.get: "
        "Bitrix24 answered 403 ACCESS_DENIED: Access denied!"]


@pytest.mark.usefixtures("quiet_clients")
def test_webhook_mode_reads_no_offline_queue(portal: responses.RequestsMock) -> None:
    """Offline events need the application's authorisation [D:api-reference/events/
    event-offline-get.md]: a webhook portal keeps to `updatedTime`."""
    connector = Bitrix24Connector(Bitrix24SettingsSchema().load({
        "webhook_url": f"{WEBHOOK_REST}/", "outgoing_token": "t" * 32, "site": "acme-b24"}))
    stub_updated(portal, base=WEBHOOK_REST, token=None)

    assert list(connector.recently_updated(30)) == refs("acme-b24", UPDATED_REFS)


@pytest.mark.usefixtures("quiet_clients")
def test_a_listed_deal_comes_with_its_updated_time_unless_the_queue_names_it(
        portal: responses.RequestsMock) -> None:
    """The review skips a deal whose latest evaluation saw its `updatedTime`; a deal the
    offline queue names changed in a way `updatedTime` may not show, so it has no time."""
    answer = fixture("response_crm.item.list.captured.json")
    for item, at in zip(answer["result"]["items"], ("2026-11-20T14:02:11+03:00", None,
                                                     "2026-11-20T14:05:00+03:00"), strict=True):
        item["updatedTime"] = at
    answer["result"]["items"].append({"id": 410, "updatedTime": "2026-11-20T14:06:00+03:00"})
    stub_updated(portal, answer=answer)
    stub_queue(portal, rest("event.offline.get__mixed.json"))
    stub_updated(portal, base=BETA_REST, token=BETA_TOKEN,
                 answer={"result": {"items": []}, "total": 0, "time": {}})

    found = app_connector(beta_offline=False).recently_updated(30)

    moscow = timezone(timedelta(hours=3))
    assert {ref.key: at for ref, at in found.items() if ref.site == ACME
            and not ref.indirect} == {
        "1": datetime(2026, 11, 20, 14, 2, 11, tzinfo=moscow), "2": None,
        "3": datetime(2026, 11, 20, 14, 5, tzinfo=moscow), "410": None, "411": None}


@pytest.mark.usefixtures("quiet_clients")
def test_the_review_binds_again_what_an_app_update_dropped(
        portal: responses.RequestsMock) -> None:
    """ONAPPUPDATE only marks the portal (`needs_rebind`): binding costs REST calls, which
    belong in the worker, not in the webhook that carried the update."""
    connector = app_connector(acme_offline=False, beta_offline=False)
    store = connector.installations
    assert store is not None
    store.change(ACME, lambda current: {**current, "needs_rebind": True})
    batches: list[dict[str, Any]] = []

    def batch(request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        batches.append(body["cmd"])
        results = {key: [] if key in ("events", "placements") else True for key in body["cmd"]}
        return 200, {}, json.dumps({"result": {"result": results, "result_error": [],
                                               "result_total": [], "result_next": [],
                                               "result_time": []}, "time": {}})

    portal.add_callback(responses.POST, f"{ACME_REST}/batch", callback=batch)
    stub_updated(portal)
    stub_updated(portal, base=BETA_REST, token=BETA_TOKEN,
                 answer={"result": {"items": []}, "total": 0, "time": {}})

    connector.recently_updated(30)

    assert batches[0] == {"events": "event.get", "placements": "placement.get"}
    assert "bind_ONCRMDEALUPDATE" in batches[1]
    assert "needs_rebind" not in (store.load(ACME) or {})
    assert store.load(ACME)["offline_events"] is True
