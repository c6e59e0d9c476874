"""goals-defined, analytics-in-place and realistic-timeline: what the client expects."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from plugin.core.model import Engagement, StatusCategory
from plugin.core.rule import Outcome, Status
from plugin.rules.expectations import analytics_in_place, goals_defined, realistic_timeline
from tests.builders import ago, change, engagement, not_started
from tests.rules.checking import assert_renders, check


def assert_outcome(outcome: Outcome, status: Status, codes: list[str],
                   params: list[dict[str, Any]]) -> None:
    """Status, evidence codes in order, key parameters of each reason (in order), and every
    reason rendered in every language with its parameters in the text."""
    assert outcome.status is status
    assert [reason.code for reason in outcome.reasons] == codes
    for reason, expected in zip(outcome.reasons, params, strict=False):
        assert {name: reason.params[name] for name in expected} == expected
    assert_renders(outcome)


# The builder's engagement was created 2026-09-21 12:00 and moved into progress
# 2026-10-11 12:00 (NOW is 2026-11-20 12:00 UTC).
STARTED = "2026-10-11 12:00 UTC"
FILLED = {"goals": "Double online sales", "input_data": "Margin 40 %, average order 600 DKK"}

# --- goals-defined -----------------------------------------------------------------------

GOALS_CASES = [
    pytest.param(engagement(fields={}), Status.NOT_CONFIGURED, ["not_mapped"],
                 [{"field": "goals"}], id="neither-field-mapped"),
    pytest.param(not_started(fields={"goals": None, "input_data": None}), Status.PASS, [], [],
                 id="not-started-yet"),
    pytest.param(engagement(fields=FILLED), Status.PASS, [], [], id="both-filled"),
    pytest.param(engagement(fields={**FILLED, "goals": None}), Status.FAIL, ["field_empty"],
                 [{"field": "goals", "started": STARTED}], id="goals-mapped-but-empty"),
    pytest.param(engagement(fields={**FILLED, "input_data": ""}), Status.FAIL,
                 ["field_empty"], [{"field": "input_data", "started": STARTED}],
                 id="input-data-empty-string"),
    pytest.param(engagement(fields={"goals": None, "input_data": None}), Status.FAIL,
                 ["field_empty", "field_empty"], [{"field": "goals"}, {"field": "input_data"}],
                 id="both-empty"),
    pytest.param(engagement(fields={"goals": "More leads"}), Status.PASS, [], [],
                 id="only-goals-mapped-and-filled"),
    pytest.param(engagement(fields={"input_data": None}), Status.FAIL, ["field_empty"],
                 [{"field": "input_data"}], id="only-input-data-mapped-and-empty"),
    pytest.param(engagement(fields=FILLED, changes=(
        change("goals", ago(30), FILLED["goals"]),)), Status.FAIL, ["filled_late"],
        [{"field": "goals", "filled": "2026-10-21 12:00 UTC", "started": STARTED}],
        id="goals-filled-after-start"),
    pytest.param(engagement(fields=FILLED, changes=(
        change("input_data", ago(39), FILLED["input_data"], frm=""),)), Status.FAIL,
        ["filled_late"], [{"field": "input_data", "filled": "2026-10-12 12:00 UTC"}],
        id="input-data-filled-a-day-after-start"),
    pytest.param(engagement(fields=FILLED, changes=(
        change("goals", ago(45), FILLED["goals"]),
        change("input_data", ago(41), FILLED["input_data"]))), Status.PASS, [], [],
        id="filled-before-start"),
    pytest.param(engagement(fields=FILLED, changes=(
        change("goals", ago(45), "More sales"),
        change("goals", ago(10), FILLED["goals"], frm="More sales"))), Status.PASS, [], [],
        id="edited-after-start"),
    pytest.param(engagement(status_history=(), fields={"goals": None}), Status.FAIL,
                 ["field_empty"], [{"started": "2026-09-21 12:00 UTC"}],
                 id="in-progress-without-history-started-when-created"),
    pytest.param(engagement(status="Done", status_category=StatusCategory.DONE,
                            fields={"goals": None}), Status.FAIL, ["field_empty"], [],
                 id="finished-engagement-still-reports-it"),
]


@pytest.mark.parametrize(("e", "status", "codes", "params"), GOALS_CASES)
def test_goals_defined(e: Engagement, status: Status, codes: list[str],
                       params: list[dict[str, Any]]) -> None:
    assert_outcome(check(goals_defined, e, {}), status, codes, params)


def test_filled_late_renders_in_every_language() -> None:
    e = engagement(fields=FILLED, changes=(change("goals", ago(30), FILLED["goals"]),))
    reason = check(goals_defined, e, {}).reasons[0]
    assert reason.render("en") == (
        "“goals” was only filled in on 2026-10-21 12:00 UTC, after work started on "
        "2026-10-11 12:00 UTC."
    )
    assert reason.render("ru") == (
        "Поле «goals» заполнено только 2026-10-21 12:00 UTC, уже после начала работ "
        "2026-10-11 12:00 UTC."
    )


# --- analytics-in-place ------------------------------------------------------------------

ANALYTICS_CASES = [
    pytest.param({}, {}, Status.NOT_CONFIGURED, ["not_mapped"], [{"field": "goal_type"}],
                 id="goal-type-not-mapped"),
    pytest.param({"goal_type": "Awareness"}, {}, Status.PASS, [], [],
                 id="awareness-goal-needs-no-analytics"),
    pytest.param({"goal_type": "awareness", "analytics_confirmed": False}, {}, Status.PASS,
                 [], [], id="awareness-goal-with-analytics-off"),
    pytest.param({"goal_type": "Sales"}, {}, Status.NOT_CONFIGURED, ["not_mapped"],
                 [{"field": "analytics_confirmed"}], id="sales-goal-flags-not-mapped"),
    pytest.param({"goal_type": "Sales", "analytics_confirmed": False}, {}, Status.FAIL,
                 ["no_analytics"], [{"goal": "Sales"}], id="sales-without-analytics"),
    pytest.param({"goal_type": " leads ", "analytics_confirmed": None,
                  "call_tracking_confirmed": None}, {}, Status.FAIL, ["no_analytics"],
                 [{"goal": "leads"}], id="leads-flags-mapped-but-empty"),
    pytest.param({"goal_type": "Продажи", "analytics_confirmed": False,
                  "call_tracking_confirmed": False}, {}, Status.FAIL, ["no_analytics"],
                 [{"goal": "Продажи"}], id="sales-goal-ru"),
    pytest.param({"goal_type": "Salg", "call_tracking_confirmed": False}, {}, Status.FAIL,
                 ["no_analytics"], [{"goal": "Salg"}], id="sales-goal-da"),
    pytest.param({"goal_type": "sales", "analytics_confirmed": True}, {}, Status.PASS, [], [],
                 id="sales-with-analytics"),
    pytest.param({"goal_type": "Лиды", "analytics_confirmed": False,
                  "call_tracking_confirmed": True}, {}, Status.PASS, [], [],
                 id="leads-with-call-tracking-only"),
    pytest.param({"goal_type": "Revenue", "analytics_confirmed": False},
                 {"sales_goal_types": ["revenue"]}, Status.FAIL, ["no_analytics"],
                 [{"goal": "Revenue"}], id="custom-sales-goal-types"),
    pytest.param({"goal_type": "sales", "analytics_confirmed": False},
                 {"sales_goal_types": ["revenue"]}, Status.PASS, [], [],
                 id="custom-list-replaces-defaults"),
]


@pytest.mark.parametrize(("fields", "settings", "status", "codes", "params"), ANALYTICS_CASES)
def test_analytics_in_place(fields: dict[str, Any], settings: dict[str, Any],
                            status: Status, codes: list[str],
                            params: list[dict[str, Any]]) -> None:
    assert_outcome(check(analytics_in_place, engagement(fields=fields), settings), status,
                   codes, params)


# --- realistic-timeline ------------------------------------------------------------------

SEO = {"channels": ["SEO"]}

TIMELINE_CASES = [
    pytest.param(engagement(fields={"results_expected_on": date(2026, 12, 1)}), {},
                 Status.NOT_CONFIGURED, ["not_mapped"], [{"field": "channels"}],
                 id="channels-not-mapped"),
    pytest.param(engagement(fields=SEO), {}, Status.NOT_CONFIGURED, ["not_mapped"],
                 [{"field": "results_expected_on"}], id="expected-date-not-mapped"),
    pytest.param(engagement(fields={"channels": ["PPC", "Social"],
                                    "results_expected_on": date(2026, 10, 20)}), {},
                 Status.PASS, [], [], id="no-long-horizon-channel"),
    pytest.param(engagement(fields={"channels": None, "results_expected_on": None}), {},
                 Status.PASS, [], [], id="no-channels-recorded"),
    pytest.param(engagement(fields={**SEO, "results_expected_on": None}), {}, Status.FAIL,
                 ["no_expected_date"], [{"channels": "SEO"}], id="expected-date-empty"),
    pytest.param(engagement(fields={**SEO, "sale_date": date(2026, 9, 1),
                                    "results_expected_on": date(2026, 11, 1)}), {},
                 Status.FAIL, ["too_soon"],
                 [{"channels": "SEO", "expected": "2026-11-01", "months": 2,
                   "start": "2026-09-01", "minimum": 3}], id="seo-results-in-2-months"),
    pytest.param(engagement(fields={**SEO, "sale_date": date(2026, 9, 1),
                                    "results_expected_on": date(2026, 11, 30)}), {},
                 Status.FAIL, ["too_soon"], [{"months": 2}],
                 id="seo-a-day-short-of-3-months"),
    pytest.param(engagement(fields={**SEO, "sale_date": date(2026, 9, 1),
                                    "results_expected_on": date(2026, 12, 1)}), {},
                 Status.PASS, [], [], id="seo-results-in-3-months"),
    pytest.param(engagement(fields={"channels": ["ppc", "Content", "seo"],
                                    "sale_date": date(2026, 10, 1),
                                    "results_expected_on": date(2026, 10, 31)}), {},
                 Status.FAIL, ["too_soon"], [{"channels": "Content, seo", "months": 0}],
                 id="content-and-seo-in-under-a-month"),
    pytest.param(engagement(fields={**SEO, "sale_date": date(2026, 10, 1),
                                    "results_expected_on": date(2026, 9, 15)}), {},
                 Status.FAIL, ["too_soon"], [{"months": 0}], id="expected-before-the-start"),
    # Where the start is taken from: the sale date, else work start, else creation.
    pytest.param(engagement(fields={**SEO, "results_expected_on": date(2027, 1, 10)}), {},
                 Status.FAIL, ["too_soon"], [{"start": "2026-10-11", "months": 2}],
                 id="no-sale-date-measured-from-work-start"),
    pytest.param(engagement(fields={**SEO, "results_expected_on": date(2027, 1, 11)}), {},
                 Status.PASS, [], [], id="3-months-after-work-start"),
    pytest.param(engagement(fields={**SEO, "sale_date": None,
                                    "results_expected_on": date(2027, 1, 10)}), {},
                 Status.FAIL, ["too_soon"], [{"start": "2026-10-11"}],
                 id="sale-date-mapped-but-empty-falls-back-to-work-start"),
    pytest.param(engagement(fields={**SEO, "sale_date": date(2026, 8, 15),
                                    "results_expected_on": date(2026, 12, 1)}), {},
                 Status.PASS, [], [], id="sale-date-preferred-over-work-start"),
    pytest.param(not_started(fields={**SEO, "results_expected_on": date(2026, 12, 20)}), {},
                 Status.FAIL, ["too_soon"], [{"start": "2026-09-21", "months": 2}],
                 id="not-started-measured-from-creation"),
    pytest.param(not_started(fields={**SEO, "results_expected_on": date(2026, 12, 21)}), {},
                 Status.PASS, [], [], id="not-started-3-months-after-creation"),
    pytest.param(engagement(fields={**SEO, "sale_date": date(2026, 9, 1),
                                    "results_expected_on": date(2026, 12, 1)}),
                 {"min_months": 6}, Status.FAIL, ["too_soon"],
                 [{"months": 3, "minimum": 6}], id="custom-minimum"),
    pytest.param(engagement(fields={"channels": ["SMM"], "sale_date": date(2026, 9, 1),
                                    "results_expected_on": date(2026, 10, 1)}),
                 {"long_horizon_channels": ["smm"]}, Status.FAIL, ["too_soon"],
                 [{"channels": "SMM", "months": 1}], id="custom-long-horizon-channels"),
]


@pytest.mark.parametrize(("e", "settings", "status", "codes", "params"), TIMELINE_CASES)
def test_realistic_timeline(e: Engagement, settings: dict[str, Any], status: Status,
                            codes: list[str], params: list[dict[str, Any]]) -> None:
    assert_outcome(check(realistic_timeline, e, settings), status, codes, params)


def test_too_soon_names_the_minimum_in_months() -> None:
    e = engagement(fields={**SEO, "sale_date": date(2026, 9, 1),
                           "results_expected_on": date(2026, 11, 1)})
    reason = check(realistic_timeline, e, {}).reasons[0]
    assert reason.render("en") == (
        "SEO results are expected on 2026-11-01, 2 months after the start on 2026-09-01; "
        "this channel needs at least 3 months."
    )
    assert reason.render("ru").endswith("таким каналам нужно не меньше 3 мес.")
    assert reason.render("da").endswith("kanalen kræver mindst 3 måneder.")
