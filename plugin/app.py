"""The web service assembled: `create_app()` reads like its table of contents."""

from __future__ import annotations

from flask import Flask

from connectors import build_connectors
from connectors.base import EngagementRef
from plugin.config import Config, load_config
from plugin.jobs import Jobs
from plugin.metrics import Metrics
from plugin.pipeline.intake import Intake
from plugin.pipeline.process import Processed, process
from plugin.storage import open_database, upgrade
from plugin.storage.installations import Installations
from plugin.web.apps import apps
from plugin.web.errors import register_error_handlers
from plugin.web.hooks import Webhooks
from plugin.web.ops import ops


def create_app(config: Config | None = None) -> Flask:
    """The service: configuration, metrics, database (migrated to head on start-up),
    connectors, the job queue, views. Call once per process, from its main thread."""
    config = config or load_config()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.service.max_body_bytes
    app.extensions["clientguard.config"] = config
    metrics = app.extensions["clientguard.metrics"] = Metrics()
    upgrade(config.service.database_url)
    database = app.extensions["clientguard.database"] = open_database(
        config.service.database_url)
    connectors = app.extensions["clientguard.connectors"] = build_connectors(
        config.connectors, lambda name: Installations(database, name), observer=metrics)
    metrics.count_from_zero(connectors)

    def evaluate(ref: EngagementRef) -> Processed:
        return process(ref, connectors[ref.connector], database, config, metrics)

    jobs = app.extensions["clientguard.jobs"] = Jobs(
        config.service.queue_url, evaluate, database, connectors,
        config.service.coalesce_seconds, config.service.keep_events_days, metrics)
    app.extensions["clientguard.intake"] = Intake(database, jobs)
    register_error_handlers(app)
    app.register_blueprint(ops)
    app.register_blueprint(apps)
    app.wsgi_app = Webhooks(app)  # type: ignore[method-assign]
    return app


def close_app(app: Flask) -> None:
    """Give back what `create_app` holds open: the intake's connection, the database pool."""
    app.extensions["clientguard.intake"].close()
    app.extensions["clientguard.database"].close()
