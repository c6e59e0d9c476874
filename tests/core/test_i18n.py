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
