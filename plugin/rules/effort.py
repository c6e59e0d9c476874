"""What the engagement costs the agency: hours against budget, and time lost in meetings.

Seed: 003 (cost of service in manager hours; endless calls and meetings).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from marshmallow import fields, validate

from plugin.core.i18n import Text
from plugin.core.model import Engagement, TimeKind
from plugin.core.rule import PASSED, Message, Outcome, RuleSettings, Severity, rule
from plugin.core.rule import Side as RuleSide
from plugin.rules.common import NOT_MAPPED, hours

NO_BUDGET = Message(
    code="no_budget",
    en="No budget in hours is set for this engagement.",
    ru="Для проекта не задан бюджет в часах.",
    da="Der er ikke sat et timebudget for dette kundeforløb.",
)

# --- service-cost ------------------------------------------------------------------------

OVER_BUDGET = Message(
    code="over_budget",
    en="{spent:plural:hour|hours} logged against a budget of {budget:plural:hour|hours} "
    "({share} %).",
    ru="Списано {spent} ч при бюджете {budget} ч ({share} %).",
    da="Der er registreret {spent:plural:time|timer} mod et budget på "
    "{budget:plural:time|timer} ({share} %).",
)
NEAR_BUDGET = Message(
    code="near_budget",
    en="{spent:plural:hour|hours} logged: {share} % of the {budget}-hour budget is used.",
    ru="Списано {spent} ч: израсходовано {share} % бюджета в {budget} ч.",
    da="Der er registreret {spent:plural:time|timer}: {share} % af budgettet på "
    "{budget:plural:time|timer} er brugt.",
)
MANAGER_OVER_PLAN = Message(
    code="manager_over_plan",
    en="Managers logged {spent:plural:hour|hours} against a plan of {plan:plural:hour|hours}.",
    ru="Менеджеры списали {spent} ч при плане {plan} ч.",
    da="Projektlederne og de kundeansvarlige har registreret {spent:plural:time|timer} mod "
    "en plan på {plan:plural:time|timer}.",
)


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else float("inf") if part > 0 else 0.0


def _percent(share: float) -> str:
    """Whole percent, rounded down: 99.6 % used is not shown as the 100 % that fails."""
    return "∞" if share == float("inf") else str(math.floor(share * 100 + 1e-9))


def _budget(e: Engagement) -> tuple[float | None, Outcome | None]:
    """The budget in hours, or the outcome to report when there is none."""
    if not e.field_mapped("budget_hours"):
        return None, Outcome.not_configured(NOT_MAPPED.note(field="budget_hours"))
    budget = e.fields["budget_hours"]
    if budget is None:
        return None, Outcome.judge([NO_BUDGET.fail()])
    return float(budget), None


class ServiceCostSettings(RuleSettings):
    warn_at = fields.Float(
        load_default=0.8, validate=validate.Range(min=0),
        metadata={"description": "Share of the budget used that warns"},
    )
    fail_at = fields.Float(
        load_default=1.0, validate=validate.Range(min=0),
        metadata={"description": "Share of the budget used that fails"},
    )


@rule(
    id="service-cost",
    side=RuleSide.AGENCY,
    severity=Severity.MAJOR,
    source="003 (160 manager hours per person-month)",
    title=Text(
        en="Time spent within budget",
        ru="Затраты времени в пределах бюджета",
        da="Tidsforbrug inden for budget",
    ),
    rationale=Text(
        en="Hours past the budget are paid by the agency; a client that costs more to "
        "serve than it pays is lost money every month.",
        ru="Часы сверх бюджета оплачивает агентство; клиент, обслуживание которого "
        "стоит дороже его оплаты, каждый месяц приносит убыток.",
        da="Timer ud over budgettet betaler bureauet selv; en kunde, der koster mere at "
        "betjene, end den betaler, er tabte penge hver måned.",
    ),
    fix=Text(
        en="Review the scope with the client before the budget runs out: agree a change "
        "request, an extra budget, or a cut in scope.",
        ru="Обсудите с клиентом объём работ до исчерпания бюджета и договоритесь о "
        "допсоглашении, дополнительном бюджете или сокращении объёма.",
        da="Gennemgå omfanget med kunden, før budgettet er brugt op: aftal et tillæg til "
        "aftalen, et ekstra budget eller et mindre omfang.",
    ),
    settings=ServiceCostSettings,
    messages=(NO_BUDGET, OVER_BUDGET, NEAR_BUDGET, MANAGER_OVER_PLAN, NOT_MAPPED),
)
def service_cost(e: Engagement, s: Any, now: datetime) -> Outcome:
    budget, missing = _budget(e)
    if missing is not None:
        return missing
    assert budget is not None
    spent = sum(e.hours_by_kind(now).values())
    share = _share(spent, budget)
    reasons = []
    params = {"spent": hours(spent), "budget": hours(budget), "share": _percent(share)}
    if share >= s.fail_at:
        reasons.append(OVER_BUDGET.fail(**params))
    elif share >= s.warn_at:
        reasons.append(NEAR_BUDGET.warn(**params))
    plan = e.fields.get("manager_hours_budget")
    if plan is not None:
        managers = e.manager_ids()
        manager_hours = sum(entry.hours for entry in e.time_entries_until(now)
                            if entry.person.id in managers)
        if manager_hours > plan:
            reasons.append(MANAGER_OVER_PLAN.warn(spent=hours(manager_hours),
                                                  plan=hours(plan)))
    return Outcome.judge(reasons)


# --- meeting-load ------------------------------------------------------------------------

MEETING_HEAVY = Message(
    code="meeting_heavy",
    en="Calls and meetings took {spent:plural:hour|hours}: {share} % of the {budget}-hour "
    "budget (limit {limit} %).",
    ru="Звонки и встречи заняли {spent} ч: {share} % бюджета в {budget} ч "
    "(допустимо {limit} %).",
    da="Opkald og møder har taget {spent:plural:time|timer}: {share} % af budgettet på "
    "{budget:plural:time|timer} (grænse {limit} %).",
)


class MeetingLoadSettings(RuleSettings):
    max_share = fields.Float(
        load_default=0.15, validate=validate.Range(min=0, max=1),
        metadata={"description": "Largest share of the budget for calls and meetings"},
    )


@rule(
    id="meeting-load",
    side=RuleSide.CLIENT,
    severity=Severity.MINOR,
    source="003 (endless calls and meetings)",
    title=Text(
        en="Calls and meetings within reason",
        ru="Звонки и встречи в разумных пределах",
        da="Opkald og møder inden for rimelighedens grænser",
    ),
    rationale=Text(
        en="A client who needs endless calls and meetings eats the hours the work needs.",
        ru="Клиент, которому нужны бесконечные звонки и встречи, съедает часы, нужные "
        "для работы.",
        da="En kunde, der kræver endeløse opkald og møder, spiser de timer, arbejdet skal "
        "bruge.",
    ),
    fix=Text(
        en="Agree a fixed meeting rhythm and written status reports, and bill extra "
        "meetings beyond it.",
        ru="Договоритесь о фиксированном графике встреч и письменных отчётах, а за "
        "дополнительные встречи выставляйте отдельный счёт.",
        da="Aftal en fast mødekadence og skriftlige statusrapporter, og fakturér ekstra "
        "møder ud over den.",
    ),
    settings=MeetingLoadSettings,
    messages=(NO_BUDGET, MEETING_HEAVY, NOT_MAPPED),
)
def meeting_load(e: Engagement, s: Any, now: datetime) -> Outcome:
    budget, missing = _budget(e)
    if missing is not None:
        return missing
    assert budget is not None
    by_kind = e.hours_by_kind(now)
    spent = by_kind[TimeKind.CALL] + by_kind[TimeKind.MEETING]
    share = _share(spent, budget)
    if share <= s.max_share:
        return PASSED
    return Outcome.judge([MEETING_HEAVY.fail(
        spent=hours(spent), share=_percent(share), budget=hours(budget),
        limit=_percent(s.max_share),
    )])
