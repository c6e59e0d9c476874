"""The sticky comment in Bitrix24 BB-code: the exact `COMMENT` written, deal text that cannot
open a tag, and the marker that is present but not shown — in every language."""

from __future__ import annotations

import pytest

from connectors.bitrix24.markup import HIDDEN_MARKER, bb_escape, bb_url, to_bbcode, visible
from plugin.core.comment import CheckBlock, Link, StickyContent

FOOTER_EN = ("Agency-internal: the client cannot see this. ClientGuard keeps this one comment "
             "up to date; manual edits are overwritten. clientguard:sticky")
HIDDEN = "[url=https://clientguard.invalid/clientguard:sticky]\u200b[/url]"

CONTENT = StickyContent(
    heading="ClientGuard — Health score: 68/100 (amber)",
    checks=(
        CheckBlock("FAIL", "Project manager briefed",
                   ("No agency brief; Carla Client uploaded “brief.docx”.",
                    'Quoted: [b]bold[/b] <a href="http://x">y</a> [user=7]Ann[/user] R&D'),
                   "How to fix", "Write the brief and have the PM acknowledge it."),
        CheckBlock("WARN", "Client answered", ("A client question waited 11 business hours.",),
                   "How to fix", "Answer within the SLA."),
    ),
    all_clear=None,
    unchecked=None,
    link=Link("Open health check", "https://guard.agency.example/health/bitrix24/42"),
    footer=FOOTER_EN,
)

BBCODE = (
    "[b]ClientGuard — Health score: 68/100 (amber)[/b]\n"
    "[b]FAIL[/b] — [b]Project manager briefed[/b]\n"
    "[list]\n"
    "[*]No agency brief; Carla Client uploaded “brief.docx”.\n"
    '[*]Quoted: &#91;b&#93;bold&#91;/b&#93; &lt;a href="http://x"&gt;y&lt;/a&gt; '
    "&#91;user=7&#93;Ann&#91;/user&#93; R&amp;D\n"
    "[/list]\n"
    "[i]How to fix:[/i] Write the brief and have the PM acknowledge it.\n"
    "[b]WARN[/b] — [b]Client answered[/b]\n"
    "[list]\n"
    "[*]A client question waited 11 business hours.\n"
    "[/list]\n"
    "[i]How to fix:[/i] Answer within the SLA.\n"
    "[url=https://guard.agency.example/health/bitrix24/42]Open health check[/url]\n"
    "[color=#828b95]Agency-internal: the client cannot see this. ClientGuard keeps this one "
    "comment up to date; manual edits are overwritten.[/color]"
    "[url=https://clientguard.invalid/clientguard:sticky]\u200b[/url]"
)


def test_the_comment_in_bbcode():
    assert to_bbcode(CONTENT) == BBCODE


def test_a_clean_deal_says_every_check_passes():
    clean = StickyContent(heading="ClientGuard — Health score: 100/100 (green)", checks=(),
                          all_clear="Every check passes.", unchecked=None, link=None,
                          footer=FOOTER_EN)
    assert to_bbcode(clean) == (
        "[b]ClientGuard — Health score: 100/100 (green)[/b]\n"
        "Every check passes.\n"
        "[color=#828b95]Agency-internal: the client cannot see this. ClientGuard keeps this "
        "one comment up to date; manual edits are overwritten.[/color]" + HIDDEN)


def test_a_crashed_rule_is_named_instead_of_the_all_clear():
    broken = StickyContent(heading="ClientGuard — Health score: 90/100 (green)", checks=(),
                           all_clear=None,
                           unchecked="Could not be checked (internal error): Broken rule",
                           link=None, footer=FOOTER_EN)
    assert to_bbcode(broken).splitlines()[1] == (
        "Could not be checked (internal error): Broken rule")


@pytest.mark.parametrize(("text", "escaped"), [
    ("[b]bold[/b]", "&#91;b&#93;bold&#91;/b&#93;"),
    ("[url=https://evil.example]x[/url]", "&#91;url=https://evil.example&#93;x&#91;/url&#93;"),
    ("[user=7]Ann[/user]", "&#91;user=7&#93;Ann&#91;/user&#93;"),  # would notify user 7
    ("[img]https://evil.example/pixel.gif[/img]",
     "&#91;img&#93;https://evil.example/pixel.gif&#91;/img&#93;"),
    ('<img src="https://evil.example/p.gif">', '&lt;img src="https://evil.example/p.gif"&gt;'),
    ("&#91;b&#93;", "&amp;#91;b&amp;#93;"),  # shows as typed, not as [b]
    ("Smith & Sons «ООО» — æøå", "Smith &amp; Sons «ООО» — æøå"),
])
def test_deal_text_cannot_open_a_tag(text, escaped):
    assert bb_escape(text) == escaped


def test_evidence_is_escaped_inside_the_list():
    content = StickyContent(
        heading="H", checks=(CheckBlock("FAIL", "T [x]", ("[/list][b]x",), "Fix", "[i]y"),),
        all_clear=None, unchecked=None, link=None, footer="F clientguard:sticky")
    assert to_bbcode(content) == (
        "[b]H[/b]\n"
        "[b]FAIL[/b] — [b]T &#91;x&#93;[/b]\n"
        "[list]\n[*]&#91;/list&#93;&#91;b&#93;x\n[/list]\n"
        "[i]Fix:[/i] &#91;i&#93;y\n"
        "[color=#828b95]F[/color]" + HIDDEN)


def test_a_link_address_cannot_end_the_tag():
    assert bb_url("https://guard.example/h/1?sig=a]b[c d'e") == (
        "https://guard.example/h/1?sig=a%5Db%5Bc%20d%27e")


def test_the_marker_is_in_the_comment_once_and_only_in_the_hidden_link():
    text = to_bbcode(CONTENT)
    assert text.count("clientguard:sticky") == 1
    assert text.endswith(HIDDEN_MARKER)
    assert HIDDEN_MARKER == HIDDEN
    assert visible(CONTENT).footer == (
        "Agency-internal: the client cannot see this. ClientGuard keeps this one comment up "
        "to date; manual edits are overwritten.")


@pytest.mark.parametrize(("content", "expected"), [
    (StickyContent(
        heading="ClientGuard — Состояние проекта: 68/100 (жёлтая зона)",
        checks=(CheckBlock("НАРУШЕНИЕ", "Менеджер проекта получил бриф",
                           ("Нет брифа агентства; Carla Client загрузил(а) «brief.docx».",),
                           "Как исправить", "Напишите бриф и получите подтверждение менеджера."),),
        all_clear=None, unchecked=None,
        link=Link("Открыть проверку", "https://guard.agency.example/h/42"),
        footer="Только для агентства: клиент этого не видит. ClientGuard сам обновляет этот "
               "комментарий; ручные правки будут перезаписаны. clientguard:sticky"),
     "[b]ClientGuard — Состояние проекта: 68/100 (жёлтая зона)[/b]\n"
     "[b]НАРУШЕНИЕ[/b] — [b]Менеджер проекта получил бриф[/b]\n"
     "[list]\n[*]Нет брифа агентства; Carla Client загрузил(а) «brief.docx».\n[/list]\n"
     "[i]Как исправить:[/i] Напишите бриф и получите подтверждение менеджера.\n"
     "[url=https://guard.agency.example/h/42]Открыть проверку[/url]\n"
     "[color=#828b95]Только для агентства: клиент этого не видит. ClientGuard сам обновляет "
     "этот комментарий; ручные правки будут перезаписаны.[/color]" + HIDDEN),
    (StickyContent(
        heading="ClientGuard — Sundhedsscore: 68/100 (gul)",
        checks=(CheckBlock("FEJL", "Projektlederen er briefet",
                           ("Ingen brief fra bureauet; Carla Client uploadede “brief.docx”.",),
                           "Sådan rettes det",
                           "Skriv briefen, og få projektlederen til at kvittere."),),
        all_clear=None, unchecked=None,
        link=Link("Åbn sundhedstjek", "https://guard.agency.example/h/42"),
        footer="Kun for bureauet: kunden kan ikke se dette. ClientGuard holder selv denne "
               "kommentar opdateret; manuelle rettelser overskrives. clientguard:sticky"),
     "[b]ClientGuard — Sundhedsscore: 68/100 (gul)[/b]\n"
     "[b]FEJL[/b] — [b]Projektlederen er briefet[/b]\n"
     "[list]\n[*]Ingen brief fra bureauet; Carla Client uploadede “brief.docx”.\n[/list]\n"
     "[i]Sådan rettes det:[/i] Skriv briefen, og få projektlederen til at kvittere.\n"
     "[url=https://guard.agency.example/h/42]Åbn sundhedstjek[/url]\n"
     "[color=#828b95]Kun for bureauet: kunden kan ikke se dette. ClientGuard holder selv "
     "denne kommentar opdateret; manuelle rettelser overskrives.[/color]" + HIDDEN),
], ids=["ru", "da"])
def test_every_language(content, expected):
    assert to_bbcode(content) == expected
