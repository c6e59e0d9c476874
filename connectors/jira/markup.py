"""The sticky comment in Jira's two markups: ADF for Cloud (API v3) and wiki markup for Data
Center (API v2) and for JSM request comments (`/rest/servicedeskapi`, a string body that Jira
renders as wiki markup).

One walker (`layout`) decides the shape — a heading, paragraphs, bullet lists of styled
spans — and two small writers spell it. Ticket text (names, quoted words from comments)
reaches the comment through evidence: in ADF it is only ever a text node's value; in wiki
markup every character with a meaning is escaped, so a quoted `*`, `[link|…]` or `{code}`
shows as typed and cannot open a link, a macro or a mention.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from connectors.markup import (
    Block,
    Bullets,
    Heading,
    Paragraph,
    Span,
    TextMarks,
    layout,
    spell,
)
from plugin.core.comment import StickyContent

SUBTLE_COLOUR = "#6b778c"  # Atlassian's subtle text grey: the footer


# -- Atlassian Document Format (Cloud) -------------------------------------------------

def _adf_text(span: Span) -> dict[str, Any]:
    marks: list[dict[str, Any]] = []
    if span.strong:
        marks.append({"type": "strong"})
    if span.em:
        marks.append({"type": "em"})
    if span.subtle:
        marks.append({"type": "textColor", "attrs": {"color": SUBTLE_COLOUR}})
    if span.href is not None:
        marks.append({"type": "link", "attrs": {"href": span.href}})
    node: dict[str, Any] = {"type": "text", "text": span.text}
    if marks:
        node["marks"] = marks
    return node


def _adf_inline(spans: tuple[Span, ...]) -> list[dict[str, Any]]:
    return [_adf_text(span) for span in spans if span.text]  # ADF forbids empty text nodes


def _adf_block(block: Block) -> dict[str, Any]:
    match block:
        case Heading(spans):
            return {"type": "heading", "attrs": {"level": 3}, "content": _adf_inline(spans)}
        case Paragraph(spans):
            return {"type": "paragraph", "content": _adf_inline(spans)}
        case Bullets(items):
            return {"type": "bulletList", "content": [
                {"type": "listItem", "content": [
                    {"type": "paragraph", "content": _adf_inline(item)}]}
                for item in items]}


def to_adf(content: StickyContent) -> dict[str, Any]:
    """The comment body for Jira Cloud (REST API v3): an ADF `doc`."""
    return {"type": "doc", "version": 1,
            "content": [_adf_block(block) for block in layout(content)]}


# -- wiki markup (Data Center, JSM request comments) -----------------------------------

_WIKI_SPECIAL = re.compile(r"[*_?+\-^~{}\[\]|!#\\]")
_URL_SAFE = "/:?#&=%@+,;~$!*'()-._"  # everything else (`[`, `]`, `|`, spaces …) is encoded


def wiki_escape(text: str) -> str:
    """Text that wiki markup shows literally. A backslash escapes each special character
    (`*_?+-^~{}[]|!#`); a backslash itself becomes `&#92;`, since `\\\\` is a line break."""
    return _WIKI_SPECIAL.sub(
        lambda match: "&#92;" if match[0] == "\\" else "\\" + match[0], text)


WIKI = TextMarks(
    escape=wiki_escape, strong="*{}*", em="_{}_",
    subtle="{{color:" + SUBTLE_COLOUR + "}}{}{{color}}",
    link=lambda text, href: f"[{text}|{quote(href, safe=_URL_SAFE)}]")


def _wiki_block(block: Block) -> str:
    match block:
        case Heading(spans):
            return "h3. " + spell(spans, WIKI)
        case Paragraph(spans):
            return spell(spans, WIKI)
        case Bullets(items):
            return "\n".join("* " + spell(item, WIKI) for item in items)


def to_wiki(content: StickyContent) -> str:
    """The comment body for Jira Data Center (REST API v2) and JSM request comments."""
    return "\n\n".join(_wiki_block(block) for block in layout(content))
