"""`no-internal-leak`: insults and internal notes must not reach the client.

Seed 002: a developer answered “Клиент, конечно, идиот, но я все сделаю” and then told the
client the job was done by replying to that same e-mail. The corpora below are ordinary
agency-to-client messages that must stay silent; each sentence is its own test case.
"""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError

from plugin.config import ConfigError, build_config
from plugin.core.model import Comment, Person, Visibility
from plugin.core.rule import Outcome, Status
from plugin.rules.leaks import LeakSettings, lexicon, no_internal_leak
from tests.builders import (
    ACCOUNT_MANAGER,
    CLIENT_BOSS,
    DEVELOPER,
    NOW,
    PROJECT_MANAGER,
    STRANGER,
    ago,
    comment,
    engagement,
)
from tests.rules.checking import codes

PUBLIC, INTERNAL = Visibility.PUBLIC, Visibility.INTERNAL

# --- Ordinary client-facing messages: none of these may be flagged -------------------------

EN_CLIENT_FACING = [
    "Hi Carla, quick status update: the new product pages are live on staging and ready "
    "for your review.",
    "Our estimate for the checkout redesign is 42 hours; the breakdown is attached.",
    "Invoice INV-2026-114 for October is attached and due in 14 days.",
    "Meeting notes from Tuesday: we agreed to launch the newsletter campaign on 3 December.",
    "Sorry for the late reply — we missed your question on Friday, and that is on us.",
    "Organic traffic grew 12 % month over month; the new blog posts are starting to rank.",
    "Your cost per click in Google Ads dropped after we paused the broad-match keywords.",
    "We made the signup form idiot-proof: every field now checks itself as you type.",
    "The booking calendar is now idiot proof, so nobody can pick a date in the past.",
    "For the Christmas mailing we borrowed a line from Dostoevsky's The Idiot, as you "
    "suggested.",
    "The staging shop runs on dummy data, so the orders you see there are not real.",
    "Several customers find it impossible to log in with Safari; we are fixing it today.",
    "The tills in your stores are dumb terminals, so the new price list has to come from "
    "the server.",
    "There are no stupid questions, so please ask us anything about the monthly report.",
    "For customers, annoying pop-ups are the main reason to leave a shop, so we removed "
    "two of them.",
    "Customer reviews now show on every product page, which should lift conversions.",
    "Here is the updated estimate with the two change requests you asked for.",
    "We are sorry about yesterday's outage; the hosting provider has confirmed the cause.",
    "Search Console shows no crawl errors after the migration.",
    "Thanks for the quick approval! Development starts on Monday.",
    "Please send us the logo in SVG so we can finish the brand guide.",
    "The deadline for the landing page is still 28 November; nothing has changed on our "
    "side.",
    "Customers who abandon their cart now get a reminder e-mail after two hours.",
    "SEO takes time: expect the first solid results in four to six months, not weeks.",
    "We tested the new checkout with five customers and none of them got stuck.",
]

RU_CLIENT_FACING = [
    "Добрый день! Новый каталог выложен на тестовый сервер, ждём ваших комментариев.",
    "Смета на редизайн корзины — 42 часа, подробная разбивка во вложении.",
    "Счёт за октябрь во вложении, оплата в течение 14 дней.",
    "По итогам встречи во вторник: запускаем рассылку 3 декабря, тексты согласуем до "
    "28 ноября.",
    "Извините за задержку с ответом — мы пропустили ваш вопрос в пятницу, это наша ошибка.",
    "Органический трафик вырос на 12 %, статьи в блоге начали выходить в топ.",
    "Стоимость клика в Яндекс Директе снизилась после того, как мы отключили широкие фразы.",
    "Для новогодней рассылки взяли цитату из романа «Идиот» Достоевского, как вы и "
    "предлагали.",
    "В форме регистрации сделали защиту от дурака: поля проверяются прямо при вводе.",
    "С интеграцией CRM мы зашли в тупик, поэтому предлагаем созвониться завтра в 11:00.",
    "Писать покупателям капслоком — дурной тон, поэтому мы переписали шаблоны писем.",
    "Часть клиентов не может войти в личный кабинет с iPhone, исправляем сегодня.",
    "На тестовом сервере пока тестовые данные, заказы там не настоящие.",
    "Козлов пришлёт доступы к Яндекс Метрике до пятницы, тогда настроим цели.",
    "Пришлите, пожалуйста, логотип в SVG, чтобы мы закончили брендбук.",
    "Срок сдачи лендинга прежний — 28 ноября, с нашей стороны ничего не меняется.",
    "Спасибо за быстрое согласование! Разработка стартует в понедельник.",
    "Ответы на частые вопросы клиентов теперь выводятся в каждой карточке товара.",
    "Обновлённая смета с двумя дополнительными задачами во вложении.",
    "Приносим извинения за вчерашний сбой: хостинг-провайдер подтвердил причину.",
    "После переезда сайта в Search Console нет ошибок сканирования.",
    "Клиенты жалуются, что стоимость доставки видна только в корзине, — предлагаем "
    "показывать её раньше.",
    "SEO — долгий канал: первые заметные результаты ждём через четыре-шесть месяцев.",
    "Глупых вопросов не бывает, спрашивайте о любом пункте отчёта.",
]

DA_CLIENT_FACING = [
    "Hej Carla, kort status: de nye produktsider ligger på testserveren og er klar til "
    "jeres gennemgang.",
    "Vores estimat for den nye kassefunktion er 42 timer; opdelingen er vedhæftet.",
    "Fakturaen for oktober er vedhæftet med betalingsfrist om 14 dage.",
    "Referat fra mødet tirsdag: vi sender nyhedsbrevet ud den 3. december.",
    "Undskyld det sene svar — vi overså jeres spørgsmål fredag, og det er vores fejl.",
    "Den organiske trafik steg 12 % i forhold til sidste måned.",
    "Klikprisen i Google Ads faldt, efter vi satte de brede søgeord på pause.",
    "Vi har gjort bestillingsflowet idiotsikkert, så felterne tjekkes, mens man skriver.",
    "Julekampagnen låner en replik fra romanen «Idioten» af Dostojevskij.",
    "Til kampagnevideoen tænkte vi på en hilsen til Lars von Triers Idioterne.",
    "Testbutikken kører med dummy-data, så ordrerne der er ikke rigtige.",
    "Mange kunder dumper ud på betalingssiden, så den skal gøres enklere.",
    "Det var en dum fejl fra vores side, og den er rettet nu.",
    "Lad jer ikke narre af konkurrentens lave klikpriser — trafikken er dårligere.",
    "Kundeservice svarer nu inden for to timer på hverdage.",
    "Send os gerne logoet i SVG, så vi kan gøre designmanualen færdig.",
    "Deadline for landingssiden er stadig den 28. november.",
    "Tak for den hurtige godkendelse! Udviklingen starter mandag.",
    "Kundeanmeldelser vises nu på alle produktsider.",
    "Her er det opdaterede estimat med de to ændringer, I bad om.",
    "Vi beklager nedbruddet i går; hostingudbyderen har bekræftet årsagen.",
    "Search Console viser ingen fejl efter flytningen.",
    "Kunderne kan ikke logge ind med Safari; vi retter det i dag.",
    "SEO tager tid: regn med de første tydelige resultater om fire til seks måneder.",
]


def check(*comments: Comment, **settings: Any) -> Outcome:
    return no_internal_leak(engagement(comments=comments), LeakSettings().load(settings), NOW)


def said(text: str, author: Person = ACCOUNT_MANAGER, visibility: Visibility = PUBLIC,
         days: float = 1, id: str = "c-42") -> Comment:
    return comment(author, ago(days), text, visibility, id=id)


def numbered(prefix: str, cases: list[Any]) -> list[str]:
    """Test ids `en-01`, ... (pytest would escape Cyrillic and Danish letters in ids)."""
    return [f"{prefix}-{number:02d}" for number in range(1, len(cases) + 1)]




def test_each_corpus_has_at_least_twenty_sentences() -> None:
    assert len(EN_CLIENT_FACING) >= 20
    assert len(RU_CLIENT_FACING) >= 20
    assert len(DA_CLIENT_FACING) >= 20
    assert len({*EN_CLIENT_FACING, *RU_CLIENT_FACING, *DA_CLIENT_FACING}) >= 60


@pytest.mark.parametrize("text", EN_CLIENT_FACING, ids=numbered("en", EN_CLIENT_FACING))
def test_ordinary_english_message_passes(text: str) -> None:
    assert check(said(text)) == Outcome(Status.PASS)


@pytest.mark.parametrize("text", RU_CLIENT_FACING, ids=numbered("ru", RU_CLIENT_FACING))
def test_ordinary_russian_message_passes(text: str) -> None:
    assert check(said(text)) == Outcome(Status.PASS)


@pytest.mark.parametrize("text", DA_CLIENT_FACING, ids=numbered("da", DA_CLIENT_FACING))
def test_ordinary_danish_message_passes(text: str) -> None:
    assert check(said(text)) == Outcome(Status.PASS)


def test_the_whole_corpus_in_one_comment_passes() -> None:
    text = "\n".join([*EN_CLIENT_FACING, *RU_CLIENT_FACING, *DA_CLIENT_FACING])
    assert check(said(text)) == Outcome(Status.PASS)


# --- Insults: what must be caught, with the words reported literally ----------------------

INSULTS = [
    # English
    ("the client is an idiot", "idiot"),
    ("Done, but the client is an idiot.", "idiot"),
    ("Idiots, all of them. The banner is fixed anyway.", "Idiots"),
    ("The banner is fixed. Idiot.", "Idiot"),
    ("What an idiotic request from the client, but it is done.", "idiotic"),
    ("Stupid client wants the logo bigger again.", "Stupid client"),
    ("Fixed it for the stupid client.", "stupid client"),
    ("The customer is so clueless about SEO.", "customer is so clueless"),
    ("THE CLIENT IS AN IDIOT", "IDIOT"),
    ("Done.\n> Idiots. They changed the brief again.", "Idiots"),
    ("- Idiot client wants it by Friday", "Idiot"),
    # Russian
    ("Клиент, конечно, идиот, но я все сделаю", "идиот"),
    ("клиент — идиот", "идиот"),
    ("Готово, хотя Дима и назвал клиента идиотом.", "идиотом"),
    ("Они там все идиоты, но баннер поправил.", "идиоты"),
    ("Идиоты. Баннер поправил.", "Идиоты"),
    ("Опять тупой заказчик прислал правки.", "тупой заказчик"),
    ("Заказчик просто тупой, объясняю в третий раз.", "Заказчик просто тупой"),
    ("Заказчик, конечно, тупой, но сделаем.", "Заказчик, конечно, тупой"),
    ("клиент-идиот опять всё поменял", "клиент-идиот"),
    ("КЛИЕНТ, КОНЕЧНО, ИДИОТ", "ИДИОТ"),
    ("Сделали, хотя этих козлов никто не слушает.", "козлов"),
    ("Эти дураки опять всё поменяли.", "дураки"),
    # Danish
    ("Kunden er en idiot.", "idiot"),
    ("Det er rettet, men idioten har ændret briefet igen.", "idioten"),
    ("Idioterne vil have det hele færdigt i morgen.", "Idioterne"),
    ("Vi har rettet det, selvom idioterne har ændret briefet igen.", "idioterne"),
    ("Kunden er virkelig dum.", "Kunden er virkelig dum"),
    ("Dumme kunder, men nu virker formularen.", "Dumme kunder"),
    ("Det er klaret, men narren vil have det hele om igen.", "narren"),
]


@pytest.mark.parametrize(("text", "words"), INSULTS, ids=numbered("insult", INSULTS))
def test_insult_in_a_public_agency_comment_fails(text: str, words: str) -> None:
    outcome = check(said(text, days=2))
    assert outcome.status is Status.FAIL
    assert codes(outcome) == ["insult"]
    assert outcome.reasons[0].params == {
        "words": words, "comment": "c-42", "author": "Anna Account",
        "when": "2026-11-18 12:00 UTC",
    }


def test_every_insult_is_reported_in_order() -> None:
    outcome = check(said("The client is an idiot. Total moron, honestly."))
    assert outcome.reasons[0].params["words"] == "idiot, moron"


def test_the_message_names_the_comment_its_author_and_the_words() -> None:
    outcome = check(said("Kunden er en idiot.", author=DEVELOPER, id="10023"))
    assert outcome.reasons[0].render("en") == (
        "The client-visible comment 10023 by Dina Developer (2026-11-19 12:00 UTC) "
        "contains “idiot”."
    )


# --- Internal-only markers -----------------------------------------------------------------

MARKERS = [
    ("Internal only: our margin on this job is 60 %.", "Internal only"),
    ("INTERNAL ONLY — hosting costs us 20 € a month.", "INTERNAL ONLY"),
    ("Please don't tell the client, but the banners are last year's.",
     "don't tell the client"),
    ("Не для клиента: маржа по проекту 60 %.", "Не для клиента"),
    ("Это не для клиента, но сроки горят.", "не для клиента"),
    ("Только для внутреннего обсуждения: бюджет почти исчерпан.", "Только для внутреннего"),
    ("Kun internt: vi tjener 60 % på opgaven.", "Kun internt"),
    ("Det her er kun internt — fortæl ikke kunden om forsinkelsen.",
     "kun internt, fortæl ikke kunden"),
]


@pytest.mark.parametrize(("text", "words"), MARKERS, ids=numbered("marker", MARKERS))
def test_internal_marker_in_a_public_agency_comment_fails(text: str, words: str) -> None:
    outcome = check(said(text))
    assert outcome.status is Status.FAIL
    assert codes(outcome) == ["internal_marker"]
    assert outcome.reasons[0].params["words"] == words


def test_an_insult_and_a_marker_in_one_comment_are_both_reported() -> None:
    outcome = check(said("Internal only — the client is an idiot."))
    assert codes(outcome) == ["insult", "internal_marker"]
    assert [reason.params["words"] for reason in outcome.reasons] == ["idiot", "Internal only"]


# --- Quoting an internal note in a public comment ------------------------------------------

def test_the_seed_story_reply_on_the_internal_thread_fails() -> None:
    """The PM forwards the request internally, the developer answers internally, then
    tells the client it is done by replying with the internal thread quoted below."""
    request = said("Клиент просит поменять цвет кнопки «Купить» на зелёный до запуска.",
                   author=PROJECT_MANAGER, visibility=INTERNAL, days=0.5, id="c-1")
    answer = said("Клиент, конечно, идиот, но я все сделаю.\n"
                  "Кнопку перекрашу в шаблоне карточки товара и выкачу к вечеру.",
                  author=DEVELOPER, visibility=INTERNAL, days=0.4, id="c-2")
    reply = said("Готово, кнопка зелёная, можно запускать!\n\n"
                 "> Клиент, конечно, идиот, но я все сделаю.\n"
                 "> Кнопку перекрашу в шаблоне карточки товара и выкачу к вечеру.",
                 author=DEVELOPER, days=0.1, id="c-3")
    outcome = check(request, answer, reply)
    assert outcome.status is Status.FAIL
    assert codes(outcome) == ["insult", "quotes_internal"]
    assert outcome.reasons[0].params["words"] == "идиот"
    assert outcome.reasons[1].params == {
        "note": "c-2", "comment": "c-3", "author": "Dina Developer",
        "when": "2026-11-20 09:36 UTC",
    }


def test_quoting_an_internal_line_without_insults_fails() -> None:
    note = said("We charge them for 40 hours but the job takes about 25 of them.",
                visibility=INTERNAL, days=3, id="c-1")
    reply = said("Hi Carla, the estimate is attached.\n\n"
                 ">  We charge them for 40 hours   but the job takes about 25 of them.",
                 days=1, id="c-2")
    outcome = check(note, reply)
    assert codes(outcome) == ["quotes_internal"]
    assert outcome.reasons[0].params["note"] == "c-1"


def test_only_lines_of_at_least_quote_min_chars_count_as_quoted() -> None:
    note = said("Thanks, will do.\nShip it on Friday.", visibility=INTERNAL, days=3)
    reply = said("Thanks, will do.\nShip it on Friday.", days=1)
    assert check(note, reply) == Outcome(Status.PASS)
    assert codes(check(note, reply, quote_min_chars=16)) == ["quotes_internal"]


def test_a_public_comment_written_before_the_internal_note_quotes_nothing() -> None:
    line = "The launch date is 1 December, we will confirm the hour later."
    public = said(line, days=3, id="c-1")
    later_note = said(line, visibility=INTERNAL, days=1, id="c-2")
    assert check(public, later_note) == Outcome(Status.PASS)


def test_repeating_a_public_line_is_not_quoting_an_internal_note() -> None:
    line = "The launch date is 1 December, we will confirm the hour later."
    assert check(said(line, days=3, id="c-1"), said(line, days=1, id="c-2")) == Outcome(
        Status.PASS)


# --- Scope: only what the agency made visible to the client --------------------------------

@pytest.mark.parametrize("text", [
    "the client is an idiot",
    "Клиент, конечно, идиот, но я все сделаю",
    "Kunden er en idiot. Kun internt.",
    "Internal only: margin 60 %.",
])
def test_internal_agency_comments_are_never_flagged(text: str) -> None:
    assert check(said(text, author=DEVELOPER, visibility=INTERNAL)) == Outcome(Status.PASS)


@pytest.mark.parametrize("text", [
    "Sorry, I'm an idiot — I sent you the wrong logo file.",
    "Our sales team is completely clueless about analytics, please help.",
    "Я идиот, перепутал файлы, вот правильный логотип.",
    "Не для клиента же вы это писали? Шучу, всё понятно.",
    "Undskyld, jeg er en idiot — her er det rigtige logo.",
])
def test_what_clients_write_about_themselves_is_out_of_scope(text: str) -> None:
    assert check(said(text, author=CLIENT_BOSS)) == Outcome(Status.PASS)


def test_a_public_comment_by_someone_of_unknown_side_is_not_judged() -> None:
    assert check(said("the client is an idiot", author=STRANGER)) == Outcome(Status.PASS)


def test_a_comment_after_now_is_not_judged_yet() -> None:
    assert check(said("the client is an idiot", days=-1)) == Outcome(Status.PASS)


def test_every_leaking_comment_is_reported() -> None:
    outcome = check(said("the client is an idiot", days=3, id="c-1"),
                    said("Thanks, all done.", days=2, id="c-2"),
                    said("Kunden er en idiot.", author=DEVELOPER, days=1, id="c-3"))
    assert [(r.code, r.params["comment"]) for r in outcome.reasons] == [
        ("insult", "c-1"), ("insult", "c-3")]


# --- Settings ------------------------------------------------------------------------------

def test_extra_insults_from_settings_are_caught_as_whole_words() -> None:
    text = "The client is a total muppet."
    assert check(said(text)) == Outcome(Status.PASS)
    outcome = check(said(text), extra_insults=[r"muppet\w*"])
    assert codes(outcome) == ["insult"]
    assert outcome.reasons[0].params["words"] == "muppet"
    assert check(said("The muppetshow budget is approved."),
                 extra_insults=["muppet"]) == Outcome(Status.PASS)


def test_extra_internal_markers_from_settings_are_caught() -> None:
    text = "Draft, do not send: new prices from January."
    assert check(said(text)) == Outcome(Status.PASS)
    outcome = check(said(text), extra_internal_markers=["draft, do not send"])
    assert codes(outcome) == ["internal_marker"]
    assert outcome.reasons[0].params["words"] == "Draft, do not send"


def test_only_the_chosen_languages_lexicons_are_used() -> None:
    text = "Заказчик просто дебил."
    assert codes(check(said(text))) == ["insult"]
    assert check(said(text), languages=["en", "da"]) == Outcome(Status.PASS)


@pytest.mark.parametrize("term", ["idiot(", "[a-z", r"(?i)muppet", "x*", ""])
def test_a_bad_extra_term_is_a_validation_error(term: str) -> None:
    with pytest.raises(ValidationError) as error:
        LeakSettings().load({"extra_insults": [term]})
    assert list(error.value.messages) == ["extra_insults"]


def test_terms_that_cannot_be_combined_are_a_validation_error() -> None:
    with pytest.raises(ValidationError) as error:
        LeakSettings().load({"extra_internal_markers": ["(?P<x>a)", "(?P<x>b)"]})
    assert list(error.value.messages) == ["extra_internal_markers"]


def test_a_bad_regex_in_the_configuration_names_the_key() -> None:
    with pytest.raises(ConfigError) as error:
        build_config({"rules": {"no-internal-leak": {"extra_insults": ["muppet", "idiot("]}}})
    assert "rules → no-internal-leak → extra_insults → 1: not a valid regular expression" in str(
        error.value)
    with pytest.raises(ConfigError) as error:
        build_config({"clients": {"acme": {"rules": {"no-internal-leak": {
            "extra_internal_markers": ["[draft"]}}}}})
    assert ("clients → acme → rules → no-internal-leak → extra_internal_markers → 0: "
            "not a valid regular expression") in str(error.value)


def test_the_default_configuration_checks_leaks_in_every_language(config: Any) -> None:
    (effective,) = [r for r in config.effective_rules() if r.rule.id == "no-internal-leak"]
    assert effective.settings.languages == ["en", "ru", "da"]
    outcome = effective.rule(engagement(comments=(said("Kunden er en idiot."),)),
                             effective.settings, NOW)
    assert codes(outcome) == ["insult"]


def test_the_compiled_lexicon_is_cached() -> None:
    assert lexicon(("en", "ru"), (), ()) is lexicon(("en", "ru"), (), ())
