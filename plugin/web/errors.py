"""Every error the service answers is JSON: `{"error": ..., "detail": ...}`."""

from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from connectors import PLATFORMS, REGISTRY


def error_fields(error: HTTPException) -> dict[str, str | None]:
    """The body of every error answer: the error's name in snake case, and what happened."""
    return {"error": (error.name or "error").lower().replace(" ", "_"),
            "detail": error.description}


def no_connector(name: str) -> str:
    """Why a `/hooks/<name>` or `/apps/<name>/…` path has no connector to answer it."""
    if name in REGISTRY:
        return f"the {name} connector is not configured here (no [{name}] table)"
    return f"no connector {name!r} (ClientGuard has {', '.join(PLATFORMS)})"


def _as_json(error: HTTPException) -> ResponseReturnValue:
    return jsonify(error_fields(error)), error.code or 500


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, _as_json)
