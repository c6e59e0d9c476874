"""Small pieces several rule families share: windows, reply pairing, evidence formatting."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta

from marshmallow import ValidationError, fields

from plugin.core.model import Comment, Engagement, Person, Side
from plugin.core.rule import Message

NOT_MAPPED = Message(
    code="not_mapped",
    en="The field “{field}” is not mapped, so this cannot be checked.",
    ru="Поле «{field}» не сопоставлено, поэтому проверить это нельзя.",
    da="Feltet “{field}” er ikke koblet, så det kan ikke tjekkes.",
)


def window_start(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def names(people: Iterable[Person]) -> str:
    return ", ".join(sorted({person.name for person in people}))


def client_comments_with_replies(
    engagement: Engagement, since: datetime | None = None
) -> Iterator[tuple[Comment, Comment | None]]:
    """Each client comment (from `since` on) with the first client-visible agency comment
    after it, or `None` while it is unanswered. One pass over the time-ordered comments."""
    waiting: list[Comment] = []
    for comment in engagement.comments:
        if comment.side is Side.CLIENT:
            if since is None or comment.at >= since:
                waiting.append(comment)
        elif comment.is_public_agency and waiting:
            for question in waiting:
                yield question, comment
            waiting = []
    for question in waiting:
        yield question, None


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


def _valid_regex(value: str) -> None:
    try:
        re.compile(value)
    except re.error as error:
        raise ValidationError(f"not a valid regular expression: {error}") from None


def pattern_list(default: Iterable[str], description: str) -> fields.List:
    """A setting holding regular expressions; each is checked when the config loads."""
    defaults = list(default)
    return fields.List(fields.String(validate=_valid_regex), load_default=lambda: list(defaults),
                       metadata={"description": description})


def whole_words(patterns: Iterable[str]) -> re.Pattern[str]:
    """Match any of `patterns` as whole words, ignoring case."""
    return re.compile(r"(?<!\w)(?:" + "|".join(patterns) + r")(?!\w)", re.IGNORECASE)
