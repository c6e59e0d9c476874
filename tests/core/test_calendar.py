"""The agency's business calendar: SLA deadlines, elapsed working hours, and its settings.

Every expected instant is written out in UTC by hand (local time and offset in the id or a
comment), never computed with the calendar under test.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from marshmallow import ValidationError

from plugin.core.calendar import BusinessCalendar, CalendarError, CalendarSchema

CPH = ZoneInfo("Europe/Copenhagen")
LA = ZoneInfo("America/Los_Angeles")
NEW_YORK = ZoneInfo("America/New_York")

COPENHAGEN = BusinessCalendar(timezone="Europe/Copenhagen")
DANISH = BusinessCalendar(timezone="Europe/Copenhagen", holiday_country="DK")
DANISH_WITH_XMAS_EVE = BusinessCalendar(
    timezone="Europe/Copenhagen", holiday_country="DK", holidays=frozenset({date(2026, 12, 24)})
)
EVERY_MORNING = BusinessCalendar(  # seven days a week, 00:00-12:00 local: spans the DST jump
    timezone="Europe/Copenhagen", workdays=frozenset(range(7)),
    day_start=time(0, 0), day_end=time(12, 0),
)


def cph(*args: int) -> datetime:
    return datetime(*args, tzinfo=CPH)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- add_business_hours ------------------------------------------------------------------

DEADLINES = [
    # (calendar, start, hours, expected deadline in UTC)
    pytest.param(COPENHAGEN, cph(2026, 11, 16, 10, 0), 3, utc(2026, 11, 16, 12, 0),
                 id="same-day: Mon 10:00 CET +3h = 13:00 CET"),
    pytest.param(COPENHAGEN, cph(2026, 11, 16, 9, 0), 8, utc(2026, 11, 16, 16, 0),
                 id="whole day ends exactly at closing 17:00 CET"),
    pytest.param(COPENHAGEN, cph(2026, 11, 16, 7, 30), 1, utc(2026, 11, 16, 9, 0),
                 id="before opening: clock starts at 09:00"),
    pytest.param(COPENHAGEN, cph(2026, 11, 16, 18, 0), 1, utc(2026, 11, 17, 9, 0),
                 id="after closing: next morning 10:00 CET"),
    pytest.param(COPENHAGEN, cph(2026, 11, 16, 17, 0), 1, utc(2026, 11, 17, 9, 0),
                 id="exactly at closing: nothing left today"),
    pytest.param(COPENHAGEN, cph(2026, 11, 13, 16, 59), 8, utc(2026, 11, 16, 15, 59),
                 id="Fri 16:59 CET: one minute Friday, rest Monday until 16:59 CET"),
    pytest.param(COPENHAGEN, cph(2026, 11, 14, 10, 0), 8, utc(2026, 11, 16, 16, 0),
                 id="Saturday comment: due Monday 17:00 CET"),
    pytest.param(COPENHAGEN, cph(2026, 11, 15, 23, 30), 0.5, utc(2026, 11, 16, 8, 30),
                 id="Sunday night: due Monday 09:30 CET"),
    pytest.param(COPENHAGEN, cph(2026, 3, 27, 15, 0), 8, utc(2026, 3, 30, 13, 0),
                 id="spring DST weekend: Fri 15:00 CET -> Mon 15:00 CEST"),
    pytest.param(COPENHAGEN, cph(2026, 10, 23, 15, 0), 8, utc(2026, 10, 26, 14, 0),
                 id="autumn DST weekend: Fri 15:00 CEST -> Mon 15:00 CET"),
    pytest.param(COPENHAGEN, cph(2026, 3, 27, 16, 59), 8, utc(2026, 3, 30, 14, 59),
                 id="spring DST: Fri 16:59 CET -> Mon 16:59 CEST"),
    pytest.param(COPENHAGEN, cph(2026, 10, 24, 11, 0), 8, utc(2026, 10, 26, 16, 0),
                 id="autumn DST: Saturday comment -> Mon 17:00 CET"),
    pytest.param(COPENHAGEN, cph(2026, 12, 24, 16, 0), 8, utc(2026, 12, 25, 15, 0),
                 id="no holiday table: Christmas Day is a working day"),
    pytest.param(DANISH, cph(2026, 12, 24, 16, 0), 8, utc(2026, 12, 28, 15, 0),
                 id="DK: Thu 24th 16:00 -> Christmas Day off -> Mon 28th 16:00 CET"),
    pytest.param(DANISH, cph(2026, 12, 23, 14, 0), 8, utc(2026, 12, 24, 13, 0),
                 id="DK table alone does not include Christmas Eve"),
    pytest.param(DANISH_WITH_XMAS_EVE, cph(2026, 12, 23, 14, 0), 8, utc(2026, 12, 28, 13, 0),
                 id="DK + explicit 2026-12-24: Wed 14:00 -> Mon 28th 14:00 CET"),
    pytest.param(DANISH, cph(2026, 4, 1, 16, 0), 8, utc(2026, 4, 7, 14, 0),
                 id="DK Easter: Wed 16:00 CEST -> Tue after Easter Monday 16:00 CEST"),
    pytest.param(BusinessCalendar(timezone="Europe/Copenhagen",
                                  holidays=frozenset({date(2026, 11, 16)})),
                 cph(2026, 11, 13, 16, 0), 2, utc(2026, 11, 17, 9, 0),
                 id="explicit holiday only (no country): Monday skipped"),
    pytest.param(COPENHAGEN, datetime(2026, 11, 16, 3, 0, tzinfo=NEW_YORK), 1,
                 utc(2026, 11, 16, 9, 0),
                 id="start given in another zone (03:00 EST = 09:00 CET)"),
    pytest.param(BusinessCalendar(timezone="America/Los_Angeles"),
                 datetime(2026, 11, 16, 16, 0, tzinfo=LA), 0.5, utc(2026, 11, 17, 0, 30),
                 id="LA Mon 16:00 (already Tue in UTC): due Mon 16:30 PST"),
    pytest.param(BusinessCalendar(timezone="Europe/Copenhagen", workdays=frozenset({0, 5}),
                                  day_start=time(8, 30), day_end=time(12, 0)),
                 cph(2026, 11, 16, 11, 0), 2, utc(2026, 11, 21, 8, 30),
                 id="custom week Mon+Sat 08:30-12:00: Mon 11:00 +2h -> Sat 09:30 CET"),
    pytest.param(EVERY_MORNING, cph(2026, 3, 29, 0, 0), 11, utc(2026, 3, 29, 10, 0),
                 id="working day containing spring DST jump has 11 hours"),
    pytest.param(EVERY_MORNING, cph(2026, 10, 25, 0, 0), 12, utc(2026, 10, 25, 10, 0),
                 id="working day containing autumn DST fallback: 12h end at 11:00 CET"),
    pytest.param(COPENHAGEN, cph(2026, 11, 14, 10, 0), 0, utc(2026, 11, 14, 9, 0),
                 id="zero hours: the start itself"),
]


@pytest.mark.parametrize(("calendar", "start", "hours", "expected"), DEADLINES)
def test_add_business_hours(calendar: BusinessCalendar, start: datetime, hours: float,
                            expected: datetime) -> None:
    due = calendar.add_business_hours(start, hours)
    assert due == expected
    assert due.tzinfo is not None and due.utcoffset().total_seconds() == 0


def test_add_business_hours_with_no_working_day_raises() -> None:
    never = BusinessCalendar(workdays=frozenset())
    with pytest.raises(CalendarError):
        never.add_business_hours(utc(2026, 11, 16, 10, 0), 1)


# --- CalendarSchema ----------------------------------------------------------------------

def test_schema_defaults() -> None:
    assert CalendarSchema().load({}) == BusinessCalendar(
        timezone="UTC", workdays=frozenset({0, 1, 2, 3, 4}), day_start=time(9, 0),
        day_end=time(17, 0), holidays=frozenset(), holiday_country=None,
    )


def test_schema_full_table() -> None:
    loaded = CalendarSchema().load({
        "timezone": "Europe/Copenhagen",
        "workdays": ["mon", "tue", "wed", "thu", "sat"],
        "hours": "08:30-16:00",
        "holidays": ["2026-12-24", "2026-12-31"],
        "holiday_country": "DK",
    })
    assert loaded == BusinessCalendar(
        timezone="Europe/Copenhagen", workdays=frozenset({0, 1, 2, 3, 5}),
        day_start=time(8, 30), day_end=time(16, 0),
        holidays=frozenset({date(2026, 12, 24), date(2026, 12, 31)}), holiday_country="DK",
    )
    assert not loaded.is_business_day(date(2026, 12, 24))  # explicit
    assert not loaded.is_business_day(date(2026, 12, 25))  # DK public holiday
    assert not loaded.is_business_day(date(2026, 11, 20))  # a Friday, not a workday here
    assert loaded.is_business_day(date(2026, 11, 21))  # a Saturday, a workday here


def test_schema_accepts_toml_native_dates() -> None:
    # tomllib gives `holidays = [2026-12-24]` as datetime.date objects
    loaded = CalendarSchema().load({"holidays": [date(2026, 12, 24)]})
    assert loaded.holidays == frozenset({date(2026, 12, 24)})


def test_schema_subdivision() -> None:
    loaded = CalendarSchema().load({"holiday_country": "DE", "holiday_subdivision": "BY"})
    assert loaded.holiday_subdivision == "BY"
    assert not loaded.is_business_day(date(2026, 1, 6))  # Epiphany: Bavaria only
    assert CalendarSchema().load({"holiday_country": "DE"}).is_business_day(date(2026, 1, 6))


@pytest.mark.parametrize(("data", "key"), [
    pytest.param({"timezone": "Mars/Olympus_Mons"}, "timezone", id="unknown zone"),
    pytest.param({"timezone": ""}, "timezone", id="empty zone"),
    pytest.param({"workdays": []}, "workdays", id="no workdays"),
    pytest.param({"workdays": ["monday"]}, "workdays", id="long day name"),
    pytest.param({"hours": "9-17"}, "hours", id="hours without minutes"),
    pytest.param({"hours": "17:00-09:00"}, "hours", id="hours backwards"),
    pytest.param({"hours": "09:00-09:00"}, "hours", id="empty day"),
    pytest.param({"hours": "09:00-25:00"}, "hours", id="hour 25"),
    pytest.param({"holidays": ["24.12.2026"]}, "holidays", id="holiday not ISO"),
    pytest.param({"holiday_country": "XX"}, "holiday_country", id="unknown country"),
    pytest.param({"holiday_country": "DK", "holiday_subdivision": "ZZ"},
                 "holiday_subdivision", id="unknown subdivision"),
    pytest.param({"tz": "UTC"}, "tz", id="unknown key"),
])
def test_schema_rejects(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CalendarSchema().load(data)
    assert key in caught.value.messages_dict
    assert set(caught.value.messages_dict) == {key}


def test_schema_subdivision_error_names_the_subdivision() -> None:
    with pytest.raises(ValidationError) as caught:
        CalendarSchema().load({"holiday_country": "DK", "holiday_subdivision": "ZZ"})
    (message,) = caught.value.messages_dict["holiday_subdivision"]
    assert "ZZ" in message


def test_schema_dump_is_the_toml_table() -> None:
    calendar = BusinessCalendar(
        timezone="Europe/Copenhagen", workdays=frozenset({4, 0, 2}), day_start=time(8, 0),
        day_end=time(15, 30), holidays=frozenset({date(2026, 12, 31), date(2026, 12, 24)}),
        holiday_country="DK",
    )
    assert CalendarSchema().dump(calendar) == {
        "timezone": "Europe/Copenhagen",
        "workdays": ["mon", "wed", "fri"],
        "hours": "08:00-15:30",
        "holidays": [date(2026, 12, 24), date(2026, 12, 31)],
        "holiday_country": "DK",
    }


@pytest.mark.parametrize("calendar", [
    BusinessCalendar(),
    DANISH_WITH_XMAS_EVE,
    EVERY_MORNING,
    BusinessCalendar(timezone="Europe/Berlin", holiday_country="DE", holiday_subdivision="BY"),
], ids=["default", "danish", "every-morning", "bavaria"])
def test_schema_round_trip(calendar: BusinessCalendar) -> None:
    schema = CalendarSchema()
    assert schema.load(schema.dump(calendar)) == calendar


def test_a_lower_case_country_code_is_accepted() -> None:
    loaded = CalendarSchema().load({"holiday_country": "dk"})
    assert loaded.holiday_country == "DK"
    assert not loaded.is_business_day(date(2026, 12, 25))
