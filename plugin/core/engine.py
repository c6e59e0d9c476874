"""Evaluate an engagement against the catalogue: buckets, not exceptions.

One rule that crashes is reported as faulty; the others still run. The health score is
100 minus the weighted failing and warning rules, never below 0.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from plugin.core.model import Engagement
from plugin.core.rule import Outcome, Rule, Status


class EffectiveRule(NamedTuple):
    """A rule as configured for one engagement: on or off, its weight, its settings."""

    rule: Rule
    enabled: bool
    weight: float
    settings: Any


@dataclass(frozen=True)
class ScoreSettings:
    warn_factor: float = 0.5  # a warning costs this share of the rule's weight
    green: int = 80
    amber: int = 50


class Band(enum.StrEnum):
    GREEN = "green"
    AMBER = "amber"
    RED = "red"


class EvaluationConfig(Protocol):
    score: ScoreSettings

    def rules_for(self, engagement: Engagement) -> Sequence[EffectiveRule]: ...


class RuleResult(NamedTuple):  # a tuple: made 18 times per evaluation, so made cheaply
    rule: Rule
    weight: float
    outcome: Outcome

    @property
    def status(self) -> Status:
        return self.outcome.status


@dataclass(frozen=True)
class FaultyRule:
    rule: Rule
    error: str


@dataclass(frozen=True)
class Report:
    engagement: Engagement
    now: datetime
    findings: tuple[RuleResult, ...]  # failures first, then warnings, in catalogue order
    passed: tuple[RuleResult, ...]
    not_configured: tuple[RuleResult, ...]
    faulty: tuple[FaultyRule, ...]
    disabled: tuple[Rule, ...]
    score: int
    band: Band

    @property
    def has_failures(self) -> bool:
        return any(result.status is Status.FAIL for result in self.findings)


def health_score(findings: Sequence[RuleResult], settings: ScoreSettings) -> tuple[int, Band]:
    penalty = sum(
        result.weight * (1.0 if result.status is Status.FAIL else settings.warn_factor)
        for result in findings
    )
    score = max(0, min(100, round(100 - penalty)))
    if score >= settings.green:
        return score, Band.GREEN
    return score, Band.AMBER if score >= settings.amber else Band.RED


def evaluate(engagement: Engagement, config: EvaluationConfig, now: datetime) -> Report:
    """Run every enabled rule configured for this engagement and sort the outcomes."""
    buckets: dict[Status, list[RuleResult]] = {status: [] for status in Status}
    faulty: list[FaultyRule] = []
    disabled: list[Rule] = []
    for rule, enabled, weight, settings in config.rules_for(engagement):
        if not enabled:
            disabled.append(rule)
            continue
        try:
            outcome = rule.check(engagement, settings, now)
            if not isinstance(outcome, Outcome):
                raise TypeError(f"check returned {type(outcome).__name__}, not an Outcome")
        except Exception as error:  # one broken rule must never abort the others
            faulty.append(FaultyRule(rule, f"{type(error).__name__}: {error}"))
            continue
        buckets[outcome.status].append(RuleResult(rule, weight, outcome))
    findings = (*buckets[Status.FAIL], *buckets[Status.WARN])
    score, band = health_score(findings, config.score)
    return Report(
        engagement=engagement,
        now=now,
        findings=findings,
        passed=tuple(buckets[Status.PASS]),
        not_configured=tuple(buckets[Status.NOT_CONFIGURED]),
        faulty=tuple(faulty),
        disabled=tuple(disabled),
        score=score,
        band=band,
    )
