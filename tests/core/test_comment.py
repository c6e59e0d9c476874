"""The sticky comment's content: what it says for a failing, a clean and a broken report, in
every language, and a fingerprint that changes exactly when what a reader sees changes."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from plugin.config import Config
from plugin.core.comment import (
    STICKY_MARKER,
    CheckBlock,
    Link,
    StickyContent,
    sticky_content,
)
from plugin.core.engine import EffectiveRule, Report, ScoreSettings, evaluate
from plugin.core.i18n import LANGUAGES, Text
from plugin.core.rule import Message, NoSettings, Outcome, Severity, Side, rule
from tests.builders import NOW, engagement

NO_BRIEF = Message(
    code="no_brief",
    en="No agency brief; {who} uploaded “{file}”.",
    ru="Нет брифа агентства; {who} загрузил(а) «{file}».",
    da="Ingen brief fra bureauet; {who} uploadede “{file}”.",
)
LATE_ANSWER = Message(
    code="late_answer",
    en="A client question waited {hours} business hours.",
    ru="Вопрос клиента ждал {hours} рабочих часов.",
    da="Et kundespørgsmål ventede {hours} arbejdstimer.",
)


def _rule(rule_id: str, title: Text, fix: Text, message: Message, check):
    return rule(id=rule_id, side=Side.AGENCY, severity=Severity.MAJOR, source="test",
                title=title, rationale=Text(en="Why.", ru="Почему.", da="Hvorfor."), fix=fix,
                settings=NoSettings, messages=(message,))(check)


def briefed(who: str = "Carla Client", file: str = "brief.docx"):
    return _rule(
        "pm-briefed",
        Text(en="Project manager briefed", ru="Менеджер проекта получил бриф",
             da="Projektlederen er briefet"),
        Text(en="Write the brief and have the PM acknowledge it.",
             ru="Напишите бриф и получите подтверждение менеджера.",
             da="Skriv briefen, og få projektlederen til at kvittere."),
        NO_BRIEF, lambda e, s, now: Outcome.judge([NO_BRIEF.fail(who=who, file=file)]))


def answered(hours: int = 11):
    return _rule(
        "client-answered",
        Text(en="Client answered", ru="Клиенту ответили", da="Kunden har fået svar"),
        Text(en="Answer within the SLA.", ru="Отвечайте в срок.", da="Svar inden for SLA."),
        LATE_ANSWER, lambda e, s, now: Outcome.judge([LATE_ANSWER.warn(hours=hours)]))


def passes():
    return _rule("quiet", Text(en="Quiet", ru="Тихо", da="Stille"),
                 Text(en="Nothing.", ru="Ничего.", da="Intet."), LATE_ANSWER,
                 lambda e, s, now: Outcome.judge([]))


def crashes():
    def check(e, s, now):
        raise RuntimeError("bug")

    return _rule("broken", Text(en="Broken rule", ru="Сломанное правило", da="Defekt regel"),
                 Text(en="Nothing.", ru="Ничего.", da="Intet."), LATE_ANSWER, check)


@dataclass
class FixedConfig:
    rules: list
    score: ScoreSettings = field(default_factory=ScoreSettings)

    def rules_for(self, engagement):
        return [EffectiveRule(rule_, True, weight, NoSettings.defaults())
                for rule_, weight in self.rules]


def report(*rules_and_weights, now=NOW) -> Report:
    return evaluate(engagement(), FixedConfig(list(rules_and_weights)), now)


def failing(now=NOW, **evidence) -> Report:
    return report((briefed(**evidence), 25.0), (answered(), 15.0), (passes(), 5.0), now=now)


FOOTER_EN = ("Agency-internal: the client cannot see this. ClientGuard keeps this one comment "
             "up to date; manual edits are overwritten. clientguard:sticky")


def test_a_failing_report_lists_each_failing_and_warning_check_with_evidence_and_fix():
    assert sticky_content(failing(), "en") == StickyContent(
        heading="ClientGuard — Health score: 68/100 (amber)",
        checks=(
            CheckBlock(status="FAIL", title="Project manager briefed",
                       evidence=("No agency brief; Carla Client uploaded “brief.docx”.",),
                       fix_label="How to fix",
                       fix="Write the brief and have the PM acknowledge it."),
            CheckBlock(status="WARN", title="Client answered",
                       evidence=("A client question waited 11 business hours.",),
                       fix_label="How to fix", fix="Answer within the SLA."),
        ),
        all_clear=None,
        unchecked=None,
        link=None,
        footer=FOOTER_EN,
    )


def test_a_clean_report_says_every_check_passes():
    assert sticky_content(report((passes(), 5.0)), "en") == StickyContent(
        heading="ClientGuard — Health score: 100/100 (green)",
        checks=(), all_clear="Every check passes.", unchecked=None, link=None,
        footer=FOOTER_EN)


def test_a_crashed_rule_is_named_and_never_covered_by_the_all_clear():
    content = sticky_content(report((passes(), 5.0), (crashes(), 15.0)), "en")
    assert content.all_clear is None
    assert content.unchecked == "Could not be checked (internal error): Broken rule"


@pytest.mark.parametrize(("language", "heading", "first_check", "footer"), [
    ("en", "ClientGuard — Health score: 68/100 (amber)",
     CheckBlock("FAIL", "Project manager briefed",
                ("No agency brief; Carla Client uploaded “brief.docx”.",), "How to fix",
                "Write the brief and have the PM acknowledge it."),
     FOOTER_EN),
    ("ru", "ClientGuard — Состояние проекта: 68/100 (жёлтая зона)",
     CheckBlock("НАРУШЕНИЕ", "Менеджер проекта получил бриф",
                ("Нет брифа агентства; Carla Client загрузил(а) «brief.docx».",),
                "Как исправить", "Напишите бриф и получите подтверждение менеджера."),
     "Только для агентства: клиент этого не видит. ClientGuard сам обновляет этот "
     "комментарий; ручные правки будут перезаписаны. clientguard:sticky"),
    ("da", "ClientGuard — Sundhedsscore: 68/100 (gul)",
     CheckBlock("FEJL", "Projektlederen er briefet",
                ("Ingen brief fra bureauet; Carla Client uploadede “brief.docx”.",),
                "Sådan rettes det", "Skriv briefen, og få projektlederen til at kvittere."),
     "Kun for bureauet: kunden kan ikke se dette. ClientGuard holder selv denne "
     "kommentar opdateret; manuelle rettelser overskrives. clientguard:sticky"),
])
def test_every_language(language, heading, first_check, footer):
    content = sticky_content(failing(), language, link="https://guard.agency.example/h/SHOE-1")
    assert (content.heading, content.checks[0], content.footer) == (heading, first_check, footer)
    assert content.link.label == {"en": "Open health check", "ru": "Открыть проверку",
                                  "da": "Åbn sundhedstjek"}[language]


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_all_clear_line_in_every_language(language):
    assert sticky_content(report((passes(), 5.0)), language).all_clear == {
        "en": "Every check passes.", "ru": "Все проверки пройдены.",
        "da": "Alle tjek er bestået."}[language]


def test_the_footer_carries_the_marker_the_connectors_look_for():
    assert STICKY_MARKER == "clientguard:sticky"
    assert sticky_content(failing(), "ru").footer.endswith(" clientguard:sticky")


def test_the_real_catalogue_gives_one_block_per_finding(config: Config):
    result = evaluate(engagement(), config, NOW)
    content = sticky_content(result, "en")
    assert result.findings
    assert [check.title for check in content.checks] == [
        finding.rule.title.en for finding in result.findings]
    assert all(check.evidence for check in content.checks)


# -- the fingerprint -------------------------------------------------------------------

def test_the_fingerprint_does_not_change_when_only_the_evaluation_time_does():
    later = failing(now=NOW + timedelta(hours=5))
    assert later.now != failing().now
    assert sticky_content(later, "en").fingerprint == sticky_content(failing(), "en").fingerprint


def test_the_fingerprint_changes_when_the_evidence_does():
    assert (sticky_content(failing(file="brief-v2.docx"), "en").fingerprint
            != sticky_content(failing(), "en").fingerprint)


def test_the_fingerprint_changes_with_the_language_and_with_a_link_added():
    base = sticky_content(failing(), "en").fingerprint
    assert sticky_content(failing(), "da").fingerprint != base
    assert sticky_content(failing(), "en", link="https://guard.example/h/1").fingerprint != base


def test_a_new_signature_on_the_same_link_alone_does_not_rewrite_the_comment():
    first = sticky_content(failing(), "en", link="https://guard.example/h/1?sig=a&exp=1")
    second = sticky_content(failing(), "en", link="https://guard.example/h/1?sig=b&exp=2")
    assert first.link == Link("Open health check", "https://guard.example/h/1?sig=a&exp=1")
    assert first.fingerprint == second.fingerprint


def test_the_fingerprint_is_the_same_in_another_process():
    """No `hash()` anywhere: a new interpreter with another hash seed agrees."""
    code = ("from tests.core.test_comment import failing;"
            "from plugin.core.comment import sticky_content;"
            "print(sticky_content(failing(), 'ru').fingerprint)")
    root = Path(__file__).resolve().parents[2]
    other = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                           text=True, check=True, env={"PYTHONHASHSEED": "12345"})
    fingerprint = sticky_content(failing(), "ru").fingerprint
    assert other.stdout.strip() == fingerprint
    assert fingerprint.startswith("sha256:") and len(fingerprint) == len("sha256:") + 64


def test_a_link_must_be_http():
    with pytest.raises(ValueError, match="http"):
        sticky_content(failing(), "en", link="javascript:alert(1)")
