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
    checks = {"database": current_app.extensions["clientguard.database"].ping()}
    ready = all(problem is None for problem in checks.values())
    body = {name: problem or "ok" for name, problem in checks.items()}
    return jsonify(status="ready" if ready else "not ready", checks=body), 200 if ready else 503


@ops.get("/metrics")
def metrics() -> ResponseReturnValue:
    registry = current_app.extensions["clientguard.metrics"].registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
