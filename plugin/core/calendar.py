"""The agency's business calendar: working days, working hours, time zone and holidays.

All arithmetic is done on POSIX timestamps of instants built from local wall-clock times,
so a working day that contains a daylight-saving change has its true length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_tables
from marshmallow import (
    ValidationError,
    fields,
    post_dump,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from plugin.core.schema import Strict

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SEARCH_LIMIT_DAYS = 3 * 366  # a calendar with no working day in three years is broken
_ONE_DAY = timedelta(days=1)
_REMEMBERED_DEADLINES = 50_000


class CalendarError(ValueError):
    """The calendar cannot give an answer (it has no working time in reach)."""


@dataclass(frozen=True)
class BusinessCalendar:
    timezone: str = "UTC"
    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    day_start: time = time(9, 0)
    day_end: time = time(17, 0)
    holidays: frozenset[date] = frozenset()
    holiday_country: str | None = None
    holiday_subdivision: str | None = None

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _public_holidays(self) -> holiday_tables.HolidayBase | None:
        if self.holiday_country is None:
            return None
        return holiday_tables.country_holidays(
            self.holiday_country, subdiv=self.holiday_subdivision
        )

    def is_business_day(self, day: date) -> bool:
        if day.weekday() not in self.workdays or day in self.holidays:
            return False
        public = self._public_holidays
        return public is None or day not in public

    @cached_property
    def _windows(self) -> dict[date, tuple[float, float] | None]:
        return {}

    def working_window(self, day: date) -> tuple[float, float] | None:
        """The day's opening and closing instants as POSIX timestamps; `None` on a day off.

        Remembered per day: rules ask about the same few weeks over and over."""
        windows = self._windows
        if day not in windows:
            windows[day] = (
                (datetime.combine(day, self.day_start, self.zone).timestamp(),
                 datetime.combine(day, self.day_end, self.zone).timestamp())
                if self.is_business_day(day) else None
            )
        return windows[day]

    @cached_property
    def _deadlines(self) -> dict[tuple[datetime, float], datetime]:
        return {}

    def add_business_hours(self, start: datetime, hours: float) -> datetime:
        """The instant `hours` of working time after `start` (a deadline for an SLA).

        Remembered: a comment's deadline is asked for at every evaluation of its ticket."""
        deadlines = self._deadlines
        key = (start, hours)
        if key not in deadlines:
            if len(deadlines) >= _REMEMBERED_DEADLINES:
                deadlines.clear()
            deadlines[key] = self._add_business_hours(start, hours)
        return deadlines[key]

    def _add_business_hours(self, start: datetime, hours: float) -> datetime:
        remaining = hours * 3600.0
        cursor = start.timestamp()
        if remaining <= 0:
            return start.astimezone(UTC)
        day = start.astimezone(self.zone).date()
        for _ in range(_SEARCH_LIMIT_DAYS):
            window = self.working_window(day)
            if window is not None:
                opens, closes = window
                begin = max(opens, cursor)
                if begin < closes:
                    if remaining <= closes - begin:
                        return datetime.fromtimestamp(begin + remaining, UTC)
                    remaining -= closes - begin
            day += _ONE_DAY
        raise CalendarError(f"no working time within {_SEARCH_LIMIT_DAYS} days of {start}")


class CalendarSchema(Strict):
    """`[agency.calendar]` in clientguard.toml; also usable per client or project."""

    timezone = fields.String(
        load_default="UTC", validate=lambda name: _known_zone(name),
        metadata={"description": "IANA time zone of the agency, e.g. Europe/Copenhagen"},
    )
    workdays = fields.List(
        fields.String(validate=validate.OneOf(WEEKDAYS)),
        load_default=lambda: list(WEEKDAYS[:5]),
        validate=validate.Length(min=1),
        metadata={"description": "Working days: mon, tue, ..."},
    )
    hours = fields.String(
        load_default="09:00-17:00",
        validate=validate.Regexp(r"^\d\d:\d\d-\d\d:\d\d$", error="must look like 09:00-17:00"),
        metadata={"description": "Working hours, local time"},
    )
    holidays = fields.List(fields.Date(), load_default=list,
                           metadata={"description": "Extra days off (YYYY-MM-DD)"})
    holiday_country = fields.String(
        load_default=None, allow_none=True,
        metadata={"description": "ISO country code whose public holidays are days off"},
    )
    holiday_subdivision = fields.String(load_default=None, allow_none=True)

    @pre_load
    def _country_in_capitals(self, data: Any, **_: Any) -> Any:
        """`dk` means `DK`: the holiday tables know countries by upper-case ISO codes."""
        if isinstance(data, dict) and isinstance(data.get("holiday_country"), str):
            data = {**data, "holiday_country": data["holiday_country"].upper()}
        return data

    @validates_schema
    def _check(self, data: dict[str, Any], **_: Any) -> None:
        if "hours" in data and validate_hours(data["hours"]) is None:
            raise ValidationError("must be HH:MM-HH:MM with the start before the end", "hours")
        country = data.get("holiday_country")
        if country is not None:
            try:
                holiday_tables.country_holidays(country)
            except NotImplementedError:
                raise ValidationError(
                    f"no public-holiday table for {country!r}", "holiday_country"
                ) from None
            subdivision = data.get("holiday_subdivision")
            try:
                holiday_tables.country_holidays(country, subdiv=subdivision)
            except NotImplementedError:
                raise ValidationError(
                    f"{country!r} has no subdivision {subdivision!r}", "holiday_subdivision"
                ) from None

    @post_load
    def make(self, data: dict[str, Any], **_: Any) -> BusinessCalendar:
        start, end = validate_hours(data["hours"])  # type: ignore[misc]
        return BusinessCalendar(
            timezone=data["timezone"],
            workdays=frozenset(WEEKDAYS.index(day) for day in data["workdays"]),
            day_start=start,
            day_end=end,
            holidays=frozenset(data["holidays"]),
            holiday_country=data["holiday_country"],
            holiday_subdivision=data["holiday_subdivision"],
        )

    @post_dump(pass_original=True)
    def _from_calendar(self, _: Any, calendar: BusinessCalendar, **__: Any) -> dict[str, Any]:
        result: dict[str, Any] = {
            "timezone": calendar.timezone,
            "workdays": [WEEKDAYS[day] for day in sorted(calendar.workdays)],
            "hours": f"{calendar.day_start:%H:%M}-{calendar.day_end:%H:%M}",
            "holidays": sorted(calendar.holidays),
        }
        if calendar.holiday_country:
            result["holiday_country"] = calendar.holiday_country
        if calendar.holiday_subdivision:
            result["holiday_subdivision"] = calendar.holiday_subdivision
        return result


def validate_hours(text: str) -> tuple[time, time] | None:
    """`"09:00-17:00"` → (09:00, 17:00); `None` when malformed or not increasing."""
    try:
        start, end = (time.fromisoformat(part) for part in text.split("-"))
    except ValueError:
        return None
    return (start, end) if start < end else None


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {name!r}") from None
    return True
