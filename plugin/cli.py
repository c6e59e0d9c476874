"""The `clientguard` command line.

Every failure a person can cause (a bad file, a bad setting) ends with a one-line-per-problem
message and exit status 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
import tomli_w
from sqlalchemy.exc import SQLAlchemyError

from connectors import PLATFORMS, REGISTRY
from connectors.base import EngagementRef
from connectors.errors import (
    AuthError,
    ConnectorNotConfigured,
    ExportError,
    LeakPrevented,
    NotAnEngagement,
    NotFound,
    NotInstalled,
    PlatformError,
    StickyRefused,
)
from connectors.http import STOPPING
from connectors.jira import JiraConnector
from connectors.markup import plain_text
from plugin.config import LOG_LEVELS, Config, ConfigError, load_config, redacted_url
from plugin.core.engine import Report, evaluate
from plugin.core.i18n import LANGUAGES, UI, Language
from plugin.core.model import Engagement
from plugin.core.render import report_document, report_text
from plugin.core.schema import EngagementFormatError, did_you_mean, loads_engagement
from plugin.pipeline import LeaseLost
from plugin.rules import CATALOGUE
from plugin.rules.docs import rules_markdown

if TYPE_CHECKING:
    from flask import Flask
    from huey.consumer import Consumer

    from plugin.pipeline.process import CommentPlan
    from plugin.storage import Database
    from plugin.storage.models import EventRecord

EXIT_OK, EXIT_FAILING, EXIT_BAD_INPUT = 0, 1, 2
WORKER_HEALTH_CHECK_SECONDS = 10.0  # as huey's own run loop
# waitress reads a whole request body before the app sees it. Up to this many times
# `service.max_body_bytes` the app refuses it (a JSON 413, counted); past that waitress
# answers 413 itself as soon as it knows (plain text), instead of reading on.
READ_AT_MOST = 4


def language_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--lang`, the language of `what` a command prints."""
    return click.option("--lang", type=click.Choice(LANGUAGES), default=None,
                        help=f"Language of {what} [default: agency.language]")


def _bad_input(message: str) -> NoReturn:
    click.echo(f"clientguard: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _config(ctx: click.Context) -> Config:
    try:
        return load_config(ctx.obj["config_path"])
    except ConfigError as error:
        _bad_input(str(error))


def _dry_run(asked: bool, config: Config) -> bool:
    """A dry run when asked, or when the configuration keeps the whole installation dry
    (`service.dry_run`, say for a trial): a check or backfill then writes nothing either,
    and says why on standard error."""
    if not asked and config.service.dry_run:
        click.echo("clientguard: service.dry_run is on: nothing is written", err=True)
    return asked or config.service.dry_run


def _parse_now(text: str | None, config: Config) -> datetime:
    """`--now`, ISO-8601; a time without an offset is read in the agency's time zone."""
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        _bad_input(f"--now: {text!r} is not an ISO-8601 date and time")
    return moment if moment.tzinfo else moment.replace(tzinfo=config.calendar.zone)


@click.group()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Configuration file [default: $CLIENTGUARD_CONFIG, else ./clientguard.toml]")
@click.version_option(package_name="clientguard")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """ClientGuard: service-quality checks for client engagements."""
    ctx.obj = {"config_path": config_path}


@cli.command()
@click.argument("key", required=False)
@click.option("--input", "input_path", type=click.Path(dir_okay=False), default=None,
              help="Engagement JSON file (docs/engagement-json.md), or with --connector a "
                   "saved issue or deal; - for standard input")
@click.option("--connector", "connector_name", type=click.Choice(PLATFORMS), default=None,
              help="The platform of KEY [default: jira]. With --input: the file is saved "
                   "from this platform (Jira: GET /rest/api/{3|2}/issue/KEY?expand=changelog; "
                   "Bitrix24: docs/bitrix24.md), not engagement JSON")
@click.option("--dry-run", is_flag=True,
              help="With KEY: show the sticky comment that would be written; write nothing "
                   "[default: service.dry_run]")
@click.option("--resume", is_flag=True,
              help="With KEY: write to it again after a leak stopped writes (fix the "
                   "visibility first); the write is read back as always")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@language_option("the report")
@click.option("--now", "now_text", default=None,
              help="Evaluate as of this ISO-8601 time [default: the current time]")
@click.pass_context
def check(ctx: click.Context, key: str | None, input_path: str | None,
          connector_name: str | None, dry_run: bool, resume: bool, output_format: str,
          lang: Language | None, now_text: str | None) -> None:
    """Evaluate one engagement and print its health report.

    KEY is a live engagement: a Jira issue (ACME-12) read through [jira], or with --connector
    bitrix24 a deal id; like the service, the check then brings its sticky comment up to date,
    writing only when it changed. With --dry-run it shows that comment instead (ticket,
    visibility, created, updated or unchanged) and writes nothing. --input FILE is never
    written to. A sticky comment that turned out client-visible stops every write to its
    ticket; --resume lifts that once the visibility is fixed.

    Exit status: 0 nothing fails, 1 something fails, 2 bad input, or the platform refused or
    could not be reached (the line on standard error says which).
    """
    if (key is None) == (input_path is None):
        _bad_input("check takes a Jira issue KEY or --input FILE (one of the two)")
    if dry_run and key is None:
        _bad_input("--dry-run goes with a live issue KEY: --input FILE writes nothing anyway")
    config = _config(ctx)
    dry_run = key is not None and _dry_run(dry_run, config)
    if resume and (key is None or dry_run):
        _bad_input("--resume goes with a live issue KEY and no dry run (--dry-run, "
                   "service.dry_run): it writes")
    now = _parse_now(now_text, config)
    language = lang or config.language
    if key is None:
        report = evaluate(_read_input(input_path, connector_name, config), config, now)
        _print_report(report, language, output_format)
    else:
        connector = _live(config, connector_name or "jira")
        with _platform_errors(connector, key), _database(config) as database:
            try:
                ref = connector.ref_for(key)
            except ValueError as error:
                _bad_input(str(error))
            planned, audience = _review(ref, connector, database, config, now, dry_run,
                                        language, resume=resume)
        report = planned.report
        _print_report(report, language, output_format, (planned, audience, dry_run))
    failing = report.has_failures or bool(report.faulty)
    sys.exit(EXIT_FAILING if failing else EXIT_OK)


@cli.command()
@click.option("--connector", "connector_name", type=click.Choice(PLATFORMS), default="jira",
              show_default=True, help="The platform whose engagements to evaluate")
@click.option("--jql", "--query", "query", default=None,
              help="Which engagements: Jira JQL [default: (jira.engagement_jql) AND "
                   "statusCategory != Done]; Bitrix24: ignored, every open deal of the "
                   "configured pipelines")
@click.option("--dry-run", is_flag=True,
              help="Show the sticky comment each issue would get; write nothing "
                   "[default: service.dry_run]")
@language_option("the progress and summary")
@click.pass_context
def backfill(ctx: click.Context, connector_name: str, query: str | None,
             dry_run: bool, lang: Language | None) -> None:
    """Evaluate every open engagement now and bring its sticky comment up to date as the
    service does, writing only when it changed: after installing, or after changing the
    rules. One failing engagement does not stop the others; the summary lists it.

    Exit status: 0 every one done, 1 some failed, 2 bad input (or the platform refused the
    search).
    """
    from plugin.pipeline.process import Action, said

    config = _config(ctx)
    dry_run = _dry_run(dry_run, config)
    language = lang or config.language
    connector = _live(config, connector_name)
    with _platform_errors(connector):
        found = connector.open_engagements(query)
    done: Counter[str] = Counter()
    failed: list[str] = []
    with (_database(config) as database,
          click.progressbar(found, label=UI["backfill_progress"].render(language,
                                                                        count=len(found)),
                            file=sys.stderr,
                            item_show_func=lambda item: item and item[1]) as issues):
        for ref, key in issues:
            try:
                planned, audience = _review(ref, connector, database, config,
                                            datetime.now(UTC), dry_run, language)
            except Exception as error:  # reported in the summary; the others go on
                failed.append(f"{key}: {type(error).__name__}: {error}")
                continue
            done[planned.action] += 1
            if dry_run:
                click.echo(planned.describe(audience, dry_run=dry_run, language=language))
    counts = [UI[said("backfill", action, dry_run)].render(language, count=done[action])
              for action in Action
              if action is not Action.STOPPED or done[action]]  # stops are rare: when any
    summary = [UI["backfill_scanned"].render(language, count=len(found)), *counts,
               UI["backfill_failed"].render(language, count=len(failed))]
    click.echo(", ".join(summary)
               + (" " + UI["backfill_dry_run"].render(language) if dry_run else ""))
    for failure in failed:
        click.echo("  " + UI["backfill_failure"].render(language, what=failure))
    sys.exit(EXIT_FAILING if failed else EXIT_OK)


# -- helpers of check and backfill -------------------------------------------------------

def _read_input(path: str, connector_name: str | None, config: Config) -> Engagement:
    """The engagement in `path`: engagement JSON, or a saved issue of `connector_name`
    (its warnings on standard error)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text("utf-8")
    except OSError as error:
        _bad_input(f"{path}: {error.strerror or error}")
    except UnicodeDecodeError:
        _bad_input(f"{path}: not UTF-8 text")
    try:
        if connector_name is None:
            return loads_engagement(text)
        export = _connector(config, connector_name, offline=True).load_export(text)
    except EngagementFormatError as error:
        platform = _saved_from(text, config)  # a saved issue or deal without --connector
        if platform is not None:
            _bad_input(f"{path}: this is saved from {REGISTRY[platform].label}, not "
                       f"engagement JSON: add --connector {platform}")
        _bad_input(f"{path}: not a valid engagement:\n{error}")
    except ExportError as error:
        _bad_input(f"{path}: {error}" + _read_as_what(text, connector_name, config))
    for warning in export.warnings:
        click.echo(f"clientguard: warning: {warning}", err=True)
    return export.engagement


def _read_as_what(text: str, connector_name: str, config: Config) -> str:
    """What else the file reads as, when it is not saved from `connector_name` (a hint for
    the message), or ''."""
    try:
        loads_engagement(text)
    except EngagementFormatError:
        pass
    else:
        return f" (this is engagement JSON: drop --connector {connector_name})"
    platform = _saved_from(text, config)
    if platform is not None and platform != connector_name:
        return f" (this is saved from {REGISTRY[platform].label}: --connector {platform})"
    return ""


def _saved_from(text: str, config: Config) -> str | None:
    """The platform whose connector reads `text` as a saved engagement, if any."""
    for name in PLATFORMS:
        try:
            _connector(config, name, offline=True).load_export(text)
        except ExportError:
            continue
        return name
    return None


def _connector(config: Config, name: str, *, offline: bool = False) -> Any:
    """The `name` connector on its configured section, or on its defaults when absent (enough
    to read a saved file); with its per-installation store when it keeps one, unless
    `offline` (then the database is not touched)."""
    from connectors import build_connectors

    settings = config.connectors.get(name) or REGISTRY[name].settings_schema().load({})
    return build_connectors({name: settings},
                            None if offline else _installations(config))[name]


def _installations(config: Config) -> Any:
    """Connectors' per-installation stores in the service's database, migrated first as
    the service migrates it (opened only when a connector asks)."""
    def store(name: str) -> Any:
        from plugin.storage import open_database
        from plugin.storage.installations import Installations

        _migrated(config.service.database_url)
        return Installations(open_database(config.service.database_url), name)
    return store


def _configured(ctx: click.Context, name: str) -> Config:
    """The configuration, said on standard error when it has no [`name`] table: the
    doctor then checks the defaults, which a person may not have meant."""
    config = _config(ctx)
    if name not in config.connectors:
        click.echo(f"clientguard: warning: no [{name}] table in the configuration "
                   f"({config.source}): every {name} setting is its default", err=True)
    return config


def _live(config: Config, name: str) -> Any:
    """The configured connector, able to reach its platform (else exit 2 naming the key)."""
    _say_platform_retries()
    connector = _connector(config, name)
    try:
        connector.ready()
    except ConnectorNotConfigured as error:
        _bad_input(str(error))
    return connector


def _say_platform_retries() -> None:
    """Commands a person waits for say on standard error when a platform call is tried
    again: a platform out of reach costs up to a minute of retries, which said nothing
    would look like a hang. (The service logs the same lines in its log.)"""
    logger = logging.getLogger("connectors.http")
    if not any(isinstance(handler, _StandardError) for handler in logger.handlers):
        handler = _StandardError()
        handler.setLevel(logging.INFO)
        handler.setFormatter(logging.Formatter("clientguard: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


@contextlib.contextmanager
def _platform_errors(connector: Any, key: str | None = None) -> Iterator[None]:
    """What the platform refused, as one exit-2 line: a missing engagement, the
    credentials, the rest."""
    try:
        yield
    except NotFound as error:
        _bad_input(f"no {connector.label} engagement {key}: {error}" if key else str(error))
    except NotAnEngagement as error:
        _bad_input(f"{key} is not an engagement: {error}")
    except AuthError as error:
        _bad_input(f"{connector.label} refused the account of [{connector.name}] (check its "
                   f"credentials and permissions): {error}")
    except (PlatformError, StickyRefused, LeakPrevented, LeaseLost) as error:
        _bad_input(str(error))


@contextlib.contextmanager
def _database(config: Config) -> Iterator[Database]:
    """The service's database, migrated as the service migrates it on start-up: where the
    fingerprint of each ticket's last comment is kept, so nothing unchanged is rewritten."""
    from plugin.storage import open_database

    url = config.service.database_url
    _migrated(url)
    database = open_database(url)
    try:
        yield database
    finally:
        database.close()


def _migrated(url: str) -> None:
    """Bring the database at `url` to the newest schema (exit 2 when it cannot be reached)."""
    from plugin.storage import upgrade  # not loaded for offline commands

    try:
        upgrade(url)
    except SQLAlchemyError as error:
        _unreachable("database_url", url, error)


def _unreachable(setting: str, url: str, error: Exception) -> NoReturn:
    """Exit 2 naming `service → <setting>` (its URL, password masked) and why the database
    or queue refused, on one line (the driver's own error when SQLAlchemy wraps one)."""
    reason = " ".join(str(getattr(error, "orig", None) or error).split())
    _bad_input(f"service → {setting} {redacted_url(url)}: {reason}")


def _review(ref: EngagementRef, connector: Any, database: Database, config: Config,
            now: datetime, dry_run: bool, language: Language, *, resume: bool = False
            ) -> tuple[CommentPlan, str]:
    """The pipeline's plan for `ref` (carried out unless `dry_run`) and who may read it, in
    `language`."""
    from plugin.metrics import Metrics
    from plugin.pipeline.process import review

    planned = review(ref, connector, database, config, Metrics(), now, dry_run=dry_run,
                     resume=resume)
    return planned, connector.audience(planned.snapshot, language)


def _print_report(report: Report, language: Language, output_format: str,
                  shown: tuple[CommentPlan, str, bool] | None = None) -> None:
    """The report on standard output, and after it a live check's sticky comment — its
    plan, who may read it, whether on a dry run (JSON: under `sticky_comment`)."""
    if output_format == "text":
        click.echo(report_text(report, language), nl=False)
        if shown is not None:
            planned, audience, dry_run = shown
            click.echo(f"\n{planned.describe(audience, dry_run=dry_run, language=language)}")
        return
    document = report_document(report, language)
    if shown is not None:
        planned, audience, dry_run = shown
        engagement = planned.snapshot.engagement
        document["sticky_comment"] = {
            "ticket": engagement.key, "url": engagement.url, "action": planned.action.value,
            "comment_id": planned.snapshot.sticky_id, "visibility": audience,
            "dry_run": dry_run, "text": plain_text(planned.content)}
    click.echo(json.dumps(document, ensure_ascii=False, indent=2))


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_BELOW_DEBUG = ("alembic.runtime.plugins",)
"""Loggers whose INFO records say nothing to an operator (Alembic lists its plugins on every
start): shown at DEBUG only."""
SUMMARISED = {"waitress.queue": 60.0}
"""Loggers that repeat one message while a condition lasts, and how many seconds apart their
records are shown: waitress warns "Task queue depth is N" for every request that waits for a
free thread, dozens a second while the service is saturated."""


class OncePer(logging.Filter):
    """Lets a record through at most once per `seconds`; the next one shown says how many
    were held back meanwhile."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._next_at = float("-inf")
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            now = self._clock()
            if now < self._next_at:
                self._held += 1
                return False
            held, self._held, self._next_at = self._held, 0, now + self.seconds
        if held:
            record.msg = f"{record.msg} ({held} more like it held back in the last " \
                         f"{self.seconds:g} s)"
        return True


def _log_level_option(command: Any) -> Any:
    """`--log-level` of the long-running commands."""
    return click.option(
        "--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default=None,
        help="Log records of this level and above to standard error [default: "
             "service.log_level, INFO]")(command)


class _StandardError(logging.StreamHandler):
    """Writes each record to `sys.stderr` as it is then (click's test runner swaps it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def _log_to_standard_error(level: str) -> None:
    """Print log records of `level` and above, timestamped, on standard error: the
    long-running commands' log (a dry run's "would create" lines, the sweep, the jobs, the
    platforms' errors). Records are redacted where they are made (the Bitrix24 connector's
    filter on urllib3's request lines), so what reaches this handler is fit to print."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StandardError)]:
        root.removeHandler(handler)
    handler = _StandardError()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_BELOW_DEBUG:
        logging.getLogger(name).setLevel(logging.NOTSET if level.upper() == "DEBUG"
                                         else logging.WARNING)
    for name, seconds in SUMMARISED.items():
        logger = logging.getLogger(name)
        for known in [f for f in logger.filters if isinstance(f, OncePer)]:
            logger.removeFilter(known)
        logger.addFilter(OncePer(seconds))


def _service_app(config: Config) -> Flask:
    """`create_app(config)` with its queue answering and every connector able to reach its
    platform, or exit 2 naming the setting (`service → database_url`, `service → queue_url`,
    `jira → api_token` …) and why, with no traceback: a service that cannot do its work
    would only log the same error for every event, or fail them all."""
    from connectors import build_connectors
    from plugin.app import close_app, create_app

    _ready(build_connectors(config.connectors).values(), lambda: None)  # before any file
    try:
        app = create_app(config)
    except SQLAlchemyError as error:
        _unreachable("database_url", config.service.database_url, error)
    except OSError as error:  # the queue's SQLite folder (the database's come as SQLAlchemy's)
        _unreachable("queue_url", config.service.queue_url, error)
    try:
        app.extensions["clientguard.jobs"].pending()
    except Exception as error:  # whatever the queue's client raises (sqlite3, redis)
        close_app(app)
        _unreachable("queue_url", config.service.queue_url, error)
    _ready(app.extensions["clientguard.connectors"].values(), lambda: close_app(app))
    return app


def _ready(connectors: Iterable[Any], give_back: Callable[[], None]) -> None:
    """Exit 2 naming a connector's missing setting (every event would fail), after
    `give_back()`; a platform no site installed yet only warns (the service is how a site
    installs). Asked once on connectors built from the settings alone, before the database
    is created or migrated, and again on the service's own, which know the installations."""
    for connector in connectors:
        try:
            connector.ready()
        except NotInstalled as waiting:
            logging.getLogger(__name__).warning("%s", waiting)
        except ConnectorNotConfigured as error:
            give_back()
            _bad_input(str(error))


@cli.command()
@click.option("--host", default=None, help="Interface to listen on [default: service.host]")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port (0: any free one) [default: service.port]")
@click.option("--threads", type=click.IntRange(min=1), default=8, show_default=True,
              help="Request threads of the WSGI server")
@click.option("--dry-run", is_flag=True,
              help="Decide and log every sticky comment (ticket, action, visibility); write none")
@_log_level_option
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, threads: int,
          dry_run: bool, log_level: str | None) -> None:
    """Run the service: webhooks, health and metrics on a production WSGI server, with the
    job workers and the sweep in the same process.

    The database and the queue are created on start-up; with the defaults they are SQLite
    files in the working directory and nothing else needs to be installed. The log goes to
    standard error. Exit status 2 when it cannot start (a setting, the database, the port)."""
    from waitress.server import create_server  # the web stack loads only for the service

    from plugin.app import close_app

    config = _config(ctx)
    if dry_run:
        config = dataclasses.replace(
            config, service=dataclasses.replace(config.service, dry_run=True))
    _log_to_standard_error(log_level or config.service.log_level)
    app = _service_app(config)
    host = config.service.host if host is None else host
    port = config.service.port if port is None else port
    try:  # listen before anything is started or announced
        server = create_server(app, host=host, port=port, threads=threads, ident="clientguard",
                               max_request_body_size=READ_AT_MOST * config.service.max_body_bytes)
    except (OSError, ValueError) as error:
        close_app(app)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        _bad_input(f"cannot listen on {host}:{port} (service → host, service → port; "
                   f"--host, --port): {reason}")
    _freeze_startup_heap()
    with _consumer_running(app, config.service.workers):
        click.echo(f"ClientGuard listening on {_addresses(server)} with "
                   f"{config.service.workers} worker(s)"
                   + (" (dry run: nothing is written)" if config.service.dry_run else ""),
                   err=True)
        server.run()


def _addresses(server: Any) -> str:
    """Where the bound server listens (`http://127.0.0.1:8080`; the port chosen for 0)."""
    listening = (getattr(server, "effective_listen", None)
                 or [(server.effective_host, server.effective_port)])
    return ", ".join(f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"
                     for host, port in listening)


@contextlib.contextmanager
def _consumer_running(app: Flask, workers: int) -> Iterator[Consumer]:
    """The job workers and the periodic jobs run while the block runs; SIGTERM or SIGINT
    ends the block. Then a job waiting on a platform gives its events back at once
    (`STOPPING`), the running jobs finish, and the app is closed.

    Why not huey's own run loop: its SIGTERM abandons the jobs in flight, and its SIGINT
    waits out a job's retry backoff (up to a minute), longer than a container's grace."""
    from plugin.app import close_app

    consumer = app.extensions["clientguard.jobs"].consumer(workers)
    consumer.start()
    signal.signal(signal.SIGTERM, _stop)  # start() took both over for huey's run loop
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield consumer
    finally:
        STOPPING.set()
        consumer.stop(graceful=True)
        close_app(app)


def _stop(*_: object) -> NoReturn:
    raise SystemExit(0)


def _freeze_startup_heap() -> None:
    """Exempt what start-up built (Flask, SQLAlchemy, the rules and their lexicons: some
    120,000 objects) from the garbage collector's full passes. Why: a full pass scanned all
    of it, holding the interpreter lock for 55–80 ms, and every webhook in flight waited;
    with it, webhook p99 at 300 requests/s while the worker evaluated halved."""
    gc.collect()  # what start-up left as garbage is freed, not kept forever
    gc.freeze()


@cli.command()
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve this worker's Prometheus metrics on this port (0: any free one)")
@click.option("--metrics-host", default=None,
              help="Interface for --metrics-port [default: service.host]")
@_log_level_option
@click.pass_context
def worker(ctx: click.Context, metrics_port: int | None, metrics_host: str | None,
           log_level: str | None) -> None:
    """Run job workers (and the sweep) on their own, for deployments with several web and
    worker processes sharing PostgreSQL and Redis. The log goes to standard error; exit
    status 2 when it cannot start (a setting, the database).

    Evaluations run here, so their metrics (comments written, leaks prevented, platform
    errors and latencies) are counted here: scrape each worker's --metrics-port."""
    from prometheus_client import start_http_server

    config = _config(ctx)
    _log_to_standard_error(log_level or config.service.log_level)
    app = _service_app(config)
    metrics, jobs = app.extensions["clientguard.metrics"], app.extensions["clientguard.jobs"]
    where = ""
    if metrics_port is not None:
        host = metrics_host or config.service.host
        try:
            server, _thread = start_http_server(metrics_port, host, registry=metrics.registry)
        except OSError as error:
            _bad_input(f"cannot serve metrics on {host}:{metrics_port}: {error.strerror}")
        where = f", metrics on http://{host}:{server.server_port}/metrics"
    _freeze_startup_heap()
    with _consumer_running(app, config.service.workers) as consumer:
        click.echo(f"ClientGuard worker with {config.service.workers} thread(s){where}"
                   + (" (dry run: nothing is written)" if config.service.dry_run else ""),
                   err=True)
        while True:  # a worker thread that died (it should not) is replaced
            metrics.count_queue(jobs.pending)
            time.sleep(WORKER_HEALTH_CHECK_SECONDS)
            consumer.check_worker_health()


@cli.group("doctor")
def doctor_group() -> None:
    """Check a platform connection: credentials, permissions, field mapping."""


@doctor_group.command("jira")
@click.option("--project", default=None, help="Also check permissions in this project")
@click.pass_context
def doctor_jira(ctx: click.Context, project: str | None) -> None:
    """Check [jira] against the instance and list its fields for the mapping.

    Exit 0 when nothing fails, 1 when a check fails (an incomplete [jira] too: the report
    says what is missing, beside every check that needs no connection)."""
    from connectors.doctor import render_fields
    from connectors.jira.doctor import diagnose, render_diagnosis

    _say_platform_retries()
    diagnosis = diagnose(_connector(_configured(ctx, "jira"), "jira"), project)
    click.echo(render_diagnosis(diagnosis))
    if diagnosis.fields:  # none when the platform could not be asked
        click.echo(render_fields(diagnosis.fields))
    sys.exit(EXIT_OK if diagnosis.ok else EXIT_FAILING)


@doctor_group.command("bitrix24")
@click.option("--portal", default=None,
              help="Only this portal (its member_id) when several installed the app")
@click.pass_context
def doctor_bitrix24(ctx: click.Context, portal: str | None) -> None:
    """Check [bitrix24] against each portal — credentials, plan, scopes, pipelines, the field
    mapping — and list the portal's deal fields for the mapping.

    Exit 0 when nothing fails, 1 when a check fails, 2 when [bitrix24] is incomplete."""
    from connectors.bitrix24.doctor import diagnose, not_connected, render_diagnosis
    from connectors.doctor import render_fields

    connector = _live(_configured(ctx, "bitrix24"), "bitrix24")
    ok = True
    for site in [portal] if portal else connector.sites():
        try:
            client = connector.client_for(site)
        except ConnectorNotConfigured as error:
            diagnosis = not_connected(connector.settings_for(site), str(error), site=site)
        else:
            diagnosis = diagnose(client, connector.settings_for(site))
        click.echo(render_diagnosis(diagnosis))
        if diagnosis.fields:  # none when the platform could not be asked
            click.echo(render_fields(diagnosis.fields))
        ok = ok and diagnosis.ok
    sys.exit(EXIT_OK if ok else EXIT_FAILING)


@cli.group("install")
def install_group() -> None:
    """Connect a platform to this ClientGuard."""


@install_group.command("jira")
@click.option("--url", "public_url", required=True,
              help="The public base URL of this ClientGuard, e.g. https://guard.agency.example")
@click.option("--wait", "wait_seconds", type=float, default=300.0, show_default=True,
              help="Then wait this long for a test delivery to reach the running service "
                   "(0: do not wait)")
@click.pass_context
def install_jira(ctx: click.Context, public_url: str, wait_seconds: float) -> None:
    """Register the Jira webhook (events and JQL from manifest.json and [jira]) with a
    secret, or print the exact settings to enter when the account is not an admin; then
    wait for a test delivery to arrive at the service (it shares this configuration's
    database) — meanwhile an administrator may enter the printed settings. Exit 0 when a
    delivery arrived through a webhook as described."""
    from connectors.jira.install import (
        BadPublicUrl,
        Outcome,
        generate_secret,
        register_webhook,
        render_registration,
    )

    config = _config(ctx)
    connector: JiraConnector = _live(config, "jira")
    secret = connector.settings.webhook_secret or generate_secret()
    try:
        registration = register_webhook(connector, public_url, secret)
    except BadPublicUrl as error:
        _bad_input(f"--url: {error}")
    click.echo(render_registration(registration))
    if wait_seconds <= 0:
        sys.exit(EXIT_OK if registration.done else EXIT_FAILING)
    if registration.secret_is_new:
        # The service still runs without it, so it would take an unsigned delivery too:
        # a delivery arriving now would prove nothing about the signature.
        click.echo("not waiting for a test delivery: the service does not have the new "
                   "secret yet. Give it the secret, restart it, then run `clientguard "
                   "install jira` again to verify a signed delivery arrives.")
        sys.exit(EXIT_FAILING)
    by_hand = "" if registration.done else "once the settings above are entered in Jira, "
    click.echo(f"Waiting up to {wait_seconds:g} s for a test delivery: {by_hand}edit any issue "
               "the JQL covers, as a person (ClientGuard ignores its own changes) ...", err=True)
    with _database(config) as database:
        arrived = _first_delivery(database, "jira", connector.settings.site, wait_seconds)
    if arrived is None:
        click.echo(f"no delivery from Jira reached {public_url} within {wait_seconds:g} s: "
                   "is the webhook entered, the service running, reachable from Jira, and on "
                   "this database? A delivery whose signature does not match the service's "
                   "webhook_secret is refused (401) and counted in its /metrics as "
                   'clientguard_events_rejected_total{connector="jira",reason="signature"}.')
        sys.exit(EXIT_FAILING)
    click.echo(f"test delivery arrived: {arrived.name} on issue {arrived.engagement_key}")
    if registration.outcome is Outcome.EXISTS and registration.problems:
        click.echo("the webhook delivers, but it still differs as listed above: fix it by hand")
        sys.exit(EXIT_FAILING)
    sys.exit(EXIT_OK)


@install_group.command("bitrix24")
@click.option("--url", "public_url", default=None,
              help="The public base URL of this ClientGuard [default: bitrix24.public_url]")
@click.pass_context
def install_bitrix24(ctx: click.Context, public_url: str | None) -> None:
    """Print what to enter in the portal: the local application's handler and install
    URLs and scopes (the portal then calls the install page, which stores the portal and
    binds events and placements), or the incoming and outgoing webhooks' settings."""
    from connectors.bitrix24.install import BadPublicUrl, render_setup

    settings = _connector(_config(ctx), "bitrix24", offline=True).settings
    try:
        click.echo(render_setup(settings, public_url), nl=False)
    except BadPublicUrl as error:
        _bad_input(f"--url: {error}")


def _first_delivery(database: Database, connector: str, site: str,
                    wait_seconds: float) -> EventRecord | None:
    """Poll the events table once a second until a delivery arrives or the wait is over."""
    from plugin.storage.repository import first_event_since

    since = datetime.now(UTC)
    deadline = time.monotonic() + wait_seconds
    while True:
        with database.reading() as session:
            found = first_event_since(session, connector, site, since)
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(min(1.0, max(deadline - time.monotonic(), 0.0)))


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("show")
@click.option("--client", default=None, help="Apply this client's overrides")
@click.option("--project", default=None, help="Apply this project's overrides")
@click.pass_context
def config_show(ctx: click.Context, client: str | None, project: str | None) -> None:
    """Print the effective configuration (defaults → global → client → project) as TOML."""
    config = _config(ctx)
    for scope, key in (("clients", client), ("projects", project)):
        known = config.rule_layers[scope]
        if key is not None and key not in known:  # a typo would show the global settings
            click.echo(f"clientguard: warning: no [{scope}.{key}] table in the configuration "
                       f"({config.source}): none of its overrides apply"
                       + did_you_mean(key, known), err=True)
    scope = ", ".join(f"{name} {value}" for name, value in
                      (("client", client), ("project", project)) if value) or "global"
    click.echo(f"# Effective configuration ({scope}); source: {config.source}")
    click.echo(tomli_w.dumps(config.effective_document(client, project)), nl=False)


@cli.group("rules")
def rules_group() -> None:
    """The rule catalogue."""


@rules_group.command("list")
@language_option("the titles")
@click.pass_context
def rules_list(ctx: click.Context, lang: Language | None) -> None:
    """One line per rule: id, side, severity, title."""
    lang = lang or _config(ctx).language
    for rule in CATALOGUE:
        click.echo(f"{rule.id:26} {rule.side.value:7} {rule.severity.value:9} "
                   f"{rule.title.render(lang)}")


@rules_group.command("docs")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of standard output")
def rules_docs(output: str | None) -> None:
    """Generate docs/rules.md from the catalogue."""
    markdown = rules_markdown()
    if output is None:
        click.echo(markdown, nl=False)
    else:
        try:
            Path(output).write_text(markdown, encoding="utf-8")
        except OSError as error:
            _bad_input(f"--output: cannot write {output}: {error.strerror or error}")
        click.echo(f"wrote {output}", err=True)
