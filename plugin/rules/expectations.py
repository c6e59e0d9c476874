"""What the client expects: clear goals and inputs, a way to measure sales, a realistic
horizon for slow channels.

Seeds: 000 §1 (muddy goals), §4 (SEO conservatives); 003 (no input data, no analytics,
fast results wanted from long-horizon channels).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from marshmallow import fields, validate

from plugin.core.i18n import Text, moment
from plugin.core.model import Engagement, during
from plugin.core.rule import (
    PASSED,
    Message,
    NoSettings,
    Outcome,
    RuleSettings,
    Severity,
    rule,
)
from plugin.core.rule import Side as RuleSide
from plugin.core.schema import WholeNumber
from plugin.rules.common import NOT_MAPPED, is_blank, months_before, not_mapped

# --- goals-defined -----------------------------------------------------------------------

FIELD_EMPTY = Message(
    code="field_empty",
    en="Work started on {started}, but “{field}” is empty.",
    ru="Работа началась {started}, а поле «{field}» пустое.",
    da="Arbejdet startede {started}, men “{field}” er tomt.",
)
FILLED_LATE = Message(
    code="filled_late",
    en="“{field}” was only filled in on {filled}, after work started on {started}.",
    ru="Поле «{field}» заполнено только {filled}, уже после начала работ {started}.",
    da="“{field}” blev først udfyldt {filled}, efter arbejdet startede {started}.",
)
GOAL_FIELDS = ("goals", "input_data")


@rule(
    id="goals-defined",
    side=RuleSide.CLIENT,
    severity=Severity.MAJOR,
    source="000 §1 “muddy”; 003 (no input data)",
    title=Text(
        en="Goals and input data before work starts",
        ru="Цели и исходные данные до начала работ",
        da="Mål og inputdata, før arbejdet starter",
    ),
    rationale=Text(
        en="Without goals and the client's numbers (margins, average order, targets) "
        "nobody can say whether the work succeeded, and the client will say it did not.",
        ru="Без целей и цифр клиента (маржа, средний чек, план) никто не скажет, удалась "
        "ли работа, и клиент скажет, что нет.",
        da="Uden mål og kundens tal (avance, gennemsnitlig ordreværdi, salgsmål) kan ingen "
        "sige, om arbejdet lykkedes, og kunden vil sige, at det ikke lykkedes.",
    ),
    fix=Text(
        en="Agree measurable goals with the client and fill in the goals and input-data "
        "fields before moving the ticket into progress.",
        ru="Согласуйте с клиентом измеримые цели и заполните поля целей и исходных данных "
        "до перевода задачи в работу.",
        da="Aftal målbare mål med kunden, og udfyld felterne for mål og inputdata, før "
        "sagen sættes i gang.",
    ),
    settings=NoSettings,
    messages=(FIELD_EMPTY, FILLED_LATE, NOT_MAPPED),
)
def goals_defined(e: Engagement, s: Any, now: datetime) -> Outcome:
    mapped = [name for name in GOAL_FIELDS if e.field_mapped(name)]
    if not mapped:
        return Outcome.not_configured(NOT_MAPPED.note(field=GOAL_FIELDS[0]))
    started = e.started_at
    if started is None:
        return PASSED
    reasons = []
    edits = [change for change in during(e.changes, started, now)
             if change.field in mapped and change.at > started]
    for name in mapped:
        if is_blank(e.fields[name]):
            reasons.append(FIELD_EMPTY.fail(field=name, started=moment(started)))
            continue
        filled_late = next(
            (change for change in edits if change.field == name
             and not (change.from_value or "").strip() and (change.to_value or "").strip()),
            None,
        )
        if filled_late is not None:
            reasons.append(FILLED_LATE.fail(field=name, filled=moment(filled_late.at),
                                            started=moment(started)))
    return Outcome.judge(reasons)


# --- analytics-in-place ------------------------------------------------------------------

NO_ANALYTICS = Message(
    code="no_analytics",
    en="The goal is “{goal}”, but neither analytics nor call tracking is confirmed.",
    ru="Цель — «{goal}», но ни аналитика, ни коллтрекинг не подтверждены.",
    da="Målet er “{goal}”, men hverken webanalyse eller opkaldssporing er bekræftet.",
)


class AnalyticsSettings(RuleSettings):
    sales_goal_types = fields.List(
        fields.String(),
        load_default=lambda: ["sales", "leads", "продажи", "лиды", "заявки", "salg", "kunder"],
        metadata={"description": "Goal types that need analytics or call tracking"},
    )


@rule(
    id="analytics-in-place",
    side=RuleSide.CLIENT,
    severity=Severity.MAJOR,
    source="003 (wants sales, has no analytics)",
    title=Text(
        en="Analytics in place for sales goals",
        ru="Аналитика настроена для целей по продажам",
        da="Webanalyse på plads ved salgsmål",
    ),
    rationale=Text(
        en="A client who wants sales but measures nothing will judge the agency by "
        "feeling, and feelings turn against the agency first.",
        ru="Клиент, который хочет продаж, но ничего не измеряет, оценивает агентство по "
        "ощущениям, а ощущения первыми оборачиваются против агентства.",
        da="En kunde, der vil have salg, men intet måler, bedømmer bureauet på fornemmelse, "
        "og fornemmelser vender sig først mod bureauet.",
    ),
    fix=Text(
        en="Set up and verify web analytics and call tracking with the client, then mark "
        "them as confirmed.",
        ru="Настройте и проверьте вместе с клиентом веб-аналитику и коллтрекинг, затем "
        "отметьте их как подтверждённые.",
        da="Sæt webanalyse og opkaldssporing op, og kontrollér dem sammen med kunden; markér "
        "dem derefter som bekræftet.",
    ),
    settings=AnalyticsSettings,
    messages=(NO_ANALYTICS, NOT_MAPPED),
)
def analytics_in_place(e: Engagement, s: Any, now: datetime) -> Outcome:
    if not e.field_mapped("goal_type"):
        return Outcome.not_configured(NOT_MAPPED.note(field="goal_type"))
    goal = e.fields["goal_type"]
    sales_goals = {kind.casefold() for kind in s.sales_goal_types}
    if is_blank(goal) or goal.strip().casefold() not in sales_goals:
        return PASSED  # no sales goal: nothing to measure sales with
    flags = ("analytics_confirmed", "call_tracking_confirmed")
    if not any(e.field_mapped(flag) for flag in flags):
        return Outcome.not_configured(NOT_MAPPED.note(field=flags[0]))
    if any(e.fields.get(flag) is True for flag in flags):
        return PASSED
    return Outcome.judge([NO_ANALYTICS.fail(goal=goal.strip())])


# --- realistic-timeline ------------------------------------------------------------------

NO_EXPECTED_DATE = Message(
    code="no_expected_date",
    en="A long-horizon channel ({channels}) was sold, but when results are expected is "
    "not recorded.",
    ru="Продан канал с отложенным эффектом ({channels}), но срок ожидаемых результатов не "
    "зафиксирован.",
    da="Der er solgt en langsigtet kanal ({channels}), men hvornår resultaterne "
    "forventes, er ikke registreret.",
)
TOO_SOON = Message(
    code="too_soon",
    en="{channels} results are expected on {expected}, {months:plural:month|months} after "
    "the start on {start}; this channel needs at least {minimum:plural:month|months}.",
    ru="Результатов ({channels}) ждут к {expected}, через {months} мес. после старта "
    "{start}; таким каналам нужно не меньше {minimum} мес.",
    da="Resultater fra {channels} forventes {expected}, {months:plural:måned|måneder} efter "
    "start {start}; kanalen kræver mindst {minimum:plural:måned|måneder}.",
)


class TimelineSettings(RuleSettings):
    min_months = WholeNumber(
        load_default=3, validate=validate.Range(min=1),
        metadata={"description": "Fewest months before results from a long-horizon channel"},
    )
    long_horizon_channels = fields.List(
        fields.String(), load_default=lambda: ["seo", "content"],
        metadata={"description": "Channels whose results take months"},
    )


def _whole_months(start: date, end: date) -> int:
    months = (end.year - start.year) * 12 + end.month - start.month
    return months - 1 if months > 0 and months_before(end, months) < start else months


@rule(
    id="realistic-timeline",
    side=RuleSide.CLIENT,
    severity=Severity.MAJOR,
    source="003 (fast results from SEO); 000 §4",
    title=Text(
        en="Realistic timeline for long-horizon channels",
        ru="Реалистичные сроки для каналов с отложенным эффектом",
        da="Realistisk tidsplan for langsigtede kanaler",
    ),
    rationale=Text(
        en="SEO and content pay off over months; a client promised results in weeks will "
        "leave before they arrive.",
        ru="SEO и контент окупаются месяцами; клиент, которому обещали результат через "
        "несколько недель, уйдёт раньше, чем он появится.",
        da="SEO og indhold betaler sig først over måneder; en kunde, der er blevet lovet "
        "resultater i løbet af få uger, springer fra, før de kommer.",
    ),
    fix=Text(
        en="Reset expectations in writing: agree milestones the channel can reach and the "
        "date real results can be expected.",
        ru="Письменно скорректируйте ожидания: согласуйте достижимые этапы и дату, когда "
        "можно ждать реальных результатов.",
        da="Justér forventningerne skriftligt: aftal milepæle, kanalen kan nå, og datoen "
        "for reelle resultater.",
    ),
    settings=TimelineSettings,
    messages=(NO_EXPECTED_DATE, TOO_SOON, NOT_MAPPED),
)
def realistic_timeline(e: Engagement, s: Any, now: datetime) -> Outcome:
    missing = not_mapped(e, "channels", "results_expected_on")
    if missing:
        return Outcome.not_configured(NOT_MAPPED.note(field=missing))
    slow = {channel.casefold() for channel in s.long_horizon_channels}
    sold = [channel for channel in e.fields["channels"] or () if channel.casefold() in slow]
    if not sold:
        return PASSED
    channels = ", ".join(sold)
    expected: date | None = e.fields["results_expected_on"]
    if expected is None:
        return Outcome.judge([NO_EXPECTED_DATE.fail(channels=channels)])
    start = e.fields.get("sale_date") or (e.started_at or e.created).date()
    months = _whole_months(start, expected)
    if months >= s.min_months:
        return PASSED
    return Outcome.judge([TOO_SOON.fail(
        channels=channels, expected=moment(expected), months=max(months, 0),
        start=moment(start), minimum=s.min_months,
    )])
