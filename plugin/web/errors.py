"""Every error the service answers is JSON: `{"error": ..., "detail": ...}`."""

from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException


def _as_json(error: HTTPException) -> ResponseReturnValue:
    name = (error.name or "error").lower().replace(" ", "_")
    return jsonify(error=name, detail=error.description), error.code or 500


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, _as_json)
