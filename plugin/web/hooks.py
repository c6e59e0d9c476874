"""`POST /hooks/<connector>`: platform webhooks in, 202 out once the event is stored."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from flask import Blueprint, abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

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
    delivery = Delivery(
        body=request.get_data(cache=False),  # over service.max_body_bytes: 413 from Flask
        headers={key.lower(): value for key, value in request.headers.items()},
        received_at=datetime.now(UTC),
    )
    try:
        result = current_app.extensions["clientguard.intake"].accept(delivery, connector)
    except DeliveryRejected as rejected:
        metrics.events_rejected.labels(name, rejected.reason).inc()
        return jsonify(error=rejected.reason, detail=rejected.detail), rejected.status
    except SQLAlchemyError:  # not stored, so not accepted: the platform retries a 503
        log.exception("could not store a %s delivery", name)
        metrics.events_rejected.labels(name, "storage").inc()
        return jsonify(error="unavailable",
                       detail="the event could not be stored; deliver it again later"), 503
    finally:
        metrics.intake_seconds.labels(name).observe(time.perf_counter() - started)
    if isinstance(result, Ignored):
        metrics.events_ignored.labels(name, result.reason).inc()
        return jsonify(status="ignored", event=result.name, reason=result.reason), 202
    if result.duplicate:
        metrics.events_duplicate.labels(name).inc()
        return jsonify(status="duplicate", event=result.event.name), 202
    metrics.events_received.labels(name, result.event.name).inc()
    if not result.first_waiting:  # its engagement's job is already on its way
        return jsonify(status="accepted", event=result.event.name), 202
    try:
        current_app.extensions["clientguard.jobs"].ring(result.event.ref)
    except Exception:  # the event is stored: the sweep rings again, the platform gets its 202
        log.exception("could not queue %s; the sweep will", result.event.ref)
        metrics.queue_errors.inc()
    return jsonify(status="accepted", event=result.event.name), 202
