"""`POST /hooks/jira` on the real app and a real database (SQLite file and PostgreSQL):
every delivery gets a clear answer, and an accepted event is stored before the 202."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import select, text, update
from werkzeug.test import create_environ, run_wsgi_app

from plugin import storage
from plugin.app import close_app, create_app
from plugin.config import build_config
from plugin.storage.models import EventRecord

FIXTURES = Path(__file__).parent.parent / "connectors" / "jira" / "fixtures"
SECRET = "It's a Secret to Everybody"
ID_HEADER = "X-Atlassian-Webhook-Identifier"


@pytest.fixture
def app(database_url: str, queue_url: str) -> Iterator[Flask]:
    config = build_config({
        "service": {"database_url": database_url, "queue_url": queue_url,
                    "max_body_bytes": 64 * 1024},
        "jira": {"site": "acme", "webhook_secret": SECRET, "service_account": "svc-42"},
    })
    app = create_app(config)
    yield app
    app.extensions["clientguard.jobs"].huey.flush()
    close_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature": f"sha256={digest}", "Content-Type": "application/json"}


def post(client: FlaskClient, fixture: str, **headers: str):
    body = (FIXTURES / fixture).read_bytes()
    return client.post("/hooks/jira", data=body, headers={**signed(body), **headers})


def stored(app: Flask) -> list[tuple[str, str, str, str]]:
    with app.extensions["clientguard.database"].session() as session:
        rows = session.scalars(select(EventRecord).order_by(EventRecord.id)).all()
        return [(row.site, row.engagement_key, row.name, row.status) for row in rows]


def metric(client: FlaskClient, line_start: str) -> float:
    response = client.get("/metrics")
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST  # as Prometheus expects it
    text = response.get_data(as_text=True)
    values = [line.rsplit(" ", 1)[1] for line in text.splitlines()
              if line.startswith(line_start)]
    return float(values[0]) if values else 0.0


def test_a_signed_comment_event_is_stored_before_the_202(app: Flask, client: FlaskClient):
    answers = []
    with held_write_lock(app):  # a worker's transaction: the delivery cannot be stored yet
        posting = threading.Thread(target=lambda: answers.append(
            post(client, "comment_created__cloud.json", **{ID_HEADER: "d-1"})))
        posting.start()
        posting.join(timeout=0.5)  # long enough for an answer that did not wait for the store
        assert answers == []
    posting.join()
    (response,) = answers
    assert (response.status_code, response.json) == (
        202, {"status": "accepted", "event": "comment_created"})
    assert stored(app) == [("acme", "10040", "comment_created", "pending")]
    assert metric(client, 'clientguard_events_received_total{connector="jira",'
                          'event="comment_created"}') == 1


@contextmanager
def held_write_lock(app: Flask) -> Iterator[None]:
    """Hold what storing a delivery waits for: SQLite's write lock (every transaction of ours
    takes it at BEGIN), a PostgreSQL lock on the events table against inserts."""
    database = app.extensions["clientguard.database"]
    with database.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("LOCK TABLE events IN EXCLUSIVE MODE"))
        yield


def test_the_webhook_identifier_tells_deliveries_apart_not_their_bodies(
        app: Flask, client: FlaskClient):
    """Cloud names each delivery: the same body under another identifier is another
    delivery (a content hash would merge them); a retry keeps its identifier."""
    assert post(client, "comment_created__cloud.json", **{ID_HEADER: "d-1"}).json[
        "status"] == "accepted"
    assert post(client, "comment_created__cloud.json", **{ID_HEADER: "d-2"}).json[
        "status"] == "accepted"
    assert len(stored(app)) == 2


def test_a_redelivery_is_recognised_and_stored_once(app: Flask, client: FlaskClient):
    for _ in range(3):
        response = post(client, "comment_created__cloud.json", **{ID_HEADER: "d-1"})
        assert response.status_code == 202
    assert response.json == {"status": "duplicate", "event": "comment_created"}
    assert len(stored(app)) == 1
    assert metric(client, 'clientguard_events_duplicate_total{connector="jira"}') == 2


def test_data_center_redelivery_without_an_id_is_recognised_by_its_body(
        app: Flask, client: FlaskClient):
    post(client, "comment_created__datacenter_no_issue.json")
    response = post(client, "comment_created__datacenter_no_issue.json")
    assert response.json["status"] == "duplicate"
    assert len(stored(app)) == 1
    # processed meanwhile: a copy arriving later (a proxy's retry) is still the same change,
    # told apart by the millisecond timestamp Jira stamps on every body
    with app.extensions["clientguard.database"].session() as session, session.begin():
        session.execute(update(EventRecord).values(status="done"))
    response = post(client, "comment_created__datacenter_no_issue.json")
    assert response.json["status"] == "duplicate"
    assert stored(app) == [("acme", "10013", "comment_created", "done")]


def test_a_wrong_signature_is_refused_with_401_and_nothing_stored(app: Flask,
                                                                  client: FlaskClient):
    body = (FIXTURES / "comment_created__cloud.json").read_bytes()
    response = client.post("/hooks/jira", data=body, headers=signed(body, "not the secret"))
    assert response.status_code == 401
    assert response.json["error"] == "signature"
    response = client.post("/hooks/jira", data=body)  # no signature at all
    assert (response.status_code, response.json["error"]) == (401, "signature")
    assert stored(app) == []
    assert metric(client, 'clientguard_events_rejected_total{connector="jira",'
                          'reason="signature"}') == 2


def test_a_malformed_body_gets_400_with_a_json_error(app: Flask, client: FlaskClient):
    body = b'{"webhookEvent": "comment_created", '
    response = client.post("/hooks/jira", data=body, headers=signed(body))
    assert response.status_code == 400
    assert response.json["error"] == "malformed"
    assert "JSON" in response.json["detail"]
    assert stored(app) == []


@pytest.mark.parametrize(("account_id", "said"), [
    ("\\ud800", "actor holds a character no text can store"),  # a lone surrogate (JSON)
    ("\\u0000", "actor holds a character no text can store"),  # NUL: PostgreSQL refuses
    ("x" * 300, "actor is over 255 characters"),  # the column is 255 wide
], ids=["lone surrogate", "NUL", "too long"])
def test_an_event_the_database_could_not_store_gets_400_and_the_others_are_stored(
        app: Flask, client: FlaskClient, account_id: str, said: str) -> None:
    """Refused before it joins a batch: stored with others, it would fail them all."""
    good = json.loads((FIXTURES / "jira_issue_updated__cloud_status.json").read_bytes())
    good["user"]["accountId"] = "@"  # who caused it: stored as the event's actor
    bad = json.dumps(good).replace('"@"', f'"{account_id}"').encode()
    response = client.post("/hooks/jira", data=bad, headers={**signed(bad), ID_HEADER: "d-1"})
    assert (response.status_code, response.json["error"]) == (400, "malformed")
    assert said in response.json["detail"]
    assert post(client, "comment_created__cloud.json", **{ID_HEADER: "d-2"}).status_code == 202
    assert stored(app) == [("acme", "10040", "comment_created", "pending")]


def test_an_oversized_body_gets_413_with_a_json_error(app: Flask, client: FlaskClient):
    body = b"{" + b" " * (64 * 1024) + b"}"
    response = client.post("/hooks/jira", data=body, headers=signed(body))
    assert response.status_code == 413
    assert response.json == {"error": "request_entity_too_large",
                             "detail": "the body is over 65,536 bytes (service.max_body_bytes)"}
    assert stored(app) == []


def test_unknown_and_ignored_events_get_202_and_are_not_stored(app: Flask,
                                                               client: FlaskClient):
    for name, reason in (("sprint_started", "not handled"), ("jira:issue_teleported",
                                                            "unknown event")):
        body = b'{"timestamp": 1596481635907, "webhookEvent": "%s"}' % name.encode()
        response = client.post("/hooks/jira", data=body, headers=signed(body))
        assert (response.status_code, response.json) == (
            202, {"status": "ignored", "event": name, "reason": reason})
    assert stored(app) == []


def test_our_own_writes_echoing_back_start_no_evaluation(app: Flask, client: FlaskClient):
    response = post(client, "comment_created__cloud.json")
    assert response.json["status"] == "accepted"  # written by a person
    body = (FIXTURES / "comment_created__cloud.json").read_bytes().replace(
        b'"5c5f880629be9642ba529340"', b'"svc-42"')  # the same comment, by our account
    response = client.post("/hooks/jira", data=body, headers=signed(body))
    assert response.json == {"status": "ignored", "event": "comment_created",
                             "reason": "caused by ClientGuard"}
    assert len(stored(app)) == 1


@pytest.mark.parametrize(("path", "detail"), [
    ("/hooks/bitrix24", "the bitrix24 connector is not configured here (no [bitrix24] table)"),
    ("/hooks/trello", "no connector 'trello' (ClientGuard has bitrix24, jira)"),
    ("/apps/bitrix24/install",
     "the bitrix24 connector is not configured here (no [bitrix24] table)"),
    ("/apps/jira/install", "the jira connector has no page 'install'"),
], ids=["a platform not configured", "no such platform", "its page", "a page it lacks"])
def test_a_path_no_connector_answers_is_404_json_saying_why(client: FlaskClient, path: str,
                                                            detail: str):
    response = client.post(path, data=b"x")
    assert (response.status_code, response.json) == (404, {"error": "not_found",
                                                           "detail": detail})


def test_a_body_shorter_than_its_content_length_gets_400_json(app: Flask):
    """A connection that closes mid-body (servers that pass the socket on as it is)."""
    environ = create_environ("/hooks/jira", method="POST", input_stream=BytesIO(b"{}"))
    environ["CONTENT_LENGTH"] = "100"
    body, status, _ = run_wsgi_app(app, environ, buffered=True)
    assert (status, json.loads(b"".join(body))["error"]) == ("400 Bad Request", "malformed")
    assert stored(app) == []


def test_a_webhook_path_answers_other_methods_with_405_json(client: FlaskClient):
    response = client.get("/hooks/jira")
    assert (response.status_code, response.headers["Allow"]) == (405, "POST")
    assert response.json["error"] == "method_not_allowed"


def test_a_failure_of_ours_gets_a_500_json_the_platform_retries_and_is_logged(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture):
    def broken(delivery, connector):
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.extensions["clientguard.intake"], "accept", broken)
    response = post(client, "comment_created__cloud.json", **{ID_HEADER: "d-1"})
    assert (response.status_code, response.json["error"]) == (500, "internal_server_error")
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "/hooks/jira" in record.getMessage()
    assert "a bug" in str(record.exc_info[1])


def test_health_and_readiness(client: FlaskClient):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready",
                                          "checks": {"database": "ok", "queue": "ok"}}


def test_readiness_fails_when_the_database_is_gone(tmp_path: Path):
    folder = tmp_path / "state"
    folder.mkdir()
    app = create_app(build_config({"service": {
        "database_url": f"sqlite:///{folder / 'clientguard.sqlite3'}",
        "queue_url": f"sqlite:///{tmp_path / 'queue.sqlite3'}"}}))
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    database = app.extensions["clientguard.database"]
    database.engine.dispose()
    shutil.rmtree(folder)  # the disk the state lived on is gone
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json == {"status": "not ready",
                             "checks": {"database": "OperationalError", "queue": "ok"}}
    database.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # its in-process lock
def test_a_database_locked_past_its_timeout_gets_503_so_jira_retries(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "SQLITE_BUSY_TIMEOUT_MS", 100)
    with held_write_lock(app):
        response = post(client, "comment_created__cloud.json", **{ID_HEADER: "d-1"})
    assert (response.status_code, response.json["error"]) == (503, "unavailable")
    assert post(client, "comment_created__cloud.json", **{ID_HEADER: "d-1"}).json == {
        "status": "accepted", "event": "comment_created"}  # Jira's retry, once it is free


def test_a_delivery_that_cannot_be_stored_gets_503_so_jira_retries(app: Flask,
                                                                  client: FlaskClient):
    database = app.extensions["clientguard.database"]
    with database.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE events")  # the store fails under the request
    response = post(client, "comment_created__cloud.json", **{ID_HEADER: "d-1"})
    assert response.status_code == 503
    assert response.json["error"] == "unavailable"
    assert metric(client, 'clientguard_events_rejected_total{connector="jira",'
                          'reason="storage"}') == 1
