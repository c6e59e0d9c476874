"""Configuration: `clientguard.toml` plus `CLIENTGUARD_*` environment variables.

Rules are configured in layers — built-in defaults, then `[rules.<id>]`, then
`[clients.<key>.rules.<id>]`, then `[projects.<key>.rules.<id>]` — and every layer is
validated on its own so an error names the exact key path:
`clients → acme → rules → client-answered → sla_business_hours: Must be greater than or
equal to 0.`

Any setting can come from the environment as `CLIENTGUARD_<SECTION>__<KEY>` (double
underscore between levels, e.g. `CLIENTGUARD_AGENCY__LANGUAGE=da`); that is how secrets
are kept out of the file. Variables without a double underscore (`CLIENTGUARD_CONFIG`) are
not settings.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import (
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connectors import REGISTRY
from plugin.core.calendar import BusinessCalendar, CalendarSchema
from plugin.core.engine import EffectiveRule, ScoreSettings
from plugin.core.i18n import LANGUAGES, Language
from plugin.core.model import Engagement
from plugin.core.rule import COMMON_RULE_KEYS, Rule
from plugin.core.schema import Strict, Table, WholeNumber, did_you_mean, error_lines
from plugin.rules import RULES_BY_ID

ENV_PREFIX = "CLIENTGUARD_"
ENV_SEPARATOR = "__"
CONFIG_PATH_VARIABLE = "CLIENTGUARD_CONFIG"
DEFAULT_CONFIG_FILE = "clientguard.toml"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(ValueError):
    """The configuration is invalid; the message names every key path and its problem."""


class AgencySchema(Strict):
    name = fields.String(load_default="Our agency")
    language = fields.String(load_default="en", validate=validate.OneOf(LANGUAGES))
    calendar = fields.Dict(load_default=dict)  # validated by CalendarSchema in `_load_calendar`


class ScoreSchema(Strict):
    warn_factor = fields.Float(load_default=0.5, validate=validate.Range(min=0, max=1))
    green = WholeNumber(load_default=80, validate=validate.Range(min=0, max=100))
    amber = WholeNumber(load_default=50, validate=validate.Range(min=0, max=100))

    @validates_schema
    def _bands_in_order(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("amber", 50) > data.get("green", 80):
            raise ValidationError("must not be above score → green", "amber")


@dataclass(frozen=True)
class ServiceSettings:
    """`[service]`: where the service listens and keeps its state."""

    database_url: str = "sqlite:///clientguard.sqlite3"
    queue_url: str = "sqlite:///clientguard-queue.sqlite3"
    coalesce_seconds: float = 2.0  # events on one ticket within this time: one evaluation
    workers: int = 2
    dry_run: bool = False  # decide and log every comment, write none
    comment_when_clean: str = "keep"  # "keep": it says every check passes; "delete" it
    lease_seconds: float = 300.0  # a claimed event is another worker's after this long
    keep_events_days: int = 30  # a finished webhook event (and its body) is deleted after this
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1024 * 1024  # a webhook body larger than this is refused (413)
    log_level: str = "INFO"  # what `serve` and `worker` log to standard error


def _check_database_url(url: str) -> None:
    """A URL SQLAlchemy reads, of a database every connection of the service shares."""
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 -- parsed when asked: `:5432x` fails only here
    except (ArgumentError, ValueError) as error:
        raise ValidationError(f"not a database URL ({error})") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValidationError("must be a sqlite:/// or postgresql+psycopg:// URL")
    if parsed.get_backend_name() == "sqlite" and (
            not parsed.database or parsed.database.startswith(":memory:")):
        raise ValidationError("an in-memory SQLite database is not shared between the "
                              "service's connections: name a file (sqlite:///clientguard.sqlite3)")


class ServiceSchema(Strict):
    database_url = fields.String(load_default=ServiceSettings.database_url,
                                 validate=_check_database_url)
    queue_url = fields.String(
        load_default=ServiceSettings.queue_url,
        validate=validate.Regexp(r"^(sqlite:///|rediss?://)",
                                 error="must be a sqlite:/// or redis:// URL"),
    )
    coalesce_seconds = fields.Float(load_default=ServiceSettings.coalesce_seconds,
                                    validate=validate.Range(min=0, max=600))
    workers = WholeNumber(load_default=ServiceSettings.workers,
                             validate=validate.Range(min=1, max=64))
    dry_run = fields.Boolean(load_default=ServiceSettings.dry_run)
    comment_when_clean = fields.String(load_default=ServiceSettings.comment_when_clean,
                                       validate=validate.OneOf(("keep", "delete")))
    lease_seconds = fields.Float(load_default=ServiceSettings.lease_seconds,
                                 validate=validate.Range(min=1))
    keep_events_days = WholeNumber(load_default=ServiceSettings.keep_events_days,
                                      validate=validate.Range(min=1))
    host = fields.String(load_default=ServiceSettings.host)
    port = WholeNumber(load_default=ServiceSettings.port,
                          validate=validate.Range(min=0, max=65535))  # 0: any free one
    max_body_bytes = WholeNumber(load_default=ServiceSettings.max_body_bytes,
                                    validate=validate.Range(min=1024))
    log_level = fields.Function(deserialize=lambda value: str(value).upper(),
                                load_default=ServiceSettings.log_level,
                                validate=validate.OneOf(LOG_LEVELS))

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> ServiceSettings:
        return ServiceSettings(**data)


class ScopeSchema(Strict):
    """`[clients.<key>]` or `[projects.<key>]`: rule overrides for one client or project."""

    name = fields.String(load_default=None)
    rules = Table(keys=fields.String(), values=fields.Dict(), load_default=dict)


class ConfigSchema(Strict):
    also_known = tuple(REGISTRY)  # each platform's section, loaded by its connector

    service = fields.Nested(ServiceSchema, load_default=ServiceSettings)
    agency = fields.Nested(AgencySchema, load_default=lambda: AgencySchema().load({}))
    score = fields.Nested(ScoreSchema, load_default=lambda: ScoreSchema().load({}))
    rules = Table(keys=fields.String(), values=fields.Dict(), load_default=dict)
    clients = Table(keys=fields.String(), values=fields.Nested(ScopeSchema),
                          load_default=dict)
    projects = Table(keys=fields.String(), values=fields.Nested(ScopeSchema),
                           load_default=dict)


class _RuleCommonSchema(Strict):
    enabled = fields.Boolean()
    weight = fields.Float(validate=validate.Range(min=0, max=100))


def agency_defaults(rule: Rule, raw_calendar: Mapping[str, Any]) -> dict[str, Any]:
    """Agency-wide values a rule's settings take unless overridden: its calendar."""
    if "calendar" in rule.settings._declared_fields:
        return {"calendar": dict(raw_calendar)}
    return {}


def _errors_at(path: tuple[str, ...], error: ValidationError) -> list[str]:
    return error_lines(error.messages, path)


def _check_rule_layer(layer: Mapping[str, Any], path: tuple[str, ...],
                      raw_calendar: Mapping[str, Any]) -> list[str]:
    """Validate one layer of rule tables; return error lines (empty when valid)."""
    problems: list[str] = []
    for rule_id, table in layer.items():
        where = (*path, rule_id)
        rule = RULES_BY_ID.get(rule_id)
        if rule is None:
            problems.append(f"{' → '.join(where)}: unknown rule"
                            + did_you_mean(rule_id, RULES_BY_ID)
                            + f" (known: {', '.join(RULES_BY_ID)})")
            continue
        common = {key: table[key] for key in COMMON_RULE_KEYS if key in table}
        settings = {key: value for key, value in table.items() if key not in COMMON_RULE_KEYS}
        try:
            _RuleCommonSchema().load(common)
        except ValidationError as error:
            problems += _errors_at(where, error)
        try:
            rule.settings().load({**agency_defaults(rule, raw_calendar), **settings})
        except ValidationError as error:
            problems += _errors_at(where, error)
    return problems


@dataclass(frozen=True)
class Config:
    """The validated configuration. Rule settings are resolved per (client, project) once."""

    service: ServiceSettings
    connectors: Mapping[str, Any]  # platform name -> its settings, for configured platforms
    agency_name: str
    language: Language
    calendar: BusinessCalendar
    score: ScoreSettings
    raw_calendar: Mapping[str, Any]
    rule_layers: Mapping[str, Any]  # "rules", "clients", "projects" as written
    source: str
    _resolved: dict[tuple[str | None, str | None], tuple[EffectiveRule, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def rules_for(self, engagement: Engagement) -> tuple[EffectiveRule, ...]:
        return self.effective_rules(engagement.client.key, engagement.project)

    def effective_rules(self, client: str | None = None,
                        project: str | None = None) -> tuple[EffectiveRule, ...]:
        """Every rule of the catalogue with defaults → global → client → project applied."""
        key = (client, project)
        if key not in self._resolved:
            self._resolved[key] = tuple(
                self._resolve(rule_id, client, project) for rule_id in RULES_BY_ID
            )
        return self._resolved[key]

    def _tables(self, rule_id: str, client: str | None, project: str | None) -> dict[str, Any]:
        merged = agency_defaults(RULES_BY_ID[rule_id], self.raw_calendar)
        merged.update(self.rule_layers["rules"].get(rule_id, {}))
        for scope, key in (("clients", client), ("projects", project)):
            if key is not None and key in self.rule_layers[scope]:
                merged.update(self.rule_layers[scope][key]["rules"].get(rule_id, {}))
        return merged

    def _resolve(self, rule_id: str, client: str | None, project: str | None) -> EffectiveRule:
        rule = RULES_BY_ID[rule_id]
        table = self._tables(rule_id, client, project)
        settings = {key: value for key, value in table.items() if key not in COMMON_RULE_KEYS}
        # Loaded, not taken as written: from the environment `enabled` is the text "false".
        common = _RuleCommonSchema().load(
            {key: table[key] for key in COMMON_RULE_KEYS if key in table})
        return EffectiveRule(
            rule=rule,
            enabled=common.get("enabled", True),
            weight=common.get("weight", float(rule.severity.default_weight)),
            settings=rule.settings().load(settings),
        )

    def effective_document(self, client: str | None = None,
                           project: str | None = None) -> dict[str, Any]:
        """The effective configuration as a TOML-ready document (for `config show`)."""
        rules = {}
        for effective in self.effective_rules(client, project):
            table: dict[str, Any] = {"enabled": effective.enabled, "weight": effective.weight}
            table.update(effective.rule.settings().dump(effective.settings._asdict()))
            rules[effective.rule.id] = table
        return {
            "service": {**dataclasses.asdict(self.service),
                        "database_url": redacted_url(self.service.database_url),
                        "queue_url": redacted_url(self.service.queue_url)},
            **{name: _masked(settings) for name, settings in self.connectors.items()},
            "agency": {"name": self.agency_name, "language": self.language,
                       "calendar": CalendarSchema().dump(self.calendar)},
            "score": {"warn_factor": self.score.warn_factor, "green": self.score.green,
                      "amber": self.score.amber},
            "rules": rules,
        }


def _masked(settings: Any) -> dict[str, Any]:
    """A settings dataclass fit to print: secrets (fields kept out of repr) as ***, and
    unset values left out (TOML has no null)."""
    return {field.name: "***" if not field.repr else getattr(settings, field.name)
            for field in dataclasses.fields(settings)
            if getattr(settings, field.name) is not None}


def redacted_url(url: str) -> str:
    """A database URL fit to print: the password replaced by ***."""
    return make_url(url).render_as_string(hide_password=True)


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Nested settings from `CLIENTGUARD_A__B=value` variables, and where each came from.
    A shell allows no `-` in a variable's name, so a rule id may spell it `_`
    (`CLIENTGUARD_RULES__CLIENT_ANSWERED__SLA_BUSINESS_HOURS`)."""
    document: dict[str, Any] = {}
    sources = []
    made: dict[tuple[str, ...], str] = {}  # each setting and table, by its first variable
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or ENV_SEPARATOR not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX):].split(ENV_SEPARATOR)]
        path = [_rule_id(part) if index and path[index - 1] == "rules" else part
                for index, part in enumerate(path)]
        node = document
        for depth, part in enumerate(path, start=1):
            where = tuple(path[:depth])
            if depth == len(path):
                if isinstance(node.get(part), dict):
                    raise _clash(made[where], name, where)
                node[part] = environ[name]
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise _clash(made[where], name, where)
            made.setdefault(where, name)
        sources.append(name)
    return document, sources


def _spelt_as_in(table: Mapping[str, Any], key: str) -> str:
    """The file's spelling of a key a variable names: a variable's name is upper-case and
    has no `-`, so `…__PROJECTS__SEO__…` is the file's project `SEO`, `…__ACME_SHOES__…`
    its client `acme-shoes`. Unknown to the file: as the variable spells it."""
    if key in table:
        return key
    return next((known for known in table
                 if known.lower().replace("-", "_") == key.replace("-", "_")), key)


def _clash(first: str, second: str, where: tuple[str, ...]) -> ConfigError:
    return ConfigError(f"{first} and {second} clash: one sets {' → '.join(where)} to a "
                       "value, the other gives it settings of its own")


def _rule_id(name: str) -> str:
    hyphenated = name.replace("_", "-")
    return hyphenated if hyphenated in RULES_BY_ID else name


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` (from the environment) laid over `base` (the file)."""
    result = dict(base)
    for named, value in override.items():
        key = _spelt_as_in(result, named)
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        else:
            result[key] = value
    return result


def load_config(path: str | Path | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Read, merge and validate the configuration, or raise `ConfigError`.

    `path` None means `$CLIENTGUARD_CONFIG`, else `./clientguard.toml` if it exists, else
    the built-in defaults.
    """
    environ = os.environ if environ is None else environ
    if path is None:
        path = environ.get(CONFIG_PATH_VARIABLE) or None  # set but empty: as if unset
        if path is None and Path(DEFAULT_CONFIG_FILE).exists():
            path = DEFAULT_CONFIG_FILE
    document: dict[str, Any] = {}
    source = "built-in defaults"
    if path is not None:
        source = str(path)
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such configuration file") from None
        except UnicodeDecodeError as error:
            raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); "
                              "save it as UTF-8") from None
        except OSError as error:  # a folder, no permission to read it, …
            raise ConfigError(f"{path}: cannot be read: {error.strerror or error}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML: {error}") from None
    env_document, env_sources = _env_overrides(environ)
    if env_sources:
        source += " + environment (" + ", ".join(env_sources) + ")"
    return build_config(_merge(document, env_document), source)


def build_config(document: Mapping[str, Any], source: str = "(given)") -> Config:
    """Validate a decoded configuration document and build the `Config`."""
    problems: list[str] = []
    connectors: dict[str, Any] = {}
    for name, connector in REGISTRY.items():
        if name in document:
            try:
                connectors[name] = connector.settings_schema().load(document[name])
            except ValidationError as error:
                problems += _errors_at((name,), error)
    try:
        data = ConfigSchema().load({key: value for key, value in document.items()
                                    if key not in REGISTRY})
    except ValidationError as error:  # listed with the rest: what did load is checked on
        problems += error_lines(error.messages)
        data = error.valid_data if isinstance(error.valid_data, dict) else {}
    raw_calendar = (data.get("agency") or {}).get("calendar") or {}
    try:
        calendar = CalendarSchema().load(raw_calendar)
    except ValidationError as error:
        problems += _errors_at(("agency", "calendar"), error)
        calendar, raw_calendar = BusinessCalendar(), {}  # reported once, not per rule
    problems += _check_rule_layer(data.get("rules") or {}, ("rules",), raw_calendar)
    for scope in ("clients", "projects"):
        for key, table in (data.get(scope) or {}).items():
            problems += _check_rule_layer(table.get("rules") or {}, (scope, key, "rules"),
                                          raw_calendar)
    if problems:
        raise ConfigError(_report(source, problems))
    return Config(
        service=data["service"],
        connectors=connectors,
        agency_name=data["agency"]["name"],
        language=data["agency"]["language"],
        calendar=calendar,
        score=ScoreSettings(**data["score"]),
        raw_calendar=raw_calendar,
        rule_layers={"rules": data["rules"], "clients": data["clients"],
                     "projects": data["projects"]},
        source=source,
    )


def _report(source: str, problems: list[str]) -> str:
    return f"invalid configuration in {source}:\n" + "\n".join(f"  {line}" for line in problems)
