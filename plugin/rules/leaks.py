"""Nothing internal reaches the client: no insults, no internal-only notes, no quoted
internal discussion in a client-visible agency comment.

Seed: 002 (the "the client is an idiot" e-mail forwarded to the client, and §3).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from marshmallow import ValidationError, fields, validate

from plugin.core.i18n import LANGUAGES, Text, moment
from plugin.core.model import Comment, Engagement, Visibility
from plugin.core.rule import Message, Outcome, RuleSettings, Severity, rule
from plugin.core.rule import Side as RuleSide
from plugin.core.schema import WholeNumber
from plugin.rules.text import SEPARATOR, StemGate, TextMemo

INSULT = Message(
    code="insult",
    en="The client-visible comment {comment} by {author} ({when}) contains “{words}”.",
    ru="Видимый клиенту комментарий {comment} ({author}, {when}) содержит «{words}».",
    da="Den kundesynlige kommentar {comment} fra {author} ({when}) indeholder “{words}”.",
)
INTERNAL_MARKER = Message(
    code="internal_marker",
    en="The client-visible comment {comment} by {author} ({when}) is marked as internal: "
    "“{words}”.",
    ru="Видимый клиенту комментарий {comment} ({author}, {when}) помечен как внутренний: "
    "«{words}».",
    da="Den kundesynlige kommentar {comment} fra {author} ({when}) er markeret som intern: "
    "“{words}”.",
)
QUOTES_INTERNAL = Message(
    code="quotes_internal",
    en="The client-visible comment {comment} by {author} ({when}) quotes the internal "
    "note {note}.",
    ru="Видимый клиенту комментарий {comment} ({author}, {when}) цитирует внутреннюю "
    "заметку {note}.",
    da="Den kundesynlige kommentar {comment} fra {author} ({when}) citerer den interne "
    "note {note}.",
)

_QUOTED_SPANS = r"«[^»]*»|“[^”]*”|„[^“”]*[“”]|\"[^\"\n]*\""
# What may stand before the first word of a sentence, besides the start of the text or of a
# line: end punctuation, a bullet or the `>` of an e-mail quote; or a dash and a space.
_SENTENCE_ENDS = frozenset(".!?…:>*•")
_DASHES = frozenset("-—–")


@dataclass(frozen=True, eq=False)
class Lexicon:
    ignored: re.Pattern[str]  # quoted spans and harmless words, blanked before matching
    insults: re.Pattern[str]
    about_client: re.Pattern[str]
    internal_markers: re.Pattern[str]
    gate: StemGate | None  # every insult, client word and marker contains one of its stems
    said: TextMemo[tuple[tuple[str, ...], tuple[str, ...]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "said", TextMemo(self._scan))

    def _scan(self, texts: list[str]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """(insults, internal-only markers) found in each text."""
        maybe = [True] * len(texts) if self.gate is None else self.gate.which(texts)
        return [(tuple(find_insults(text, self)),
                 tuple(match.group() for match in self.internal_markers.finditer(text)))
                if hit else ((), ()) for text, hit in zip(texts, maybe, strict=True)]


_END = r"(?!\w)(?!-\w)"  # the end of a word that is not the first half of a compound


def _words(terms: list[str] | tuple[str, ...]) -> str:
    """Alternatives matched as whole words, never as part of a hyphenated compound
    ("idiot-proof" is not an insult)."""
    return r"(?<![\w-])(?:" + "|".join(terms) + ")" + _END


@cache
def _builtin(language: str) -> dict[str, list[str]]:
    text = resources.files("plugin.rules.lexicon").joinpath(f"{language}.toml").read_text("utf-8")
    return tomllib.loads(text)


@cache
def lexicon(languages: tuple[str, ...], extra_insults: tuple[str, ...],
            extra_markers: tuple[str, ...]) -> Lexicon:
    """Compile the built-in lexicons of `languages` plus the agency's extra terms."""
    parts = [_builtin(language) for language in languages]
    gather = lambda key: [term for part in parts for term in part[key]]  # noqa: E731
    remark_patterns = []
    for part in parts:
        clients, remarks = "|".join(part["client_words"]), "|".join(part["client_remarks"])
        derogatory = "|".join([*part["insults"], *part["client_remarks"]])
        filler = r"(?:[\s,—–:-]+(?:" + "|".join(part["fillers"]) + r"))"
        # A client word, then filler words or a dash, then a remark ("the client is so
        # clueless"; a bare comma ends the thought: "for customers, annoying pop-ups"), or
        # a hyphenated compound with an insult ("клиент-идиот").
        remark_patterns.append(
            rf"(?:{clients})(?:-(?:{derogatory}){_END}"
            rf"|{_END}(?:{filler}{{1,3}}[\s,—–:-]+|[\s—–:-]+){_words(part['client_remarks'])})")
        # A remark right before a client word ("stupid client"), or the compound reversed.
        remark_patterns.append(rf"(?:(?:{remarks})\s+|(?:{derogatory})-)(?:{clients}){_END}")
    harmless = [_words(terms)] if (terms := gather("harmless")) else []
    flags = re.IGNORECASE
    return Lexicon(
        ignored=re.compile("|".join([_QUOTED_SPANS, *harmless]), flags),
        insults=re.compile(_words([*gather("insults"), *extra_insults]), flags),
        # Every pattern starts at the start of a word: checked once, up front.
        about_client=re.compile(rf"(?<![\w-])(?=\w)(?:{'|'.join(remark_patterns)})", flags),
        internal_markers=re.compile(
            _words([*gather("internal_markers"), *extra_markers]), flags),
        gate=StemGate.build([*gather("insults"), *extra_insults, *gather("client_words"),
                             *gather("internal_markers"), *extra_markers]),
    )


def _starts_sentence(text: str, start: int) -> bool:
    """Whether the word at `start` begins a sentence. Looks back over the blanks only, so
    a comment full of capitalised words is still read once, not once per word."""
    at = start
    while at > 0 and text[at - 1].isspace():
        if text[at - 1] == "\n":
            return True
        at -= 1
    if at == 0:
        return True
    return text[at - 1] in _SENTENCE_ENDS or (text[at - 1] in _DASHES and at < start)


def _is_title(text: str, match: re.Match[str]) -> bool:
    """A capitalised word in mid-sentence is a name or a title ("Dostoevsky's The Idiot");
    a word in capitals throughout is shouting, not a title."""
    word = match.group()
    return (word[0].isupper() and not word.isupper()
            and not _starts_sentence(text, match.start()))


def find_insults(text: str, lex: Lexicon) -> list[str]:
    """Derogatory words in `text`, outside quotations, titles and harmless words."""
    unquoted = lex.ignored.sub(lambda m: " " * len(m.group()), text)
    found = [m.group() for m in lex.insults.finditer(unquoted) if not _is_title(unquoted, m)]
    found += [m.group() for m in lex.about_client.finditer(unquoted)]
    return found


def _regex(value: str) -> None:
    try:
        pattern = re.compile(value)
        re.compile(_words([value]))  # e.g. "(?i)x" is valid alone, not among other terms
    except re.error as error:
        raise ValidationError(f"not a valid regular expression: {error}") from None
    if pattern.fullmatch(""):
        raise ValidationError("must not match an empty text (it would match everywhere)")


def _regexes(values: list[str]) -> None:
    """The terms together, as the lexicon joins them (group names must not repeat)."""
    try:
        re.compile(_words(values))
    except re.error as error:
        raise ValidationError(f"the terms do not combine: {error}") from None


class LeakSettings(RuleSettings):
    languages = fields.List(
        fields.String(validate=validate.OneOf(LANGUAGES)), load_default=lambda: list(LANGUAGES),
        validate=validate.Length(min=1),
        metadata={"description": "Built-in lexicons to use"},
    )
    extra_insults = fields.List(
        fields.String(validate=_regex), load_default=list, validate=_regexes,
        metadata={"description": "More derogatory words (regular expressions, whole words)"},
    )
    extra_internal_markers = fields.List(
        fields.String(validate=_regex), load_default=list, validate=_regexes,
        metadata={"description": "More internal-only markers (regular expressions)"},
    )
    quote_min_chars = WholeNumber(
        load_default=40, validate=validate.Range(min=10),
        metadata={"description": "An internal line at least this long found in a public "
                                 "comment counts as quoted"},
    )


def _fold(text: str) -> str:
    """Lower-cased, without e-mail quote marks at line starts, white space folded: how
    lines are compared, so a re-wrapped or re-indented quote is still recognised."""
    text = text.lower().replace(SEPARATOR, " ")
    if "\n" in text:
        text = "\n".join(line.lstrip(" \t>") for line in text.splitlines())
    return " ".join(text.lstrip(" \t>").split())


_FOLDED = TextMemo(lambda texts: [_fold(text) for text in texts])
_NOTE_LINES = TextMemo(lambda texts: [
    tuple(line for raw in text.splitlines() if (line := _fold(raw))) for text in texts])


def _quoted_notes(e: Engagement, public: list[Comment], min_chars: int) -> dict[int, Comment]:
    """Which public comments (by index) repeat a line of an earlier internal note."""
    notes = [comment for comment in e.comments if comment.visibility is Visibility.INTERNAL]
    lines = [(line, note)
             for note, note_lines in zip(notes, _NOTE_LINES([n.text for n in notes]), strict=True)
             for line in note_lines if len(line) >= min_chars]
    if not lines:
        return {}
    folded = SEPARATOR.join(_FOLDED([comment.text for comment in public]))
    quoted: dict[int, Comment] = {}
    for line, note in lines:
        start = folded.find(line)
        while start != -1:
            index = folded.count(SEPARATOR, 0, start)
            if index not in quoted and note.at <= public[index].at:
                quoted[index] = note
            start = folded.find(line, start + 1)
    return quoted


def _where(comment: Comment) -> dict[str, str]:
    return {"comment": comment.id, "author": comment.author.name, "when": moment(comment.at)}


@rule(
    id="no-internal-leak",
    side=RuleSide.AGENCY,
    severity=Severity.CRITICAL,
    source="002 intro and §3",
    title=Text(
        en="Nothing internal in client-visible comments",
        ru="Ничего внутреннего в комментариях, видимых клиенту",
        da="Intet internt i kommentarer, kunden kan se",
    ),
    rationale=Text(
        en="One forwarded “the client is an idiot” ends the relationship; internal notes "
        "and venting must never reach the client.",
        ru="Одного пересланного письма «клиент — идиот» достаточно, чтобы потерять клиента; "
        "внутренние заметки и эмоции не должны попадать к клиенту.",
        da="Én videresendt mail med “kunden er en idiot” kan afslutte samarbejdet; interne "
        "noter og frustrationer må aldrig nå kunden.",
    ),
    fix=Text(
        en="Make the comment internal (or delete it) at once, tell its author, and "
        "apologise to the client if they may have seen it.",
        ru="Сразу сделайте комментарий внутренним (или удалите), сообщите автору и "
        "извинитесь перед клиентом, если он мог его увидеть.",
        da="Gør kommentaren intern (eller slet den) med det samme, giv forfatteren besked, "
        "og undskyld over for kunden, hvis de kan have set den.",
    ),
    settings=LeakSettings,
    messages=(INSULT, INTERNAL_MARKER, QUOTES_INTERNAL),
)
def no_internal_leak(e: Engagement, s: Any, now: datetime) -> Outcome:
    lex = lexicon(tuple(s.languages), tuple(s.extra_insults), tuple(s.extra_internal_markers))
    public = [comment for comment in e.public_agency_comments if comment.at <= now]
    quoted = _quoted_notes(e, public, s.quote_min_chars)
    reasons = []
    for index, (comment, (insults, markers)) in enumerate(
            zip(public, lex.said([comment.text for comment in public]), strict=True)):
        if insults:
            reasons.append(INSULT.fail(words=", ".join(insults), **_where(comment)))
        if markers:
            reasons.append(INTERNAL_MARKER.fail(words=", ".join(markers), **_where(comment)))
        if index in quoted:
            reasons.append(QUOTES_INTERNAL.fail(note=quoted[index].id, **_where(comment)))
    return Outcome.judge(reasons)
