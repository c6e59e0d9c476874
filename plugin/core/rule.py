"""What a rule is: id, title, severity, source, settings, messages and a pure `check`.

A rule module declares its messages (`Message`), its settings (`RuleSettings`) and its check
function, and ties them together with `@rule(...)`. Everything a person reads about a rule —
title, rationale, evidence and fix, in every language — sits in that one module.
"""

from __future__ import annotations

import enum
from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from marshmallow import post_load, validate

from plugin.core.i18n import Language, Text, shown
from plugin.core.model import Engagement
from plugin.core.schema import Strict, WholeNumber


class Status(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    NOT_CONFIGURED = "not_configured"


class Severity(enum.StrEnum):
    """How much a failure of the rule costs the health score by default."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"

    @property
    def default_weight(self) -> float:
        return {"critical": 25.0, "major": 15.0, "minor": 5.0}[self.value]


class Side(enum.StrEnum):
    AGENCY = "agency"  # the agency's own service quality
    CLIENT = "client"  # risk signals coming from the client


@dataclass(frozen=True)
class Message(Text):
    """A rule's evidence message; `code` is its stable machine-readable name."""

    code: str = ""

    def warn(self, **params: Any) -> Reason:
        return Reason(self, Status.WARN, params)

    def fail(self, **params: Any) -> Reason:
        return Reason(self, Status.FAIL, params)

    def note(self, **params: Any) -> Reason:
        """Evidence that is not itself a violation (why a rule is not configured)."""
        return Reason(self, Status.NOT_CONFIGURED, params)


@dataclass(frozen=True)
class Reason:
    """One piece of evidence: a message, the level it stands for, and its parameters."""

    message: Message
    level: Status
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def code(self) -> str:
        return self.message.code

    def localised_params(self, language: Language) -> dict[str, Any]:
        """The parameters for a program to read: numbers as numbers, the rest (a phrase, an
        amount of money) as `language` shows them."""
        return {
            name: value if isinstance(value, int | float) else shown(value, language)
            for name, value in self.params.items()
        }

    def render(self, language: Language) -> str:
        return self.message.render(language, **self.params)


_ORDER = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


@dataclass(frozen=True)
class Outcome:
    status: Status
    reasons: tuple[Reason, ...] = ()

    @classmethod
    def judge(cls, reasons: Sequence[Reason]) -> Outcome:
        """Pass with no reasons; otherwise the worst level among them."""
        if not reasons:
            return PASSED
        worst = max((reason.level for reason in reasons), key=_ORDER.__getitem__)
        return cls(worst, tuple(reasons))

    @classmethod
    def not_configured(cls, reason: Reason) -> Outcome:
        return cls(Status.NOT_CONFIGURED, (reason,))


PASSED = Outcome(Status.PASS)


COMMON_RULE_KEYS = ("enabled", "weight")  # in every rule's table, beside its settings


class RuleSettings(Strict):
    """Base of every rule's settings schema: unknown keys are rejected, and loading gives
    an immutable, hashable record with attribute access (`settings.window_days`)."""

    also_known = COMMON_RULE_KEYS  # `enabeld` is near `enabled`

    _record_types: ClassVar[dict[type, type]] = {}

    @classmethod
    def record_type(cls) -> type:
        if cls not in cls._record_types:
            cls._record_types[cls] = namedtuple(f"{cls.__name__}Record", list(cls._declared_fields))
        return cls._record_types[cls]

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> Any:
        return self.record_type()(**data)

    @classmethod
    def defaults(cls) -> Any:
        return cls().load({})


class NoSettings(RuleSettings):
    """For a rule with nothing to tune beyond `enabled` and `weight`."""


def window_days(default: int = 30) -> WholeNumber:
    """The common look-back window: events older than this many days do not count."""
    return WholeNumber(
        load_default=default,
        validate=validate.Range(min=1),
        metadata={"description": "Days looked back from now"},
    )


Check = Callable[[Engagement, Any, datetime], Outcome]


@dataclass(frozen=True)
class Rule:
    id: str
    side: Side
    severity: Severity
    source: str
    title: Text
    rationale: Text
    fix: Text
    settings: type[RuleSettings]
    messages: tuple[Message, ...]
    check: Check

    def __call__(self, engagement: Engagement, settings: Any, now: datetime) -> Outcome:
        return self.check(engagement, settings, now)


def rule(
    *,
    id: str,
    side: Side,
    severity: Severity,
    source: str,
    title: Text,
    rationale: Text,
    fix: Text,
    settings: type[RuleSettings],
    messages: Sequence[Message],
) -> Callable[[Check], Rule]:
    """Declare a rule around its check function."""

    def declare(check: Check) -> Rule:
        return Rule(id, side, severity, source, title, rationale, fix, settings,
                    tuple(messages), check)

    return declare
