"""prepayment, overdue-invoices, official-payment and discount-pressure: money signals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from marshmallow import ValidationError

from plugin.core.i18n import Money
from plugin.core.model import TimeKind, Visibility
from plugin.core.rule import Status
from plugin.rules.common import months_before
from plugin.rules.payments import (
    discount_pressure,
    official_payment,
    overdue_invoices,
    prepayment,
)
from tests.builders import (
    ACCOUNT_MANAGER,
    CLIENT_BOSS,
    CLIENT_CFO,
    PROJECT_MANAGER,
    ago,
    comment,
    engagement,
    invoice,
    not_started,
    time_entry,
)
from tests.rules.checking import assert_outcome, check


def day(year: int, month: int, dom: int) -> datetime:
    return datetime(year, month, dom, 9, 0, tzinfo=UTC)


# --- prepayment --------------------------------------------------------------------------

WORK = (time_entry(3, ago(35)), time_entry(2.5, ago(20)))  # 2026-10-16 and 2026-10-31, 12:00
CALLS = (time_entry(1, ago(35), ACCOUNT_MANAGER, TimeKind.CALL),
         time_entry(2, ago(30), PROJECT_MANAGER, TimeKind.MEETING))

PREPAYMENT_CASES = [
    pytest.param({}, WORK, {"required": False}, Status.PASS, [], {},
                 id="terms-do-not-require-prepayment"),
    pytest.param({"prepayment_required": False, "prepayment_received": False}, WORK, {},
                 Status.PASS, [], {}, id="field-says-not-required-overrides-terms"),
    pytest.param({"prepayment_required": True, "prepayment_received": False}, WORK,
                 {"required": False}, Status.FAIL, ["work_without_prepayment"],
                 {"hours": 5.5}, id="field-says-required-overrides-terms"),
    pytest.param({"prepayment_required": None, "prepayment_received": False}, WORK, {},
                 Status.FAIL, ["work_without_prepayment"], {"hours": 5.5},
                 id="empty-required-field-falls-back-to-terms"),
    pytest.param({}, WORK, {}, Status.NOT_CONFIGURED, ["not_mapped"],
                 {"field": "prepayment_received"}, id="received-not-mapped"),
    pytest.param({"prepayment_required": True}, WORK, {}, Status.NOT_CONFIGURED,
                 ["not_mapped"], {"field": "prepayment_received"},
                 id="required-but-received-not-mapped"),
    pytest.param({"prepayment_received": True}, WORK, {}, Status.PASS, [], {},
                 id="received-flag-set"),
    pytest.param({"prepayment_received": False}, (), {}, Status.PASS, [], {},
                 id="not-received-and-no-work-yet"),
    pytest.param({"prepayment_received": False}, CALLS, {}, Status.PASS, [], {},
                 id="calls-and-meetings-are-not-work"),
    pytest.param({"prepayment_received": False}, WORK, {}, Status.FAIL,
                 ["work_without_prepayment"], {"hours": 5.5, "first": "2026-10-16 12:00 UTC"},
                 id="work-without-prepayment"),
    pytest.param({"prepayment_received": None}, WORK, {}, Status.FAIL,
                 ["work_without_prepayment"], {"hours": 5.5},
                 id="received-flag-mapped-but-empty"),
    pytest.param({"prepayment_received": False}, (time_entry(4, ago(-1)),), {}, Status.PASS,
                 [], {}, id="work-after-now-ignored"),
    pytest.param({"prepayment_received_on": date(2026, 10, 10)}, WORK, {}, Status.PASS, [],
                 {}, id="received-on-before-all-work"),
    pytest.param({"prepayment_received_on": date(2026, 10, 16)}, WORK, {}, Status.PASS, [],
                 {}, id="received-on-the-day-work-started"),
    pytest.param({"prepayment_received_on": date(2026, 10, 20)}, WORK, {}, Status.FAIL,
                 ["work_before_prepayment"],
                 {"hours": 3.0, "first": "2026-10-16 12:00 UTC", "received": "2026-10-20"},
                 id="work-logged-before-received-on"),
    pytest.param({"prepayment_received": True, "prepayment_received_on": date(2026, 11, 1)},
                 WORK, {}, Status.FAIL, ["work_before_prepayment"],
                 {"hours": 5.5, "received": "2026-11-01"},
                 id="date-shows-work-before-even-with-flag-set"),
    pytest.param({"prepayment_received": True, "prepayment_received_on": None}, WORK, {},
                 Status.PASS, [], {}, id="flag-set-date-empty"),
    pytest.param({"prepayment_received_on": None}, WORK, {}, Status.FAIL,
                 ["work_without_prepayment"], {"hours": 5.5},
                 id="only-date-mapped-and-empty"),
]


@pytest.mark.parametrize(
    ("fields", "entries", "settings", "status", "codes", "params"), PREPAYMENT_CASES
)
def test_prepayment(fields: dict[str, Any], entries: tuple, settings: dict[str, Any],
                    status: Status, codes: list[str], params: dict[str, Any]) -> None:
    e = engagement(fields=fields, time_entries=entries)
    assert_outcome(check(prepayment, e, settings), status, codes, params)


def test_prepayment_not_started_without_work_passes() -> None:
    e = not_started(fields={"prepayment_received": False})
    assert check(prepayment, e, {}).status is Status.PASS


def test_prepayment_required_by_default() -> None:
    assert prepayment.settings.defaults().required is True


def test_prepayment_evidence_renders_literally() -> None:
    e = engagement(fields={"prepayment_received_on": date(2026, 10, 20)}, time_entries=WORK)
    reason = check(prepayment, e, {}).reasons[0]
    assert reason.render("en") == (
        "3 hours of work were logged from 2026-10-16 12:00 UTC on, before the prepayment "
        "arrived on 2026-10-20."
    )


def test_logged_hours_are_shown_to_the_tenth() -> None:
    """Summed floats carry noise (0.1 + 0.2 = 0.30000000000000004); evidence, its JSON too,
    gives the tenth an agency logs in."""
    e = engagement(fields={"prepayment_received": False},
                   time_entries=(time_entry(0.1, ago(3)), time_entry(0.2, ago(2))))
    (reason,) = check(prepayment, e, {}).reasons
    assert reason.params["hours"] == 0.3
    assert reason.render("da").startswith("Der er registreret 0,3 t. arbejde")


# --- overdue-invoices --------------------------------------------------------------------

# NOW is 2026-11-20; one month before is 2026-10-20, two months before 2026-09-20.
def dkk(amount: str) -> Money:
    return Money(Decimal(amount), "DKK")


AUG = invoice("1200.50", day(2026, 8, 1), id="INV-AUG")  # due 2026-08-15
SEP = invoice("800", day(2026, 9, 1), id="INV-SEP")  # due 2026-09-15
OCT = invoice("1000", day(2026, 10, 1), id="INV-OCT")  # due 2026-10-15


def paid(inv: Any, on: datetime) -> Any:
    return replace(inv, paid=True, paid_on=on.date())


OVERDUE_CASES = [
    pytest.param(None, {}, Status.NOT_CONFIGURED, ["no_invoices"], {},
                 id="platform-has-no-invoices"),
    pytest.param((), {}, Status.PASS, [], {}, id="no-invoices-yet"),
    pytest.param((paid(AUG, day(2026, 8, 10)), paid(SEP, day(2026, 9, 14))), {},
                 Status.PASS, [], {}, id="all-paid-on-time"),
    pytest.param((invoice("1500", day(2026, 10, 23), id="INV-1"),), {}, Status.PASS, [], {},
                 id="due-exactly-14-days-ago-is-not-yet-overdue"),
    pytest.param((invoice("1500", day(2026, 11, 10), id="INV-1"),), {}, Status.PASS, [], {},
                 id="not-yet-due"),
    pytest.param((invoice("1500", day(2026, 10, 22), id="INV-1"),), {}, Status.WARN,
                 ["overdue"],
                 {"count": 1, "days": 14, "amount": dkk("1500.00"), "invoice": "INV-1",
                  "due": "2026-11-05"},
                 id="one-overdue-invoice-warns"),
    pytest.param((AUG,), {}, Status.WARN, ["overdue"],
                 {"count": 1, "amount": dkk("1200.50"), "invoice": "INV-AUG"},
                 id="one-old-overdue-invoice-still-warns"),
    pytest.param((AUG, OCT), {}, Status.WARN, ["overdue"],
                 {"count": 2, "amount": dkk("2200.50"), "invoice": "INV-AUG",
                  "due": "2026-08-15"},
                 id="grew-only-in-the-last-month-warns"),
    pytest.param((OCT, AUG, SEP), {}, Status.FAIL, ["overdue", "debt_growing"],
                 {"count": 3, "amount": dkk("3000.50"), "invoice": "INV-AUG",
                  "due": "2026-08-15"},
                 id="grew-two-months-in-a-row-fails"),
    pytest.param((SEP, OCT), {}, Status.FAIL, ["overdue", "debt_growing"],
                 {"count": 2, "amount": dkk("1800.00"), "invoice": "INV-SEP"},
                 id="grew-from-nothing-two-months-in-a-row-fails"),
    pytest.param((paid(AUG, day(2026, 11, 1)), SEP, OCT), {}, Status.WARN, ["overdue"],
                 {"count": 2, "amount": dkk("1800.00"), "invoice": "INV-SEP"},
                 id="oldest-paid-later-stops-the-growth"),
    pytest.param((paid(AUG, day(2026, 11, 10)), paid(SEP, day(2026, 11, 10)),
                  paid(OCT, day(2026, 11, 10))), {}, Status.PASS, [], {},
                 id="growing-debt-paid-off-passes"),
    pytest.param((replace(AUG, paid=True), replace(SEP, paid=True)), {}, Status.PASS, [], {},
                 id="paid-without-a-payment-date"),
    pytest.param((invoice("500", day(2026, 11, 5), id="INV-Y"),), {"overdue_days": 0},
                 Status.WARN, ["overdue"], {"days": 0, "due": "2026-11-19"},
                 id="no-grace-days"),
    pytest.param((SEP, OCT), {"overdue_days": 40}, Status.WARN, ["overdue"],
                 {"count": 1, "days": 40, "amount": dkk("800.00"), "invoice": "INV-SEP"},
                 id="longer-grace-counts-fewer-invoices"),
]


@pytest.mark.parametrize(("invoices", "settings", "status", "codes", "params"), OVERDUE_CASES)
def test_overdue_invoices(invoices: tuple | None, settings: dict[str, Any], status: Status,
                          codes: list[str], params: dict[str, Any]) -> None:
    e = engagement(invoices=invoices)
    assert_outcome(check(overdue_invoices, e, settings), status, codes, params)


def test_debt_growing_evidence_lists_the_three_amounts() -> None:
    outcome = check(overdue_invoices, engagement(invoices=(AUG, SEP, OCT)), {})
    growing = outcome.reasons[1]
    assert growing.params == {"two_ago": dkk("1200.50"),
                              "one_ago": dkk("2000.50"),
                              "now_amount": dkk("3000.50")}
    # each language's own notation; a no-break space keeps the code beside its amount
    assert growing.render("en") == (
        "The overdue amount grew two months in a row: "
        "1,200.50\u00a0DKK → 2,000.50\u00a0DKK → 3,000.50\u00a0DKK."
    )
    assert growing.render("ru").endswith(
        ": 1\u00a0200,50\u00a0DKK → 2\u00a0000,50\u00a0DKK → 3\u00a0000,50\u00a0DKK.")
    assert growing.render("da").endswith(
        ": 1.200,50\u00a0DKK → 2.000,50\u00a0DKK → 3.000,50\u00a0DKK.")
    assert growing.localised_params("da")["now_amount"] == "3.000,50\u00a0DKK"


MARCH_31 = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)

MONTH_END_CASES = [
    # Seen from 31 March: one month before is 28 February, two months before 31 January.
    pytest.param(MARCH_31,
                 (invoice("1000", day(2026, 1, 2), id="J"),  # due 01-16: overdue on 01-31
                  invoice("1000", day(2026, 2, 1), due_days=9, id="F"),  # due 02-10: on 02-28
                  invoice("1000", day(2026, 3, 1), id="M")),  # due 03-15: on 03-31
                 Status.FAIL, ["overdue", "debt_growing"],
                 {"two_ago": dkk("1000.00"), "one_ago": dkk("2000.00"),
                  "now_amount": dkk("3000.00")},
                 id="31-march-grew-two-months"),
    pytest.param(MARCH_31,
                 (invoice("1000", day(2026, 1, 2), id="J"),
                  invoice("1000", day(2026, 2, 1), due_days=20, id="F"),  # due 02-21
                  invoice("1000", day(2026, 3, 1), id="M")),
                 Status.WARN, ["overdue"], {},
                 id="31-march-february-invoice-not-overdue-on-28-february"),
    pytest.param(datetime(2024, 3, 31, 12, 0, tzinfo=UTC),
                 (invoice("1000", day(2024, 1, 2), id="J"),
                  invoice("1000", day(2024, 2, 1), due_days=9, id="F"),  # due 02-10
                  invoice("1000", day(2024, 3, 1), id="M")),
                 Status.FAIL, ["overdue", "debt_growing"], {}, id="31-march-leap-year"),
    pytest.param(datetime(2026, 1, 31, 12, 0, tzinfo=UTC),
                 (invoice("1000", day(2025, 11, 1), id="N"),  # due 11-15: on 11-30
                  invoice("1000", day(2025, 12, 1), id="D"),  # due 12-15: on 12-31
                  invoice("1000", day(2026, 1, 1), id="J")),  # due 01-15: on 01-31
                 Status.FAIL, ["overdue", "debt_growing"], {}, id="31-january-across-new-year"),
]


@pytest.mark.parametrize(("now", "invoices", "status", "codes", "params"), MONTH_END_CASES)
def test_overdue_invoices_at_month_end(now: datetime, invoices: tuple, status: Status,
                                       codes: list[str], params: dict[str, Any]) -> None:
    outcome = check(overdue_invoices, engagement(invoices=invoices), {}, now)
    assert outcome.status is status
    assert [reason.code for reason in outcome.reasons] == codes
    if params:
        assert outcome.reasons[1].params == params
    assert_outcome(outcome, status, codes, {})


@pytest.mark.parametrize(("today", "months", "expected"), [
    pytest.param(date(2026, 3, 31), 1, date(2026, 2, 28), id="31-march-minus-1"),
    pytest.param(date(2026, 3, 31), 2, date(2026, 1, 31), id="31-march-minus-2"),
    pytest.param(date(2024, 3, 31), 1, date(2024, 2, 29), id="leap-february"),
    pytest.param(date(2026, 3, 30), 1, date(2026, 2, 28), id="30-march-minus-1"),
    pytest.param(date(2026, 3, 28), 1, date(2026, 2, 28), id="28-march-minus-1"),
    pytest.param(date(2026, 5, 31), 1, date(2026, 4, 30), id="31-may-minus-1"),
    pytest.param(date(2026, 1, 31), 2, date(2025, 11, 30), id="across-new-year-clamped"),
    pytest.param(date(2026, 1, 15), 2, date(2025, 11, 15), id="across-new-year"),
    pytest.param(date(2026, 12, 31), 0, date(2026, 12, 31), id="zero-months"),
    pytest.param(date(2026, 7, 31), 12, date(2025, 7, 31), id="a-year"),
    pytest.param(date(2026, 3, 31), 13, date(2025, 2, 28), id="over-a-year-clamped"),
])
def test_months_before(today: date, months: int, expected: date) -> None:
    assert months_before(today, months) == expected


# --- official-payment --------------------------------------------------------------------

OFFICIAL_PAYMENT_CASES = [
    pytest.param({}, {}, Status.NOT_CONFIGURED, ["not_mapped"], {"field": "payment_method"},
                 id="not-mapped"),
    pytest.param({"payment_method": None}, {}, Status.FAIL, ["no_payment_method"], {},
                 id="mapped-but-empty"),
    pytest.param({"payment_method": ""}, {}, Status.FAIL, ["no_payment_method"], {},
                 id="empty-string"),
    pytest.param({"payment_method": "   "}, {}, Status.FAIL, ["no_payment_method"], {},
                 id="blank"),
    pytest.param({"payment_method": "Bank transfer"}, {}, Status.PASS, [], {}, id="bank"),
    pytest.param({"payment_method": "Card"}, {}, Status.PASS, [], {}, id="card"),
    pytest.param({"payment_method": "Cash"}, {}, Status.FAIL, ["cash"], {"method": "Cash"},
                 id="cash-en"),
    pytest.param({"payment_method": "  cash "}, {}, Status.FAIL, ["cash"],
                 {"method": "cash"}, id="cash-en-padded"),
    pytest.param({"payment_method": "Наличные"}, {}, Status.FAIL, ["cash"],
                 {"method": "Наличные"}, id="cash-ru"),
    pytest.param({"payment_method": "нал"}, {}, Status.FAIL, ["cash"], {"method": "нал"},
                 id="cash-ru-short"),
    pytest.param({"payment_method": "Безналичный расчёт"}, {}, Status.PASS, [], {},
                 id="non-cash-ru-is-not-cash"),
    pytest.param({"payment_method": "Kontant"}, {}, Status.FAIL, ["cash"],
                 {"method": "Kontant"}, id="cash-da"),
    pytest.param({"payment_method": "kontanter"}, {}, Status.FAIL, ["cash"],
                 {"method": "kontanter"}, id="cash-da-plural"),
    pytest.param({"payment_method": "Bankoverførsel"}, {}, Status.PASS, [], {},
                 id="bank-da"),
    pytest.param({"payment_method": "Наличными курьеру"}, {}, Status.FAIL, ["cash"],
                 {"method": "Наличными курьеру"}, id="cash-ru-inflected"),
    pytest.param({"payment_method": "Kontant betaling"}, {}, Status.FAIL, ["cash"],
                 {"method": "Kontant betaling"}, id="cash-da-phrase"),
    pytest.param({"payment_method": "Cashless (card)"}, {}, Status.PASS, [], {},
                 id="cashless-is-not-cash"),
    pytest.param({"payment_method": "Cash (envelope)"}, {}, Status.FAIL, ["cash"],
                 {"method": "Cash (envelope)"}, id="cash-en-with-note"),
    pytest.param({"payment_method": "Cash on delivery"}, {"cash_methods": ["cash on delivery"]},
                 Status.FAIL, ["cash"], {"method": "Cash on delivery"},
                 id="custom-cash-values"),
    pytest.param({"payment_method": "Cash"}, {"cash_methods": ["cash on delivery"]},
                 Status.PASS, [], {}, id="custom-list-replaces-defaults"),
]


@pytest.mark.parametrize(("fields", "settings", "status", "codes", "params"),
                         OFFICIAL_PAYMENT_CASES)
def test_official_payment(fields: dict[str, Any], settings: dict[str, Any], status: Status,
                          codes: list[str], params: dict[str, Any]) -> None:
    assert_outcome(check(official_payment, engagement(fields=fields), settings), status, codes,
                   params)


def test_a_bad_cash_pattern_is_a_settings_error() -> None:
    with pytest.raises(ValidationError) as raised:
        official_payment.settings().load({"cash_methods": ["(unclosed"]})
    assert "not a valid regular expression" in str(raised.value.messages["cash_methods"][0])


def test_cash_renders_in_every_language() -> None:
    reason = check(official_payment, engagement(fields={"payment_method": "Наличные"}),
                 {}).reasons[0]
    assert reason.render("en") == "The client pays in cash (“Наличные”)."
    assert reason.render("ru") == "Клиент платит наличными («Наличные»)."
    assert reason.render("da") == "Kunden betaler kontant (“Наличные”)."


# --- discount-pressure -------------------------------------------------------------------

def client_says(text: str, days_ago: float = 3) -> Any:
    return comment(CLIENT_BOSS, ago(days_ago), text)


DISCOUNT_CASES = [
    pytest.param({}, (), (), {}, Status.PASS, [], {}, id="nothing"),
    pytest.param({}, ("discount",), (), {}, Status.PASS, [], {}, id="one-label"),
    pytest.param({}, ("Discount",), (), {"max_requests": 0}, Status.FAIL,
                 ["discount_requests"], {"count": 1, "limit": 0}, id="label-case-insensitive"),
    pytest.param({}, ("haggle",), (), {"labels": ["haggle"], "max_requests": 0}, Status.FAIL,
                 ["discount_requests"], {"count": 1}, id="custom-label"),
    pytest.param({}, ("urgent", "seo"), (), {"max_requests": 0}, Status.PASS, [], {},
                 id="unrelated-labels"),
    pytest.param({"discount_requests": 1}, (), (), {}, Status.PASS, [], {},
                 id="field-one-request"),
    pytest.param({"discount_requests": 2}, (), (), {}, Status.FAIL, ["discount_requests"],
                 {"count": 2, "limit": 1}, id="field-two-requests"),
    pytest.param({"discount_requests": 3.0}, (), (), {}, Status.FAIL, ["discount_requests"],
                 {"count": 3}, id="field-as-number"),
    pytest.param({"discount_requests": None}, (), (), {}, Status.PASS, [], {},
                 id="field-mapped-but-empty"),
    pytest.param({}, (), (client_says("Could you give us a discount on the next sprint?"),
                          client_says("Honestly, the other agency was cheaper.", 1)),
                 {}, Status.FAIL, ["discount_requests"], {"count": 2},
                 id="client-comments-en"),
    pytest.param({}, (), (client_says("Можно ли получить скидку?"),
                          client_says("А подешевле никак?", 1)),
                 {}, Status.FAIL, ["discount_requests"], {"count": 2},
                 id="client-comments-ru"),
    pytest.param({}, (), (client_says("Kan vi få rabat på næste måned?"),
                          client_says("Kan I sætte prisen ned?", 1)),
                 {}, Status.FAIL, ["discount_requests"], {"count": 2},
                 id="client-comments-da"),
    pytest.param({}, (), (comment(CLIENT_CFO, ago(5), "We need a discount."),
                          client_says("Please reduce your rates.", 1),
                          client_says("Any rebate for paying early?", 2)),
                 {"max_requests": 2}, Status.FAIL, ["discount_requests"],
                 {"count": 3, "limit": 2}, id="several-client-people"),
    pytest.param({}, (), (client_says("Can we get a discount?"),
                          client_says("Looks good, thanks!", 1)),
                 {}, Status.PASS, [], {}, id="one-client-request"),
    pytest.param({}, (), (client_says("Can we get a discount?", 45),
                          client_says("Still hoping for a discount.", 2)),
                 {}, Status.PASS, [], {}, id="old-request-outside-window"),
    pytest.param({}, (), (client_says("Can we get a discount?", 45),
                          client_says("Still hoping for a discount.", 2)),
                 {"window_days": 60}, Status.FAIL, ["discount_requests"], {"count": 2},
                 id="longer-window-counts-it"),
    pytest.param({}, (), (comment(ACCOUNT_MANAGER, ago(4), "No discount is possible, sorry."),
                          comment(PROJECT_MANAGER, ago(3), "Discount refused again.",
                                  Visibility.INTERNAL),
                          client_says("Can we get a discount?", 2)),
                 {}, Status.PASS, [], {}, id="agency-comments-do-not-count"),
    pytest.param({}, ("discount",), (client_says("Can we get a discount?"),), {},
                 Status.PASS, [], {}, id="one-request-labelled-and-written-counts-once"),
    pytest.param({"discount_requests": 1}, ("discount",),
                 (client_says("Can we get a discount?"),), {}, Status.PASS, [], {},
                 id="one-request-recorded-three-ways-counts-once"),
    pytest.param({"discount_requests": 2}, ("discount",),
                 (client_says("Can we get a discount?"),), {}, Status.FAIL,
                 ["discount_requests"], {"count": 2}, id="field-holds-the-fullest-count"),
    pytest.param({"discount_requests": 1}, (),
                 (client_says("Discount please."), client_says("Any rabat?", 1)), {},
                 Status.FAIL, ["discount_requests"], {"count": 2},
                 id="comments-hold-the-fullest-count"),
]


@pytest.mark.parametrize(
    ("fields", "labels", "comments", "settings", "status", "codes", "params"), DISCOUNT_CASES
)
def test_discount_pressure(fields: dict[str, Any], labels: tuple[str, ...], comments: tuple,
                           settings: dict[str, Any], status: Status, codes: list[str],
                           params: dict[str, Any]) -> None:
    e = engagement(fields=fields, labels=labels, comments=comments)
    assert_outcome(check(discount_pressure, e, settings), status, codes, params)


def test_discount_evidence_says_where_in_every_language() -> None:
    e = engagement(fields={"discount_requests": 2}, labels=("discount",),
                   comments=(client_says("Can we get a discount?"),
                             client_says("A discount would help.", 1)))
    reason = check(discount_pressure, e, {}).reasons[0]
    assert reason.render("en") == (
        "2 discount requests on this engagement (limit 1): "
        "recorded in the field ×2, label ×1, client comment ×2."
    )
    assert reason.render("ru").endswith(": отмечено в поле ×2, метка ×1, комментарий клиента ×2.")
    assert reason.render("da").endswith(
        ": registreret i feltet ×2, etiket ×1, kundekommentar ×2."
    )
