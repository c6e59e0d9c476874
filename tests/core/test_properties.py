"""Properties over any valid engagement (hypothesis): evaluation never raises and no rule
is faulty, the score stays within 0–100, results are deterministic for a fixed `now`, and
the engagement JSON round-trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.config import build_config
from plugin.core.engine import evaluate
from plugin.core.fields import MAPPED_FIELDS
from plugin.core.model import (
    Change,
    Client,
    Comment,
    Document,
    DocumentKind,
    Engagement,
    Invoice,
    Person,
    Roles,
    Side,
    StatusCategory,
    StatusChange,
    TimeEntry,
    TimeKind,
    Visibility,
)
from plugin.core.render import report_document
from plugin.core.schema import dump_engagement, load_engagement

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CONFIG = build_config({"agency": {"calendar": {"timezone": "Europe/Copenhagen",
                                               "holiday_country": "DK"}}})

offsets = st.sampled_from([UTC, timezone(timedelta(hours=3)), timezone(timedelta(hours=-5))])
moments = st.builds(
    lambda seconds, tz: (NOW + timedelta(seconds=seconds)).astimezone(tz),
    st.integers(-400 * 86400, 30 * 86400), offsets,
)
days = moments.map(lambda m: m.date())
names = st.text(min_size=1, max_size=12)
people = st.builds(Person, st.sampled_from(["a", "b", "c", "d", "e", "f"]), names,
                   st.sampled_from(Side), st.none() | st.just("x@example.com"))
words = st.sampled_from(["idiot", "клиент — идиот", "kunden er dum", "discount", "скидка",
                         "change request", "internal only", "Thanks!", "", "\n> quoted"])
texts = st.lists(words | st.text(max_size=30), max_size=5).map(" ".join)
maybe_people = st.none() | st.lists(people, max_size=3).map(tuple)


def _field_values(kind: str):
    return {
        "text": st.none() | st.sampled_from(["", "sales", "leads", "cash", "awareness", "x"]),
        "flag": st.none() | st.booleans(),
        "number": st.none() | st.floats(0, 500, allow_nan=False),
        "date": st.none() | days,
        "list": st.none() | st.lists(st.sampled_from(["seo", "content", "ppc"]), max_size=2),
    }[kind]


mapped_fields = st.fixed_dictionaries(
    {}, optional={field.name: _field_values(field.kind) for field in MAPPED_FIELDS})
invoices = st.builds(
    lambda amount, issued, due_days, paid_after: Invoice(
        "i", Decimal(amount), issued, issued + timedelta(days=due_days),
        paid=paid_after is not None,
        paid_on=None if paid_after is None else issued + timedelta(days=paid_after),
        currency="DKK"),
    st.integers(0, 100000), days, st.integers(0, 60), st.none() | st.integers(0, 120),
)

engagements = st.builds(
    Engagement,
    connector=st.just("jira"),
    key=st.just("P-1"),
    title=names,
    status=names,
    status_category=st.sampled_from(StatusCategory),
    created=moments,
    updated=moments,
    client=st.builds(Client, st.sampled_from(["acme", "beta"]), names,
                     st.lists(people, max_size=3).map(tuple), maybe_people),
    roles=st.builds(Roles, maybe_people, maybe_people, st.none() | people),
    project=st.none() | st.just("SHOE"),
    due=st.none() | days,
    labels=st.lists(st.sampled_from(["discount", "vip"]), max_size=2).map(tuple),
    status_history=st.lists(st.builds(StatusChange, moments, names,
                                      st.sampled_from(StatusCategory)), max_size=3).map(tuple),
    documents=st.lists(st.builds(
        Document, names, st.sampled_from(DocumentKind), names, moments, st.none() | people,
        st.none() | st.booleans(), st.none() | st.just("tpl-1"), st.none() | st.booleans(),
        st.none() | st.integers(0, 80)), max_size=4).map(tuple),
    comments=st.lists(st.builds(Comment, names, people, st.sampled_from(Visibility), moments,
                                texts), max_size=8).map(tuple),
    time_entries=st.lists(st.builds(TimeEntry, people, st.floats(0, 40, allow_nan=False),
                                    st.sampled_from(TimeKind), moments), max_size=6).map(tuple),
    invoices=st.none() | st.lists(invoices, max_size=4).map(tuple),
    changes=st.lists(st.builds(Change, st.sampled_from(["due", "status", "goals"]), moments,
                               st.none() | names, st.none() | names, st.none() | people),
                     max_size=4).map(tuple),
    fields=mapped_fields,
)

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(engagements)
def test_evaluate_never_raises_and_no_rule_is_faulty(engagement: Engagement) -> None:
    report = evaluate(engagement, CONFIG, NOW)
    assert report.faulty == ()
    assert 0 <= report.score <= 100
    for language in ("en", "ru", "da"):
        report_document(report, language)  # every message renders


@PROPERTY_SETTINGS
@given(engagements)
def test_evaluation_is_deterministic_for_a_fixed_now(engagement: Engagement) -> None:
    first = report_document(evaluate(engagement, CONFIG, NOW), "en")
    assert report_document(evaluate(engagement, CONFIG, NOW), "en") == first


@PROPERTY_SETTINGS
@given(engagements)
def test_engagement_json_round_trips(engagement: Engagement) -> None:
    assert load_engagement(dump_engagement(engagement)) == engagement
