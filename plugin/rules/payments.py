"""Money signals from the client: prepayment, debts, cash, and haggling.

Seeds: 000 §3 (penny-pinchers), §5 (no prepayment), §6 (eternal debtors); 003 (cash
payment, referrals that expect discounts).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from marshmallow import fields, validate

from plugin.core.i18n import LANGUAGES, Money, Text, moment
from plugin.core.model import Engagement, Invoice, Side, TimeKind, during
from plugin.core.rule import PASSED, Message, Outcome, RuleSettings, Severity, rule, window_days
from plugin.core.rule import Side as RuleSide
from plugin.core.schema import WholeNumber
from plugin.rules.common import NOT_MAPPED, hours, is_blank, months_before, window_start
from plugin.rules.text import pattern_list, whole_words

# --- prepayment --------------------------------------------------------------------------

WORK_BEFORE_PREPAYMENT = Message(
    code="work_before_prepayment",
    en="{hours:plural:hour of work was|hours of work were} logged from {first} on, before "
    "the prepayment arrived on {received}.",
    ru="С {first} списано {hours} ч работы — до поступления предоплаты {received}.",
    da="Der er registreret {hours} t. arbejde fra den {first}, før forudbetalingen kom ind "
    "den {received}.",
)
WORK_WITHOUT_PREPAYMENT = Message(
    code="work_without_prepayment",
    en="{hours:plural:hour of work was|hours of work were} logged from {first} on, and no "
    "prepayment has arrived.",
    ru="С {first} списано {hours} ч работы, а предоплата так и не поступила.",
    da="Der er registreret {hours} t. arbejde fra den {first}, og der er ikke kommet "
    "nogen forudbetaling.",
)


class PrepaymentSettings(RuleSettings):
    required = fields.Boolean(
        load_default=True,
        metadata={"description": "The agency's terms require prepayment (a mapped "
                                 "prepayment_required field overrides it per engagement)"},
    )


@rule(
    id="prepayment",
    side=RuleSide.CLIENT,
    severity=Severity.MAJOR,
    source="000 §5",
    title=Text(
        en="No work before the prepayment",
        ru="Никакой работы до предоплаты",
        da="Intet arbejde før forudbetaling",
    ),
    rationale=Text(
        en="A client who will not prepay is testing whether the agency works for free; "
        "those engagements end in debt.",
        ru="Клиент, который не вносит предоплату, проверяет, будет ли агентство работать "
        "бесплатно; такие проекты заканчиваются долгами.",
        da="En kunde, der ikke vil forudbetale, tester, om bureauet arbejder gratis; "
        "sådanne kundeforløb ender i gæld.",
    ),
    fix=Text(
        en="Pause the work until the prepayment arrives, and mark it as received when it "
        "does.",
        ru="Приостановите работу до поступления предоплаты и отметьте её получение.",
        da="Sæt arbejdet på pause, til forudbetalingen er modtaget, og markér den som "
        "modtaget.",
    ),
    settings=PrepaymentSettings,
    messages=(WORK_BEFORE_PREPAYMENT, WORK_WITHOUT_PREPAYMENT, NOT_MAPPED),
)
def prepayment(e: Engagement, s: Any, now: datetime) -> Outcome:
    required = e.fields.get("prepayment_required")
    if not (s.required if required is None else required):
        return PASSED
    if not (e.field_mapped("prepayment_received") or e.field_mapped("prepayment_received_on")):
        return Outcome.not_configured(NOT_MAPPED.note(field="prepayment_received"))
    received_on: date | None = e.fields.get("prepayment_received_on")
    if received_on is not None:
        # Entries are in time order; none after the received day's end anywhere on earth
        # (UTC+14) can fall on an earlier local day.
        last_possible = datetime.combine(received_on, time(10), UTC)
        early = [entry for entry in e.time_entries_until(min(now, last_possible))
                 if entry.kind is TimeKind.WORK and entry.at.date() < received_on]
        if not early:
            return PASSED
        return Outcome.judge([WORK_BEFORE_PREPAYMENT.fail(
            hours=hours(sum(entry.hours for entry in early)), first=moment(early[0].at),
            received=moment(received_on),
        )])
    if e.fields.get("prepayment_received") is True:
        return PASSED
    work = [entry for entry in e.time_entries_until(now) if entry.kind is TimeKind.WORK]
    if not work:
        return PASSED
    return Outcome.judge([WORK_WITHOUT_PREPAYMENT.fail(
        hours=hours(sum(entry.hours for entry in work)), first=moment(work[0].at))])


# --- overdue-invoices --------------------------------------------------------------------

NO_INVOICES = Message(
    code="no_invoices",
    en="This platform gives no invoices for the engagement.",
    ru="Платформа не предоставляет счета по этому проекту.",
    da="Platformen leverer ingen fakturaer for dette kundeforløb.",
)
OVERDUE = Message(
    code="overdue",
    en="{count:plural:invoice is|invoices are} overdue by more than {days:plural:day|days}, "
    "{amount} in all; the oldest, {invoice}, was due on {due}.",
    ru="{count:plural:счёт просрочен|счёта просрочены|счетов просрочено} более чем на "
    "{days:plural:день|дня|дней}, всего {amount}; самый старый — {invoice}, срок оплаты — "
    "{due}.",
    da="{count:plural:faktura er|fakturaer er} mere end {days:plural:dag|dage} over forfald, "
    "i alt {amount}; den ældste, {invoice}, forfaldt den {due}.",
)
DEBT_GROWING = Message(
    code="debt_growing",
    en="The overdue amount grew two months in a row: {two_ago} → {one_ago} → {now_amount}.",
    ru="Просроченный долг растёт второй месяц подряд: {two_ago} → {one_ago} → {now_amount}.",
    da="Det forfaldne beløb er vokset to måneder i træk: {two_ago} → {one_ago} → "
    "{now_amount}.",
)


def _overdue(invoices: tuple[Invoice, ...], day: date, grace_days: int) -> list[Invoice]:
    """Invoices that, on `day`, were issued, unpaid and more than `grace_days` past due."""
    cutoff = day - timedelta(days=grace_days)
    return [
        invoice for invoice in invoices
        if invoice.issued <= day and invoice.due < cutoff
        and not (invoice.paid and (invoice.paid_on is None or invoice.paid_on <= day))
    ]


def _money(amount: Decimal, invoices: list[Invoice] | tuple[Invoice, ...]) -> Money:
    """`amount` in the invoices' currency, or in none when they mix currencies."""
    currencies = {invoice.currency for invoice in invoices if invoice.currency}
    return Money(amount, currencies.pop() if len(currencies) == 1 else None)


class OverdueSettings(RuleSettings):
    overdue_days = WholeNumber(
        load_default=14, validate=validate.Range(min=0),
        metadata={"description": "Days past the due date before an invoice counts as overdue"},
    )


@rule(
    id="overdue-invoices",
    side=RuleSide.CLIENT,
    severity=Severity.MAJOR,
    source="000 §6",
    title=Text(
        en="No overdue invoices",
        ru="Нет просроченных счетов",
        da="Ingen forfaldne fakturaer",
    ),
    rationale=Text(
        en="The eternal debtor pays a little late, then later, then not at all; the trend "
        "shows long before the loss.",
        ru="Вечный должник платит сначала немного позже, потом ещё позже, потом не платит "
        "вовсе; тенденция видна задолго до потерь.",
        da="Den evige skyldner betaler lidt for sent, så senere, så slet ikke; tendensen "
        "ses længe før tabet.",
    ),
    fix=Text(
        en="Call the client about the overdue invoices, agree a payment date, and stop new "
        "work if the debt keeps growing.",
        ru="Позвоните клиенту по просроченным счетам, договоритесь о дате оплаты и "
        "остановите новые работы, если долг продолжает расти.",
        da="Ring til kunden om de forfaldne fakturaer, aftal en betalingsdato, og stop nyt "
        "arbejde, hvis gælden bliver ved med at vokse.",
    ),
    settings=OverdueSettings,
    messages=(NO_INVOICES, OVERDUE, DEBT_GROWING),
)
def overdue_invoices(e: Engagement, s: Any, now: datetime) -> Outcome:
    if e.invoices is None:
        return Outcome.not_configured(NO_INVOICES.note())
    today = now.date()
    overdue_now = _overdue(e.invoices, today, s.overdue_days)
    if not overdue_now:
        return PASSED
    amounts = [
        sum((invoice.amount for invoice in
             _overdue(e.invoices, months_before(today, months), s.overdue_days)), Decimal(0))
        for months in (2, 1, 0)
    ]
    reasons = [OVERDUE.warn(
        count=len(overdue_now), days=s.overdue_days, amount=_money(amounts[2], overdue_now),
        invoice=overdue_now[0].id, due=moment(overdue_now[0].due),
    )]
    if amounts[0] < amounts[1] < amounts[2]:
        two_ago, one_ago, now_amount = (_money(amount, e.invoices) for amount in amounts)
        reasons.append(DEBT_GROWING.fail(two_ago=two_ago, one_ago=one_ago,
                                         now_amount=now_amount))
    return Outcome.judge(reasons)


# --- official-payment --------------------------------------------------------------------

NO_PAYMENT_METHOD = Message(
    code="no_payment_method",
    en="The payment method is not filled in.",
    ru="Способ оплаты не указан.",
    da="Betalingsmåden er ikke udfyldt.",
)
CASH = Message(
    code="cash",
    en="The client pays in cash (“{method}”).",
    ru="Клиент платит наличными («{method}»).",
    da="Kunden betaler kontant (“{method}”).",
)


class PaymentSettings(RuleSettings):
    cash_methods = pattern_list(
        [r"cash(?!less)\w*", r"наличн\w*", r"нал", r"kontant\w*"],
        "Patterns of a payment method that means cash (whole words, any case)",
    )


@rule(
    id="official-payment",
    side=RuleSide.CLIENT,
    severity=Severity.MINOR,
    source="003 (cash payment)",
    title=Text(
        en="Official payment, not cash",
        ru="Официальная оплата, а не наличные",
        da="Officiel betaling, ikke kontant",
    ),
    rationale=Text(
        en="Cash deals leave the agency without documents when a dispute comes.",
        ru="При оплате наличными у агентства не остаётся документов на случай спора.",
        da="Kontante aftaler efterlader bureauet uden dokumentation, når der opstår en "
        "tvist.",
    ),
    fix=Text(
        en="Move the client to invoiced bank or card payment under the contract.",
        ru="Переведите клиента на безналичную оплату по счетам в рамках договора.",
        da="Få kunden over på betaling mod faktura via bankoverførsel eller kort i henhold "
        "til kontrakten.",
    ),
    settings=PaymentSettings,
    messages=(NO_PAYMENT_METHOD, CASH, NOT_MAPPED),
)
def official_payment(e: Engagement, s: Any, now: datetime) -> Outcome:
    if not e.field_mapped("payment_method"):
        return Outcome.not_configured(NOT_MAPPED.note(field="payment_method"))
    method = e.fields["payment_method"]
    if is_blank(method) or not method.strip():
        return Outcome.judge([NO_PAYMENT_METHOD.fail()])
    if whole_words(tuple(s.cash_methods)).pattern.search(method):
        return Outcome.judge([CASH.fail(method=method.strip())])
    return PASSED


# --- discount-pressure -------------------------------------------------------------------

DISCOUNT_REQUESTS = Message(
    code="discount_requests",
    en="{count:plural:discount request|discount requests} on this engagement (limit {limit}): "
    "{where}.",
    ru="{count:plural:запрос|запроса|запросов} на скидку по проекту (допустимо не больше "
    "{limit}): {where}.",
    da="{count:plural:anmodning|anmodninger} om rabat i dette kundeforløb (grænse {limit}): "
    "{where}.",
)
WHERE = {
    "field": Text(en="recorded in the field", ru="отмечено в поле", da="registreret i feltet"),
    "label": Text(en="label", ru="метка", da="etiket"),
    "comment": Text(en="client comment", ru="комментарий клиента", da="kundekommentar"),
}

DISCOUNT_MARKERS = (
    r"discount\w*", r"rebate\w*", r"cheaper", r"lower (?:the )?price\w*",
    r"reduce (?:the |your )?(?:price|fee|rate)\w*", r"скидк\w*", r"дешевле", r"подешевле",
    r"снизить (?:цену|стоимость)", r"уступит\w*", r"rabat\w*", r"billigere", r"nedslag\w*",
    r"sætte prisen ned",
)


class DiscountSettings(RuleSettings):
    max_requests = WholeNumber(
        load_default=1, validate=validate.Range(min=0),
        metadata={"description": "Discount requests tolerated; more fails"},
    )
    labels = fields.List(
        fields.String(), load_default=lambda: ["discount", "discount-request"],
        metadata={"description": "Labels/tags that record a discount request"},
    )
    markers = pattern_list(DISCOUNT_MARKERS,
                           "Patterns of a discount request in a client comment (whole words)")
    window_days = window_days()


@rule(
    id="discount-pressure",
    side=RuleSide.CLIENT,
    severity=Severity.MINOR,
    source="000 §3; 003 (referrals that expect discounts)",
    title=Text(
        en="No repeated discount pressure",
        ru="Нет постоянного давления на цену",
        da="Intet gentaget pres for rabat",
    ),
    rationale=Text(
        en="A client who keeps asking for discounts values the work less each time, and "
        "the margin disappears.",
        ru="Клиент, который постоянно просит скидку, с каждым разом ценит работу меньше, "
        "и маржа исчезает.",
        da="En kunde, der bliver ved med at bede om rabat, værdsætter arbejdet mindre hver "
        "gang, og marginen forsvinder.",
    ),
    fix=Text(
        en="Answer with scope, not price: offer a smaller package instead of a discount, "
        "and let the account manager own the commercial conversation.",
        ru="Торгуйтесь объёмом работ, а не ценой: вместо скидки предложите пакет поменьше; "
        "коммерческие переговоры ведёт аккаунт-менеджер.",
        da="Svar med omfang, ikke pris: tilbyd en mindre pakke i stedet for rabat, og lad "
        "den kundeansvarlige stå for den kommercielle dialog.",
    ),
    settings=DiscountSettings,
    messages=(DISCOUNT_REQUESTS,),
)
def discount_pressure(e: Engagement, s: Any, now: datetime) -> Outcome:
    tags = {label.casefold() for label in s.labels}
    since = window_start(now, s.window_days)
    client_texts = [comment.text for comment in during(e.comments, since, now)
                    if comment.side is Side.CLIENT]
    counts = {
        "field": int(e.fields.get("discount_requests") or 0),
        "label": sum(1 for label in e.labels if label.casefold() in tags),
        "comment": len({index for index, _ in whole_words(tuple(s.markers)).finditer(
            client_texts)}),
    }
    # The sources are different records of the same requests (the agency labels or counts
    # the request the client wrote), so they are not added up: the fullest record counts.
    total = max(counts.values())
    if total <= s.max_requests:
        return PASSED
    return Outcome.judge([DISCOUNT_REQUESTS.fail(
        count=total, limit=s.max_requests, where=_tally(counts))])


def _tally(counts: dict[str, int]) -> Text:
    """"label ×2, client comment ×3", in every language."""
    return Text(**{
        language: ", ".join(
            f"{WHERE[kind].render(language)} ×{count}" for kind, count in counts.items() if count
        )
        for language in LANGUAGES
    })
