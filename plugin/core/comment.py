"""The sticky comment's content: what agency staff read on the ticket, platform-neutral.

Pure: a `Report` in, a `StickyContent` out; each connector turns it into its platform's markup
(`connectors/jira/markup.py`). Every piece of text is already in the agency's language; the
footer carries `STICKY_MARKER`, by which a connector finds its own comment again.
`StickyContent.fingerprint` is what decides "nothing changed, write nothing".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from plugin.core.engine import Report, RuleResult
from plugin.core.i18n import UI, Language

STICKY_MARKER = "clientguard:sticky"
"""Written in the footer of every sticky comment: how a connector finds its own comment
again and recognises the events its writes cause."""



@dataclass(frozen=True)
class CheckBlock:
    """One failing or warning check: its status word, title, evidence lines and the fix."""

    status: str
    title: str
    evidence: tuple[str, ...]
    fix_label: str
    fix: str


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class StickyContent:
    """Everything the sticky comment says, in reading order.

    `all_clear` is set only when no check fails or warns and none crashed; `unchecked`
    names the rules that crashed, so "every check passes" is never said over a broken rule."""

    heading: str
    checks: tuple[CheckBlock, ...]
    all_clear: str | None
    unchecked: str | None
    link: Link | None
    footer: str

    @property
    def fingerprint(self) -> str:
        """A stable hash of what a reader sees, to compare with the one stored for the last
        write. SHA-256 over canonical JSON, so equal across runs and processes. The link
        counts by its label only: its URL may carry a signature that changes on every run,
        and a new signature alone must not rewrite the comment."""
        seen = asdict(self)
        if self.link is not None:
            seen["link"] = self.link.label
        canonical = json.dumps(seen, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check(result: RuleResult, language: Language) -> CheckBlock:
    return CheckBlock(
        status=UI[f"status_{result.status.value}"].render(language),
        title=result.rule.title.render(language),
        evidence=tuple(reason.render(language) for reason in result.outcome.reasons),
        fix_label=UI["fix"].render(language),
        fix=result.rule.fix.render(language),
    )


def sticky_content(report: Report, language: Language, link: str | None = None
                   ) -> StickyContent:
    """The sticky comment for `report`: the score, every failing and warning check with its
    evidence and fix (or the all-clear line), optionally the "Open health check" `link`
    (http or https), and the internal-use footer with the marker. No evaluation time: a
    re-evaluation that finds the same thing produces the same content."""
    if link is not None and urlsplit(link).scheme not in ("https", "http"):
        raise ValueError(f"the health check link must be an http(s) URL, got {link!r}")
    band = UI[f"band_{report.band.value}"].render(language)
    unchecked = None
    if report.faulty:
        titles = ", ".join(item.rule.title.render(language) for item in report.faulty)
        unchecked = f"{UI['faulty'].render(language)}: {titles}"
    return StickyContent(
        heading="ClientGuard — " + UI["score"].render(language, score=report.score, band=band),
        checks=tuple(_check(result, language) for result in report.findings),
        all_clear=(None if report.findings or report.faulty
                   else UI["no_findings"].render(language)),
        unchecked=unchecked,
        link=None if link is None else Link(UI["open_health_check"].render(language),
                                            link),
        footer=f"{UI['sticky_footer'].render(language)} {STICKY_MARKER}",
    )
