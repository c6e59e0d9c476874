"""Turn a `Report` into what people and programs read: plain text or a JSON document.

Pure: the language is a parameter; all text comes from the rules' and the report's messages.
"""

from __future__ import annotations

from typing import Any

from plugin.core.engine import Report, RuleResult
from plugin.core.i18n import UI, Language, moment
from plugin.core.rule import Reason

_MARK = {"fail": "✗", "warn": "!", "pass": "✓", "not_configured": "–"}


def _ui(name: str, language: Language, /, **params: Any) -> str:
    """A report phrase from `UI`; positional-only, so `key=` can be a placeholder."""
    return UI[name].render(language, **params)


def _evidence(reason: Reason, language: Language) -> dict[str, Any]:
    return {
        "code": reason.code,
        "level": reason.level.value,
        "message": reason.render(language),
        "params": reason.localised_params(language),
    }


def _result(result: RuleResult, language: Language) -> dict[str, Any]:
    rule = result.rule
    return {
        "rule": rule.id,
        "title": rule.title.render(language),
        "status": result.status.value,
        "severity": rule.severity.value,
        "weight": result.weight,
        "evidence": [_evidence(reason, language) for reason in result.outcome.reasons],
        "fix": rule.fix.render(language),
    }


def report_document(report: Report, language: Language) -> dict[str, Any]:
    """The report as a JSON-ready document (`clientguard check --format json`)."""
    engagement = report.engagement
    return {
        "engagement": {
            "connector": engagement.connector,
            "key": engagement.key,
            "title": engagement.title,
            "url": engagement.url,
            "client": engagement.client.name,
            "status": engagement.status,
        },
        "evaluated_at": report.now.isoformat(),
        "language": language,
        "score": report.score,
        "band": report.band.value,
        "findings": [_result(result, language) for result in report.findings],
        "passed": [_result(result, language) for result in report.passed],
        "not_configured": [_result(result, language) for result in report.not_configured],
        "faulty": [
            {"rule": item.rule.id, "title": item.rule.title.render(language),
             "error": item.error}
            for item in report.faulty
        ],
        "disabled": [rule.id for rule in report.disabled],
    }


def report_text(report: Report, language: Language) -> str:
    """The report for a terminal: score first, then what to fix, then the rest."""
    engagement = report.engagement
    band = _ui(f"band_{report.band.value}", language)
    lines = [
        _ui("report_title", language, key=engagement.key, title=engagement.title),
        f"{engagement.client.name} · {engagement.status} · "
        + _ui("evaluated_at", language, now=moment(report.now)),
        _ui("score", language, score=report.score, band=band),
        "",
    ]
    if report.findings:
        lines.append(_ui("findings", language))
        for result in report.findings:
            status = _ui(f"status_{result.status.value}", language)
            lines.append(f"  {_MARK[result.status.value]} {status}  "
                         f"{result.rule.title.render(language)}  [{result.rule.id}]")
            lines += [f"      - {reason.render(language)}" for reason in result.outcome.reasons]
            lines.append(f"      {_ui('fix', language)}: {result.rule.fix.render(language)}")
    else:
        lines.append(_ui("no_findings", language))
    if report.passed:
        lines += ["", f"{_ui('passed', language)} ({len(report.passed)}):"]
        lines += [f"  {_MARK['pass']} {result.rule.title.render(language)}  [{result.rule.id}]"
                  for result in report.passed]
    if report.not_configured:
        lines += ["", f"{_ui('not_configured', language)} ({len(report.not_configured)}):"]
        for result in report.not_configured:
            why = "; ".join(reason.render(language) for reason in result.outcome.reasons)
            lines.append(f"  {_MARK['not_configured']} {result.rule.title.render(language)}"
                         f"  [{result.rule.id}] — {why}")
    if report.faulty:
        lines += ["", f"{_ui('faulty', language)} ({len(report.faulty)}):"]
        lines += [f"  ? {item.rule.title.render(language)}  [{item.rule.id}] — {item.error}"
                  for item in report.faulty]
    if report.disabled:
        lines += ["", f"{_ui('disabled', language)}: " + ", ".join(r.id for r in report.disabled)]
    return "\n".join(lines) + "\n"
