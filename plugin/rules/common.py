"""Small pieces several rule families share: windows, reply pairing, evidence formatting."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta

from plugin.core.model import Comment, Engagement, Person
from plugin.core.rule import Message

NOT_MAPPED = Message(
    code="not_mapped",
    en="The field “{field}” is not mapped, so this cannot be checked.",
    ru="Поле «{field}» не сопоставлено, поэтому проверить это нельзя.",
    da="Feltet “{field}” er ikke koblet, så det kan ikke tjekkes.",
)


def window_start(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def hours(value: float) -> float:
    """Hours to the tenth, as evidence shows them (11.5, not 11.4666… or a float sum's
    0.30000000000000004)."""
    return round(float(value), 1)


def names(people: Iterable[Person]) -> str:
    return ", ".join(sorted({person.name for person in people}))


def client_questions(
    engagement: Engagement, since: datetime, now: datetime
) -> Iterator[tuple[Comment, Comment | None]]:
    """Client comments from `since` to `now`, each with the agency's first client-visible
    reply as of `now` (`None`: still waiting at `now`)."""
    for question, reply in engagement.replies:
        if since <= question.at <= now:
            yield question, reply if reply is not None and reply.at <= now else None


def months_before(day: date, months: int) -> date:
    """The same day of the month `months` earlier, clamped to the month's length."""
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    for candidate in range(day.day, 27, -1):
        try:
            return date(year, month + 1, candidate)
        except ValueError:
            continue
    return date(year, month + 1, min(day.day, 28))


def is_blank(value: object) -> bool:
    """None, an empty list, or text with nothing but white space."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, list | tuple) and not value)


def not_mapped(engagement: Engagement, *field_names: str) -> str | None:
    """The first of `field_names` that is not mapped, if any."""
    return next((name for name in field_names if not engagement.field_mapped(name)), None)

