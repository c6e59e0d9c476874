"""client-answered, regular-updates and consistent-deadlines: talking to the client.

NOW is Friday 2026-11-20 12:00 UTC (13:00 in Copenhagen); the base engagement started 40 days
earlier, on 2026-10-11 12:00 UTC. Due times are written out in UTC as the evidence shows them,
with the Copenhagen wall-clock time in the case id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from plugin.core.model import Engagement, Person, StatusCategory, Visibility
from plugin.core.rule import Status
from plugin.rules.communication import client_answered, consistent_deadlines, regular_updates
from tests.builders import (
    ACCOUNT_MANAGER,
    CLIENT_BOSS,
    CLIENT_MARKETER,
    DEVELOPER,
    NOW,
    PROJECT_MANAGER,
    STRANGER,
    ago,
    change,
    comment,
    engagement,
    not_started,
    started,
)
from tests.rules.checking import assert_outcome, assert_renders, check, codes

PASS, WARN, FAIL = Status.PASS, Status.WARN, Status.FAIL
CPH = ZoneInfo("Europe/Copenhagen")








def cph(*args: int) -> datetime:
    return datetime(*args, tzinfo=CPH)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def talk(*lines: tuple[Person, datetime] | tuple[Person, datetime, Visibility]) -> Engagement:
    """An engagement whose comments are `(author, when[, visibility])`."""
    return engagement(comments=tuple(comment(author, at, visibility=rest[0] if rest else
                                             Visibility.PUBLIC) for author, at, *rest in lines))


# --- client-answered ---------------------------------------------------------------------

DANISH = {"calendar": {"timezone": "Europe/Copenhagen", "holiday_country": "DK"}}
DANISH_XMAS = {"calendar": {"timezone": "Europe/Copenhagen", "holiday_country": "DK",
                            "holidays": ["2026-12-24"]}}
COPENHAGEN = {"calendar": {"timezone": "Europe/Copenhagen"}}
AFTER_XMAS = utc(2027, 1, 4, 12, 0)

ANSWER_CASES = [
    # (engagement, settings, now, status, codes, due shown in the evidence or None)
    pytest.param(engagement(), DANISH, NOW, PASS, [], None, id="empty history"),
    pytest.param(talk((CLIENT_BOSS, ago(3)), (ACCOUNT_MANAGER, ago(3, -1))), DANISH, NOW,
                 PASS, [], None, id="answered within the hour"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 11, 13, 16, 59)),
                      (ACCOUNT_MANAGER, cph(2026, 11, 16, 9, 30))),
                 DANISH, NOW, PASS, [], None, id="Fri 16:59 answered Mon 09:30"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 11, 13, 16, 59)),
                      (ACCOUNT_MANAGER, cph(2026, 11, 16, 16, 59))),
                 DANISH, NOW, PASS, [], None, id="Fri 16:59 answered Mon 16:59 exactly"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 11, 13, 16, 59)),
                      (ACCOUNT_MANAGER, cph(2026, 11, 17, 9, 5))),
                 DANISH, NOW, FAIL, ["answered_late"], "2026-11-16 15:59 UTC",
                 id="Fri 16:59 answered Tue 09:05: due Mon 16:59 CET"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 11, 14, 10, 0)),
                      (ACCOUNT_MANAGER, cph(2026, 11, 16, 16, 30))),
                 DANISH, NOW, PASS, [], None, id="Saturday comment answered Mon 16:30"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 11, 14, 10, 0)),
                      (ACCOUNT_MANAGER, cph(2026, 11, 17, 9, 5))),
                 DANISH, NOW, FAIL, ["answered_late"], "2026-11-16 16:00 UTC",
                 id="Saturday comment answered Tue: due Mon 17:00 CET"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 11, 19, 8, 0))), DANISH, NOW, FAIL,
                 ["unanswered"], "2026-11-19 16:00 UTC",
                 id="Thu 08:00 unanswered: due Thu 17:00 CET"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 11, 19, 14, 0))), DANISH, NOW, PASS, [], None,
                 id="Thu 14:00 unanswered, not due until Fri 14:00 CET"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 11, 19, 13, 0))), DANISH, NOW, PASS, [], None,
                 id="unanswered, due exactly now"),
    pytest.param(talk((CLIENT_BOSS, utc(2026, 11, 13, 16, 59)),
                      (ACCOUNT_MANAGER, utc(2026, 11, 16, 16, 58))),
                 {}, NOW, PASS, [], None, id="default calendar is UTC 09-17"),
    pytest.param(talk((CLIENT_BOSS, utc(2026, 11, 19, 8, 0))), {}, NOW, FAIL,
                 ["unanswered"], "2026-11-19 17:00 UTC", id="default calendar, unanswered"),
    # Daylight saving: Europe/Copenhagen moves on 2026-03-29 and 2026-10-25.
    pytest.param(talk((CLIENT_BOSS, cph(2026, 3, 27, 15, 0))), DANISH,
                 utc(2026, 3, 30, 13, 30), FAIL, ["unanswered"], "2026-03-30 13:00 UTC",
                 id="spring DST: Fri 15:00 CET due Mon 15:00 CEST, checked 15:30 CEST"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 3, 27, 15, 0))), DANISH,
                 utc(2026, 3, 30, 12, 30), PASS, [], None,
                 id="spring DST: checked Mon 14:30 CEST, not due yet"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 10, 23, 15, 0))), DANISH,
                 utc(2026, 10, 26, 13, 30), PASS, [], None,
                 id="autumn DST: checked Mon 14:30 CET, not due yet"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 10, 23, 15, 0))), DANISH,
                 utc(2026, 10, 26, 14, 30), FAIL, ["unanswered"], "2026-10-26 14:00 UTC",
                 id="autumn DST: Fri 15:00 CEST due Mon 15:00 CET"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 10, 23, 15, 0)),
                      (ACCOUNT_MANAGER, cph(2026, 10, 26, 15, 30))),
                 DANISH, NOW, FAIL, ["answered_late"], "2026-10-26 14:00 UTC",
                 id="autumn DST: answered Mon 15:30 CET, half an hour late"),
    # Public holidays
    pytest.param(talk((CLIENT_BOSS, cph(2026, 12, 24, 16, 0)),
                      (ACCOUNT_MANAGER, cph(2026, 12, 28, 15, 0))),
                 DANISH, AFTER_XMAS, PASS, [], None,
                 id="DK: Thu 24th 16:00, Christmas Day off, answered Mon 15:00"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 12, 24, 16, 0)),
                      (ACCOUNT_MANAGER, cph(2026, 12, 28, 15, 0))),
                 COPENHAGEN, AFTER_XMAS, FAIL, ["answered_late"], "2026-12-25 15:00 UTC",
                 id="no holiday table: Christmas Day counts, due Fri 25th 16:00"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 12, 23, 14, 0)),
                      (ACCOUNT_MANAGER, cph(2026, 12, 28, 10, 0))),
                 DANISH_XMAS, AFTER_XMAS, PASS, [], None,
                 id="DK + explicit 24th: Wed 14:00 answered Mon 10:00"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 12, 23, 14, 0)),
                      (ACCOUNT_MANAGER, cph(2026, 12, 28, 10, 0))),
                 DANISH, AFTER_XMAS, FAIL, ["answered_late"], "2026-12-24 13:00 UTC",
                 id="DK alone: Christmas Eve is a working day"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 12, 23, 14, 0))), DANISH_XMAS,
                 utc(2026, 12, 27, 20, 0), PASS, [], None,
                 id="DK + explicit 24th: still within SLA on Sunday 27th"),
    # Who asks, who answers
    pytest.param(talk((STRANGER, ago(5))), DANISH, NOW, PASS, [], None,
                 id="unknown person's comment needs no answer"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 11, 19, 8, 0)), (STRANGER, ago(0, 20))),
                 DANISH, NOW, FAIL, ["unanswered"], "2026-11-19 16:00 UTC",
                 id="answer by an unknown person does not count"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 11, 19, 8, 0)),
                      (ACCOUNT_MANAGER, cph(2026, 11, 19, 9, 0), Visibility.INTERNAL)),
                 DANISH, NOW, FAIL, ["unanswered"], "2026-11-19 16:00 UTC",
                 id="internal note is not an answer"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 11, 18, 8, 0)),
                      (CLIENT_MARKETER, cph(2026, 11, 19, 8, 0))),
                 DANISH, NOW, FAIL, ["unanswered"], "2026-11-18 16:00 UTC",
                 id="two client people waiting: oldest reported"),
    pytest.param(talk((CLIENT_BOSS, ago(31))), DANISH, NOW, PASS, [], None,
                 id="unanswered comment outside the 30-day window"),
    pytest.param(talk((CLIENT_BOSS, utc(2026, 11, 18, 10, 0)),
                      (ACCOUNT_MANAGER, utc(2026, 11, 20, 15, 0))),
                 {}, NOW, FAIL, ["unanswered"], "2026-11-19 10:00 UTC",
                 id="reply after now: still unanswered as of now"),
    pytest.param(talk((CLIENT_BOSS, utc(2026, 11, 18, 10, 0)),
                      (ACCOUNT_MANAGER, utc(2026, 11, 20, 15, 0))),
                 {}, utc(2026, 11, 19, 9, 0), PASS, [], None,
                 id="reply after now, not due yet as of now"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 11, 13, 16, 59)),
                      (ACCOUNT_MANAGER, cph(2026, 11, 17, 9, 5))),
                 {**DANISH, "sla_business_hours": 16}, NOW, PASS, [], None,
                 id="16-hour SLA"),
    pytest.param(talk((CLIENT_BOSS, cph(2026, 11, 13, 16, 59)),
                      (ACCOUNT_MANAGER, cph(2026, 11, 17, 9, 5)),
                      (CLIENT_BOSS, cph(2026, 11, 19, 8, 0))),
                 DANISH, NOW, FAIL, ["unanswered", "answered_late"], "2026-11-19 16:00 UTC",
                 id="one late answer and one unanswered"),
]


@pytest.mark.parametrize(("e", "settings", "now", "status", "expected", "due"), ANSWER_CASES)
def test_client_answered(e: Engagement, settings: dict[str, Any], now: datetime,
                         status: Status, expected: list[str], due: str | None) -> None:
    outcome = check(client_answered, e, settings, now)
    assert outcome.status is status
    assert codes(outcome) == expected
    if due is not None:
        assert outcome.reasons[0].params["due"] == due
        assert due in outcome.reasons[0].render("en")
    assert_renders(outcome)


def test_unanswered_evidence() -> None:
    e = talk((CLIENT_BOSS, cph(2026, 11, 18, 8, 0)), (CLIENT_MARKETER, cph(2026, 11, 19, 8, 0)))
    (reason,) = check(client_answered, e, DANISH).reasons
    assert reason.render("en") == (
        "2 client comments have waited longer than 8 business hours for an answer; the "
        "oldest, from Carla Client on 2026-11-18 07:00 UTC, was due by 2026-11-18 16:00 UTC."
    )


def test_answered_late_evidence() -> None:
    e = talk((CLIENT_BOSS, cph(2026, 11, 14, 10, 0)), (ACCOUNT_MANAGER, cph(2026, 11, 17, 9, 5)))
    (reason,) = check(client_answered, e, {**DANISH, "sla_business_hours": 4}).reasons
    assert reason.params == {"count": 1, "sla": 4.0, "answered": "2026-11-17 08:05 UTC",
                             "asked": "2026-11-14 09:00 UTC", "due": "2026-11-16 12:00 UTC"}


def test_a_fractional_sla_reads_in_each_language_s_notation() -> None:
    e = talk((CLIENT_BOSS, cph(2026, 11, 14, 10, 0)), (ACCOUNT_MANAGER, cph(2026, 11, 17, 9, 5)))
    (reason,) = check(client_answered, e, {**DANISH, "sla_business_hours": 2.5}).reasons
    assert "after more than 2.5 business hours" in reason.render("en")
    assert "позже чем через 2,5 раб. ч" in reason.render("ru")
    assert "efter mere end 2,5 arbejdstimer" in reason.render("da")


def test_client_answered_defaults() -> None:
    defaults = client_answered.settings.defaults()
    assert defaults.sla_business_hours == 8.0
    assert defaults.window_days == 30


# --- regular-updates ---------------------------------------------------------------------

UPDATE_CASES = [
    pytest.param(talk((ACCOUNT_MANAGER, ago(3))), {}, NOW, PASS, [], id="update 3 days ago"),
    pytest.param(talk((ACCOUNT_MANAGER, ago(7))), {}, NOW, PASS, [],
                 id="update exactly 7 days ago"),
    pytest.param(engagement(status_history=started(ago(5))), {}, NOW, PASS, [],
                 id="started 5 days ago, no update needed yet"),
    pytest.param(not_started(), {}, NOW, PASS, [], id="not started"),
    pytest.param(engagement(status="Done", status_category=StatusCategory.DONE), {}, NOW,
                 PASS, [], id="finished engagement"),
    pytest.param(talk((ACCOUNT_MANAGER, ago(10))), {"max_days_between": 14}, NOW, PASS, [],
                 id="custom limit 14 days"),
    pytest.param(engagement(status_history=started(ago(3)),
                            comments=(comment(ACCOUNT_MANAGER, ago(20)),)),
                 {}, NOW, PASS, [], id="started 3 days ago, last pre-sale comment 20 days ago"),
    pytest.param(talk((ACCOUNT_MANAGER, ago(8))), {}, NOW, FAIL, ["no_update"],
                 id="update 8 days ago"),
    pytest.param(engagement(), {}, NOW, FAIL, ["no_update"],
                 id="empty history, started 40 days ago"),
    pytest.param(talk((ACCOUNT_MANAGER, ago(10)), (ACCOUNT_MANAGER, ago(1), Visibility.INTERNAL)),
                 {}, NOW, FAIL, ["no_update"], id="only an internal note since"),
    pytest.param(talk((ACCOUNT_MANAGER, ago(10)), (CLIENT_BOSS, ago(1))), {}, NOW, FAIL,
                 ["no_update"], id="only the client wrote since"),
    pytest.param(talk((ACCOUNT_MANAGER, ago(10)), (STRANGER, ago(1))), {}, NOW, FAIL,
                 ["no_update"], id="unknown person's comment is not an agency update"),
    pytest.param(talk((ACCOUNT_MANAGER, ago(10)), (ACCOUNT_MANAGER, ago(0, -2))), {}, NOW,
                 FAIL, ["no_update"], id="update after now does not count"),
]


@pytest.mark.parametrize(("e", "settings", "now", "status", "expected"), UPDATE_CASES)
def test_regular_updates(e: Engagement, settings: dict[str, Any], now: datetime,
                         status: Status, expected: list[str]) -> None:
    assert_outcome(check(regular_updates, e, settings, now), status, expected)


def test_no_update_evidence() -> None:
    (reason,) = check(regular_updates, talk((ACCOUNT_MANAGER, ago(8, 3)))).reasons
    assert reason.params == {"days": 8, "last": "2026-11-12 09:00 UTC", "limit": 7}
    (reason,) = check(regular_updates, engagement()).reasons
    assert reason.params == {"days": 40, "last": "2026-10-11 12:00 UTC", "limit": 7}


# --- consistent-deadlines ----------------------------------------------------------------

def due(days: float, to: str | None, by: Person | None = PROJECT_MANAGER):
    return change("due", ago(days), to, by)


DEADLINE_CASES = [
    pytest.param(engagement(), {}, NOW, PASS, [], id="no changes"),
    pytest.param(engagement(changes=(due(20, "2026-12-01"), due(10, "2026-12-08"))), {}, NOW,
                 PASS, [], id="two moves by the PM: at the limit"),
    pytest.param(engagement(changes=(due(20, "2026-12-01"), due(10, "2026-12-01"),
                                     due(5, "2026-12-01"), change("status", ago(4), "Done"))),
                 {"max_changes": 3}, NOW, PASS, [], id="custom limit 3"),
    pytest.param(engagement(changes=(due(45, "2026-11-20"), due(20, "2026-12-01"),
                                     due(10, "2026-12-08"))),
                 {}, NOW, PASS, [], id="third move outside the window"),
    pytest.param(engagement(changes=(due(20, "2026-12-01"), due(10, "2026-12-08"),
                                     due(-1, "2026-12-15"))),
                 {}, NOW, PASS, [], id="third move after now"),
    pytest.param(engagement(changes=(change("status", ago(3), "Review"),
                                     change("assignee", ago(2), "Dina"),
                                     change("title", ago(1), "New"))),
                 {}, NOW, PASS, [], id="other fields do not count"),
    pytest.param(engagement(changes=(due(20, "2026-12-01"), due(10, "2026-12-01",
                                                                 ACCOUNT_MANAGER))),
                 {}, NOW, PASS, [], id="two people, same date"),
    pytest.param(engagement(changes=(due(20, "2026-12-01"), due(10, "2026-12-15",
                                                                 CLIENT_BOSS))),
                 {}, NOW, PASS, [], id="the client moved it: not an agency announcement"),
    pytest.param(engagement(changes=(due(20, "2026-12-01"), due(10, "2026-12-15", STRANGER))),
                 {}, NOW, PASS, [], id="unknown person's date is not an agency announcement"),
    pytest.param(engagement(changes=(due(20, "2026-12-01"), due(10, "2026-12-15", None))),
                 {}, NOW, PASS, [], id="automation (no author)"),
    pytest.param(engagement(changes=(due(40, "2026-12-15", ACCOUNT_MANAGER),
                                     due(20, "2026-12-01"))),
                 {}, NOW, PASS, [], id="other person's date outside the window"),
    pytest.param(engagement(changes=(due(20, "2026-12-01"), due(10, "2026-12-08"),
                                     due(5, "2026-12-15"))),
                 {}, NOW, FAIL, ["moved_too_often"], id="three moves"),
    pytest.param(engagement(changes=(due(5, "2026-12-15"),)), {"max_changes": 0}, NOW, FAIL,
                 ["moved_too_often"], id="no moves allowed"),
    pytest.param(engagement(changes=(due(20, "2026-12-01"), due(10, "2026-12-15",
                                                                 ACCOUNT_MANAGER))),
                 {}, NOW, WARN, ["conflicting_dates"], id="PM and account manager disagree"),
    pytest.param(engagement(changes=(due(20, "2026-12-01"), due(15, "2026-12-15", DEVELOPER),
                                     due(10, "2026-12-08", ACCOUNT_MANAGER))),
                 {}, NOW, FAIL, ["moved_too_often", "conflicting_dates"],
                 id="three moves by three people"),
]


@pytest.mark.parametrize(("e", "settings", "now", "status", "expected"), DEADLINE_CASES)
def test_consistent_deadlines(e: Engagement, settings: dict[str, Any], now: datetime,
                              status: Status, expected: list[str]) -> None:
    assert_outcome(check(consistent_deadlines, e, settings, now), status, expected)


def test_moved_too_often_evidence() -> None:
    e = engagement(changes=(due(20, "2026-12-01"), due(10, None), due(5, "2026-12-15")))
    (reason,) = check(consistent_deadlines, e).reasons
    assert reason.render("en") == ("The due date changed 3 times in the last 30 days "
                                   "(limit 2): 2026-12-01 → — → 2026-12-15.")


def test_conflicting_dates_evidence() -> None:
    e = engagement(changes=(due(20, "2026-12-01"), due(10, "2026-12-15", ACCOUNT_MANAGER)))
    (reason,) = check(consistent_deadlines, e).reasons
    assert reason.params == {
        "announcements": "Peter Project: 2026-12-01; Anna Account: 2026-12-15",
    }
