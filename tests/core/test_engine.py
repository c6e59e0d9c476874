"""The engine sorts outcomes into buckets, survives a broken rule, and scores."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from plugin.config import build_config
from plugin.core.engine import (
    Band,
    EffectiveRule,
    RuleResult,
    ScoreSettings,
    evaluate,
    health_score,
)
from plugin.core.i18n import Text
from plugin.core.rule import Message, NoSettings, Outcome, Severity, Side, Status, rule
from plugin.rules import RULES_BY_ID
from tests.builders import NOW, engagement, not_started

BROKEN = Message(code="broken", en="x", ru="x", da="x")


def _test_rule(check, rule_id: str = "test-rule"):
    return rule(id=rule_id, side=Side.AGENCY, severity=Severity.MAJOR, source="test",
                title=Text(en="T", ru="T", da="T"), rationale=Text(en="R", ru="R", da="R"),
                fix=Text(en="F", ru="F", da="F"), settings=NoSettings,
                messages=(BROKEN,))(check)


@dataclass
class FixedConfig:
    """An EvaluationConfig with a hand-picked list of rules."""

    rules: list[EffectiveRule]
    score: ScoreSettings = field(default_factory=ScoreSettings)

    def rules_for(self, engagement):
        return self.rules


def _effective(rule_, weight: float = 15.0, enabled: bool = True) -> EffectiveRule:
    return EffectiveRule(rule_, enabled, weight, NoSettings.defaults())


def test_a_crashing_rule_is_reported_as_faulty_and_the_others_still_run() -> None:
    def crashes(e, s, now):
        return 1 / 0

    def warns(e, s, now):
        return Outcome.judge([BROKEN.warn()])

    config = FixedConfig([_effective(_test_rule(crashes, "crashes")),
                          _effective(_test_rule(warns, "warns"))])
    report = evaluate(engagement(), config, NOW)
    assert [(f.rule.id, f.error) for f in report.faulty] == [
        ("crashes", "ZeroDivisionError: division by zero")]
    assert [r.rule.id for r in report.findings] == ["warns"]
    assert report.score == 92  # 100 - 15 * 0.5, rounded


def test_a_check_returning_something_else_is_faulty() -> None:
    config = FixedConfig([_effective(_test_rule(lambda e, s, now: "fine"))])
    report = evaluate(engagement(), config, NOW)
    assert report.faulty[0].error == "TypeError: check returned str, not an Outcome"


def test_disabled_rules_do_not_run() -> None:
    def explodes(e, s, now):
        raise AssertionError("must not run")

    report = evaluate(engagement(), FixedConfig([_effective(_test_rule(explodes),
                                                            enabled=False)]), NOW)
    assert [r.id for r in report.disabled] == ["test-rule"]
    assert report.faulty == () and report.score == 100


def test_failures_come_before_warnings() -> None:
    config = FixedConfig([
        _effective(_test_rule(lambda e, s, now: Outcome.judge([BROKEN.warn()]), "w")),
        _effective(_test_rule(lambda e, s, now: Outcome.judge([BROKEN.fail()]), "f")),
    ])
    assert [r.rule.id for r in evaluate(engagement(), config, NOW).findings] == ["f", "w"]


def _results(*statuses_and_weights: tuple[Status, float]) -> list[RuleResult]:
    some_rule = RULES_BY_ID["pm-briefed"]
    return [RuleResult(some_rule, weight, Outcome(status)) for status, weight in
            statuses_and_weights]


@pytest.mark.parametrize(
    ("findings", "settings", "expected"),
    [
        ((), ScoreSettings(), (100, Band.GREEN)),
        (((Status.FAIL, 15),), ScoreSettings(), (85, Band.GREEN)),
        (((Status.FAIL, 25),), ScoreSettings(), (75, Band.AMBER)),
        (((Status.FAIL, 25), (Status.FAIL, 25)), ScoreSettings(), (50, Band.AMBER)),
        (((Status.FAIL, 25), (Status.FAIL, 25), (Status.WARN, 5)), ScoreSettings(),
         (48, Band.RED)),
        (((Status.WARN, 25),), ScoreSettings(warn_factor=1.0), (75, Band.AMBER)),
        (((Status.FAIL, 100), (Status.FAIL, 100)), ScoreSettings(), (0, Band.RED)),
        (((Status.FAIL, 10),), ScoreSettings(green=95, amber=90), (90, Band.AMBER)),
    ],
    ids=["clean", "one-major", "one-critical", "two-critical", "below-amber", "warn-factor",
         "floor-at-zero", "custom-bands"],
)
def test_health_score(findings, settings, expected) -> None:
    assert health_score(_results(*findings), settings) == expected


def test_the_default_catalogue_runs_every_rule_once() -> None:
    report = evaluate(engagement(), build_config({}), NOW)
    seen = [r.rule.id for r in (*report.findings, *report.passed, *report.not_configured)]
    seen += [f.rule.id for f in report.faulty]
    assert sorted(seen) == sorted(RULES_BY_ID)
    assert report.faulty == ()


def test_per_project_configuration_reaches_the_rules() -> None:
    silent = replace(engagement(), project="SHOE")  # active, no update for 40 days
    config = build_config({"projects": {"SHOE": {"rules": {"regular-updates": {
        "max_days_between": 60}}}}})
    report = evaluate(silent, config, NOW)
    assert "regular-updates" in [r.rule.id for r in report.passed]
    report = evaluate(replace(silent, project="OTHER"), config, NOW)
    assert "regular-updates" in [r.rule.id for r in report.findings]


def test_a_not_started_engagement_violates_no_before_work_rule() -> None:
    report = evaluate(not_started(), build_config({}), NOW)
    failing = {r.rule.id for r in report.findings}
    assert not failing & {"pm-briefed", "transparent-estimate", "contract-reviewed",
                          "goals-defined", "regular-updates"}
