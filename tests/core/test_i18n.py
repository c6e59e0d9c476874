"""Every message a person can read exists in English, Russian and Danish, with the same
placeholders in each — a missing or mistyped translation fails here, not in a report."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import pytest

import plugin.rules
from plugin.core.i18n import LANGUAGES, UI, Text
from plugin.core.rule import Message
from plugin.rules import CATALOGUE
from plugin.rules.payments import DISCOUNT_REQUESTS


def _rule_modules() -> list:
    return [importlib.import_module(f"plugin.rules.{info.name}")
            for info in pkgutil.iter_modules(plugin.rules.__path__)]


def _module_texts() -> Iterator[tuple[str, Text]]:
    for module in _rule_modules():
        for name, value in vars(module).items():
            if isinstance(value, Text):
                yield f"{module.__name__}.{name}", value
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, Text):
                        yield f"{module.__name__}.{name}[{key}]", item


def _all_texts() -> list[tuple[str, Text]]:
    texts = [(f"UI[{key}]", text) for key, text in UI.items()]
    for rule in CATALOGUE:
        texts += [(f"{rule.id}.title", rule.title), (f"{rule.id}.rationale", rule.rationale),
                  (f"{rule.id}.fix", rule.fix)]
        texts += [(f"{rule.id}.{message.code}", message) for message in rule.messages]
    return texts + list(_module_texts())


@pytest.mark.parametrize(("where", "text"), _all_texts(), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_every_language_is_present_with_the_same_placeholders(where: str, text: Text) -> None:
    for language in LANGUAGES:
        assert getattr(text, language).strip(), f"{where}: {language} is empty"
    assert text.placeholders("ru") == text.placeholders("en"), where
    assert text.placeholders("da") == text.placeholders("en"), where


def test_translations_are_not_copies_of_the_english() -> None:
    untranslated = [where for where, text in _all_texts()
                    if text.ru == text.en and any(ch.isalpha() for ch in text.en)]
    assert untranslated == []


def test_every_message_of_a_rule_module_belongs_to_a_rule() -> None:
    """A message declared but not listed on any rule would never be checked above."""
    listed = {id(message) for rule in CATALOGUE for message in rule.messages}
    orphans = [f"{module.__name__}.{name}" for module in _rule_modules()
               for name, value in vars(module).items()
               if isinstance(value, Message) and id(value) not in listed]
    assert orphans == []


def test_message_codes_are_unique_within_a_rule() -> None:
    for rule in CATALOGUE:
        codes = [message.code for message in rule.messages]
        assert len(codes) == len(set(codes)), rule.id
        assert all(codes), rule.id


@pytest.mark.parametrize(("language", "by_count"), [
    ("en", {1: "1 discount request on", 2: "2 discount requests on", 21: "21 discount requests"}),
    ("ru", {1: "1 запрос на", 3: "3 запроса на", 5: "5 запросов на", 11: "11 запросов на",
            21: "21 запрос на", 22: "22 запроса на"}),
    ("da", {1: "1 anmodning om", 2: "2 anmodninger om", 0: "0 anmodninger om"}),
])
def test_a_count_takes_the_word_form_its_language_asks_for(language, by_count) -> None:
    """Russian has three forms (1, 2–4, 5–20 and 11–14): "запрос(ов)" read as unfinished."""
    for count, expected in by_count.items():
        said = DISCOUNT_REQUESTS.render(language, count=count, limit=1, where="—")
        assert said.startswith(expected), (count, said)


def test_a_plural_with_a_form_missing_for_its_language_is_refused_when_written() -> None:
    with pytest.raises(ValueError, match=r"ru: .* needs one form for each of one, few, many"):
        Text(en="{n:plural:day|days}", ru="{n:plural:день|дней}", da="{n:plural:dag|dage}")


def test_the_catalogue_docs_show_a_plural_in_its_general_form() -> None:
    assert DISCOUNT_REQUESTS.template("en").startswith("{count} discount requests on")
    assert DISCOUNT_REQUESTS.template("ru").startswith("{count} запросов на скидку")
