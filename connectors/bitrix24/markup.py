"""The sticky comment in Bitrix24 BB-code, as a deal's timeline shows it.

The shape comes from Jira's walker (`connectors.jira.markup.layout`); this module only spells
its blocks. A timeline comment's `COMMENT` is rendered on the portal by the CRM's text parser
(`Bitrix\\Crm\\Timeline\\CommentController::convertToHtml`, used by the old timeline and by the
new one's `Service\\Timeline\\Item\\Comment`) with the rules HTML=N, BIU, ANCHOR, LIST, FONT,
QUOTE, CODE, IMG, VIDEO, SMILES, NL2BR=Y. So: `[b]`, `[i]`, `[color=#…]`, `[url=…]…[/url]`,
`[list][*]…[/list]`, and a newline is a line break.

Deal text (names, quoted client words) reaches the comment through evidence and is escaped
so that it shows as typed and cannot open a tag: `[` `]` become `&#91;` `&#93;` (the
escape Bitrix's own parser undoes in `convertCode`/`convert4mail`), and `<` `>` `&` become
entities — with HTML=N the parser first turns `<a href>`, `<b>`, `<img src>`… into BB-code,
so a raw `<` would be markup too. A quoted `[user=7]x[/user]` would even notify user 7
(`CommentController::sendMentions`); escaped, it is text.

The marker that finds the comment again is not shown: it is the address of a link whose
only text is a zero-width space (`HIDDEN_MARKER`). An empty `[url=…][/url]` would not do:
the parser then shows the address as the link text (`CTextParser::convert_anchor_tag`).
Sources: avshatalov48/bitrix24-core-corp modules/crm/lib/timeline/commentcontroller.php and
avshatalov48/bitrix-core-business modules/main/classes/general/textparser.php.
"""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import quote

from connectors.base import STICKY_MARKER
from connectors.markup import Block, Bullets, Heading, Paragraph, TextMarks, layout, spell
from plugin.core.comment import StickyContent

SUBTLE_COLOUR = "#828b95"  # Bitrix24's secondary-text grey: the footer
ZERO_WIDTH_SPACE = "\u200b"  # link text that takes no room; PHP's trim() keeps it
MARKER_URL = f"https://clientguard.invalid/{STICKY_MARKER}"  # .invalid never resolves
HIDDEN_MARKER = f"[url={MARKER_URL}]{ZERO_WIDTH_SPACE}[/url]"
"""Appended to every comment: the marker, invisible on the portal, present in `COMMENT`."""

_BB_SPECIAL = re.compile(r"[&<>\[\]]")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "[": "&#91;", "]": "&#93;"}
_URL_SAFE = "/:?#&=%@+,;~$!*()-._"  # everything else (`[`, `]`, `'`, spaces …) is encoded


def bb_escape(text: str) -> str:
    """Text that a timeline comment shows literally: no BB-code tag, no HTML tag, no
    entity can start inside it."""
    return _BB_SPECIAL.sub(lambda match: _ENTITIES[match[0]], text)


def bb_url(url: str) -> str:
    """A link address for `[url=…]`: percent-encoded, so no `[`, `]` or quote ends the tag."""
    return quote(url, safe=_URL_SAFE)


def visible(content: StickyContent) -> StickyContent:
    """The content as a reader sees it on the portal: the footer without the marker, which
    `HIDDEN_MARKER` carries instead."""
    footer = " ".join(content.footer.replace(STICKY_MARKER, " ").split())
    return dataclasses.replace(content, footer=footer)


BB_CODE = TextMarks(
    escape=bb_escape, strong="[b]{}[/b]", em="[i]{}[/i]",
    subtle="[color=" + SUBTLE_COLOUR + "]{}[/color]",
    link=lambda text, href: f"[url={bb_url(href)}]{text}[/url]")


def _bb_block(block: Block) -> str:
    match block:
        case Heading(spans):
            return f"[b]{spell(spans, BB_CODE)}[/b]"
        case Paragraph(spans):
            return spell(spans, BB_CODE)
        case Bullets(items):
            # the parser eats the whitespace after [list] and the newline after [/list]
            return "\n".join(("[list]", *(f"[*]{spell(item, BB_CODE)}" for item in items),
                              "[/list]"))


def to_bbcode(content: StickyContent) -> str:
    """The `COMMENT` of the sticky timeline comment: one line per block, the marker hidden
    at the end of the footer."""
    return "\n".join(_bb_block(block) for block in layout(visible(content))) + HIDDEN_MARKER
