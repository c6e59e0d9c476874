"""What every platform's doctor shares: the report's shapes, which rule needs which field,
and the text rendering.

`clientguard doctor jira` and `clientguard doctor bitrix24` ask different platforms
different questions but give the same report: checks with a level and a fix, then the
platform's fields for choosing the mapping. Which rules need which meaning is the rules'
business, not a platform's, so it lives here once. Each platform's doctor
(`connectors.jira.doctor`, `connectors.bitrix24.doctor`) supplies only what differs: its
checks, its field kinds, its defaults for unmapped meanings and the report's heading.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from connectors.mapping import MAPPABLE


class Level(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


_SEVERITY = {Level.OK: 0, Level.WARN: 1, Level.FAIL: 2}


def worst(levels: Iterable[Level]) -> Level:
    """The most severe of `levels` (OK when there are none): what a group of checks adds
    up to."""
    return max(levels, key=_SEVERITY.__getitem__, default=Level.OK)


@dataclass(frozen=True)
class Check:
    """One finding of the doctor: what was checked, how it went, and what to do."""

    name: str
    level: Level
    message: str
    fix: str = ""


@dataclass(frozen=True)
class FieldRow:
    """One field of the platform: its id and name, which semantic names the configuration
    maps to it, and which kinds of meaning its type suits."""

    id: str
    name: str
    type: str
    custom: bool
    mapped_as: tuple[str, ...]
    suits: tuple[str, ...]


@dataclass(frozen=True)
class Diagnosis:
    """Every check, in a stable order, and the platform's fields when they could be read."""

    site: str
    checks: tuple[Check, ...]
    fields: tuple[FieldRow, ...] = ()

    @property
    def level(self) -> Level:
        """The worst level among the checks."""
        return worst(check.level for check in self.checks)

    @property
    def ok(self) -> bool:
        """Nothing fails (warnings allowed)."""
        return self.level is not Level.FAIL


# -- which rule needs which field -----------------------------------------------------

RULE_NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "single-point-of-contact": (("account_manager",),),
    "pm-briefed": (("project_manager",),),
    "contract-reviewed": (("contract_reviewed",),),
    "service-cost": (("budget_hours",),),
    "meeting-load": (("budget_hours",),),
    "prepayment": (("prepayment_received", "prepayment_received_on"),),
    "goals-defined": (("goals", "input_data"),),
    "analytics-in-place": (("goal_type",), ("analytics_confirmed", "call_tracking_confirmed")),
    "realistic-timeline": (("channels",), ("results_expected_on",)),
    "official-payment": (("payment_method",),),
    "decision-maker": (("decision_maker",),),
}
"""Rule id → the fields it cannot do without: every group must have one field mapped, or
the rule reports *not configured*."""

RULE_CAVEATS = {
    "contract-reviewed": "when a contract is attached and `[rules.contract-reviewed] "
                         "reviewed_templates` is empty",
    "prepayment": "when prepayment is required",
    "analytics-in-place": "when the goal type is a sales goal",
}
"""When a rule of `RULE_NEEDS` actually reaches its *not configured* answer."""

RULE_USES: dict[str, tuple[str, ...]] = {
    "pm-briefed": ("brief", "brief_acknowledged"),
    "transparent-estimate": ("estimate_approved",),
    "contract-reviewed": ("contract_template",),
    "service-cost": ("manager_hours_budget",),
    "prepayment": ("prepayment_required",),
    "realistic-timeline": ("sale_date",),
    "discount-pressure": ("discount_requests",),
}
"""Rule id → fields it reads when mapped and checks without otherwise."""


def unmapped_effects(name: str, mapped: Iterable[str]
                     ) -> tuple[list[str], list[str], list[str]]:
    """For a name that is not mapped: the rules that then report *not configured* (each
    with its caveat), the rules that read a mapped alternative instead, and the rules that
    check less without it."""
    mapped = set(mapped)
    blocked, covered = [], []
    for rule, groups in RULE_NEEDS.items():
        for group in (group for group in groups if name in group):
            alternatives = sorted(mapped & set(group))
            if alternatives:
                covered.append(f"{rule} reads {', '.join(alternatives)}")
            else:
                blocked.append(rule + (f" ({RULE_CAVEATS[rule]})" if rule in RULE_CAVEATS
                                       else ""))
    weaker = [f"{rule} checks without it" for rule, names in RULE_USES.items() if name in names]
    return blocked, covered, weaker


def unmapped_checks(mapping: Mapping[str, str], defaults: Mapping[str, str],
                    fix: Callable[[str], str]) -> list[Check]:
    """One check per mappable name the mapping leaves out: a warning when a rule then
    reports *not configured*, otherwise what happens without it.

    `defaults` is what the platform reads instead of a name when it is not mapped (Jira:
    the project name is the client's); such a name is fine unmapped. `fix` says how to
    map a name in the platform's settings."""
    checks = []
    for name in MAPPABLE:
        if name in mapping:
            continue
        label = f"unmapped {name}"
        if name in defaults:
            checks.append(Check(label, Level.OK, f"not mapped (optional): {defaults[name]}",
                                fix(name)))
            continue
        blocked, covered, weaker = unmapped_effects(name, mapping)
        if blocked:
            verb = "reports" if len(blocked) == 1 else "report"
            checks.append(Check(label, Level.WARN,
                                f"not mapped: {', '.join(blocked)} {verb} “not configured”",
                                fix(name)))
        else:
            effects = [*covered, *weaker] or ["nothing reads it yet"]
            checks.append(Check(label, Level.OK,
                                f"not mapped (optional): {'; '.join(effects)}", fix(name)))
    return checks


READ_AS_EMPTY = "ClientGuard reads it, but a value it cannot read counts as empty"
"""Why a field of a merely readable type warns: the values it cannot read are lost."""


def mapped_check(name: str, level: Level, seen: str, why: str, expected: str) -> Check:
    """The check of one mapped field, from how well its type suits the meaning: `seen`
    says what the field is, `why` why it does not quite suit, `expected` what would."""
    label = f"field {name}"
    if level is Level.OK:
        return Check(label, Level.OK, seen)
    if level is Level.WARN:
        return Check(label, Level.WARN, f"{seen}; {why}", f"Prefer {expected}.")
    return Check(label, Level.FAIL, f"{seen}; {why}", f"Map {name} to {expected}.")


# -- text ----------------------------------------------------------------------------

_MARK = {Level.OK: "ok  ", Level.WARN: "WARN", Level.FAIL: "FAIL"}


def render_diagnosis(diagnosis: Diagnosis, title: str) -> str:
    """The diagnosis as text under `title` (which site of which platform): one line per
    check, its fix indented below, a summary."""
    lines = [f"{title}:"]
    for check in diagnosis.checks:
        lines.append(f"  {_MARK[check.level]}  {check.name}: {check.message}")
        if check.fix and check.level is not Level.OK:
            lines.append(f"          fix: {check.fix}")
    counts = {level: sum(1 for c in diagnosis.checks if c.level is level) for level in Level}
    lines.append(f"{counts[Level.FAIL]} failing, {counts[Level.WARN]} warnings, "
                 f"{counts[Level.OK]} ok.")
    return "\n".join(lines) + "\n"


def render_fields(rows: Sequence[FieldRow]) -> str:
    """The field list as an aligned text table: id (what the platform's `fields` table
    takes), name, type, custom, the kinds of meaning it suits, what it is mapped as."""
    table = [("id", "name", "type", "custom", "suits", "mapped as")]
    table += [(row.id, row.name, row.type, "yes" if row.custom else "no",
               ", ".join(row.suits), ", ".join(row.mapped_as)) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    return "".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                   .rstrip() + "\n" for line in table)
