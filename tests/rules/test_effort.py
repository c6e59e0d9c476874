"""service-cost and meeting-load: hours against the budget, and time lost in meetings."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError

from plugin.core.model import TimeKind
from plugin.core.rule import Status
from plugin.rules.effort import meeting_load, service_cost
from tests.builders import (
    ACCOUNT_MANAGER,
    DESIGNER,
    DEVELOPER,
    NOW,
    PROJECT_MANAGER,
    ago,
    engagement,
    time_entry,
)
from tests.rules.checking import assert_outcome, check

CALL = TimeKind.CALL
MEETING = TimeKind.MEETING






# --- service-cost ------------------------------------------------------------------------

SERVICE_COST_CASES = [
    pytest.param({}, (), {}, Status.NOT_CONFIGURED, ["not_mapped"],
                 {"field": "budget_hours"}, id="budget-not-mapped"),
    pytest.param({"budget_hours": None}, (time_entry(5, ago(3)),), {}, Status.FAIL,
                 ["no_budget"], {}, id="budget-mapped-but-empty"),
    pytest.param({"budget_hours": 100.0}, (), {}, Status.PASS, [], {}, id="nothing-logged"),
    pytest.param({"budget_hours": 100.0}, (time_entry(79.5, ago(3)),), {}, Status.PASS, [],
                 {}, id="just-under-80-percent"),
    pytest.param({"budget_hours": 100.0}, (time_entry(50, ago(20)), time_entry(30, ago(3))),
                 {}, Status.WARN, ["near_budget"],
                 {"spent": 80.0, "budget": 100.0, "share": "80"}, id="at-80-percent-warns"),
    pytest.param({"budget_hours": 40}, (time_entry(36, ago(3)),), {}, Status.WARN,
                 ["near_budget"], {"spent": 36.0, "budget": 40.0, "share": "90"},
                 id="integer-budget-90-percent"),
    pytest.param({"budget_hours": 100.0}, (time_entry(60, ago(20)), time_entry(40, ago(3))),
                 {}, Status.FAIL, ["over_budget"],
                 {"spent": 100.0, "budget": 100.0, "share": "100"}, id="at-100-percent-fails"),
    pytest.param({"budget_hours": 100.0}, (time_entry(130, ago(3)),), {}, Status.FAIL,
                 ["over_budget"], {"spent": 130.0, "budget": 100.0, "share": "130"},
                 id="over-budget"),
    pytest.param({"budget_hours": 20.0}, (time_entry(12.5, ago(9)), time_entry(4.3, ago(3))),
                 {}, Status.WARN, ["near_budget"],
                 {"spent": 16.8, "budget": 20.0, "share": "84"}, id="fractional-hours"),
    pytest.param({"budget_hours": 100.0},
                 (time_entry(50, ago(20)), time_entry(20, ago(10), kind=CALL),
                  time_entry(15, ago(5), kind=MEETING)),
                 {}, Status.WARN, ["near_budget"], {"spent": 85.0, "share": "85"},
                 id="calls-and-meetings-count-as-time-spent"),
    pytest.param({"budget_hours": 100.0}, (time_entry(70, ago(3)), time_entry(50, ago(-2))),
                 {}, Status.PASS, [], {}, id="time-logged-after-now-ignored"),
    pytest.param({"budget_hours": 0}, (time_entry(2, ago(3)),), {}, Status.FAIL,
                 ["over_budget"], {"spent": 2.0, "budget": 0.0, "share": "∞"},
                 id="zero-budget-with-time-fails"),
    pytest.param({"budget_hours": 0}, (), {}, Status.PASS, [], {},
                 id="zero-budget-nothing-logged"),
    pytest.param({"budget_hours": 100.0}, (time_entry(60, ago(3)),),
                 {"warn_at": 0.5, "fail_at": 0.9}, Status.WARN, ["near_budget"],
                 {"share": "60"}, id="custom-warn-threshold"),
    pytest.param({"budget_hours": 100.0}, (time_entry(95, ago(3)),),
                 {"warn_at": 0.5, "fail_at": 0.9}, Status.FAIL, ["over_budget"],
                 {"share": "95"}, id="custom-fail-threshold"),
    # Manager time over its plan: a separate warning.
    pytest.param({"budget_hours": 100.0, "manager_hours_budget": 10},
                 (time_entry(6, ago(9), ACCOUNT_MANAGER, CALL),
                  time_entry(5, ago(3), PROJECT_MANAGER), time_entry(30, ago(3))),
                 {}, Status.WARN, ["manager_over_plan"], {"spent": 11.0, "plan": 10.0},
                 id="managers-over-plan-warns"),
    pytest.param({"budget_hours": 100.0, "manager_hours_budget": 10},
                 (time_entry(6, ago(9), ACCOUNT_MANAGER), time_entry(4, ago(3), PROJECT_MANAGER)),
                 {}, Status.PASS, [], {}, id="managers-exactly-on-plan"),
    pytest.param({"budget_hours": 100.0, "manager_hours_budget": 10},
                 (time_entry(20, ago(9), DEVELOPER), time_entry(15, ago(3), DESIGNER)),
                 {}, Status.PASS, [], {}, id="specialists-do-not-count-as-managers"),
    pytest.param({"budget_hours": 100.0},
                 (time_entry(50, ago(9), ACCOUNT_MANAGER),), {}, Status.PASS, [], {},
                 id="manager-plan-not-mapped"),
    pytest.param({"budget_hours": 100.0, "manager_hours_budget": 10},
                 (time_entry(12, ago(9), PROJECT_MANAGER), time_entry(100, ago(3))),
                 {}, Status.FAIL, ["over_budget", "manager_over_plan"],
                 {"spent": 112.0, "share": "112"}, id="over-budget-and-managers-over-plan"),
    pytest.param({"budget_hours": 100.0, "manager_hours_budget": 10},
                 (time_entry(8, ago(9), PROJECT_MANAGER), time_entry(6, ago(-1), PROJECT_MANAGER)),
                 {}, Status.PASS, [], {}, id="manager-time-after-now-ignored"),
]


@pytest.mark.parametrize(
    ("fields", "entries", "settings", "status", "codes", "params"), SERVICE_COST_CASES
)
def test_service_cost(fields: dict[str, Any], entries: tuple, settings: dict[str, Any],
                      status: Status, codes: list[str], params: dict[str, str]) -> None:
    e = engagement(fields=fields, time_entries=entries)
    assert_outcome(check(service_cost, e, settings), status, codes, params)


def test_service_cost_defaults_warn_at_80_fail_at_100_percent() -> None:
    defaults = service_cost.settings.defaults()
    assert (defaults.warn_at, defaults.fail_at) == (0.8, 1.0)


def test_service_cost_manager_warning_renders_literally() -> None:
    e = engagement(fields={"budget_hours": 100.0, "manager_hours_budget": 10},
                   time_entries=(time_entry(11.5, ago(2), ACCOUNT_MANAGER),))
    reason = check(service_cost, e, {}).reasons[0]
    assert reason.render("en") == "Managers logged 11.5 hours against a plan of 10 hours."
    assert reason.render("ru") == "Менеджеры списали 11,5 ч при плане 10 ч."
    assert reason.render("da") == ("Projektlederne og de kundeansvarlige har registreret 11,5 "
                                   "timer mod en plan på 10 timer.")


def test_one_hour_is_one_hour() -> None:
    e = engagement(fields={"budget_hours": 1},
                   time_entries=(time_entry(1, ago(2), ACCOUNT_MANAGER),))
    reason = check(service_cost, e, {}).reasons[0]
    assert reason.render("en") == "1 hour logged against a budget of 1 hour (100 %)."
    assert reason.render("da") == ("Der er registreret 1 time mod et budget på 1 time "
                                   "(100 %).")


def test_service_cost_rejects_negative_threshold() -> None:
    with pytest.raises(ValidationError):
        service_cost.settings().load({"warn_at": -0.1})


# --- meeting-load ------------------------------------------------------------------------

MEETING_LOAD_CASES = [
    pytest.param({}, (time_entry(30, ago(3), kind=MEETING),), {}, Status.NOT_CONFIGURED,
                 ["not_mapped"], {"field": "budget_hours"}, id="budget-not-mapped"),
    pytest.param({"budget_hours": None}, (), {}, Status.FAIL, ["no_budget"], {},
                 id="budget-mapped-but-empty"),
    pytest.param({"budget_hours": 100.0}, (), {}, Status.PASS, [], {}, id="no-time"),
    pytest.param({"budget_hours": 100.0},
                 (time_entry(90, ago(5)), time_entry(10, ago(3), kind=CALL)),
                 {}, Status.PASS, [], {}, id="work-hours-do-not-count"),
    pytest.param({"budget_hours": 100.0}, (time_entry(14.5, ago(3), kind=MEETING),), {},
                 Status.PASS, [], {}, id="just-under-15-percent"),
    pytest.param({"budget_hours": 100.0}, (time_entry(20, ago(3), kind=MEETING),), {},
                 Status.FAIL, ["meeting_heavy"],
                 {"spent": 20.0, "share": "20", "budget": 100.0, "limit": "15"},
                 id="meetings-20-percent-fails"),
    pytest.param({"budget_hours": 100.0},
                 (time_entry(8, ago(9), ACCOUNT_MANAGER, CALL),
                  time_entry(9, ago(3), PROJECT_MANAGER, MEETING), time_entry(60, ago(2))),
                 {}, Status.FAIL, ["meeting_heavy"], {"spent": 17.0, "share": "17"},
                 id="calls-and-meetings-add-up"),
    pytest.param({"budget_hours": 100.0},
                 (time_entry(10, ago(3), kind=CALL), time_entry(10, ago(-3), kind=MEETING)),
                 {}, Status.PASS, [], {}, id="meetings-after-now-ignored"),
    pytest.param({"budget_hours": 100.0}, (time_entry(20, ago(3), kind=MEETING),),
                 {"max_share": 0.25}, Status.PASS, [], {}, id="custom-limit-allows-more"),
    pytest.param({"budget_hours": 100.0}, (time_entry(6, ago(3), kind=CALL),),
                 {"max_share": 0.05}, Status.FAIL, ["meeting_heavy"],
                 {"share": "6", "limit": "5"}, id="custom-limit-stricter"),
    pytest.param({"budget_hours": 0}, (time_entry(1, ago(3), kind=CALL),), {}, Status.FAIL,
                 ["meeting_heavy"], {"share": "∞", "budget": 0.0}, id="zero-budget-with-a-call"),
]


@pytest.mark.parametrize(
    ("fields", "entries", "settings", "status", "codes", "params"), MEETING_LOAD_CASES
)
def test_meeting_load(fields: dict[str, Any], entries: tuple, settings: dict[str, Any],
                      status: Status, codes: list[str], params: dict[str, str]) -> None:
    e = engagement(fields=fields, time_entries=entries)
    assert_outcome(check(meeting_load, e, settings), status, codes, params)


def test_meeting_load_renders_literally() -> None:
    e = engagement(fields={"budget_hours": 40},
                   time_entries=(time_entry(8, ago(3), kind=MEETING),))
    reason = meeting_load(e, meeting_load.settings.defaults(), NOW).reasons[0]
    assert reason.render("en") == (
        "Calls and meetings took 8 hours: 20 % of the 40-hour budget (limit 15 %)."
    )
    assert reason.render("da") == (
        "Opkald og møder har taget 8 timer: 20 % af budgettet på 40 timer (grænse 15 %)."
    )


def test_meeting_load_rejects_share_above_one() -> None:
    with pytest.raises(ValidationError):
        meeting_load.settings().load({"max_share": 1.5})
