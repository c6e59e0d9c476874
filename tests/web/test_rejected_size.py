"""A webhook body over `service.max_body_bytes` is refused with 413 and counted on /metrics
like every other refusal: `clientguard_events_rejected_total{reason="size"}`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from plugin.app import close_app, create_app
from plugin.config import build_config

LIMIT = 64 * 1024


@pytest.fixture
def app(database_url: str, queue_url: str) -> Iterator[Flask]:
    app = create_app(build_config({
        "service": {"database_url": database_url, "queue_url": queue_url,
                    "max_body_bytes": LIMIT},
        "jira": {"site": "acme", "webhook_secret": "It's a Secret to Everybody"},
        "bitrix24": {"site": "acme-b24", "outgoing_token": "outgoing-token-1",
                     "webhook_url": "https://acme.bitrix24.example/rest/1/witnesscode/"},
    }))
    yield app
    app.extensions["clientguard.jobs"].huey.flush()
    close_app(app)


def rejected(app: Flask) -> dict[tuple[str, str], float]:
    """`clientguard_events_rejected_total` by (connector, reason)."""
    text = app.test_client().get("/metrics").get_data(as_text=True)
    return {(sample.labels["connector"], sample.labels["reason"]): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == "clientguard_events_rejected_total"}


@pytest.mark.parametrize("connector", ["jira", "bitrix24"])
def test_an_oversized_body_is_counted_as_rejected_for_size(app: Flask, connector: str):
    response = app.test_client().post(f"/hooks/{connector}", data=b"{" + b" " * LIMIT + b"}",
                                      headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.json["error"] == "request_entity_too_large"
    assert rejected(app) == {(connector, "size"): 1.0}


def test_a_body_at_the_limit_is_not_refused_for_size(app: Flask):
    response = app.test_client().post("/hooks/jira", data=b"{" + b" " * (LIMIT - 2) + b"}",
                                      headers={"Content-Type": "application/json"})

    assert response.status_code == 401  # read, then refused for its missing signature
    assert rejected(app) == {("jira", "signature"): 1.0}


def test_an_oversized_body_for_no_connector_adds_no_label(app: Flask):
    response = app.test_client().post("/hooks/acme-12", data=b" " * (LIMIT + 1))

    assert response.status_code == 404
    assert rejected(app) == {}
