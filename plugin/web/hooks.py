"""`POST /hooks/<connector>`: platform webhooks in, 202 out once the event is stored."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

from flask import Blueprint, Response, abort, current_app, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from connectors.base import Delivery, Ignored
from connectors.errors import DeliveryRejected

hooks = Blueprint("hooks", __name__)
log = logging.getLogger(__name__)


@hooks.post("/hooks/<name>")
def receive(name: str) -> ResponseReturnValue:
    connector = current_app.extensions["clientguard.connectors"].get(name)
    if connector is None:
        abort(404, f"no connector {name!r} is configured")
    metrics = current_app.extensions["clientguard.metrics"]
    started = time.perf_counter()
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:  # over service.max_body_bytes
        metrics.events_rejected.labels(name, "size").inc()
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        return _answer(413, error="request_entity_too_large",
                       detail=f"the body is over {limit:,} bytes (service.max_body_bytes)")
    delivery = Delivery(
        body=body,
        headers={key.lower(): value for key, value in request.headers.items()},
        received_at=datetime.now(UTC),
    )
    try:
        result = current_app.extensions["clientguard.intake"].accept(delivery, connector)
    except DeliveryRejected as rejected:
        metrics.events_rejected.labels(name, rejected.reason).inc()
        return _answer(rejected.status, error=rejected.reason, detail=rejected.detail)
    except SQLAlchemyError:  # not stored, so not accepted: the platform retries a 503
        log.exception("could not store a %s delivery", name)
        metrics.events_rejected.labels(name, "storage").inc()
        return _answer(503, error="unavailable",
                       detail="the event could not be stored; deliver it again later")
    finally:
        metrics.intake_seconds.labels(name).observe(time.perf_counter() - started)
    if isinstance(result, Ignored):
        metrics.events_ignored.labels(name, result.reason).inc()
        return _answer(202, status="ignored", event=result.name, reason=result.reason)
    if result.duplicate:
        metrics.events_duplicate.labels(name).inc()
        return _answer(202, status="duplicate", event=result.event.name)
    metrics.events_received.labels(name, result.event.name).inc()
    if result.ring_failed:
        metrics.queue_errors.inc()
    return _answer(202, status="accepted", event=result.event.name)


def _answer(code: int, /, **fields: str) -> Response:
    """A JSON answer built directly: on this, the busiest path of the service, Flask's
    `jsonify` (its JSON provider's options and checks) cost about as much as storing the
    event under concurrent load."""
    return current_app.response_class(json.dumps(fields), code, mimetype="application/json")
