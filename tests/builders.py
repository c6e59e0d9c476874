"""Small builders for engagements in tests: a plain started engagement plus overrides.

Every default is neutral: the base engagement has no comments, documents, time or money,
so a test adds exactly the facts its rule looks at.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

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

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday, 12:00 UTC

ACCOUNT_MANAGER = Person("am-1", "Anna Account", Side.AGENCY, "anna@agency.example")
PROJECT_MANAGER = Person("pm-1", "Peter Project", Side.AGENCY, "peter@agency.example")
DEVELOPER = Person("dev-1", "Dina Developer", Side.AGENCY, "dina@agency.example")
DESIGNER = Person("des-1", "Dmitri Designer", Side.AGENCY, "dmitri@agency.example")
INTERN = Person("int-1", "Ida Intern", Side.AGENCY, "ida@agency.example")
CLIENT_BOSS = Person("c-1", "Carla Client", Side.CLIENT, "carla@client.example")
CLIENT_MARKETER = Person("c-2", "Kim Marketer", Side.CLIENT, "kim@client.example")
CLIENT_CFO = Person("c-3", "Olga Finance", Side.CLIENT, "olga@client.example")
STRANGER = Person("x-1", "Somebody", Side.UNKNOWN)


def ago(days: float = 0, hours: float = 0, now: datetime = NOW) -> datetime:
    return now - timedelta(days=days, hours=hours)


def started(at: datetime) -> tuple[StatusChange, ...]:
    """A status history whose move into progress happened at `at`."""
    return (StatusChange(at, "In Progress", StatusCategory.IN_PROGRESS, PROJECT_MANAGER),)


def engagement(**overrides: Any) -> Engagement:
    """A started engagement (work began 40 days before NOW) with nothing else in it."""
    base = Engagement(
        connector="jira",
        key="SHOE-1",
        title="Webshop relaunch",
        status="In Progress",
        status_category=StatusCategory.IN_PROGRESS,
        created=ago(60),
        updated=ago(1),
        client=Client("acme", "Acme Shoes", (CLIENT_BOSS,)),
        roles=Roles(points_of_contact=(ACCOUNT_MANAGER,), project_managers=(PROJECT_MANAGER,)),
        status_history=started(ago(40)),
    )
    return replace(base, **overrides)


def not_started(**overrides: Any) -> Engagement:
    return engagement(status="To Do", status_category=StatusCategory.TODO, status_history=(),
                      **overrides)


_ids = iter(range(1, 10**9))


def comment(author: Person, at: datetime, text: str = "Noted, thanks.",
            visibility: Visibility = Visibility.PUBLIC, id: str | None = None) -> Comment:
    return Comment(id or f"c{next(_ids)}", author, visibility, at, text)


def document(kind: DocumentKind, at: datetime, author: Person | None = ACCOUNT_MANAGER,
             name: str | None = None, **extra: Any) -> Document:
    return Document(f"d{next(_ids)}", kind, name or f"{kind.value}.pdf", at, author, **extra)


def time_entry(hours: float, at: datetime, person: Person = DEVELOPER,
               kind: TimeKind = TimeKind.WORK) -> TimeEntry:
    return TimeEntry(person, hours, kind, at)


def invoice(amount: str, issued: datetime, due_days: int = 14, paid_on: datetime | None = None,
            id: str | None = None) -> Invoice:
    due = (issued + timedelta(days=due_days)).date()
    return Invoice(id or f"INV-{next(_ids)}", Decimal(amount), issued.date(), due,
                   paid=paid_on is not None, paid_on=paid_on.date() if paid_on else None,
                   currency="DKK")


def change(field: str, at: datetime, to: str | None, by: Person | None = PROJECT_MANAGER,
           frm: str | None = None) -> Change:
    return Change(field, at, frm, to, by)
