"""Messages in every language ClientGuard speaks.

A `Text` needs all three languages to be constructed, so a rule cannot ship half-translated;
`tests/core/test_i18n.py` also checks that every language uses the same placeholders.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

Language = Literal["en", "ru", "da"]
LANGUAGES: tuple[Language, ...] = ("en", "ru", "da")


@dataclass(frozen=True)
class Text:
    """One message in English, Russian and Danish, with `str.format` placeholders."""

    en: str
    ru: str
    da: str

    def render(self, language: Language, **params: Any) -> str:
        return getattr(self, language).format(**params)

    def placeholders(self, language: Language) -> frozenset[str]:
        text = getattr(self, language)
        return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


def moment(when: datetime | date) -> str:
    """A time or day as evidence shows it: unambiguous, the same in every language."""
    if isinstance(when, datetime):
        return when.astimezone(UTC).isoformat(" ", "minutes")[:16] + " UTC"
    return when.isoformat()


# Words of the report itself (not of any rule), shared by every renderer.
UI = {
    "report_title": Text(
        en="ClientGuard health check: {key} — {title}",
        ru="Проверка ClientGuard: {key} — {title}",
        da="ClientGuard-sundhedstjek: {key} — {title}",
    ),
    "score": Text(
        en="Health score: {score}/100 ({band})",
        ru="Оценка здоровья: {score}/100 ({band})",
        da="Sundhedsscore: {score}/100 ({band})",
    ),
    "band_green": Text(en="green", ru="зелёная зона", da="grøn"),
    "band_amber": Text(en="amber", ru="жёлтая зона", da="gul"),
    "band_red": Text(en="red", ru="красная зона", da="rød"),
    "evaluated_at": Text(
        en="Evaluated at {now}", ru="Проверено {now}", da="Evalueret {now}"
    ),
    "findings": Text(en="Findings", ru="Нарушения", da="Fund"),
    "no_findings": Text(
        en="Every check passes.",
        ru="Все проверки пройдены.",
        da="Alle tjek er bestået.",
    ),
    "fix": Text(en="How to fix", ru="Как исправить", da="Sådan rettes det"),
    "passed": Text(en="Passed", ru="Пройдено", da="Bestået"),
    "not_configured": Text(en="Not configured", ru="Не настроено", da="Ikke konfigureret"),
    "faulty": Text(
        en="Could not be checked (internal error)",
        ru="Не удалось проверить (внутренняя ошибка)",
        da="Kunne ikke tjekkes (intern fejl)",
    ),
    "disabled": Text(en="Switched off", ru="Отключено", da="Slået fra"),
    "status_fail": Text(en="FAIL", ru="НАРУШЕНИЕ", da="FEJL"),
    "status_warn": Text(en="WARN", ru="ВНИМАНИЕ", da="ADVARSEL"),
    "status_pass": Text(en="PASS", ru="OK", da="OK"),
    "status_not_configured": Text(en="N/A", ru="Н/Д", da="I/A"),
    "open_health_check": Text(
        en="Open health check",
        ru="Открыть проверку",
        da="Åbn sundhedstjek",
    ),
    "sticky_footer": Text(
        en="Agency-internal: the client cannot see this. ClientGuard keeps this one comment "
        "up to date; manual edits are overwritten.",
        ru="Только для агентства: клиент этого не видит. ClientGuard сам обновляет этот "
        "комментарий; ручные правки будут перезаписаны.",
        da="Kun for bureauet: kunden kan ikke se dette. ClientGuard holder denne ene "
        "kommentar opdateret; manuelle rettelser overskrives.",
    ),
    # What a live `clientguard check` did, or on a dry run would do, to the sticky comment:
    # `sticky_<action>`, `sticky_would_<action>` (`plugin.pipeline.process.Action`).
    "sticky_known": Text(en="sticky comment {id}", ru="комментарий ClientGuard {id}",
                         da="ClientGuard-kommentar {id}"),
    "sticky_new": Text(en="the sticky comment", ru="комментарий ClientGuard",
                       da="ClientGuard-kommentaren"),
    "sticky_create": Text(en="created {comment}", ru="создан {comment}",
                           da="oprettede {comment}"),
    "sticky_would_create": Text(en="would create {comment}", ru="будет создан {comment}",
                                da="ville oprette {comment}"),
    "sticky_update": Text(en="updated {comment}", ru="обновлён {comment}",
                           da="opdaterede {comment}"),
    "sticky_would_update": Text(en="would update {comment}", ru="будет обновлён {comment}",
                                da="ville opdatere {comment}"),
    "sticky_delete": Text(en="deleted {comment}", ru="удалён {comment}",
                           da="slettede {comment}"),
    "sticky_would_delete": Text(en="would delete {comment}", ru="будет удалён {comment}",
                                da="ville slette {comment}"),
    "sticky_unchanged": Text(en="{comment} unchanged", ru="{comment} без изменений",
                             da="{comment} uændret"),
    "sticky_stopped": Text(
        en="{comment} not written (writes stopped after a leak)",
        ru="{comment} не записан (запись остановлена после утечки)",
        da="{comment} ikke skrevet (skrivning stoppet efter et læk)",
    ),
    # `clientguard backfill`: its progress bar and summary, counting each action as
    # `backfill_<action>` or, on a dry run, `backfill_would_<action>`.
    "backfill_progress": Text(en="Backfilling {count} engagement(s)",
                              ru="Проверка клиентских проектов: {count}",
                              da="Gennemgår {count} kundeforløb"),
    "backfill_scanned": Text(en="scanned {count}", ru="проверено {count}",
                             da="gennemgået {count}"),
    "backfill_create": Text(en="created {count}", ru="создано {count}", da="oprettet {count}"),
    "backfill_would_create": Text(en="would create {count}", ru="будет создано {count}",
                                  da="ville oprette {count}"),
    "backfill_update": Text(en="updated {count}", ru="обновлено {count}",
                            da="opdateret {count}"),
    "backfill_would_update": Text(en="would update {count}", ru="будет обновлено {count}",
                                  da="ville opdatere {count}"),
    "backfill_delete": Text(en="deleted {count}", ru="удалено {count}", da="slettet {count}"),
    "backfill_would_delete": Text(en="would delete {count}", ru="будет удалено {count}",
                                  da="ville slette {count}"),
    "backfill_unchanged": Text(en="unchanged {count}", ru="без изменений {count}",
                               da="uændret {count}"),
    "backfill_stopped": Text(
        en="not written (writes stopped after a leak) {count}",
        ru="не записано (запись остановлена после утечки) {count}",
        da="ikke skrevet (skrivning stoppet efter et læk) {count}",
    ),
    "backfill_failed": Text(en="failed {count}", ru="с ошибкой {count}", da="fejlet {count}"),
    "backfill_dry_run": Text(en="(dry run: nothing written)",
                             ru="(пробный запуск: ничего не записано)",
                             da="(prøvekørsel: intet skrevet)"),
    "backfill_failure": Text(en="failed {what}", ru="ошибка: {what}", da="fejlet: {what}"),
}
