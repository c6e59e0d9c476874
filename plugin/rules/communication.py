"""Talking to the client: answer in time, keep them updated, do not keep moving the date.

Seed: 002 §2 (conflicting information), §4 (not answering), §5 (vague information).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from marshmallow import fields, validate

from plugin.core.calendar import BusinessCalendar, CalendarSchema
from plugin.core.i18n import Text, moment
from plugin.core.model import Engagement, Side, during
from plugin.core.rule import PASSED, Message, Outcome, RuleSettings, Severity, rule, window_days
from plugin.core.rule import Side as RuleSide
from plugin.core.schema import WholeNumber
from plugin.rules.common import client_questions, window_start

# --- client-answered ---------------------------------------------------------------------

UNANSWERED = Message(
    code="unanswered",
    en="{count:plural:client comment has|client comments have} waited longer than "
    "{sla:plural:business hour|business hours} for an answer; the oldest, from {author} on "
    "{asked}, was due by {due}.",
    ru="{count:plural:комментарий клиента ждёт|комментария клиента ждут|комментариев клиента "
    "ждут} ответа дольше {sla} раб. ч; самый старый ({author}, {asked}) требовал ответа до "
    "{due}.",
    da="{count:plural:kundekommentar har|kundekommentarer har} ventet mere end "
    "{sla:plural:arbejdstime|arbejdstimer} på svar; den ældste (fra {author}, {asked}) "
    "skulle besvares senest {due}.",
)
ANSWERED_LATE = Message(
    code="answered_late",
    en="{count:plural:client comment was|client comments were} answered after more than "
    "{sla:plural:business hour|business hours}; the latest answer came {answered} to a "
    "comment from {asked} (due by {due}).",
    ru="На {count:plural:комментарий|комментария|комментариев} клиента ответили позже чем "
    "через {sla} раб. ч; самый поздний ответ дан {answered} на комментарий от {asked} "
    "(срок — {due}).",
    da="{count:plural:kundekommentar|kundekommentarer} blev besvaret efter mere end "
    "{sla:plural:arbejdstime|arbejdstimer}; det seneste svar kom {answered} på en kommentar "
    "fra {asked} (frist {due}).",
)


class ClientAnsweredSettings(RuleSettings):
    sla_business_hours = fields.Float(
        load_default=8.0, validate=validate.Range(min=0),
        metadata={"description": "Business hours within which the agency answers"},
    )
    window_days = window_days()
    calendar = fields.Nested(
        CalendarSchema, load_default=BusinessCalendar,
        metadata={"description": "Defaults to [agency.calendar]"},
    )


@rule(
    id="client-answered",
    side=RuleSide.AGENCY,
    severity=Severity.CRITICAL,
    source="002 §4",
    title=Text(
        en="Every client comment answered within the SLA",
        ru="Ответ на каждый комментарий клиента в пределах SLA",
        da="Alle kundekommentarer besvaret inden for SLA",
    ),
    rationale=Text(
        en="A question left unanswered tells the client they are not a priority; it is "
        "the most common way agencies lose clients.",
        ru="Вопрос без ответа говорит клиенту, что он не в приоритете; так агентства "
        "теряют клиентов чаще всего.",
        da="Et ubesvaret spørgsmål fortæller kunden, at de ikke er prioriteret; det er den "
        "mest almindelige måde, bureauer mister kunder på.",
    ),
    fix=Text(
        en="Answer the waiting comment now — even if only to say when the full answer "
        "will come — and agree who covers the client's questions when the contact is away.",
        ru="Ответьте на ожидающий комментарий сейчас — хотя бы сообщите, когда будет "
        "полный ответ, — и договоритесь, кто отвечает клиенту, когда аккаунт-менеджер "
        "отсутствует.",
        da="Svar på den ventende kommentar nu — om ikke andet med hvornår det fulde svar "
        "kommer — og aftal, hvem der svarer kunden, når den kundeansvarlige er fraværende.",
    ),
    settings=ClientAnsweredSettings,
    messages=(UNANSWERED, ANSWERED_LATE),
)
def client_answered(e: Engagement, s: Any, now: datetime) -> Outcome:
    sla = timedelta(hours=s.sla_business_hours)
    unanswered = []
    late = []
    for question, reply in client_questions(e, window_start(now, s.window_days), now):
        answered_at = reply.at if reply else now
        if answered_at - question.at <= sla:
            continue  # business time never exceeds wall-clock time: within the SLA
        due = s.calendar.add_business_hours(question.at, s.sla_business_hours)
        if answered_at > due:
            (late if reply else unanswered).append((question, reply, due))
    reasons = []
    if unanswered:
        question, _, due = unanswered[0]
        reasons.append(UNANSWERED.fail(
            count=len(unanswered), sla=s.sla_business_hours,
            author=question.author.name, asked=moment(question.at), due=moment(due),
        ))
    if late:
        question, reply, due = late[-1]
        reasons.append(ANSWERED_LATE.fail(
            count=len(late), sla=s.sla_business_hours, answered=moment(reply.at),
            asked=moment(question.at), due=moment(due),
        ))
    return Outcome.judge(reasons)


# --- regular-updates ---------------------------------------------------------------------

NO_UPDATE = Message(
    code="no_update",
    en="The client has had no update from the agency for {days:plural:day|days} (last: "
    "{last}); the rule asks for one every {limit:plural:day|days}.",
    ru="Агентство не сообщало клиенту о ходе работ уже {days:plural:день|дня|дней} "
    "(последний раз: {last}); правило требует делать это не реже чем раз в {limit} дн.",
    da="Kunden har ikke hørt fra bureauet i {days:plural:dag|dage} (sidst: {last}); reglen "
    "kræver en opdatering mindst hver {limit}. dag.",
)


class RegularUpdatesSettings(RuleSettings):
    max_days_between = WholeNumber(
        load_default=7, validate=validate.Range(min=1),
        metadata={"description": "Longest silence allowed on an active engagement, in days"},
    )


@rule(
    id="regular-updates",
    side=RuleSide.AGENCY,
    severity=Severity.MAJOR,
    source="002 §5",
    title=Text(
        en="Regular updates to the client",
        ru="Регулярные отчёты клиенту о ходе работ",
        da="Løbende opdateringer til kunden",
    ),
    rationale=Text(
        en="Silence lets the client imagine the worst; a short regular update keeps trust.",
        ru="Молчание заставляет клиента думать о худшем; короткие регулярные отчёты о ходе "
        "работ сохраняют доверие.",
        da="Tavshed får kunden til at forestille sig det værste; en kort fast opdatering "
        "bevarer tilliden.",
    ),
    fix=Text(
        en="Post a short client-visible status update: what was done, what is next, "
        "what you need from the client.",
        ru="Напишите клиенту в видимом ему комментарии короткий отчёт: что сделано, что "
        "дальше, что нужно от клиента.",
        da="Skriv en kort opdatering, kunden kan se: hvad er gjort, hvad er det næste, "
        "hvad I har brug for fra kunden.",
    ),
    settings=RegularUpdatesSettings,
    messages=(NO_UPDATE,),
)
def regular_updates(e: Engagement, s: Any, now: datetime) -> Outcome:
    started = e.started_at
    if not e.is_active or started is None:
        return PASSED  # not started or finished: no updates owed
    # The clock starts when work starts: a pre-sale comment is no update on the work, and
    # a comment after `now` has not been written yet.
    last = next((comment.at for comment in reversed(e.public_agency_comments)
                 if comment.at <= now), started)
    last = max(last, started)
    silence = now - last
    if silence <= timedelta(days=s.max_days_between):
        return PASSED
    return Outcome.judge([NO_UPDATE.fail(days=silence.days, last=moment(last),
                                         limit=s.max_days_between)])


# --- consistent-deadlines ----------------------------------------------------------------

MOVED_TOO_OFTEN = Message(
    code="moved_too_often",
    en="The due date changed {count:plural:time|times} in the last {days:plural:day|days} "
    "(limit {limit}): {dates}.",
    ru="Срок менялся {count:plural:раз|раза|раз} за последние {days} дн. (допустимо {limit}): "
    "{dates}.",
    da="Deadlinen er ændret {count:plural:gang|gange} inden for de seneste "
    "{days:plural:dag|dage} (grænse {limit}): {dates}.",
)
CONFLICTING_DATES = Message(
    code="conflicting_dates",
    en="Different agency people set different due dates: {announcements}.",
    ru="Разные сотрудники агентства назначали разные сроки: {announcements}.",
    da="Forskellige medarbejdere har meldt forskellige deadlines ud: {announcements}.",
)


class DeadlineSettings(RuleSettings):
    max_changes = WholeNumber(
        load_default=2, validate=validate.Range(min=0),
        metadata={"description": "Due-date changes allowed within the window"},
    )
    window_days = window_days()


@rule(
    id="consistent-deadlines",
    side=RuleSide.AGENCY,
    severity=Severity.MAJOR,
    source="002 §2",
    title=Text(
        en="Consistent deadlines",
        ru="Единые и стабильные сроки",
        da="Konsekvente deadlines",
    ),
    rationale=Text(
        en="A date that keeps moving, or two people quoting two dates, tells the client "
        "the agency does not know its own plan.",
        ru="Срок, который постоянно переносят, или два сотрудника с двумя разными датами "
        "показывают клиенту, что агентство не знает своего плана.",
        da="En dato, der bliver ved med at flytte sig, eller to personer med to datoer, "
        "viser kunden, at bureauet ikke kender sin egen plan.",
    ),
    fix=Text(
        en="Let one person own the date, agree a realistic one with buffer, and tell the "
        "client once why it changed.",
        ru="Пусть сроком управляет один человек: согласуйте реалистичную дату с запасом и "
        "один раз объясните клиенту причину переноса.",
        da="Lad én person have ansvaret for datoen, aftal en realistisk dato med buffer, og "
        "forklar kunden én gang, hvorfor den blev ændret.",
    ),
    settings=DeadlineSettings,
    messages=(MOVED_TOO_OFTEN, CONFLICTING_DATES),
)
def consistent_deadlines(e: Engagement, s: Any, now: datetime) -> Outcome:
    since = window_start(now, s.window_days)
    moves = [change for change in during(e.changes, since, now) if change.field == "due"]
    reasons = []
    if len(moves) > s.max_changes:
        dates = " → ".join(change.to_value or "—" for change in moves)
        reasons.append(MOVED_TOO_OFTEN.fail(count=len(moves), days=s.window_days,
                                            limit=s.max_changes, dates=dates))
    announced = {
        change.by.id: (change.by, change.to_value)
        for change in moves
        if change.by is not None and change.by.side is Side.AGENCY
    }
    if len({date for _, date in announced.values()}) > 1:
        announcements = "; ".join(
            f"{person.name}: {date or '—'}" for person, date in announced.values()
        )
        reasons.append(CONFLICTING_DATES.warn(announcements=announcements))
    return Outcome.judge(reasons)


