"""A Jira issue as a normalised `Engagement`: the one place that knows how Jira's JSON maps
onto the model (the decisions a user should know are in docs/jira-mapping.md).

`build_engagement` is pure: Jira's JSON in, the model out. `fetch_issue_data` makes the
fewest calls Jira allows: one `GET issue` whose embedded changelog, comments and worklogs
are used whenever they are complete; a part is paged from its own resource only when Jira
cut it short (Cloud embeds at most 100 histories and 20 worklogs) or, on a Data Center
service desk, when comments lack `jsdPublic` and only their properties tell an internal note.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.base import EngagementRef
from connectors.errors import NotFound, PayloadError, PlatformError
from connectors.jira.client import JiraClient
from connectors.jira.comments import client_visible, in_service_desk, is_ours, user_ids
from connectors.jira.settings import JiraSettings
from connectors.mapping import (
    adf_text,
    as_date,
    as_text,
    as_time,
    client_key,
    document_kind,
    iso_day,
    mapped_values,
)
from plugin.core.model import (
    Change,
    Client,
    Comment,
    Document,
    Engagement,
    Person,
    Roles,
    Side,
    StatusCategory,
    StatusChange,
    TimeEntry,
    TimeKind,
    Visibility,
)

log = logging.getLogger(__name__)

Json = dict[str, Any]

ISSUE_FIELDS = ("summary", "status", "created", "updated", "duedate", "labels", "project",
                "reporter", "assignee", "attachment", "comment", "worklog")
"""The system fields a snapshot reads; the mapped custom fields are asked for beside them."""

CATEGORY_BY_KEY = {"new": StatusCategory.TODO, "indeterminate": StatusCategory.IN_PROGRESS,
                   "done": StatusCategory.DONE}
ANONYMOUS = Person("anonymous", "Anonymous", Side.UNKNOWN)


@dataclass(frozen=True)
class IssueData:
    """One issue as Jira answered it, every part complete: what `build_engagement` reads
    (and what a connector needs to find and write its sticky comment without reading again)."""

    issue: Json
    comments: list[Json]
    worklogs: list[Json]
    changelog: list[Json]


# -- the calls --------------------------------------------------------------------------

def fetch_statuses(client: JiraClient) -> dict[str, StatusCategory]:
    """Every status of the site by id with its category (`GET /rest/api/{2|3}/status`):
    what a move in the changelog, which names only the status id, needs. One call per
    site, kept by the caller."""
    return {str(status["id"]): category_of(status.get("statusCategory"))
            for status in client.request("GET", f"{client.api}/status")}


def fetch_issue_data(client: JiraClient, settings: JiraSettings, ref: EngagementRef,
                     statuses: MutableMapping[str, StatusCategory | None]) -> IssueData:
    """The issue (`ref.key`, its id) with its complete changelog, comments and worklogs.

    One call for an issue whose embedded parts are complete; each part Jira cut short
    costs its pages. `statuses` is the caller's cache from `fetch_statuses`: when the
    changelog names a status it lacks (one added since), it is refreshed in place with
    one more call. A status Jira still does not list was deleted (`GET /status` lists
    those of active workflows only): it is kept as None, its category unknown, so it
    costs that call once, not at every evaluation."""
    wanted = dict.fromkeys((*ISSUE_FIELDS, *settings.fields.values()))
    # `names` (field id → display name) lets Data Center changelog items, which name a
    # custom field only by its display name, be matched to the mapping.
    issue = client.get_issue(ref.key, fields=tuple(wanted), expand=("changelog", "names"))
    fields = issue.get("fields") or {}
    issue_id, issue_key = str(issue.get("id") or ref.key), issue.get("key") or ref.key

    comment_page = fields.get("comment") or {}
    comments = comment_page.get("comments") or []
    worklog_page = fields.get("worklog") or {}
    worklogs = worklog_page.get("worklogs") or []
    try:
        if not page_complete(comment_page, "comments") or (
                in_service_desk(fields) and any("jsdPublic" not in c for c in comments)):
            comments = list(client.iter_comments(issue_id))
        if not page_complete(worklog_page, "worklogs"):
            worklogs = list(client.iter_worklogs(issue_id))
        changelog = list(client.iter_changelog(issue_id, embedded=issue.get("changelog")))
    except NotFound as missing:  # GET issue found it a moment ago: no proof it is gone;
        # a failure, tried again (and were it deleted meanwhile, that try says so)
        raise PlatformError(f"{issue_key}: a part of the issue was not found: {missing}",
                            status=404) from missing
    named = _status_ids(changelog)
    if not named <= statuses.keys():
        statuses.update(fetch_statuses(client))
        statuses.update(dict.fromkeys(named - statuses.keys()))
    return IssueData(issue, comments, worklogs, changelog)


def page_complete(page: Mapping[str, Any], items_key: str) -> bool:
    """Whether an embedded page (`{startAt, maxResults, total, <items>}`) holds every item."""
    items = page.get(items_key) or ()
    return page.get("startAt", 0) == 0 and len(items) >= page.get("total", len(items))


def _status_ids(changelog: Iterable[Json]) -> set[str]:
    return {str(item.get("to")) for history in changelog for item in history.get("items") or ()
            if item.get("field") == "status"}


# -- the mapping ------------------------------------------------------------------------

def build_engagement(ref: EngagementRef, issue: Json, comments: Iterable[Json],
                     worklogs: Iterable[Json], changelog: Iterable[Json],
                     statuses: Mapping[str, StatusCategory | None],
                     settings: JiraSettings) -> Engagement:
    """Map one issue and its complete parts to the model. No I/O, but one warning in the log
    when parts Jira sent without a time are left out.

    `statuses` maps status ids to categories (`fetch_statuses`; None: a status deleted
    since, as is one not in it). A mapped field the issue
    does not fill is `None` (a finding); an unmapped one is absent (not configured)."""
    fields = issue.get("fields") or {}
    people = _People(settings)
    project = fields.get("project") or {}
    key = issue["key"]
    status = fields.get("status") or {}

    def mapped_people(name: str) -> tuple[Person, ...] | None:
        field_id = settings.fields.get(name)
        if field_id is None:
            return None
        value = fields.get(field_id)
        return tuple(filter(None, map(people, value if isinstance(value, list) else [value])))

    roles = Roles(points_of_contact=mapped_people("account_manager"),
                  project_managers=mapped_people("project_manager"),
                  assignee=people(fields.get("assignee")))
    decision_makers = mapped_people("decision_maker")
    people(fields.get("reporter"))  # seen on the issue: one of the client's people, maybe
    created, updated = as_time(fields.get("created")), as_time(fields.get("updated"))
    if created is None or updated is None:  # Jira sends both with every issue
        raise PayloadError(f"{key}: the issue has no created and updated times")
    undated: Counter[str] = Counter()  # parts Jira sent without a time: left out, logged
    status_history, changes = _history(
        _dated(changelog, ("created",), "changelog histories", undated), statuses, people,
        settings, issue.get("names") or {})
    documents = tuple(_documents(_dated(fields.get("attachment") or (), ("created",),
                                        "attachments", undated), people, settings))
    issue_comments = tuple(_comments(
        _dated(comments, ("created", "updated"), "comments", undated), people, settings,
        in_service_desk(fields)))
    time_entries = tuple(_time_entries(
        _dated(worklogs, ("started", "created"), "worklogs", undated), people))
    if undated:
        log.warning("%s: left out what Jira sent without a valid time: %s", key,
                    ", ".join(f"{count} {part}" for part, count in sorted(undated.items())))
    return Engagement(
        connector=ref.connector,
        key=key,
        url=f"{settings.base_url.rstrip('/')}/browse/{key}" if settings.base_url else None,
        project=project.get("key"),
        title=fields.get("summary") or "",
        status=status.get("name") or "",
        status_category=category_of(status.get("statusCategory")),
        created=created,
        updated=updated,
        due=as_date(fields.get("duedate")),
        labels=tuple(fields.get("labels") or ()),
        # the client's people: everyone seen on the issue who is on the client side
        client=_client(fields, settings, people.on_side(Side.CLIENT), decision_makers),
        roles=roles,
        status_history=status_history,
        documents=documents,
        comments=issue_comments,
        time_entries=time_entries,
        invoices=None,  # Jira has no invoices
        changes=changes,
        fields=mapped_values(settings.fields, fields.get),
    )


class _People:
    """`Person`s from Jira user objects, each decided once, in the order first seen."""

    def __init__(self, settings: JiraSettings) -> None:
        self._settings = settings
        self._seen: dict[str, Person] = {}

    def __call__(self, user: Any) -> Person | None:
        if not isinstance(user, dict):
            return None
        ids = user_ids(user)
        if not ids:
            return None
        person_id = ids[0]
        if person_id not in self._seen:
            email = user.get("emailAddress") or None
            self._seen[person_id] = Person(person_id, user.get("displayName") or person_id,
                                           self._side(user, ids, email), email)
        return self._seen[person_id]

    def _side(self, user: Json, ids: tuple[str, ...], email: str | None) -> Side:
        settings = self._settings
        if user.get("accountType") == "customer":  # a JSM customer
            return Side.CLIENT
        if any(value in settings.agency_accounts for value in ids):
            return Side.AGENCY
        domain = email.rpartition("@")[2].lower() if email else ""
        if domain and _within(domain, settings.client_domains):
            return Side.CLIENT
        if domain and _within(domain, settings.agency_domains):
            return Side.AGENCY
        return Side.UNKNOWN

    def on_side(self, side: Side) -> tuple[Person, ...]:
        return tuple(person for person in self._seen.values() if person.side is side)


def _within(domain: str, domains: Iterable[str]) -> bool:
    """`domain` is one of `domains` or a subdomain of one (mail.agency.example)."""
    return any(domain == known or domain.endswith("." + known) for known in domains)


def _client(fields: Json, settings: JiraSettings, people: tuple[Person, ...],
            decision_makers: tuple[Person, ...] | None) -> Client:
    field_id = settings.fields.get("client")
    name = (as_text(fields.get(field_id)) if field_id else None) or ""
    project = fields.get("project") or {}
    name = name.strip() or project.get("name") or project.get("key") or ""
    return Client(key=client_key(name), name=name, people=people,
                  decision_makers=decision_makers)


def _dated(parts: Iterable[Json], keys: tuple[str, ...], what: str,
           undated: Counter[str]) -> list[tuple[Json, datetime]]:
    """Each part with its time, the first of `keys` that holds one. Atlassian's spec makes
    every one optional: a part without one is left out (counted in `undated` as `what`),
    not the whole ticket."""
    dated = []
    for part in parts:
        at = next(filter(None, (as_time(part.get(key)) for key in keys)), None)
        if at is None:
            undated[what] += 1
        else:
            dated.append((part, at))
    return dated


def _history(changelog: Iterable[tuple[Json, datetime]],
             statuses: Mapping[str, StatusCategory | None], people: _People,
             settings: JiraSettings, names: Mapping[str, str]
             ) -> tuple[tuple[StatusChange, ...], tuple[Change, ...]]:
    """Status moves, and every field change under its canonical name: `due`, `status`, the
    semantic name of a mapped field, else Jira's own field name."""
    semantic: dict[str, list[str]] = {}
    for name, field_id in settings.fields.items():
        semantic.setdefault(field_id, []).append(name)
    id_by_name = {display: field_id for field_id, display in names.items()}
    moves: list[StatusChange] = []
    changes: list[Change] = []
    for history, at in changelog:
        by = people(history.get("author"))
        for item in history.get("items") or ():
            raw_name = item.get("field") or ""
            # Data Center items have no `fieldId` and name a custom field by display name.
            field_id = item.get("fieldId") or id_by_name.get(raw_name, raw_name)
            before, after = item.get("fromString"), item.get("toString")
            if field_id == "status":
                category = statuses.get(str(item.get("to")))
                if category is not None:  # a status deleted since: its category is unknown
                    moves.append(StatusChange(at, after or "", category, by))
                changes.append(Change("status", at, before, after, by))
            elif field_id == "duedate":
                changes.append(Change("due", at, iso_day(item.get("from") or before),
                                      iso_day(item.get("to") or after), by))
            else:
                changes += [Change(name, at, before, after, by)
                            for name in semantic.get(field_id, [raw_name])]
    return tuple(moves), tuple(changes)


def _documents(attachments: Iterable[tuple[Json, datetime]], people: _People,
               settings: JiraSettings) -> Iterator[Document]:
    for attachment, added_at in attachments:
        name = attachment.get("filename") or ""
        yield Document(id=str(attachment.get("id") or ""),
                       kind=document_kind(name, settings.document_patterns),
                       name=name, added_at=added_at, author=people(attachment.get("author")))


def _comments(comments: Iterable[tuple[Json, datetime]], people: _People,
              settings: JiraSettings, service_desk: bool) -> Iterator[Comment]:
    """The issue's comments but ClientGuard's own (`is_ours`), which is left before its body
    is read: it is long, and no rule reads it."""
    for comment, at in comments:
        if is_ours(comment, settings.service_account):
            continue
        author = comment.get("author") or {}
        text = body_text(comment.get("body"))
        visible = client_visible(comment, service_desk=service_desk)
        yield Comment(id=str(comment.get("id") or ""), author=people(author) or ANONYMOUS,
                      visibility=Visibility.PUBLIC if visible else Visibility.INTERNAL,
                      at=at, text=text)


def _time_entries(worklogs: Iterable[tuple[Json, datetime]],
                  people: _People) -> Iterator[TimeEntry]:
    """Jira has one kind of worklog: calls and meetings cannot be told from work."""
    for worklog, at in worklogs:
        hours = worklog.get("timeSpentSeconds")
        yield TimeEntry(person=people(worklog.get("author")) or ANONYMOUS,
                        hours=hours / 3600 if isinstance(hours, int | float) else 0.0,
                        kind=TimeKind.WORK, at=at)


def category_of(status_category: Any) -> StatusCategory:
    """Jira's category key; `undefined` (no category) counts as not started."""
    key = status_category.get("key") if isinstance(status_category, dict) else None
    return CATEGORY_BY_KEY.get(key, StatusCategory.TODO)


# -- bodies: ADF (Cloud v3) and wiki markup (Data Center v2) ------------------------------

def body_text(body: Any) -> str:
    """A comment or field body as plain text: an ADF document (read by
    `connectors.mapping.adf_text`, which the mapped-field converters share) or a wiki-markup
    string."""
    if isinstance(body, dict):
        return adf_text(body)
    return wiki_text(body) if isinstance(body, str) else ""


_WIKI_QUOTE = re.compile(r"\{quote\}(.*?)\{quote\}", re.DOTALL)
_WIKI_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^bq\.\s+", re.MULTILINE), "> "),
    (re.compile(r"^h[1-6]\.\s+", re.MULTILINE), ""),
    (re.compile(r"\{(?:code|noformat|panel|color)(?::[^}]*)?\}"), ""),
    (re.compile(r"\[~(?:accountid:)?([^\]|]+)\]"), r"@\1"),  # a mention
    (re.compile(r"\[([^\]|]+)\|[^\]]*\]"), r"\1"),  # [text|link]
    (re.compile(r"\[((?:https?|mailto):[^\]]+)\]"), r"\1"),  # [link]
    (re.compile(r"!([^!\s|]+\.\w+)(?:\|[^!]*)?!"), ""),  # an embedded image
    (re.compile(r"\{\{(.+?)\}\}"), r"\1"),  # monospace
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),  # bold
    (re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])"), r"\1"),  # italic
    (re.compile(r"\?\?(.+?)\?\?"), r"\1"),  # citation
    (re.compile(r"\\\\"), "\n"),  # a forced line break
)


def wiki_text(markup: str) -> str:
    """The text of wiki markup, with the simplest markup stripped: headings, emphasis,
    links, mentions (`@username`), macros; quotes become lines starting with `> `."""
    text = _WIKI_QUOTE.sub(
        lambda quote: "\n".join(f"> {line}" for line in quote.group(1).strip("\n").split("\n")),
        markup)
    for pattern, replacement in _WIKI_RULES:
        text = pattern.sub(replacement, text)
    return text.strip()

