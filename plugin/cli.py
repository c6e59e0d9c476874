"""The `clientguard` command line.

Every failure a person can cause (a bad file, a bad setting) ends with a one-line-per-problem
message and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import click
import tomli_w

from plugin.config import Config, ConfigError, load_config
from plugin.core.engine import evaluate
from plugin.core.i18n import LANGUAGES, Language
from plugin.core.render import report_document, report_text
from plugin.core.schema import EngagementFormatError, loads_engagement
from plugin.rules import CATALOGUE
from plugin.rules.docs import rules_markdown

EXIT_OK, EXIT_FAILING, EXIT_BAD_INPUT = 0, 1, 2


def _bad_input(message: str) -> NoReturn:
    click.echo(f"clientguard: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _config(ctx: click.Context) -> Config:
    try:
        return load_config(ctx.obj["config_path"])
    except ConfigError as error:
        _bad_input(str(error))


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
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help="Engagement JSON file (docs/engagement-json.md); - for standard input")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--lang", type=click.Choice(LANGUAGES), default=None,
              help="Language of the report [default: agency.language]")
@click.option("--now", "now_text", default=None,
              help="Evaluate as of this ISO-8601 time [default: the current time]")
@click.pass_context
def check(ctx: click.Context, input_path: str, output_format: str, lang: Language | None,
          now_text: str | None) -> None:
    """Evaluate one engagement and print its health report.

    Exit status: 0 nothing fails, 1 something fails, 2 bad input.
    """
    config = _config(ctx)
    now = _parse_now(now_text, config)
    try:
        text = sys.stdin.read() if input_path == "-" else Path(input_path).read_text("utf-8")
    except OSError as error:
        _bad_input(f"{input_path}: {error.strerror or error}")
    except UnicodeDecodeError:
        _bad_input(f"{input_path}: not UTF-8 text")
    try:
        engagement = loads_engagement(text)
    except EngagementFormatError as error:
        _bad_input(f"{input_path}: not a valid engagement:\n{error}")
    report = evaluate(engagement, config, now)
    language = lang or config.language
    if output_format == "json":
        click.echo(json.dumps(report_document(report, language), ensure_ascii=False, indent=2))
    else:
        click.echo(report_text(report, language), nl=False)
    failing = report.has_failures or bool(report.faulty)
    sys.exit(EXIT_FAILING if failing else EXIT_OK)


@cli.command()
@click.option("--host", default=None, help="Interface to listen on [default: service.host]")
@click.option("--port", type=int, default=None, help="Port [default: service.port]")
@click.option("--threads", type=int, default=8, show_default=True,
              help="Request threads of the WSGI server")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, threads: int) -> None:
    """Run the service: webhooks, health and metrics on a production WSGI server, with the
    job workers and the sweep in the same process.

    The database and the queue are created on start-up; with the defaults they are SQLite
    files in the working directory and nothing else needs to be installed."""
    import waitress  # the web stack loads only for the service, not for offline commands

    from plugin.app import create_app

    config = _config(ctx)
    app = create_app(config)
    consumer = app.extensions["clientguard.jobs"].consumer(config.service.workers)
    consumer.start()
    # The consumer took over SIGTERM/SIGINT for its own run loop, which `serve` does not use:
    # give them back, so a stop signal ends the web server and the finally below.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    host, port = host or config.service.host, port or config.service.port
    click.echo(f"ClientGuard listening on http://{host}:{port} with "
               f"{config.service.workers} worker(s)", err=True)
    try:
        waitress.serve(app, host=host, port=port, threads=threads, ident="clientguard")
    finally:
        consumer.stop(graceful=True)


def _stop(*_: object) -> NoReturn:
    raise SystemExit(0)


@cli.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run job workers (and the sweep) on their own, for deployments with several web and
    worker processes sharing PostgreSQL and Redis."""
    from plugin.app import create_app

    config = _config(ctx)
    app = create_app(config)
    click.echo(f"ClientGuard worker with {config.service.workers} thread(s)", err=True)
    app.extensions["clientguard.jobs"].consumer(config.service.workers).run()


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
    scope = ", ".join(f"{name} {value}" for name, value in
                      (("client", client), ("project", project)) if value) or "global"
    click.echo(f"# Effective configuration ({scope}); source: {config.source}")
    click.echo(tomli_w.dumps(config.effective_document(client, project)), nl=False)


@cli.group("rules")
def rules_group() -> None:
    """The rule catalogue."""


@rules_group.command("list")
@click.option("--lang", type=click.Choice(LANGUAGES), default="en", show_default=True)
def rules_list(lang: Language) -> None:
    """One line per rule: id, side, severity, title."""
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
        Path(output).write_text(markdown, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
