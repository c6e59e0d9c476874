"""The `clientguard` command line end to end: every example's verdict, the output formats and
languages, and a clear exit-2 message (never a traceback) for every mistake a person can make.

Runs the real command: click's `CliRunner` on `plugin.cli:cli`, and the installed console
script in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner, Result

from plugin.cli import cli
from plugin.config import build_config
from plugin.core.engine import evaluate
from plugin.core.schema import loads_engagement
from plugin.rules import RULES_BY_ID

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOW = "2026-11-20T12:00:00Z"  # the reference time of every example (examples/README.md)
CLIENTGUARD = Path(sys.executable).parent / "clientguard"

# example file, exit status, rules that fail, rules that warn — in report (catalogue) order.
EXPECTED: list[tuple[str, int, list[str], list[str]]] = [
    ("healthy.json", 0, [], []),
    ("muddy-client.json", 1, ["goals-defined", "realistic-timeline"], []),
    ("eternal-debtor.json", 1, ["prepayment", "overdue-invoices"], []),
    ("leaked-insult.json", 1, ["no-internal-leak"], []),
    ("unbriefed-pm.json", 1, ["pm-briefed"], []),
    ("two-contacts.json", 1, ["single-point-of-contact"],
     ["consistent-deadlines", "decision-maker"]),
]


@pytest.fixture(autouse=True)
def _no_outside_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Built-in defaults only: no ./clientguard.toml, no CLIENTGUARD_* variables."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("CLIENTGUARD_"):
            monkeypatch.delenv(name)


def configure(tmp_path: Path, **sections: dict[str, Any] | None) -> str:
    """A configuration file with the test's own database and the given platform sections
    (a section given as None is left out)."""
    document: dict[str, Any] = {
        "service": {"database_url": f"sqlite:///{tmp_path / 'clientguard.sqlite3'}"},
        **{name: section for name, section in sections.items() if section is not None}}
    path = tmp_path / "clientguard.toml"
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
    return str(path)


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin)


def check(example: str, *extra: str) -> Result:
    return run("check", "--input", str(EXAMPLES / example), "--now", NOW, *extra)


def report(example: str, *extra: str) -> tuple[int, dict[str, Any]]:
    result = check(example, "--format", "json", *extra)
    return result.exit_code, json.loads(result.stdout)


def assert_bad_input(result: Result, *fragments: str) -> None:
    """Exit 2, one `clientguard:` message on standard error naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.stdout == ""
    assert result.stderr.startswith("clientguard: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


# --- the examples ---------------------------------------------------------------------------

def test_every_example_has_an_expected_outcome() -> None:
    assert sorted(path.name for path in EXAMPLES.glob("*.json")) == sorted(
        name for name, *_ in EXPECTED)


@pytest.mark.parametrize(("example", "exit_code", "failing", "warning"), EXPECTED)
def test_example_verdict(example: str, exit_code: int, failing: list[str],
                         warning: list[str]) -> None:
    code, document = report(example)
    assert code == exit_code
    statuses = [(finding["rule"], finding["status"]) for finding in document["findings"]]
    assert statuses == [(rule, "fail") for rule in failing] + [(rule, "warn") for rule in warning]
    assert document["faulty"] == []
    assert document["disabled"] == []


@pytest.mark.parametrize(("example", "exit_code", "failing", "warning"), EXPECTED)
def test_example_text_report_marks_each_finding(example: str, exit_code: int,
                                                failing: list[str], warning: list[str]) -> None:
    result = check(example)
    assert result.exit_code == exit_code
    lines = result.stdout.splitlines()
    for rule in failing:
        assert any(line.startswith("  ✗ FAIL") and f"[{rule}]" in line for line in lines), rule
    for rule in warning:
        assert any(line.startswith("  ! WARN") and f"[{rule}]" in line for line in lines), rule


def test_healthy_example_scores_100_with_nothing_unconfigured() -> None:
    code, document = report("healthy.json")
    assert (code, document["score"], document["band"]) == (0, 100, "green")
    assert document["findings"] == []
    assert document["not_configured"] == []
    assert len(document["passed"]) == len(RULES_BY_ID)
    assert "Health score: 100/100 (green)" in check("healthy.json").stdout


def test_healthy_json_round_trips_with_no_evidence() -> None:
    result = check("healthy.json", "--format", "json")
    document = json.loads(result.stdout)
    assert json.loads(json.dumps(document, ensure_ascii=False)) == document
    assert document["engagement"]["key"] == "HC-42"
    assert document["evaluated_at"] == "2026-11-20T12:00:00+00:00"
    evidence = [item for result in document["passed"] for item in result["evidence"]]
    assert evidence == []


def test_healthy_example_is_healthy_every_hour_of_its_life() -> None:
    """Not just at the reference time: from creation on, nothing ever fails or warns
    (weekly updates, answers within hours, invoices paid on time)."""
    engagement = loads_engagement((EXAMPLES / "healthy.json").read_text(encoding="utf-8"))
    config = build_config({})
    moment, end = engagement.created, datetime(2026, 11, 20, 12, tzinfo=UTC)
    while moment <= end:
        result = evaluate(engagement, config, moment)
        assert (result.findings, result.faulty) == ((), ()), moment
        moment += timedelta(hours=1)


def test_json_report_has_score_band_and_findings_with_evidence() -> None:
    code, document = report("two-contacts.json")
    assert code == 1
    assert isinstance(document["score"], int) and 0 <= document["score"] < 80
    assert document["band"] in {"green", "amber", "red"}
    assert document["language"] == "en"
    contact = document["findings"][0]
    assert contact["rule"] == "single-point-of-contact"
    assert {"title", "status", "severity", "weight", "evidence", "fix"} <= contact.keys()
    codes = [item["code"] for item in contact["evidence"]]
    assert codes == ["several_contacts", "many_responders"]
    assert contact["evidence"][1]["params"]["count"] == 5


def test_leaked_insult_evidence_names_the_comment_and_the_word() -> None:
    _, document = report("leaked-insult.json")
    leak = document["findings"][0]
    insult = next(item for item in leak["evidence"] if item["code"] == "insult")
    assert insult["params"]["comment"] == "42391"
    assert insult["params"]["words"] == "идиот"


def test_the_evaluation_time_matters() -> None:
    """A week before the reference time the eternal debtor's debt had not grown yet twice:
    overdue invoices only warn (the prepayment failure is history and stays)."""
    result = run("check", "--input", str(EXAMPLES / "eternal-debtor.json"), "--format", "json",
                 "--now", "2026-10-19T12:00:00+02:00")
    document = json.loads(result.stdout)
    statuses = {finding["rule"]: finding["status"] for finding in document["findings"]}
    assert statuses["overdue-invoices"] == "warn"


# --- languages ------------------------------------------------------------------------------

def test_russian_report() -> None:
    result = check("leaked-insult.json", "--lang", "ru")
    title = RULES_BY_ID["no-internal-leak"].title
    assert result.exit_code == 1
    assert title.ru in result.stdout
    assert title.en not in result.stdout
    assert "Состояние проекта: 75/100" in result.stdout


def test_danish_report() -> None:
    result = check("unbriefed-pm.json", "--lang", "da")
    title = RULES_BY_ID["pm-briefed"].title
    assert result.exit_code == 1
    assert title.da in result.stdout
    assert title.en not in result.stdout
    assert "Sundhedsscore" in result.stdout


def test_json_report_in_danish() -> None:
    _, document = report("muddy-client.json", "--lang", "da")
    assert document["language"] == "da"
    titles = {finding["rule"]: finding["title"] for finding in document["findings"]}
    assert titles["goals-defined"] == RULES_BY_ID["goals-defined"].title.da


def test_language_comes_from_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "clientguard.toml"
    config.write_text('[agency]\nlanguage = "ru"\n', encoding="utf-8")
    result = run("--config", str(config), "check", "--input", str(EXAMPLES / "unbriefed-pm.json"),
                 "--now", NOW)
    assert RULES_BY_ID["pm-briefed"].title.ru in result.stdout


# --- configuration applied by check ---------------------------------------------------------

def test_check_applies_a_client_override(tmp_path: Path) -> None:
    """The healthy client answered within 3.5 hours; a 1-hour SLA for that client fails."""
    config = tmp_path / "strict.toml"
    config.write_text("[clients.havnens-cykler.rules.client-answered]\nsla_business_hours = 1\n",
                      encoding="utf-8")
    result = run("--config", str(config), "check", "--input", str(EXAMPLES / "healthy.json"),
                 "--now", NOW, "--format", "json")
    document = json.loads(result.stdout)
    assert result.exit_code == 1
    assert [finding["rule"] for finding in document["findings"]] == ["client-answered"]


def test_check_honours_a_switched_off_rule(tmp_path: Path) -> None:
    config = tmp_path / "clientguard.toml"
    config.write_text("[rules.no-internal-leak]\nenabled = false\n", encoding="utf-8")
    result = run("check", "--input", str(EXAMPLES / "leaked-insult.json"), "--now", NOW,
                 "--format", "json")  # found in the current directory
    document = json.loads(result.stdout)
    assert result.exit_code == 0
    assert document["disabled"] == ["no-internal-leak"]


# --- input from standard input --------------------------------------------------------------

def test_input_from_standard_input() -> None:
    text = (EXAMPLES / "leaked-insult.json").read_text(encoding="utf-8")
    result = run("check", "--input", "-", "--now", NOW, stdin=text)
    assert result.exit_code == 1
    assert "[no-internal-leak]" in result.stdout


# --- bad input: exit 2, a clear message, never a traceback ----------------------------------

def _engagement(**changes: Any) -> dict[str, Any]:
    document = json.loads((EXAMPLES / "healthy.json").read_text(encoding="utf-8"))
    document.update(changes)
    return document


def _write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return str(path)


def test_missing_input_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.json")
    assert_bad_input(run("check", "--input", missing, "--now", NOW),
                     missing, "No such file or directory")


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.json", '{"connector": "jira",\n "key": }\n')
    assert_bad_input(run("check", "--input", path, "--now", NOW),
                     "not valid JSON", "line 2, column 9")


def test_schema_error_names_the_path(tmp_path: Path) -> None:
    document = _engagement()
    document["comments"][0]["at"] = "yesterday"
    path = _write(tmp_path, "bad.json", json.dumps(document))
    assert_bad_input(run("check", "--input", path, "--now", NOW),
                     "not a valid engagement", "comments → 0 → at: Not a valid datetime.")


def test_every_schema_error_is_listed(tmp_path: Path) -> None:
    document = _engagement(colour="red")
    document["fields"]["budget"] = 10
    del document["title"]
    path = _write(tmp_path, "bad.json", json.dumps(document))
    result = run("check", "--input", path, "--now", NOW)
    assert_bad_input(result, "colour: Unknown field.", "colour: Unknown field.\n",
                     "fields → budget: Unknown field; did you mean budget_hours?",
                     "title: Missing data for required field.")


def test_naive_datetime_is_rejected(tmp_path: Path) -> None:
    document = _engagement()
    document["comments"][0]["at"] = "2026-09-03T09:40:00"
    path = _write(tmp_path, "naive.json", json.dumps(document))
    assert_bad_input(run("check", "--input", path, "--now", NOW),
                     "comments → 0 → at: Not a valid aware datetime", "time-zone offset")


def test_datetime_in_a_date_field_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "due.json", json.dumps(_engagement(due="2027-02-26T00:00:00Z")))
    assert_bad_input(run("check", "--input", path, "--now", NOW), "due: Not a valid date.")


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    path = _write(tmp_path, "list.json", "[1, 2]")
    assert_bad_input(run("check", "--input", path, "--now", NOW),
                     "an engagement must be a JSON object")


def test_not_utf8(tmp_path: Path) -> None:
    path = _write(tmp_path, "latin1.json", '{"title": "Smørrebrød"}'.encode("latin-1"))
    assert_bad_input(run("check", "--input", path, "--now", NOW), "not UTF-8 text")


def test_absurdly_nested_json(tmp_path: Path) -> None:
    path = _write(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000)
    assert_bad_input(run("check", "--input", path, "--now", NOW), "nested too deeply")


def test_an_integer_over_python_s_4300_digits(tmp_path: Path) -> None:
    path = _write(tmp_path, "huge.json", '{"budget_hours": ' + "9" * 4400 + "}")
    assert_bad_input(run("check", "--input", path, "--now", NOW),
                     "not JSON we accept", "4300")


def test_bad_now() -> None:
    result = run("check", "--input", str(EXAMPLES / "healthy.json"), "--now", "tomorrow")
    assert_bad_input(result, "--now", "'tomorrow'", "ISO-8601")


def test_bad_config_file_names_the_key(tmp_path: Path) -> None:
    config = _write(tmp_path, "bad.toml", "[rules.client-answered]\nsla_hours = 4\n")
    result = run("--config", config, "check", "--input", str(EXAMPLES / "healthy.json"),
                 "--now", NOW)
    assert_bad_input(result, "invalid configuration", "rules → client-answered → sla_hours")


def test_config_file_that_is_not_toml(tmp_path: Path) -> None:
    config = _write(tmp_path, "bad.toml", "[agency\n")
    assert_bad_input(run("--config", config, "config", "show"), "not valid TOML", "line 1")


def test_every_configuration_problem_is_listed_at_once(tmp_path: Path) -> None:
    config = _write(tmp_path, "bad.toml", "[service]\nworkers = 0\n"
                    "[agency.calendar]\ntimezone = \"Mars/Base\"\n"
                    "[rules.pm-brifed]\nenabled = false\n")
    assert_bad_input(run("--config", config, "config", "show"),
                     "service → workers: Must be greater than or equal to 1",
                     "agency → calendar → timezone: unknown time zone 'Mars/Base'",
                     "rules → pm-brifed: unknown rule; did you mean pm-briefed?")


def test_missing_config_file(tmp_path: Path) -> None:
    config = str(tmp_path / "nope.toml")
    assert_bad_input(run("--config", config, "config", "show"), "no such configuration file")


def test_a_config_variable_naming_a_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "show"],
                                env={"CLIENTGUARD_CONFIG": str(tmp_path)})
    assert_bad_input(result, f"{tmp_path}: cannot be read: Is a directory")


def test_a_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes('[agency]\nname = "Bureau Ærø"\n'.encode("latin-1"))
    assert_bad_input(run("--config", str(config), "config", "show"), "not UTF-8 text")


def test_an_empty_config_variable_is_as_if_unset(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["config", "show"], env={"CLIENTGUARD_CONFIG": ""})
    assert result.exit_code == 0, result.output
    assert "built-in defaults" in result.stdout


# --- config show ----------------------------------------------------------------------------

def _effective(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return tomllib.loads(result.stdout)


def test_config_show_applies_client_and_project_overrides(tmp_path: Path) -> None:
    config = _write(tmp_path, "clientguard.toml",
                    "[clients.acme.rules.client-answered]\nsla_business_hours = 4\n"
                    "[projects.SHOE.rules.meeting-load]\nenabled = false\n")
    result = run("--config", config, "config", "show", "--client", "acme", "--project", "SHOE")
    assert result.stdout.startswith("# Effective configuration (client acme, project SHOE)")
    effective = _effective(result)
    assert effective["rules"]["client-answered"]["sla_business_hours"] == 4
    assert effective["rules"]["meeting-load"]["enabled"] is False
    assert result.stderr == ""
    everyone = _effective(run("--config", config, "config", "show"))
    assert everyone["rules"]["client-answered"]["sla_business_hours"] == 8
    assert everyone["rules"]["meeting-load"]["enabled"] is True
    typo = run("--config", config, "config", "show", "--client", "acne", "--project", "SHOE")
    assert _effective(typo)["rules"]["client-answered"]["sla_business_hours"] == 8
    assert typo.stderr == (f"clientguard: warning: no [clients.acne] table in the configuration "
                           f"({config}): none of its overrides apply; did you mean acme?\n")


def test_config_show_lists_every_rule() -> None:
    effective = _effective(run("config", "show"))
    assert list(effective["rules"]) == list(RULES_BY_ID)


def test_config_show_rejects_an_unknown_key(tmp_path: Path) -> None:
    config = _write(tmp_path, "clientguard.toml",
                    "[clients.acme.rules.client-answered]\nsla_business_hours = 4\n"
                    "answer_within = 2\n")
    assert_bad_input(run("--config", config, "config", "show", "--client", "acme"),
                     "clients → acme → rules → client-answered → answer_within: Unknown field.")


# --- the installed console script -----------------------------------------------------------

def _script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("CLIENTGUARD_")}
    return subprocess.run([str(CLIENTGUARD), *args], capture_output=True, text=True,
                          encoding="utf-8", cwd=cwd, env=environment, timeout=60, check=False)


@pytest.mark.parametrize(("example", "exit_code", "failing", "warning"), EXPECTED)
def test_console_script(example: str, exit_code: int, failing: list[str], warning: list[str],
                        tmp_path: Path) -> None:
    process = _script("check", "--input", str(EXAMPLES / example), "--now", NOW,
                      "--format", "json", cwd=tmp_path)
    assert process.returncode == exit_code, process.stderr
    assert process.stderr == ""
    document = json.loads(process.stdout)
    assert [f["rule"] for f in document["findings"] if f["status"] == "fail"] == failing
    assert [f["rule"] for f in document["findings"] if f["status"] == "warn"] == warning


def test_console_script_bad_input_has_no_traceback(tmp_path: Path) -> None:
    process = _script("check", "--input", "missing.json", cwd=tmp_path)
    assert process.returncode == 2
    assert process.stdout == ""
    assert process.stderr.startswith("clientguard: missing.json")
    assert "Traceback" not in process.stderr


def test_rules_list_names_every_rule_in_the_agency_language_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "clientguard.toml"
    path.write_text('[agency]\nlanguage = "ru"\n', encoding="utf-8")
    for extra, language in (((), "ru"), (("--lang", "da"), "da")):
        result = run("--config", str(path), "rules", "list", *extra)
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert [line.split()[0] for line in lines] == list(RULES_BY_ID)
        assert [line.split(None, 3)[3] for line in lines] == [
            rule.title.render(language) for rule in RULES_BY_ID.values()]
