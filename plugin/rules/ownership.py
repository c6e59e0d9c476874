"""Who is in charge: one point of contact, and a project manager briefed before work starts.

Seeds: 001 ("shared chats", "PM not in the loop", "no responsibility"), 002 §1 and §2.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import fields, validate

from plugin.core.i18n import Text, moment
from plugin.core.model import Document, DocumentKind, Engagement, Side
from plugin.core.rule import (
    PASSED,
    Message,
    Outcome,
    RuleSettings,
    Severity,
    rule,
    window_days,
)
from plugin.core.rule import Side as RuleSide
from plugin.core.schema import WholeNumber
from plugin.rules.common import (
    NOT_MAPPED,
    client_questions,
    is_blank,
    names,
    window_start,
)

# --- single-point-of-contact -------------------------------------------------------------

NO_CONTACT = Message(
    code="no_contact",
    en="Nobody is named as the client's point of contact.",
    ru="Не назначено контактное лицо агентства для клиента.",
    da="Ingen er udpeget som bureauets kontaktperson for kunden.",
)
SEVERAL_CONTACTS = Message(
    code="several_contacts",
    en="{count} people are named as the client's point of contact: {people}.",
    ru="Контактными лицами агентства для клиента назначены "
    "{count:plural:человек|человека|человек}: {people}.",
    da="{count} personer er udpeget som bureauets kontaktperson for kunden: {people}.",
)
MANY_RESPONDERS = Message(
    code="many_responders",
    en="In the last {days:plural:day|days} the client was answered by {count} different "
    "agency people ({people}); the limit is {limit}.",
    ru="За последние {days} дн. клиенту отвечали "
    "{count:plural:сотрудник|сотрудника|сотрудников} агентства ({people}); допустимо не "
    "больше {limit}.",
    da="De seneste {days:plural:dag|dage} har {count} forskellige medarbejdere svaret kunden "
    "({people}); grænsen er {limit}.",
)


class PointOfContactSettings(RuleSettings):
    max_responders = WholeNumber(
        load_default=3, validate=validate.Range(min=1),
        metadata={"description": "Most different agency people who may answer the client"},
    )
    window_days = window_days()


@rule(
    id="single-point-of-contact",
    side=RuleSide.AGENCY,
    severity=Severity.CRITICAL,
    source="001 “shared chats”; 002 §1, §2",
    title=Text(
        en="One point of contact for the client",
        ru="Одно контактное лицо для клиента",
        da="Én kontaktperson for kunden",
    ),
    rationale=Text(
        en="When several people speak for the agency, nobody is in charge and the client "
        "gets conflicting answers.",
        ru="Когда от имени агентства говорят несколько человек, никто не отвечает за "
        "результат, а клиент получает противоречивые ответы.",
        da="Når flere taler på bureauets vegne, har ingen ansvaret, og kunden får "
        "modstridende svar.",
    ),
    fix=Text(
        en="Name exactly one account manager for this client and let them answer, or "
        "route answers through them.",
        ru="Назначьте ровно одного аккаунт-менеджера: пусть клиенту отвечает он сам или "
        "ответы идут через него.",
        da="Udpeg præcis én kundeansvarlig, og lad vedkommende svare eller formidle svarene.",
    ),
    settings=PointOfContactSettings,
    messages=(NO_CONTACT, SEVERAL_CONTACTS, MANY_RESPONDERS, NOT_MAPPED),
)
def single_point_of_contact(e: Engagement, s: Any, now: datetime) -> Outcome:
    contacts = e.roles.points_of_contact
    if contacts is None:
        return Outcome.not_configured(NOT_MAPPED.note(field="account_manager"))
    reasons = []
    if not contacts:
        reasons.append(NO_CONTACT.fail())
    elif len(distinct := {person.id for person in contacts}) > 1:
        reasons.append(SEVERAL_CONTACTS.fail(count=len(distinct), people=names(contacts)))
    responders = {
        reply.author.id: reply.author
        for _, reply in client_questions(e, window_start(now, s.window_days), now)
        if reply is not None
    }
    if len(responders) > s.max_responders:
        reasons.append(MANY_RESPONDERS.warn(
            days=s.window_days, count=len(responders), people=names(responders.values()),
            limit=s.max_responders,
        ))
    return Outcome.judge(reasons)


# --- pm-briefed --------------------------------------------------------------------------

NO_PM = Message(
    code="no_pm",
    en="No project manager is assigned, and work started on {started}.",
    ru="Менеджер проекта не назначен, а работа началась {started}.",
    da="Der er ingen projektleder, og arbejdet startede {started}.",
)
NO_BRIEF = Message(
    code="no_brief",
    en="There is no brief written by the agency.",
    ru="Нет брифа, составленного агентством.",
    da="Der er intet brief skrevet af bureauet.",
)
BRIEF_BY_CLIENT = Message(
    code="brief_by_client",
    en="The only brief (“{name}”) was uploaded by the client; the agency writes the brief.",
    ru="Единственный бриф («{name}») загрузил клиент; бриф должно составлять агентство.",
    da="Det eneste brief (“{name}”) er uploadet af kunden; bureauet skriver briefet.",
)
BRIEF_LATE = Message(
    code="brief_late",
    en="The brief “{name}” was added on {added}, after work started on {started}.",
    ru="Бриф «{name}» добавлен {added}, уже после начала работ {started}.",
    da="Briefet “{name}” blev tilføjet {added}, efter arbejdet startede {started}.",
)
NOT_ACKNOWLEDGED = Message(
    code="not_acknowledged",
    en="The project manager ({people}) has not acknowledged the brief before work started.",
    ru="Менеджер проекта ({people}) не подтвердил бриф до начала работ.",
    da="Projektlederen ({people}) har ikke kvitteret for briefet, før arbejdet startede.",
)


class PmBriefedSettings(RuleSettings):
    require_acknowledgement = fields.Boolean(
        load_default=True,
        metadata={"description": "The PM must confirm the brief (field or a comment after it)"},
    )


def _agency_briefs(e: Engagement) -> tuple[list[Document], list[Document]]:
    """Briefs written by the agency, and those uploaded by the client."""
    briefs = [doc for doc in e.documents if doc.kind is DocumentKind.BRIEF]
    by_client = [doc for doc in briefs if doc.author and doc.author.side is Side.CLIENT]
    return [doc for doc in briefs if doc not in by_client], by_client


@rule(
    id="pm-briefed",
    side=RuleSide.AGENCY,
    severity=Severity.CRITICAL,
    source="001 “PM not in the loop”, “no responsibility”",
    title=Text(
        en="Project manager briefed before work starts",
        ru="Менеджер проекта получил бриф до начала работ",
        da="Projektlederen er briefet, før arbejdet starter",
    ),
    rationale=Text(
        en="A PM who was never briefed asks the client again what was already agreed, "
        "and the client concludes nobody listens.",
        ru="Менеджер проекта без брифа заново расспрашивает клиента о согласованном, и "
        "клиент решает, что его не слышат.",
        da="En projektleder uden brief spørger kunden om det, der allerede er aftalt, og "
        "kunden konkluderer, at ingen lytter.",
    ),
    fix=Text(
        en="Assign a PM, have the account manager write the brief and attach it, and get "
        "the PM to confirm it before moving the ticket into progress.",
        ru="Назначьте менеджера проекта; аккаунт-менеджер пишет и прикладывает бриф, а "
        "менеджер проекта подтверждает его до перевода задачи в работу.",
        da="Udpeg en projektleder, lad den kundeansvarlige skrive og vedhæfte briefet, og "
        "få projektlederen til at bekræfte det, før sagen sættes i gang.",
    ),
    settings=PmBriefedSettings,
    messages=(NO_PM, NO_BRIEF, BRIEF_BY_CLIENT, BRIEF_LATE, NOT_ACKNOWLEDGED, NOT_MAPPED),
)
def pm_briefed(e: Engagement, s: Any, now: datetime) -> Outcome:
    managers = e.roles.project_managers
    if managers is None:
        return Outcome.not_configured(NOT_MAPPED.note(field="project_manager"))
    started = e.started_at
    if started is None:
        return PASSED  # not started: nothing can be late yet
    if not managers:
        return Outcome.judge([NO_PM.fail(started=moment(started))])

    agency_briefs, client_briefs = _agency_briefs(e)
    brief_in_field = not is_blank(e.fields.get("brief"))
    on_time = [doc for doc in agency_briefs if doc.added_at <= started]
    if not on_time and not brief_in_field:
        if agency_briefs:
            late = agency_briefs[0]
            return Outcome.judge([BRIEF_LATE.fail(
                name=late.name, added=moment(late.added_at), started=moment(started))])
        if client_briefs:
            return Outcome.judge([BRIEF_BY_CLIENT.fail(name=client_briefs[0].name)])
        return Outcome.judge([NO_BRIEF.fail()])

    if not s.require_acknowledgement or e.fields.get("brief_acknowledged") is True:
        return PASSED
    manager_ids = {person.id for person in managers}
    briefed_at = on_time[0].added_at if on_time else None
    acknowledged = any(
        comment.author.id in manager_ids
        and (briefed_at is None or comment.at >= briefed_at)
        and comment.at <= started
        for comment in e.comments
    )
    if acknowledged:
        return PASSED
    return Outcome.judge([NOT_ACKNOWLEDGED.fail(people=names(managers))])
