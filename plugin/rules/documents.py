"""The paperwork before work starts: a transparent estimate and a reviewed contract.

Seed: 001 ("non-transparent deal terms", "bad documents").
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Any

from marshmallow import fields, validate

from plugin.core.i18n import Text, moment
from plugin.core.model import DocumentKind, Engagement, Side, during
from plugin.core.rule import PASSED, Message, Outcome, RuleSettings, Severity, rule, window_days
from plugin.core.rule import Side as RuleSide
from plugin.core.schema import WholeNumber
from plugin.rules.common import window_start
from plugin.rules.text import pattern_list, whole_words

# --- transparent-estimate ----------------------------------------------------------------

NO_ESTIMATE = Message(
    code="no_estimate",
    en="Work started on {started} without an estimate attached.",
    ru="Работа началась {started} без приложенной сметы.",
    da="Arbejdet startede {started} uden et vedhæftet overslag.",
)
ESTIMATE_LATE = Message(
    code="estimate_late",
    en="The estimate “{name}” was added on {added}, after work started on {started}.",
    ru="Смета «{name}» добавлена {added}, уже после начала работ {started}.",
    da="Overslaget “{name}” blev tilføjet {added}, efter arbejdet startede {started}.",
)
NOT_APPROVED = Message(
    code="not_approved",
    en="The client has not approved the estimate.",
    ru="Клиент не согласовал смету.",
    da="Kunden har ikke godkendt overslaget.",
)
OVER_DETAILED = Message(
    code="over_detailed",
    en="The estimate “{name}” has {count} line items (more than {limit}); over-detailed "
    "estimates invite line-by-line budget cuts.",
    ru="В смете «{name}» {count:plural:позиция|позиции|позиций} (допустимо не больше "
    "{limit}); излишне подробная смета провоцирует урезать бюджет по строчкам.",
    da="Overslaget “{name}” har {count} linjer (flere end {limit}); for detaljerede "
    "overslag lægger op til, at budgettet skæres ned linje for linje.",
)
EXTRA_CHARGES = Message(
    code="extra_charges",
    en="Extra charges came up on {when} (“{excerpt}”) with no updated estimate since.",
    ru="{when}: речь зашла о доплатах («{excerpt}»), а обновлённой сметы с тех пор нет.",
    da="Der blev nævnt ekstraregninger {when} (“{excerpt}”), og der er ikke udsendt et "
    "opdateret overslag siden.",
)

EXTRA_CHARGE_MARKERS = (
    r"change requests?", r"extra (?:cost|charge|work)\w*", r"additional (?:cost|charge)\w*",
    r"out of scope", r"доплат\w*", r"дополнительн\w* (?:расход|работ|оплат|стоимост)\w*",
    r"вне (?:рамок|объ[её]ма)", r"ekstra(?:arbejde|udgift|betaling| omkostning)\w*",
    r"merpris\w*", r"tillægs?(?:pris|betaling)\w*",
)


class EstimateSettings(RuleSettings):
    max_line_items = WholeNumber(
        load_default=30, validate=validate.Range(min=1),
        metadata={"description": "More line items than this is over-detailed"},
    )
    extra_charge_markers = pattern_list(
        EXTRA_CHARGE_MARKERS,
        "Patterns (regular expressions, whole words) that mark an extra charge in a comment "
        "or a changed field",
    )
    window_days = window_days()


def _excerpt(text: str, match: re.Match[str], width: int = 60) -> str:
    start = max(0, match.start() - width // 2)
    return " ".join(text[start:start + width].split())


@rule(
    id="transparent-estimate",
    side=RuleSide.AGENCY,
    severity=Severity.MAJOR,
    source="001 “non-transparent deal terms”",
    title=Text(
        en="Transparent estimate before work starts",
        ru="Прозрачная смета до начала работ",
        da="Gennemsigtigt overslag, før arbejdet starter",
    ),
    rationale=Text(
        en="A client who does not know what they pay for, or who meets surprise charges, "
        "stops trusting every later invoice.",
        ru="Клиент, который не понимает, за что платит, или сталкивается с внезапными "
        "доплатами, перестаёт доверять всем последующим счетам.",
        da="En kunde, der ikke ved, hvad der betales for, eller møder overraskende "
        "ekstraregninger, holder op med at stole på alle senere fakturaer.",
    ),
    fix=Text(
        en="Attach a short estimate grouped into a few understandable blocks, get it "
        "approved before work starts, and re-issue it whenever extra charges arise.",
        ru="Приложите короткую смету из нескольких понятных блоков, согласуйте её до начала "
        "работ и обновляйте при любых доплатах.",
        da="Vedhæft et kort overslag i få forståelige blokke, få det godkendt før start, og "
        "send et opdateret overslag, når der opstår ekstraregninger.",
    ),
    settings=EstimateSettings,
    messages=(NO_ESTIMATE, ESTIMATE_LATE, NOT_APPROVED, OVER_DETAILED, EXTRA_CHARGES),
)
def transparent_estimate(e: Engagement, s: Any, now: datetime) -> Outcome:
    estimates = [doc for doc in e.documents if doc.kind is DocumentKind.ESTIMATE]
    started = e.started_at
    reasons = []
    if started is not None:
        if not estimates:
            reasons.append(NO_ESTIMATE.fail(started=moment(started)))
        elif estimates[0].added_at > started:
            reasons.append(ESTIMATE_LATE.fail(
                name=estimates[0].name, added=moment(estimates[0].added_at),
                started=moment(started),
            ))
        approval_known = e.field_mapped("estimate_approved") or any(
            doc.approved is not None for doc in estimates
        )
        approved = e.fields.get("estimate_approved") is True or any(
            doc.approved for doc in estimates
        )
        if estimates and approval_known and not approved:
            reasons.append(NOT_APPROVED.fail())
    if estimates:
        latest = estimates[-1]
        if latest.line_items is not None and latest.line_items > s.max_line_items:
            reasons.append(OVER_DETAILED.warn(
                name=latest.name, count=latest.line_items, limit=s.max_line_items))
    if estimates:
        since = max(window_start(now, s.window_days), estimates[-1].added_at)
        said = _texts_between(e, since, now)
        scanner = whole_words(tuple(s.extra_charge_markers))
        for index, match in scanner.finditer([text for _, text in said]):
            when, text = said[index]
            reasons.append(EXTRA_CHARGES.warn(when=moment(when), excerpt=_excerpt(text, match)))
            break
    return Outcome.judge(reasons)


def _texts_between(e: Engagement, since: datetime, now: datetime) -> list[tuple[datetime, str]]:
    """Agency and client words after `since` up to `now`: comments and changed field values,
    in time order."""
    texts = [(c.at, c.text) for c in during(e.comments, since, now)
             if c.at > since and c.side is not Side.UNKNOWN]
    texts += [(ch.at, ch.to_value) for ch in during(e.changes, since, now)
              if ch.at > since and ch.to_value]
    return sorted(texts, key=lambda said: said[0])


# --- contract-reviewed -------------------------------------------------------------------

NO_CONTRACT = Message(
    code="no_contract",
    en="No contract is attached, and {trigger} on {when}.",
    ru="Договор не приложен, а {trigger} {when}.",
    da="Der er ingen kontrakt vedhæftet, og {trigger} {when}.",
)
UNREVIEWED = Message(
    code="unreviewed",
    en="The contract “{name}” is not made from a reviewed template (template: {template}) "
    "and is not marked as reviewed by legal.",
    ru="Договор «{name}» составлен не по проверенному шаблону (шаблон: {template}) и не "
    "отмечен как проверенный юристом.",
    da="Kontrakten “{name}” er ikke lavet ud fra en godkendt skabelon (skabelon: {template}) "
    "og er ikke markeret som gennemgået af en jurist.",
)
CONTRACT_LATE = Message(
    code="contract_late",
    en="The contract “{name}” was added on {added}, after {trigger} on {when}.",
    ru="Договор «{name}» добавлен {added}, уже после того, как {trigger} {when}.",
    da="Kontrakten “{name}” blev tilføjet {added}, efter at {trigger} {when}.",
)
NO_REVIEW_SOURCE = Message(
    code="no_review_source",
    en="No reviewed templates are configured and no legal-review flag is available.",
    ru="Не настроен список проверенных шаблонов и нет отметки о проверке юристом.",
    da="Der er ingen godkendte skabeloner konfigureret og intet felt for juridisk gennemgang.",
)
TRIGGER = {
    "started": Text(en="work started", ru="работа началась", da="arbejdet startede"),
    "invoiced": Text(en="the first invoice was issued", ru="выставлен первый счёт",
                     da="den første faktura blev udstedt"),
}


class ContractSettings(RuleSettings):
    reviewed_templates = fields.List(
        fields.String(), load_default=list,
        metadata={"description": "Ids/versions of contract templates legal has reviewed"},
    )


@rule(
    id="contract-reviewed",
    side=RuleSide.AGENCY,
    severity=Severity.MAJOR,
    source="001 “bad documents”",
    title=Text(
        en="Reviewed contract before work or invoicing",
        ru="Проверенный договор до начала работ и выставления счетов",
        da="Gennemgået kontrakt før arbejde eller fakturering",
    ),
    rationale=Text(
        en="A contract downloaded from the internet protects neither side, and the client "
        "notices.",
        ru="Договор, скачанный из интернета, не защищает ни одну из сторон, и клиент это "
        "замечает.",
        da="En kontrakt hentet på internettet beskytter ingen af parterne, og det bemærker "
        "kunden.",
    ),
    fix=Text(
        en="Use a template from the agency's reviewed list, or have legal review this "
        "contract, and attach it before work starts or the first invoice.",
        ru="Используйте шаблон из проверенного списка агентства или отдайте договор юристу "
        "и приложите его до начала работ или первого счёта.",
        da="Brug en skabelon fra bureauets godkendte liste, eller få en jurist til at gennemgå "
        "kontrakten, og vedhæft den før start eller første faktura.",
    ),
    settings=ContractSettings,
    messages=(NO_CONTRACT, CONTRACT_LATE, UNREVIEWED, NO_REVIEW_SOURCE),
)
def contract_reviewed(e: Engagement, s: Any, now: datetime) -> Outcome:
    # (latest moment the contract may be added, what happened then, when it happened)
    deadlines: list[tuple[datetime, str, datetime | date]] = []
    if e.started_at is not None:
        deadlines.append((e.started_at, "started", e.started_at))
    if e.invoices:
        first = min(e.invoices, key=lambda invoice: invoice.issued)
        # An invoice carries only its day: a contract added that same day came before it.
        end_of_day = datetime.combine(first.issued, time.max, e.created.tzinfo)
        deadlines.append((end_of_day, "invoiced", first.issued))
    if not deadlines:
        return PASSED
    deadline, trigger, happened = min(deadlines, key=lambda item: item[0])
    contracts = [doc for doc in e.documents if doc.kind is DocumentKind.CONTRACT]
    if not contracts:
        return Outcome.judge([NO_CONTRACT.fail(trigger=TRIGGER[trigger], when=moment(happened))])
    if contracts[0].added_at > deadline:
        return Outcome.judge([CONTRACT_LATE.fail(
            name=contracts[0].name, added=moment(contracts[0].added_at),
            trigger=TRIGGER[trigger], when=moment(happened),
        )])
    reviewed_templates = set(s.reviewed_templates)
    field_template = e.fields.get("contract_template")
    if (
        e.fields.get("contract_reviewed") is True
        or field_template in reviewed_templates
        or any(doc.reviewed_by_legal or doc.template_id in reviewed_templates
               for doc in contracts)
    ):
        return PASSED
    can_tell = (
        reviewed_templates
        or e.field_mapped("contract_reviewed")
        or any(doc.reviewed_by_legal is not None for doc in contracts)
    )
    if not can_tell:
        return Outcome.not_configured(NO_REVIEW_SOURCE.note())
    contract = contracts[-1]
    template = contract.template_id or field_template or "—"
    return Outcome.judge([UNREVIEWED.fail(name=contract.name, template=template)])
