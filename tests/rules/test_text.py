"""The text scanner's shortcut (a stem gate before the regular expression, a memo per text)
must never change what is found: it is checked here against the plain regular expression."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.rules.leaks import find_insults, lexicon
from plugin.rules.text import (
    StemGate,
    TextMemo,
    join_lowered,
    literal_stems,
    whole_words,
    whole_words_pattern,
)


@pytest.mark.parametrize(("term", "stems"), [
    (r"idiot\w*", {"idiot"}),
    (r"дур(?:а|ы|е)", {"дура", "дуры", "дуре"}),
    (r"козё?л", {"коз"}),
    (r"ass ?hole\w*", {"ass"}),
    (r"(?:client|customer) must not see", {"client must not see", "customer must not see"}),
    (r"a (?:pain|nightmare)", {"a pain", "a nightmare"}),
    (r"don'?t tell", {"don"}),
    (r"(?-i:козлов)", {"козлов"}),
    (r"\bInternal Only", {"internal only"}),
    (r"\w+ly", None),
    (r"x*", None),
    (r"[a-z]+ing", None),
], ids=lambda value: value if isinstance(value, str) else "")
def test_literal_stems(term: str, stems: set[str] | None) -> None:
    assert literal_stems(term) == (None if stems is None else frozenset(stems))


def test_the_gate_names_the_texts_that_contain_a_stem() -> None:
    gate = StemGate.build([r"idiot\w*", r"клиент\w*"])
    assert gate is not None
    texts = ["Hello", "The IDIOTS", "nothing", "Клиенту привет", "", "idiot"]
    assert gate.candidates(join_lowered(texts)) == [1, 3, 5]
    assert gate.which(texts) == [False, True, False, True, False, True]


def test_a_term_without_a_stem_switches_the_gate_off() -> None:
    assert StemGate.build([r"idiot\w*", r"\w+ly"]) is None
    scanner = whole_words((r"idiot\w*", r"\w+ly"))
    assert [(i, m.group()) for i, m in scanner.finditer(["truly an idiot", "x"])] == [
        (0, "truly"), (0, "idiot")]


def test_the_memo_remembers_and_starts_afresh_when_full() -> None:
    calls: list[list[str]] = []

    def lengths(texts: list[str]) -> list[int]:
        calls.append(list(texts))
        return [len(text) for text in texts]

    memo = TextMemo(lengths, size=3)
    assert memo(["a", "bb", "a"]) == [1, 2, 1]
    assert memo(["bb", "ccc"]) == [2, 3]
    assert calls == [["a", "bb"], ["ccc"]]
    assert memo(["dddd"]) == [4]  # would make four: forgets and starts again
    assert memo(["a"]) == [1]
    assert calls[-2:] == [["dddd"], ["a"]]


TERMS = (r"idiot\w*", r"moron\w*", r"kunde\w*", r"change requests?", r"доплат\w*")
WORDS = ["idiot", "Idiots", "idiot-proof", "moron", "kunden", "change request", "change",
         "requests", "доплата", "ДОПЛАТУ", "hello", "-", " ", "\n", "«", "»", "x", "ß", "İ"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(st.sampled_from(WORDS) | st.text(max_size=6), max_size=8)
                .map("".join), max_size=6))
def test_the_scanner_finds_exactly_what_the_regular_expression_finds(texts: list[str]) -> None:
    plain = re.compile(whole_words_pattern(TERMS), re.IGNORECASE)
    expected = [(i, m.span()) for i, text in enumerate(texts) for m in plain.finditer(text)]
    scanner = whole_words(TERMS)
    assert [(i, m.span()) for i, m in scanner.finditer(texts)] == expected
    assert [(i, m.span()) for i, m in scanner.finditer(texts)] == expected  # remembered


LEAK_WORDS = ["the client is an idiot", "клиент — идиот", "kunden er en idiot", "Idioten",
              "internal only", "kun internt", "не для клиента", "stupid client",
              "заказчик реально тупой", "idiot-proof", "«Идиот»", "thanks", ". ", "\n> "]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(LEAK_WORDS) | st.text(max_size=8), max_size=6).map(" ".join))
def test_the_leak_gate_never_hides_a_finding(text: str) -> None:
    lex = lexicon(("en", "ru", "da"), (), ())
    markers = tuple(m.group() for m in lex.internal_markers.finditer(text))
    assert lex.said([text]) == [(tuple(find_insults(text, lex)), markers)]
