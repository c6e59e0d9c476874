"""Who decides on the client's side: one named decision maker, not a crowd.

Seed: 000 §2 (warring stakeholders).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import validate

from plugin.core.i18n import Text
from plugin.core.model import Engagement, Side, during
from plugin.core.rule import Message, Outcome, RuleSettings, Severity, rule, window_days
from plugin.core.rule import Side as RuleSide
from plugin.core.schema import WholeNumber
from plugin.rules.common import NOT_MAPPED, names, window_start

NO_DECISION_MAKER = Message(
    code="no_decision_maker",
    en="No decision maker is named on the client's side.",
    ru="Со стороны клиента не назначено лицо, принимающее решения.",
    da="Der er ikke udpeget en beslutningstager hos kunden.",
)
SEVERAL_DECISION_MAKERS = Message(
    code="several_decision_makers",
    en="{count} client people are named as decision makers: {people}.",
    ru="Лицами, принимающими решения, со стороны клиента названы "
    "{count:plural:человек|человека|человек}: {people}.",
    da="{count} personer hos kunden er udpeget som beslutningstagere: {people}.",
)
MANY_INSTRUCTING = Message(
    code="many_instructing",
    en="In the last {days:plural:day|days} {count} client people gave instructions "
    "({people}); the limit is {limit}.",
    ru="За последние {days} дн. указания давали {count:plural:человек|человека|человек} со "
    "стороны клиента ({people}); допустимо не больше {limit}.",
    da="De seneste {days:plural:dag|dage} har {count} personer hos kunden givet instrukser "
    "({people}); grænsen er {limit}.",
)


class DecisionMakerSettings(RuleSettings):
    max_instructing = WholeNumber(
        load_default=2, validate=validate.Range(min=1),
        metadata={"description": "Most client people who may give instructions"},
    )
    window_days = window_days()


@rule(
    id="decision-maker",
    side=RuleSide.CLIENT,
    severity=Severity.MAJOR,
    source="000 §2",
    title=Text(
        en="One decision maker on the client's side",
        ru="Одно лицо, принимающее решения, на стороне клиента",
        da="Én beslutningstager hos kunden",
    ),
    rationale=Text(
        en="When several client people give orders, the agency ends up caught between "
        "warring stakeholders and pleases none of them.",
        ru="Когда указания дают несколько человек со стороны клиента, агентство оказывается "
        "между враждующими сторонами и не может угодить никому.",
        da="Når flere hos kunden giver ordrer, ender bureauet mellem stridende parter og "
        "gør ingen af dem tilfreds.",
    ),
    fix=Text(
        en="Agree with the client who decides, record that person, and route other "
        "people's requests through them.",
        ru="Договоритесь с клиентом, кто принимает решения, зафиксируйте этого человека и "
        "направляйте запросы остальных через него.",
        da="Aftal med kunden, hvem der beslutter, registrér personen, og send andres ønsker "
        "gennem vedkommende.",
    ),
    settings=DecisionMakerSettings,
    messages=(NO_DECISION_MAKER, SEVERAL_DECISION_MAKERS, MANY_INSTRUCTING, NOT_MAPPED),
)
def decision_maker(e: Engagement, s: Any, now: datetime) -> Outcome:
    if e.client.decision_makers is None:
        return Outcome.not_configured(NOT_MAPPED.note(field="decision_maker"))
    # Each person once; someone of the agency in the field is no client-side decision maker.
    deciders = {person.id: person for person in e.client.decision_makers
                if person.side is not Side.AGENCY}
    reasons = []
    if not deciders:
        reasons.append(NO_DECISION_MAKER.fail())
    elif len(deciders) > 1:
        reasons.append(SEVERAL_DECISION_MAKERS.fail(count=len(deciders),
                                                    people=names(deciders.values())))
    since = window_start(now, s.window_days)
    instructing = {
        comment.author.id: comment.author for comment in during(e.comments, since, now)
        if comment.side is Side.CLIENT
    }
    if len(instructing) > s.max_instructing:
        reasons.append(MANY_INSTRUCTING.warn(
            days=s.window_days, count=len(instructing), people=names(instructing.values()),
            limit=s.max_instructing,
        ))
    return Outcome.judge(reasons)
