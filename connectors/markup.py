"""The sticky comment's shape, shared by every platform's markup: `layout` turns the content
into blocks — a heading, paragraphs, bullet lists of styled spans — that each connector spells
in its own markup (Jira ADF and wiki markup, Bitrix24 BB-code); `plain_text` spells them for
dry runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from plugin.core.comment import StickyContent


@dataclass(frozen=True)
class Span:
    """A run of text with its styles; `href` makes it a link."""

    text: str
    strong: bool = False
    em: bool = False
    subtle: bool = False
    href: str | None = None


@dataclass(frozen=True)
class Heading:
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class Paragraph:
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class Bullets:
    items: tuple[tuple[Span, ...], ...]


Block = Heading | Paragraph | Bullets


def _line(text: str) -> str:
    """Ticket text on one line: a newline in a quoted comment must not end a list item."""
    return " ".join(text.split())


def layout(content: StickyContent) -> tuple[Block, ...]:
    """The comment as blocks, in reading order; both writers follow it."""
    blocks: list[Block] = [Heading((Span(content.heading),))]
    for check in content.checks:
        blocks.append(Paragraph((Span(check.status, strong=True), Span(" — "),
                                 Span(_line(check.title), strong=True))))
        if check.evidence:
            blocks.append(Bullets(tuple((Span(_line(line)),) for line in check.evidence)))
        blocks.append(Paragraph((Span(check.fix_label + ":", em=True),
                                 Span(" " + _line(check.fix)))))
    blocks += [Paragraph((Span(text),)) for text in (content.all_clear, content.unchecked)
               if text]
    if content.link is not None:
        blocks.append(Paragraph((Span(content.link.label, href=content.link.url),)))
    blocks.append(Paragraph((Span(content.footer, subtle=True),)))
    return tuple(blocks)


@dataclass(frozen=True)
class TextMarks:
    """How a text markup spells a span's styles: `{}` stands for the escaped text."""

    escape: Callable[[str], str]
    strong: str
    em: str
    subtle: str
    link: Callable[[str, str], str]  # (spelled text, address) -> the link


def spell(spans: tuple[Span, ...], marks: TextMarks) -> str:
    """A run of spans in a text markup (Jira wiki markup, Bitrix24 BB-code)."""
    spelled = []
    for span in spans:
        if not span.text:
            continue
        text = marks.escape(span.text)
        for on, mark in ((span.strong, marks.strong), (span.em, marks.em),
                         (span.subtle, marks.subtle)):
            if on:
                text = mark.format(text)
        spelled.append(text if span.href is None else marks.link(text, span.href))
    return "".join(spelled)


def plain_text(content: StickyContent) -> str:
    """The comment as plain text, block by block as the platforms show it (for dry runs)."""
    lines: list[str] = []
    for block in layout(content):
        match block:
            case Heading(spans) | Paragraph(spans):
                lines.append(_text(spans))
            case Bullets(items):
                lines += [f"• {_text(item)}" for item in items]
    return "\n".join(lines)


def _text(spans: tuple[Span, ...]) -> str:
    return "".join(span.text if span.href is None else f"{span.text} <{span.href}>"
                   for span in spans)
