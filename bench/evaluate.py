"""How fast the full catalogue evaluates one realistic engagement.

Prints evaluations per second (one core) beside the cost of loading that engagement's JSON
in the same run, so the figures are read against a baseline measured on the same machine at
the same moment. Target: >= 5,000 evaluations/s.

    python bench/evaluate.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from plugin.config import build_config
from plugin.core.engine import evaluate
from plugin.core.model import Comment, Engagement
from plugin.core.schema import loads_engagement

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TARGET_PER_SECOND = 5000

AGENCY = [{"id": f"a{i}", "name": f"Agency Person {i}", "side": "agency",
           "email": f"p{i}@agency.example"} for i in range(6)]
CLIENT = [{"id": f"c{i}", "name": f"Client Person {i}", "side": "client"} for i in range(3)]
# What agency and client write to each other (public) and what the agency notes for itself
# (internal), in the three languages: every comment is two or three of these.
PUBLIC_SENTENCES = [
    "Here is this week's status: the checkout redesign is live on staging.",
    "Could you send us the product feed credentials by Monday?",
    "We have updated the campaign structure and will send the report on Friday.",
    "The new landing page loads in 1.2 seconds on mobile now.",
    "Please find the meeting notes attached; the next call is on Thursday at 10.",
    "Thanks, we will review the estimate with finance tomorrow.",
    "Can we move the launch to the 15th because of the board meeting?",
    "The A/B test has reached significance: variant B converts 8 % better.",
    "We need the brand guidelines before we can finish the banner set.",
    "Your Search Console access works now, thank you.",
    "Vi har opdateret kampagnerne og sender rapporten fredag.",
    "Kan I sende os de nye produktbilleder inden onsdag?",
    "Lanceringen er planlagt til den 1. december, som aftalt.",
    "Tak for mødet i dag, referatet ligger i mappen.",
    "Vi foreslår at flytte budgettet fra display til søgning.",
    "Мы обновили семантическое ядро, отчёт пришлём в пятницу.",
    "Пришлите, пожалуйста, доступы к рекламному кабинету до понедельника.",
    "Новая версия каталога уже на тестовом сервере.",
    "Спасибо, согласуем смету с финансовым отделом завтра.",
    "Конверсия формы заявки выросла на 12 % после правок.",
]
INTERNAL_SENTENCES = [
    "Dina, please take the banner set after the guidelines arrive.",
    "Remember to log the workshop hours on the retainer, not on the project.",
    "Finance wants the November invoice out before the 25th.",
    "Husk at opdatere tidsplanen i projektplanen efter mødet.",
    "Проверьте, что счётчики целей работают на новом домене.",
    "Can someone from SEO join the Thursday call?",
]


def _at(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat()


def realistic_engagement(seed: int = 7) -> dict:
    """50 comments, 20 documents, 200 time entries, 20 invoices, 100 changes."""
    rng = random.Random(seed)
    kinds = ["estimate", "contract", "brief", "other"]
    return {
        "connector": "jira", "key": "SHOE-42", "title": "Webshop relaunch", "status": "Doing",
        "status_category": "in_progress", "created": _at(200), "updated": _at(0.5),
        "project": "SHOE", "due": "2026-12-15", "labels": ["retainer"],
        "client": {"key": "acme", "name": "Acme Shoes", "people": CLIENT,
                   "decision_makers": CLIENT[:1]},
        "roles": {"points_of_contact": AGENCY[:1], "project_managers": AGENCY[1:2],
                  "assignee": AGENCY[2]},
        "status_history": [{"at": _at(180), "status": "Doing", "category": "in_progress"}],
        "documents": [{"id": f"d{i}", "kind": kinds[i % 4], "name": f"doc-{i}.pdf",
                       "added_at": _at(190 - i * 5), "author": AGENCY[i % 2],
                       "approved": True, "template_id": "tpl-2025", "line_items": 12}
                      for i in range(20)],
        "comments": [{"id": f"m{i}", "author": (CLIENT if i % 3 == 0 else AGENCY)[i % 3],
                      "visibility": "internal" if i % 5 == 4 else "public",
                      "at": _at(60 - i * 1.2 + rng.random() * 0.5),
                      "text": " ".join(rng.sample(
                          INTERNAL_SENTENCES if i % 5 == 4 else PUBLIC_SENTENCES,
                          rng.choice((2, 3))))} for i in range(50)],
        "time_entries": [{"person": AGENCY[i % 6], "hours": round(rng.uniform(0.25, 4), 2),
                          "kind": ["work", "work", "work", "call", "meeting"][i % 5],
                          "at": _at(170 - i * 0.8)} for i in range(200)],
        "invoices": [{"id": f"INV-{i}", "amount": f"{rng.randint(5, 40) * 1000}.00",
                      "issued": (NOW - timedelta(days=190 - i * 9)).date().isoformat(),
                      "due": (NOW - timedelta(days=176 - i * 9)).date().isoformat(),
                      "paid": i < 18, "currency": "DKK"} for i in range(20)],
        "changes": [{"field": ["status", "assignee", "due", "goals"][i % 4],
                     "at": _at(150 - i * 1.4), "from": f"v{i}", "to": f"v{i + 1}",
                     "by": AGENCY[i % 3]} for i in range(100)],
        "fields": {"budget_hours": 900, "manager_hours_budget": 200, "goals": "+20% revenue",
                   "input_data": "margin 40%, AOV 800 DKK", "goal_type": "sales",
                   "analytics_confirmed": True, "channels": ["seo", "ppc"],
                   "results_expected_on": "2027-06-01", "sale_date": "2026-05-01",
                   "payment_method": "bank transfer", "prepayment_received_on": "2026-05-20",
                   "brief_acknowledged": True, "estimate_approved": True},
    }


def rate(action: Callable[[], object], seconds: float) -> float:
    """Calls per second of `action`, measured for about `seconds` after a warm-up."""
    for _ in range(50):
        action()
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            action()
        count += 100
    return count / elapsed


def unseen_variant(engagement: Engagement, n: int) -> Engagement:
    """A copy whose comments no evaluation has seen: other words, other times."""
    return replace(engagement, comments=tuple(
        Comment(c.id, c.author, c.visibility, c.at + timedelta(seconds=n), f"{c.text} (#{n})")
        for c in engagement.comments))


def net_rate(make: Callable[[], Engagement], action: Callable[[Engagement], object],
             seconds: float) -> float:
    """Calls per second of `action` on a new `make()` each time, without the cost of
    `make` itself (measured separately and taken off)."""
    with_make = rate(lambda: action(make()), seconds)
    only_make = rate(make, seconds)
    return 1 / (1 / with_make - 1 / only_make)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    text = json.dumps(realistic_engagement())
    engagement = loads_engagement(text)
    config = build_config({"agency": {"calendar": {"timezone": "Europe/Copenhagen",
                                                   "holiday_country": "DK"}}})
    report = evaluate(engagement, config, NOW)
    print(f"engagement: {len(engagement.comments)} comments, {len(engagement.documents)} "
          f"documents, {len(engagement.time_entries)} time entries, "
          f"{len(engagement.invoices or ())} invoices, {len(engagement.changes)} changes; "
          f"{len(text) / 1024:.0f} KiB of JSON")
    print(f"report: score {report.score}, {len(report.findings)} findings, "
          f"{len(report.passed)} passed, {len(report.not_configured)} not configured, "
          f"{len(report.faulty)} faulty")
    loads = rate(lambda: loads_engagement(text), args.seconds)
    count = itertools.count()
    # A new snapshot of a ticket evaluated before (every later event, every sweep): a fresh
    # Engagement object, so nothing it derives lazily carries over from the last evaluation.
    known = net_rate(lambda: replace(engagement), lambda e: evaluate(e, config, NOW),
                     args.seconds)
    # A ticket never seen before: every comment text and time is new to the process.
    first_sight = net_rate(lambda: unseen_variant(engagement, next(count)),
                           lambda e: evaluate(e, config, NOW), args.seconds)
    # The same Engagement object evaluated again.
    same = rate(lambda: evaluate(engagement, config, NOW), args.seconds)
    print(f"baseline  load JSON -> Engagement:             {loads:9,.0f} /s  "
          f"({1e6 / loads:8.1f} µs)")
    for label, value in (("evaluate a ticket seen for the first time", first_sight),
                         ("evaluate a new snapshot of a known ticket", known),
                         ("evaluate the same snapshot again", same)):
        print(f"measured  {label}: {value:9,.0f} /s  ({1e6 / value:8.1f} µs, "
              f"{loads / value * 100:.1f} % of a JSON load)")
    verdict = "met" if known >= TARGET_PER_SECOND else "MISSED"
    print(f"target >= {TARGET_PER_SECOND:,}/s for a new snapshot of a known ticket: {verdict}; "
          f"first sight {first_sight:,.0f}/s")


if __name__ == "__main__":
    main()
