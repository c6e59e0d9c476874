"""Fast scanning of comment text for lexicon terms.

Python's `re` tries every alternative at every position, so a lexicon of a hundred terms
over fifty comments costs milliseconds. Every match of a term contains a literal stem
("idiot" in `idiot\\w*`), so an Aho–Corasick automaton of the stems scans all the texts at
once in C, and only the few texts that contain a stem are searched with the full pattern.
A term whose matches can begin with anything (`\\w+ly`) switches the shortcut off: correct
first, fast second.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any, Generic, TypeVar

import ahocorasick_rs
from marshmallow import ValidationError, fields

T = TypeVar("T")
_ZERO_WIDTH = {sre.AT, sre.ASSERT, sre.ASSERT_NOT}
_MAX_STEMS = 64


def _stems_of(items: Any) -> tuple[set[str], bool]:
    """The literal beginnings of a parsed pattern, and whether it was all literal."""
    stems = {""}
    for op, arg in items:
        complete = True
        if op is sre.LITERAL:
            options = {chr(arg)}
        elif op is sre.IN and all(kind is sre.LITERAL for kind, _ in arg):
            options = {chr(code) for _, code in arg}
        elif op is sre.BRANCH:
            branches = [_stems_of(branch) for branch in arg[1]]
            options = {stem for found, _ in branches for stem in found}
            complete = all(done for _, done in branches)
        elif op is sre.SUBPATTERN:
            options, complete = _stems_of(arg[-1])
        elif op in _ZERO_WIDTH:
            continue
        else:
            return stems, False
        grown = {stem + option for stem in stems for option in options}
        if len(grown) > _MAX_STEMS:
            return stems, False
        stems = grown
        if not complete:
            return stems, False
    return stems, True


def literal_stems(term: str) -> frozenset[str] | None:
    """What every match of `term` begins with, lower-cased; `None` if it can begin with
    anything."""
    stems, _ = _stems_of(sre_parse.parse(term))
    if "" in stems:
        return None
    return frozenset(stem.lower() for stem in stems)


SEPARATOR = "\x00"  # between joined texts: in no stem, no text and no white space


def join_lowered(texts: Sequence[str]) -> str:
    """The texts lower-cased and joined by SEPARATOR, for `StemGate.candidates`; a text's
    own SEPARATOR characters become spaces, so they cannot shift the count."""
    joined = SEPARATOR.join(texts)
    if joined.count(SEPARATOR) >= len(texts):
        joined = SEPARATOR.join(text.replace(SEPARATOR, " ") for text in texts)
    return joined.lower()


@dataclass(frozen=True, eq=False)
class StemGate:
    """An Aho–Corasick automaton of stems: which texts contain at least one of them."""

    automaton: ahocorasick_rs.AhoCorasick

    @classmethod
    def build(cls, terms: Iterable[str]) -> StemGate | None:
        """`None` when some term has no literal stem (then every text must be searched)."""
        stems: set[str] = set()
        for term in terms:
            found = literal_stems(term)
            if found is None:
                return None
            stems |= found
        if not stems:
            return None
        return cls(ahocorasick_rs.AhoCorasick(sorted(stems)))

    def candidates(self, joined: str) -> list[int]:
        """Indexes of the texts in `joined` (see `join_lowered`) that contain a stem."""
        found: list[int] = []
        index, next_separator = 0, joined.find(SEPARATOR)
        for _, start, _ in self.automaton.find_matches_as_indexes(joined):
            while 0 <= next_separator < start:
                index += 1
                next_separator = joined.find(SEPARATOR, next_separator + 1)
            if not found or found[-1] != index:
                found.append(index)
        return found


    def which(self, texts: Sequence[str]) -> list[bool]:
        """For each text, whether it contains a stem."""
        found = [False] * len(texts)
        for index in self.candidates(join_lowered(texts)):
            found[index] = True
        return found


class TextMemo(Generic[T]):
    """What a pure function of one text gave, for the texts seen recently.

    A ticket is evaluated again on every event and by every sweep while its old comments
    stay as they were: each text is worked on once, not once per evaluation. Bounded: when
    full, it starts afresh."""

    def __init__(self, compute: Callable[[list[str]], list[T]], size: int = 20_000) -> None:
        self._compute = compute  # results for a list of texts, in order
        self._size = size
        self._results: dict[str, T] = {}

    def __call__(self, texts: Sequence[str]) -> list[T]:
        results = self._results
        missing = [text for text in dict.fromkeys(texts) if text not in results]
        if missing:
            if len(results) + len(missing) > self._size:
                results.clear()
            results.update(zip(missing, self._compute(missing), strict=True))
        return [results[text] for text in texts]


@dataclass(frozen=True, eq=False)
class TextScanner:
    """A compiled pattern, searched only in the texts its stems say may match, and in
    each text only once while it is remembered."""

    pattern: re.Pattern[str]
    gate: StemGate | None
    _memo: TextMemo[tuple[re.Match[str], ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_memo", TextMemo(self._scan))

    def _scan(self, texts: list[str]) -> list[tuple[re.Match[str], ...]]:
        maybe = [True] * len(texts) if self.gate is None else self.gate.which(texts)
        return [tuple(self.pattern.finditer(text)) if hit else ()
                for text, hit in zip(texts, maybe, strict=True)]

    def finditer(self, texts: Sequence[str]) -> Iterator[tuple[int, re.Match[str]]]:
        """Every match in every text, as (index of the text, match)."""
        for index, matches in enumerate(self._memo(texts)):
            for match in matches:
                yield index, match


def whole_words_pattern(terms: Iterable[str]) -> str:
    """Alternatives matched as whole words, never inside a hyphenated compound
    ("idiot-proof" is no insult)."""
    return r"(?<![\w-])(?:" + "|".join(terms) + r")(?!\w)(?!-\w)"


@cache
def whole_words(terms: tuple[str, ...]) -> TextScanner:
    """A scanner for any of `terms` as whole words, ignoring case."""
    return TextScanner(re.compile(whole_words_pattern(terms), re.IGNORECASE),
                       StemGate.build(terms))


def valid_regex(value: str) -> None:
    try:
        re.compile(value)
    except re.error as error:
        raise ValidationError(f"not a valid regular expression: {error}") from None


def pattern_list(default: Iterable[str], description: str) -> fields.List:
    """A setting holding regular expressions; each is checked when the config loads."""
    defaults = list(default)
    return fields.List(fields.String(validate=valid_regex), load_default=lambda: list(defaults),
                       metadata={"description": description})
