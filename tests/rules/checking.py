"""Helpers every rule test uses: run a rule, read its evidence codes, check its messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from plugin.core.i18n import LANGUAGES, shown
from plugin.core.model import Engagement
from plugin.core.rule import Outcome, Rule, Status
from tests.builders import NOW


def check(rule: Rule, e: Engagement, settings: dict[str, Any] | None = None,
          now: datetime = NOW) -> Outcome:
    """The rule's outcome with `settings` loaded through its schema (defaults for the rest)."""
    return rule.check(e, rule.settings().load(settings or {}), now)


def codes(outcome: Outcome) -> list[str]:
    return [reason.code for reason in outcome.reasons]


def assert_renders(outcome: Outcome) -> None:
    """Every reason reads in every language, with no placeholder left and every parameter
    in the text."""
    for reason in outcome.reasons:
        for language in LANGUAGES:
            text = reason.render(language)
            assert text.strip() and "{" not in text and "}" not in text
            for value in reason.params.values():
                assert shown(value, language) in text


def assert_outcome(outcome: Outcome, status: Status, expected_codes: list[str],
                   params: dict[str, Any] | None = None) -> None:
    """Status, evidence codes in order, the given parameters of the first reason, and
    every reason readable in every language."""
    assert outcome.status is status
    assert codes(outcome) == expected_codes
    if params:
        assert {name: outcome.reasons[0].params[name] for name in params} == params
    assert_renders(outcome)
