"""Nothing internal reaches the client: no insults, no internal-only notes, no quoted
internal discussion in a client-visible agency comment.

Seed: 002 (the "the client is an idiot" e-mail forwarded to the client, and §3).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from marshmallow import ValidationError, fields, validate

from plugin.core.i18n import LANGUAGES, Text, moment
from plugin.core.model import Comment, Engagement, Visibility
from plugin.core.rule import Message, Outcome, RuleSettings, Severity, rule
from plugin.core.rule import Side as RuleSide

INSULT = Message(
    code="insult",
    en="The client-visible comment {comment} by {author} ({when}) contains “{words}”.",
    ru="Видимый клиенту комментарий {comment} от {author} ({when}) содержит «{words}».",
    da="Den kundesynlige kommentar {comment} fra {author} ({when}) indeholder “{words}”.",
)
INTERNAL_MARKER = Message(
    code="internal_marker",
    en="The client-visible comment {comment} by {author} ({when}) is marked as internal: "
    "“{words}”.",
    ru="Видимый клиенту комментарий {comment} от {author} ({when}) помечен как внутренний: "
    "«{words}».",
    da="Den kundesynlige kommentar {comment} fra {author} ({when}) er markeret som intern: "
    "“{words}”.",
)
QUOTES_INTERNAL = Message(
    code="quotes_internal",
    en="The client-visible comment {comment} by {author} ({when}) quotes the internal "
    "note {note}.",
    ru="Видимый клиенту комментарий {comment} от {author} ({when}) цитирует внутреннюю "
    "заметку {note}.",
    da="Den kundesynlige kommentar {comment} fra {author} ({when}) citerer den interne "
    "note {note}.",
)

_QUOTED_SPANS = re.compile(r"«[^»]*»|“[^”]*”|„[^“”]*[“”]|\"[^\"\n]*\"")
_SENTENCE_START = re.compile(r"(?:^|[.!?…:\n]\s*|[-—–]\s+)$")
_QUOTE_PREFIX = re.compile(r"^[\s>]+")


@dataclass(frozen=True)
class Lexicon:
    insults: re.Pattern[str]
    about_client: re.Pattern[str]
    internal_markers: re.Pattern[str]


def _words(terms: list[str] | tuple[str, ...]) -> str:
    """Alternatives matched as whole words, never as part of a hyphenated compound
    ("idiot-proof" is not an insult)."""
    return r"(?<![\w-])(?:" + "|".join(terms) + r")(?!\w)(?!-\w)"


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
        client, remark = _words(part["client_words"]), _words(part["client_remarks"])
        filler = r"(?:[\s,—–:-]+(?:" + "|".join(part["fillers"]) + r"))"
        remark_patterns.append(rf"{client}{filler}{{0,3}}[\s,—–:-]+{remark}")
        remark_patterns.append(rf"{remark}\s+{client}")
    flags = re.IGNORECASE
    return Lexicon(
        insults=re.compile(_words([*gather("insults"), *extra_insults]), flags),
        about_client=re.compile("|".join(remark_patterns), flags),
        internal_markers=re.compile(
            _words([*gather("internal_markers"), *extra_markers]), flags),
    )


def _is_title(text: str, match: re.Match[str]) -> bool:
    """A capitalised word in mid-sentence is a name or a title ("Dostoevsky's The Idiot")."""
    return match.group()[0].isupper() and not _SENTENCE_START.search(text[: match.start()])


def find_insults(text: str, lex: Lexicon) -> list[str]:
    """Derogatory words in `text`, outside quotations and titles."""
    unquoted = _QUOTED_SPANS.sub(lambda m: " " * len(m.group()), text)
    found = [m.group() for m in lex.insults.finditer(unquoted) if not _is_title(unquoted, m)]
    found += [m.group() for m in lex.about_client.finditer(unquoted)]
    return found


def _regex(value: str) -> None:
    try:
        re.compile(value)
    except re.error as error:
        raise ValidationError(f"not a valid regular expression: {error}") from None


class LeakSettings(RuleSettings):
    languages = fields.List(
        fields.String(validate=validate.OneOf(LANGUAGES)), load_default=lambda: list(LANGUAGES),
        validate=validate.Length(min=1),
        metadata={"description": "Built-in lexicons to use"},
    )
    extra_insults = fields.List(
        fields.String(validate=_regex), load_default=list,
        metadata={"description": "More derogatory words (regular expressions, whole words)"},
    )
    extra_internal_markers = fields.List(
        fields.String(validate=_regex), load_default=list,
        metadata={"description": "More internal-only markers (regular expressions)"},
    )
    quote_min_chars = fields.Integer(
        load_default=40, validate=validate.Range(min=10),
        metadata={"description": "An internal line at least this long found in a public "
                                 "comment counts as quoted"},
    )


def _lines(text: str, min_chars: int) -> set[str]:
    lines = (" ".join(_QUOTE_PREFIX.sub("", line).split()).casefold()
             for line in text.splitlines())
    return {line for line in lines if len(line) >= min_chars}


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
        ru="Одно пересланное «клиент — идиот» заканчивает отношения; внутренние заметки и "
        "эмоции не должны попадать к клиенту.",
        da="Én videresendt “kunden er en idiot” afslutter samarbejdet; interne noter og "
        "frustrationer må aldrig nå kunden.",
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
    internal_lines: dict[str, Comment] = {}
    for comment in e.comments:
        if comment.visibility is Visibility.INTERNAL:
            for line in _lines(comment.text, s.quote_min_chars):
                internal_lines.setdefault(line, comment)
    reasons = []
    for comment in e.comments:
        if not comment.is_public_agency or comment.at > now:
            continue
        where = {"comment": comment.id, "author": comment.author.name,
                 "when": moment(comment.at)}
        insults = find_insults(comment.text, lex)
        if insults:
            reasons.append(INSULT.fail(words=", ".join(insults), **where))
        markers = [m.group() for m in lex.internal_markers.finditer(comment.text)]
        if markers:
            reasons.append(INTERNAL_MARKER.fail(words=", ".join(markers), **where))
        quoted = [internal_lines[line] for line in _lines(comment.text, s.quote_min_chars)
                  if line in internal_lines and internal_lines[line].at <= comment.at]
        if quoted:
            reasons.append(QUOTES_INTERNAL.fail(note=quoted[0].id, **where))
    return Outcome.judge(reasons)
