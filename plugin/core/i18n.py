"""Messages in every language ClientGuard speaks.

A `Text` needs all three languages to be constructed, so a rule cannot ship half-translated;
`tests/core/test_i18n.py` also checks that every language uses the same placeholders.

A count is written with the word it governs as `{count:plural:comment has|comments have}`:
the count, then the form its language's plural rule picks (CLDR's, through Babel), the forms
given in the order of `PLURALS` — Russian has three (1 комментарий, 2 комментария,
5 комментариев), so "comment(s)" never reaches a person.

A fractional number (hours) and an amount of money (`Money`) are written as their language
writes them: 11.5 hours, 11,5 часа, 11,5 timer; 1,234.50 DKK, 1 234,50 DKK, 1.234,50 DKK.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, Literal

from babel import Locale
from babel.numbers import format_decimal
from babel.plural import PluralRule

Language = Literal["en", "ru", "da"]
LANGUAGES: tuple[Language, ...] = ("en", "ru", "da")

PLURALS: dict[Language, tuple[str, ...]] = {
    "en": ("one", "other"), "ru": ("one", "few", "many"), "da": ("one", "other")}
PLURAL = "plural:"  # the format spec that asks for a plural form
_PLURAL_FIELD = re.compile(r"\{(\w+):plural:([^}]*)\}")


@dataclass(frozen=True)
class Text:
    """One message in English, Russian and Danish, with `str.format` placeholders."""

    en: str
    ru: str
    da: str

    def __post_init__(self) -> None:
        for language in LANGUAGES:
            for _, name, spec, _ in string.Formatter().parse(getattr(self, language)):
                if spec and spec.startswith(PLURAL) and (
                        len(spec.removeprefix(PLURAL).split("|")) != len(PLURALS[language])):
                    raise ValueError(f"{language}: {{{name}:{spec}}} needs one form for each "
                                     f"of {', '.join(PLURALS[language])}")

    def render(self, language: Language, **params: Any) -> str:
        return _Formatter(language).format(getattr(self, language), **params)

    def template(self, language: Language) -> str:
        """The message as a person reads a template (the catalogue's docs): a plural as
        `{count} comments have`, its general form."""
        return _PLURAL_FIELD.sub(lambda field: f"{{{field[1]}}} {field[2].split('|')[-1]}",
                                 getattr(self, language))

    def placeholders(self, language: Language) -> frozenset[str]:
        text = getattr(self, language)
        return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


@dataclass(frozen=True)
class Money:
    """An amount as evidence shows it: two decimals in its language's notation, then its
    currency's code when it has one (a code, not a symbol: "kr." could be three crowns)."""

    amount: Decimal
    currency: str | None = None

    def render(self, language: Language) -> str:
        digits = format_decimal(self.amount, "#,##0.00", locale=language)
        return f"{digits}\u00a0{self.currency}" if self.currency else digits


def shown(value: Any, language: Language) -> str:
    """A message's parameter as it reads in `language`: a fraction in its notation with at
    most two decimals (11.5 / 11,5), a phrase or an amount rendered, anything else as is."""
    if isinstance(value, float | Decimal):
        return format_decimal(value, "#,##0.##", locale=language)
    return value.render(language) if isinstance(value, Text | Money) else str(value)


class _Formatter(string.Formatter):
    """`str.format`, each parameter as `shown`; `{n:plural:…|…}` as the module says."""

    def __init__(self, language: Language) -> None:
        self.language = language

    def format_field(self, value: Any, format_spec: str) -> str:
        if not format_spec:
            return shown(value, self.language)
        if not format_spec.startswith(PLURAL):
            return super().format_field(value, format_spec)
        category = _plural_rule(self.language)(value)
        order = PLURALS[self.language]
        if category not in order:  # Russian's `other`, for fractions, takes the `few` form
            category = "few"
        form = format_spec.removeprefix(PLURAL).split("|")[order.index(category)]
        return f"{shown(value, self.language)} {form}"


@cache
def _plural_rule(language: Language) -> PluralRule:
    return Locale.parse(language).plural_form


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
        ru="Состояние проекта: {score}/100 ({band})",
        da="Sundhedsscore: {score}/100 ({band})",
    ),
    "band_green": Text(en="green", ru="зелёная зона", da="grøn"),
    "band_amber": Text(en="amber", ru="жёлтая зона", da="gul"),
    "band_red": Text(en="red", ru="красная зона", da="rød"),
    "evaluated_at": Text(
        en="Evaluated at {now}", ru="Проверено {now}", da="Evalueret {now}"
    ),
    "findings": Text(en="Findings", ru="Замечания", da="Fund"),
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
        da="Kun for bureauet: kunden kan ikke se dette. ClientGuard holder selv denne "
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
    "backfill_progress": Text(en="Backfilling {count:plural:engagement|engagements}",
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
