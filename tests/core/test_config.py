"""Configuration: layers, precise errors naming the key path, environment variables."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from plugin.config import ConfigError, build_config, load_config


def _rule(config, rule_id: str, client=None, project=None):
    return next(r for r in config.effective_rules(client, project) if r.rule.id == rule_id)


def test_defaults_need_no_file(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.source == "built-in defaults"
    answered = _rule(config, "client-answered")
    assert (answered.enabled, answered.weight, answered.settings.sla_business_hours) == (
        True, 25.0, 8.0)


def test_layers_apply_defaults_then_global_then_client_then_project() -> None:
    config = build_config({
        "rules": {"client-answered": {"sla_business_hours": 6, "weight": 30}},
        "clients": {"acme": {"rules": {"client-answered": {"sla_business_hours": 4}}}},
        "projects": {"SHOE": {"rules": {"client-answered": {"sla_business_hours": 2},
                                        "meeting-load": {"enabled": False}}}},
    })
    assert _rule(config, "client-answered").settings.sla_business_hours == 6
    assert _rule(config, "client-answered", "acme").settings.sla_business_hours == 4
    assert _rule(config, "client-answered", "acme", "SHOE").settings.sla_business_hours == 2
    assert _rule(config, "client-answered", "acme", "SHOE").weight == 30
    assert _rule(config, "client-answered", "other").settings.sla_business_hours == 6
    assert _rule(config, "meeting-load", None, "SHOE").enabled is False
    assert _rule(config, "meeting-load", "acme").enabled is True


def test_the_agency_calendar_is_the_rules_calendar_unless_overridden() -> None:
    config = build_config({
        "agency": {"calendar": {"timezone": "Europe/Copenhagen", "hours": "08:00-16:00"}},
        "clients": {"uk": {"rules": {"client-answered": {"calendar": {
            "timezone": "Europe/London"}}}}},
    })
    calendar = _rule(config, "client-answered").settings.calendar
    assert (calendar.timezone, calendar.day_start) == ("Europe/Copenhagen", time(8, 0))
    assert _rule(config, "client-answered", "uk").settings.calendar.timezone == "Europe/London"


@pytest.mark.parametrize(
    ("document", "expected_line"),
    [
        ({"agenc": {}}, "agenc: Unknown field; did you mean agency?"),
        ({"agency": {"language": "de"}}, "agency → language: Must be one of: en, ru, da."),
        ({"agency": {"calendar": {"timezone": "Mars/Olympus"}}},
         "agency → calendar → timezone: unknown time zone 'Mars/Olympus'"),
        ({"agency": {"calendar": {"hours": "17:00-09:00"}}},
         "agency → calendar → hours: must be HH:MM-HH:MM with the start before the end"),
        ({"agency": {"calendar": {"workdays": ["mon", "fun"]}}},
         "agency → calendar → workdays → 1: Must be one of: mon, tue, wed, thu, fri, sat, sun."),
        ({"score": {"green": 40, "amber": 60}}, "score → amber: must not be above score → green"),
        ({"service": {"keep_events_days": 0}},
         "service → keep_events_days: Must be greater than or equal to 1."),
        ({"service": {"port": 65536}},
         "service → port: Must be greater than or equal to 0 and less than or equal to 65535."),
        ({"rules": {"pm-brifed": {}}},
         "rules → pm-brifed: unknown rule; did you mean pm-briefed? (known: "),
        ({"rules": {"client-answered": {"sla_business_hours": -1}}},
         "rules → client-answered → sla_business_hours: Must be greater than or equal to 0."),
        ({"rules": {"client-answered": {"sla": 4}}},
         "rules → client-answered → sla: Unknown field."),
        ({"rules": {"meeting-load": {"enabled": "sometimes"}}},
         "rules → meeting-load → enabled: Not a valid boolean."),
        ({"clients": {"acme": {"rules": {"regular-updates": {"max_days_between": 0}}}}},
         "clients → acme → rules → regular-updates → max_days_between: Must be greater than "
         "or equal to 1."),
        ({"projects": {"SHOE": {"rule": {}}}},
         "projects → SHOE → rule: Unknown field; did you mean rules?"),
        ({"rules": {"no-internal-leak": {"extra_insults": ["(unclosed"]}}},
         "rules → no-internal-leak → extra_insults → 0: not a valid regular expression"),
        ({"jir": {}}, "jir: Unknown field; did you mean jira?"),
        ({"jira": {"emial": "a@agency.example"}},
         "jira → emial: Unknown field; did you mean email?"),
        ({"rules": {"meeting-load": {"enabeld": False}}},
         "rules → meeting-load → enabeld: Unknown field; did you mean enabled?"),
        ({"service": {"zzz": 1}}, "service → zzz: Unknown field.\n"),
    ],
    ids=lambda v: None if isinstance(v, dict) else v[:40],
)
def test_errors_name_the_key_path_and_the_problem(document, expected_line) -> None:
    with pytest.raises(ConfigError) as raised:
        build_config(document, "clientguard.toml")
    assert str(raised.value).startswith("invalid configuration in clientguard.toml:")
    assert expected_line in str(raised.value) + "\n"  # a line's end: "\n" after it


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        build_config({"rules": {"client-answered": {"sla_business_hours": -1},
                                "meeting-load": {"max_share": 2}}})
    assert "client-answered → sla_business_hours" in str(raised.value)
    assert "meeting-load → max_share" in str(raised.value)


def test_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "clientguard.toml"
    path.write_text('[agency]\nname = "Nordlys"\nlanguage = "en"\n\n'
                    '[rules.client-answered]\nsla_business_hours = 4\n', encoding="utf-8")
    config = load_config(path, environ={
        "CLIENTGUARD_AGENCY__LANGUAGE": "da",
        "CLIENTGUARD_RULES__CLIENT-ANSWERED__WINDOW_DAYS": "14",
        "CLIENTGUARD_TEST_DATABASE_URL": "postgresql://not-a-setting",
    })
    assert (config.agency_name, config.language) == ("Nordlys", "da")
    answered = _rule(config, "client-answered").settings
    assert (answered.sla_business_hours, answered.window_days) == (4, 14)
    assert "CLIENTGUARD_AGENCY__LANGUAGE" in config.source


def test_a_rule_id_in_a_variable_name_may_spell_its_hyphens_as_underscores() -> None:
    """What a shell can export: no `-` in a variable's name."""
    config = load_config(environ={
        "CLIENTGUARD_RULES__CLIENT_ANSWERED__SLA_BUSINESS_HOURS": "6",
        "CLIENTGUARD_CLIENTS__ACME__RULES__MEETING_LOAD__ENABLED": "false"})
    assert _rule(config, "client-answered").settings.sla_business_hours == 6
    assert _rule(config, "meeting-load", client="acme").enabled is False


def test_a_variable_names_a_project_or_client_as_the_file_spells_it(tmp_path: Path) -> None:
    """Variable names are upper-case and have no `-`; Jira project keys are upper-case."""
    path = tmp_path / "clientguard.toml"
    path.write_text('[projects.SEO.rules.client-answered]\nsla_business_hours = 4\n\n'
                    '[clients.acme-shoes.rules.client-answered]\nsla_business_hours = 5\n',
                    encoding="utf-8")
    config = load_config(path, environ={
        "CLIENTGUARD_PROJECTS__SEO__RULES__CLIENT_ANSWERED__WINDOW_DAYS": "9",
        "CLIENTGUARD_CLIENTS__ACME_SHOES__RULES__CLIENT_ANSWERED__WINDOW_DAYS": "11"})
    seo = _rule(config, "client-answered", project="SEO").settings
    shoes = _rule(config, "client-answered", client="acme-shoes").settings
    assert (seo.sla_business_hours, seo.window_days) == (4, 9)
    assert (shoes.sla_business_hours, shoes.window_days) == (5, 11)


@pytest.mark.parametrize(("url", "said"), [
    ("postgresql+psycopg://cg@db.internal:5432x/cg", "not a database URL (invalid literal"),
    ("sqlite://", "an in-memory SQLite database is not shared"),
    ("sqlite:///:memory:", "an in-memory SQLite database is not shared"),
    ("sqlite:///:memory:shared", "an in-memory SQLite database is not shared"),
    ("mysql://cg@db/cg", "must be a sqlite:/// or postgresql+psycopg:// URL"),
    ("clientguard.sqlite3", "not a database URL"),
])
def test_a_database_url_the_service_cannot_use_is_named(url: str, said: str) -> None:
    """Refused when the configuration is read, not by a traceback at start-up (a port that
    is no number) or by every job failing on a database each connection has alone."""
    with pytest.raises(ConfigError) as raised:
        build_config({"service": {"database_url": url}})
    assert f"service → database_url: {said}" in str(raised.value)


def test_a_fraction_where_a_whole_number_belongs_is_refused_not_cut_short() -> None:
    with pytest.raises(ConfigError) as raised:
        build_config({"service": {"workers": 2.9, "port": 8080.0},
                      "rules": {"client-answered": {"window_days": 14.5}}})
    assert str(raised.value).splitlines()[1:] == [
        "  service → workers: Not a valid integer.",
        "  rules → client-answered → window_days: Not a valid integer."]
    config = build_config({"service": {"port": "8080"}})  # as a variable gives it
    assert config.service.port == 8080
    assert build_config({"service": {"port": 0}}).service.port == 0  # any free one, as --port 0


def test_a_wrong_entry_of_a_table_is_said_of_the_entry() -> None:
    """Not of marshmallow's `value` inside it (`clients → acme → value → rules`)."""
    with pytest.raises(ConfigError) as raised:
        build_config({"rules": {"client-answered": 5}, "clients": {"acme": {"rules": 5}},
                      "jira": {"fields": {"account_manager": 5}}})
    assert sorted(str(raised.value).splitlines()[1:]) == [
        "  clients → acme → rules: Not a valid mapping type.",
        "  jira → fields → account_manager: Not a valid string.",
        "  rules → client-answered: Not a valid mapping type."]


def test_variables_that_clash_are_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        load_config(environ={"CLIENTGUARD_SERVICE__PORT": "1",
                             "CLIENTGUARD_SERVICE__PORT__X": "1"})
    assert str(raised.value) == (
        "CLIENTGUARD_SERVICE__PORT and CLIENTGUARD_SERVICE__PORT__X clash: one sets "
        "service → port to a value, the other gives it settings of its own")


def test_an_unknown_environment_setting_names_the_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError,
                       match=r"agency → langauge: Unknown field; did you mean language\?"):
        load_config(environ={"CLIENTGUARD_AGENCY__LANGAUGE": "da"})


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[agency\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken, environ={})


def test_config_path_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('[agency]\nlanguage = "ru"\n', encoding="utf-8")
    assert load_config(environ={"CLIENTGUARD_CONFIG": str(path)}).language == "ru"
