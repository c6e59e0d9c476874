"""Endpoints for whoever runs the service: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ops = Blueprint("ops", __name__)


@ops.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Cheap and unauthenticated: the process answers."""
    return jsonify(status="ok")


@ops.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Ready when every dependency answers; 503 names the ones that do not."""
    checks = {"database": current_app.extensions["clientguard.database"].ping(),
              "queue": _queue_problem()}
    ready = all(problem is None for problem in checks.values())
    body = {name: problem or "ok" for name, problem in checks.items()}
    return jsonify(status="ready" if ready else "not ready", checks=body), 200 if ready else 503


@ops.get("/metrics")
def metrics() -> ResponseReturnValue:
    metrics = current_app.extensions["clientguard.metrics"]
    metrics.count_queue(current_app.extensions["clientguard.jobs"].pending)
    return Response(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)


def _queue_problem() -> str | None:
    try:
        current_app.extensions["clientguard.jobs"].pending()
    except Exception as error:
        return type(error).__name__
    return None
