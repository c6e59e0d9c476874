"""A rule that reports *not configured* for want of a mapped field names the key to map: the
key `[jira] fields` and `[bitrix24] fields` accept (`connectors.mapping.MAPPABLE`), and one
`clientguard doctor` lists for that rule (`connectors.doctor.RULE_NEEDS`) — not the name the
engagement model gives the people it reads from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.doctor import RULE_NEEDS
from connectors.jira.settings import JiraSettingsSchema
from connectors.mapping import MAPPABLE
from plugin.cli import cli
from plugin.config import build_config
from plugin.core.engine import evaluate
from plugin.core.model import Client, Roles
from plugin.core.rule import Status
from plugin.rules.ownership import pm_briefed, single_point_of_contact
from plugin.rules.stakeholders import decision_maker
from tests.builders import CLIENT_BOSS, NOW, engagement
from tests.rules.checking import check

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
NOTHING_MAPPED = engagement(roles=Roles(), client=Client("acme", "Acme Shoes", (CLIENT_BOSS,)))
"""No person field mapped and no custom field mapped."""


@pytest.mark.parametrize(("rule", "key"), [
    (single_point_of_contact, "account_manager"),
    (pm_briefed, "project_manager"),
    (decision_maker, "decision_maker"),
])
def test_the_note_names_the_mapping_key_of_the_people_field(rule, key) -> None:
    outcome = check(rule, NOTHING_MAPPED)
    assert outcome.status is Status.NOT_CONFIGURED
    assert outcome.reasons[0].render("en") == (
        f"The field “{key}” is not mapped, so this cannot be checked.")
    assert outcome.reasons[0].render("ru") == (
        f"Поле «{key}» не сопоставлено, поэтому проверить это нельзя.")
    assert outcome.reasons[0].render("da") == (
        f"Feltet “{key}” er ikke koblet, så det kan ikke tjekkes.")
    # ... and the key it names is one the Jira section takes.
    assert JiraSettingsSchema().load({"fields": {key: "customfield_10101"}}).fields == {
        key: "customfield_10101"}


def test_every_not_mapped_note_names_a_key_the_mapping_and_the_doctor_know() -> None:
    report = evaluate(NOTHING_MAPPED, build_config({}), NOW)
    named = {result.rule.id: reason.params["field"]
             for result in report.not_configured for reason in result.outcome.reasons
             if reason.code == "not_mapped"}
    assert {"single-point-of-contact", "pm-briefed", "decision-maker"} <= set(named)
    for rule_id, key in named.items():
        assert key in MAPPABLE, (rule_id, key)
        assert any(key in group for group in RULE_NEEDS[rule_id]), (rule_id, key)


@pytest.mark.parametrize(("lang", "line"), [
    ("en", "[pm-briefed] — The field “project_manager” is not mapped"),
    ("ru", "[pm-briefed] — Поле «project_manager» не сопоставлено"),
    ("da", "[decision-maker] — Feltet “decision_maker” er ikke koblet"),
])
def test_check_prints_the_mapping_key(tmp_path: Path, lang: str, line: str) -> None:
    document = json.loads((EXAMPLES / "healthy.json").read_text("utf-8"))
    document["roles"]["project_managers"] = None
    document["client"]["decision_makers"] = None
    path = tmp_path / "engagement.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    (tmp_path / "clientguard.toml").write_text("", encoding="utf-8")  # the defaults
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "clientguard.toml"),
                                      "check", "--input", str(path), "--lang", lang,
                                      "--now", "2026-11-20T12:00:00Z"])
    assert line in result.stdout
    assert "project_managers" not in result.stdout
    assert "decision_makers" not in result.stdout
