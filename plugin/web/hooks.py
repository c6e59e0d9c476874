"""`POST /hooks/<connector>`: platform webhooks in, 202 out once the event is stored.

Served in front of Flask's request machinery, as WSGI middleware of the same app (its
config and extensions), not as a Flask view: on this, the busiest path of the service,
Flask's request and app contexts, routing, response object and error dispatch cost about
as much as storing the event durably (docs/decisions.md, "The webhook route is WSGI in
front of Flask"). Every other path goes on to Flask."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import (
    ClientDisconnected,
    HTTPException,
    InternalServerError,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
)
from werkzeug.wrappers import Request

from connectors.base import Delivery, Ignored
from connectors.errors import DeliveryRejected, MalformedDelivery
from plugin.web.errors import error_fields, no_connector

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

PREFIX = "/hooks/"
Answer = tuple[int, dict[str, str | None]]


class Webhooks:
    """The app's WSGI callable: `/hooks/<name>` answered here, everything else by Flask.
    Reads the app's config and extensions on each request, as a view would."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.flask: WSGIApplication = app.wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse
                 ) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX) or "/" in path[len(PREFIX):]:
            return self.flask(environ, start_response)
        headers = []
        if environ.get("REQUEST_METHOD") != "POST":
            headers.append(("Allow", "POST"))
            code, fields = _refused(MethodNotAllowed(
                description="webhooks are delivered with POST"))
        else:
            try:
                request = Request(environ)
                code, fields = self.receive(request, request.path[len(PREFIX):])
            except Exception:  # a bug, not the delivery's fault: the platform retries a 500
                log.exception("could not answer a delivery to %s", path)
                code, fields = _refused(InternalServerError(
                    "the service failed; deliver it again later"))
        body = json.dumps(fields).encode()
        start_response(f"{code} {HTTPStatus(code).phrase}", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            *headers])
        return [body]

    def receive(self, request: Request, name: str) -> Answer:
        extensions = self.app.extensions
        connector = extensions["clientguard.connectors"].get(name)
        if connector is None:
            return _refused(NotFound(no_connector(name)))
        metrics = extensions["clientguard.metrics"]
        started = time.perf_counter()
        request.max_content_length = limit = self.app.config["MAX_CONTENT_LENGTH"]
        try:
            delivery = Delivery(
                body=_body(request),
                headers={key.lower(): value for key, value in request.headers.items()},
                received_at=datetime.now(UTC),
            )
            result = extensions["clientguard.intake"].accept(delivery, connector)
        except RequestEntityTooLarge:  # over service.max_body_bytes
            metrics.events_rejected.labels(name, "size").inc()
            return _refused(RequestEntityTooLarge(
                f"the body is over {limit:,} bytes (service.max_body_bytes)"))
        except DeliveryRejected as rejected:
            metrics.events_rejected.labels(name, rejected.reason).inc()
            return rejected.status, {"error": rejected.reason, "detail": rejected.detail}
        except SQLAlchemyError:  # not stored, so not accepted: the platform retries a 503
            log.exception("could not store a %s delivery", name)
            metrics.events_rejected.labels(name, "storage").inc()
            return 503, {"error": "unavailable",
                         "detail": "the event could not be stored; deliver it again later"}
        finally:
            metrics.intake_seconds.labels(name).observe(time.perf_counter() - started)
        if isinstance(result, Ignored):
            metrics.events_ignored.labels(name, result.reason).inc()
            return 202, {"status": "ignored", "event": result.name, "reason": result.reason}
        if result.duplicate:
            metrics.events_duplicate.labels(name).inc()
            return 202, {"status": "duplicate", "event": result.event.name}
        metrics.events_received.labels(name, result.event.name).inc()
        if result.ring_failed:
            metrics.queue_errors.inc()
        return 202, {"status": "accepted", "event": result.event.name}


def _body(request: Request) -> bytes:
    """The whole body; raises `RequestEntityTooLarge` over the request's limit."""
    try:
        return request.get_data(cache=False)
    except ClientDisconnected as error:  # fewer bytes than its Content-Length said
        raise MalformedDelivery("the body ended before its Content-Length") from error


def _refused(error: HTTPException) -> Answer:
    """An HTTP error answered as every error of the service is (`plugin.web.errors`)."""
    return error.code or 500, error_fields(error)
