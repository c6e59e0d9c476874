"""A Bitrix24 deal as a normalised `Engagement`: the one place that knows how a deal and what
hangs off it map onto the model (the decisions a user should know are in
docs/bitrix24-mapping.md).

`snapshot_commands` names what one deal needs as one `batch` (≤ 50 commands): the deal
(`crm.item.get`), its company (a `$result[...]` reference to the deal's `companyId`), timeline
comments, activities, linked tasks, smart invoices, generated documents and the stage
history. What rarely changes and is needed to read the rest — the deal fields (titles,
enumeration values), stage semantics per pipeline, smart-invoice stages, users' names and
`USER_TYPE`, contacts, task time logs whose total did not change — is kept per portal in a
`PortalCatalogue` and asked for only when missing. So a warm snapshot is one `batch` and a
cold one two: the second carries every catalogue miss, the logged time of tasks, and the
remaining pages of every list that had more than 50 records (`pages_needed`; a list too long
for the 50-command budget is read whole with `list_all`). People first seen on those later
pages cost one more call.

`build_engagement` is pure: the command results in, the model out. A result that is absent
(its command failed) means "not available": no invoices (`None`), no documents of that
source. `fetch_deal_data` decides which failures are fatal (the deal, its comments,
activities and stage history: without them every answer would be a guess).
"""

from __future__ import annotations

import dataclasses
import html
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import urlsplit

from connectors.base import EngagementRef, Snapshot
from connectors.bitrix24.client import BATCH_LIMIT, PAGE_SIZE, BatchResult
from connectors.bitrix24.comments import find_sticky as _find_sticky
from connectors.bitrix24.comments import marked_by
from connectors.bitrix24.settings import Bitrix24Settings
from connectors.errors import NotAnEngagement, NotFound, PayloadError
from connectors.mapping import as_date, as_text, as_time, client_key, document_kind, mapped_values
from connectors.sticky import StickySearch
from plugin.core.model import (
    Change,
    Client,
    Comment,
    Document,
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

log = logging.getLogger(__name__)

Json = dict[str, Any]
Commands = dict[str, tuple[str, dict[str, Any]]]

DEAL_TYPE, CONTACT_TYPE, COMPANY_TYPE, LEAD_TYPE, INVOICE_TYPE = 2, 3, 4, 1, 31
"""CRM object type ids (D:api-reference/crm/data-types.md#object_type)."""

# Command keys: letters, digits and `_` only (the client checks; `$result[key]` needs them).
DEAL = "deal"
COMPANY = "company"
COMMENTS = "comments"
ACTIVITIES = "activities"
TASKS = "tasks"
INVOICES = "invoices"
DOCUMENTS = "documents"
STAGE_HISTORY = "stage_history"
DEAL_FIELDS = "deal_fields"
DEAL_STAGES = "deal_stages_"  # + pipeline id
INVOICE_STAGES = "invoice_stages_"  # + smart-invoice pipeline id
USERS = "users_"  # + chunk number
EXTRANET = "extranet_"  # + chunk number: which of those users are extranet users
CONTACTS = "contacts_"  # + chunk number
TIME = "time_"  # + task id + "_" + seconds logged (the total the records are cached for)
PAGE = "_p"  # list key + "_p" + start: a later page

LIST_ITEMS: Mapping[str, str | None] = MappingProxyType({
    COMMENTS: None, ACTIVITIES: None, TASKS: "tasks", INVOICES: "items",
    DOCUMENTS: "documents", STAGE_HISTORY: "items"})
"""The deal's lists and where a page keeps its records (`None`: `result` is the list)."""
REQUIRED = (DEAL, COMMENTS, ACTIVITIES, STAGE_HISTORY)
"""Without these a snapshot would guess: their failure fails the snapshot."""

COMMENT_SELECT = ["ID", "CREATED", "AUTHOR_ID", "COMMENT", "FILES"]
ACTIVITY_SELECT = ["ID", "TYPE_ID", "PROVIDER_ID", "PROVIDER_TYPE_ID", "DIRECTION", "SUBJECT",
                   "DESCRIPTION", "DESCRIPTION_TYPE", "CREATED", "START_TIME", "END_TIME",
                   "COMPLETED", "RESPONSIBLE_ID", "AUTHOR_ID", "COMMUNICATIONS"]
TASK_SELECT = ["ID", "TITLE", "RESPONSIBLE_ID", "CREATED_DATE", "CLOSED_DATE", "STATUS",
               "TIME_SPENT_IN_LOGS", "UF_CRM_TASK"]
INVOICE_SELECT = ["id", "accountNumber", "title", "categoryId", "stageId", "opportunity",
                  "currencyId", "begindate", "closedate", "createdTime", "movedTime"]
HISTORY_SELECT = ["ID", "TYPE_ID", "CREATED_TIME", "CATEGORY_ID", "STAGE_SEMANTIC_ID",
                  "STAGE_ID"]
CONTACT_SELECT = ["ID", "NAME", "SECOND_NAME", "LAST_NAME", "EMAIL"]

WORK_START_STAGE = "EXECUTING"
"""The stage where work starts, in every pipeline that has it (Bitrix24 creates it, as
`EXECUTING` or `C<n>:EXECUTING`, in every new pipeline): earlier in-progress stages are
pre-sale (todo), it and later ones are work (in progress)."""
TASK_TIME_CACHE = 10_000
"""Tasks whose time logs the catalogue remembers (the oldest are forgotten first)."""


# -- the portal catalogue ---------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    """A deal or smart-invoice stage: `semantics` `P` (in progress), `S` (success), `F`
    (failure), from `crm.status.list` (`SEMANTICS`, null meaning in progress)."""

    id: str
    name: str
    sort: int
    semantics: str


@dataclass(frozen=True)
class FieldInfo:
    """A deal field as `crm.item.fields` describes it: `key` is how `crm.item.get` names it,
    `items` an enumeration's values by id."""

    key: str
    type: str
    title: str
    multiple: bool = False
    items: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UserInfo:
    """A portal user; `found` is False for an id `user.get` did not return (an e-mail or
    bot user, or one deleted), remembered so it is not asked for again."""

    id: str
    name: str
    email: str | None = None
    user_type: str | None = None
    in_department: bool = False
    found: bool = True


@dataclass(frozen=True)
class ContactInfo:
    id: str
    name: str
    email: str | None = None


@dataclass(frozen=True)
class TaskTime:
    """A task's time log records as last read, valid while its `TIME_SPENT_IN_LOGS` total
    (`seconds`) stays the same."""

    seconds: int
    records: tuple[Json, ...]


@dataclass(frozen=True)
class CatalogueView:
    """What the catalogue knew at one moment; immutable, so one snapshot reads one state."""

    portal_url: str | None = None
    fields: Mapping[str, FieldInfo] | None = None  # by upper-case id; None: not read yet
    deal_stages: Mapping[str, tuple[Stage, ...]] = field(default_factory=dict)
    invoice_stages: Mapping[str, tuple[Stage, ...]] = field(default_factory=dict)
    users: Mapping[str, UserInfo] = field(default_factory=dict)
    contacts: Mapping[str, ContactInfo] = field(default_factory=dict)
    task_time: Mapping[str, TaskTime] = field(default_factory=dict)


class PortalCatalogue:
    """What one portal's deals need to be read and rarely changes, learnt from the answers
    to the catalogue commands and kept by the connector per site.

    Thread-safe: every change builds a new `CatalogueView` under a lock, and readers take
    the current view (`view()`) without one. Nothing expires on its own: a stage, field or
    enumeration value the deal names but the catalogue lacks is asked for again, and
    `clear()` forgets everything (renamed users, for instance)."""

    def __init__(self, portal_url: str | None = None) -> None:
        self._lock = threading.Lock()
        self._view = CatalogueView(portal_url=portal_url)

    def view(self) -> CatalogueView:
        return self._view

    def clear(self) -> None:
        with self._lock:
            self._view = CatalogueView(portal_url=self._view.portal_url)

    def prefetch_commands(self, settings: Bitrix24Settings) -> Commands:
        """Catalogue commands a deal needs before anything about it is known: the deal
        fields and the stages of the main pipeline and the configured ones."""
        view = self._view
        commands: Commands = {}
        if view.fields is None:
            commands[DEAL_FIELDS] = deal_fields_command()
        for category in ("0", *settings.deal_categories):
            if category not in view.deal_stages:
                commands[DEAL_STAGES + category] = deal_stages_command(category)
        return commands

    def learn(self, commands: Mapping[str, tuple[str, Mapping[str, Any]]],
              results: Mapping[str, Any]) -> None:
        """Take in the answers to catalogue commands (`results` by command key; a failed
        command is absent and teaches nothing), and the contacts named by activities."""
        with self._lock:
            view = self._view
            changes: dict[str, Any] = {}
            if DEAL_FIELDS in results:
                changes["fields"] = _fields(results[DEAL_FIELDS])
            deal_stages = _learn_stages(view.deal_stages, DEAL_STAGES, results)
            if deal_stages is not None:
                changes["deal_stages"] = deal_stages
            invoice_stages = _learn_stages(view.invoice_stages, INVOICE_STAGES, results)
            if invoice_stages is not None:
                changes["invoice_stages"] = invoice_stages
            users = _learn_users(view.users, commands, results)
            if users is not None:
                changes["users"] = users
            contacts = _learn_contacts(view.contacts, commands, results)
            if contacts is not None:
                changes["contacts"] = contacts
            task_time = _learn_task_time(view.task_time, results)
            if task_time is not None:
                changes["task_time"] = task_time
            if changes:
                self._view = dataclasses.replace(view, **changes)


class Catalogues:
    """One `PortalCatalogue` per site, created on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_site: dict[str, PortalCatalogue] = {}

    def for_site(self, site: str, portal_url: str | None = None) -> PortalCatalogue:
        with self._lock:
            if site not in self._by_site:
                self._by_site[site] = PortalCatalogue(portal_url)
            return self._by_site[site]


def _fields(result: Any) -> dict[str, FieldInfo]:
    fields = result.get("fields") if isinstance(result, dict) else None
    known: dict[str, FieldInfo] = {}
    for key, description in (fields or {}).items():
        if not isinstance(description, dict):
            continue
        upper = str(description.get("upperName") or key)
        items = {str(item.get("ID")): str(item.get("VALUE") or "")
                 for item in description.get("items") or () if isinstance(item, dict)}
        settings = description.get("settings")
        known[upper] = FieldInfo(
            key=str(key), type=str(description.get("type") or ""),
            title=str(description.get("formLabel") or description.get("listLabel")
                      or description.get("title") or upper),
            multiple=bool(description.get("isMultiple")), items=items,
            settings=settings if isinstance(settings, dict) else {})
    return known


def _stages(result: Any) -> tuple[Stage, ...]:
    stages = [Stage(id=str(status.get("STATUS_ID") or ""), name=str(status.get("NAME") or ""),
                    sort=_int(status.get("SORT")) or 0,
                    semantics=str(status.get("SEMANTICS") or "P"))
              for status in items_of(result) if isinstance(status, dict)]
    return tuple(sorted(stages, key=lambda stage: stage.sort))


def _learn_stages(known: Mapping[str, tuple[Stage, ...]], prefix: str,
                  results: Mapping[str, Any]) -> dict[str, tuple[Stage, ...]] | None:
    learnt = {key[len(prefix):]: _stages(result) for key, result in results.items()
              if key.startswith(prefix) and PAGE not in key}
    return {**known, **learnt} if learnt else None


def _learn_users(known: Mapping[str, UserInfo], commands: Mapping[str, tuple[str, Any]],
                 results: Mapping[str, Any]) -> dict[str, UserInfo] | None:
    learnt: dict[str, UserInfo] = {}
    for key, result in results.items():
        if not key.startswith(USERS):
            continue
        for user in items_of(result):
            if isinstance(user, dict) and user.get("ID") is not None:
                info = _user_info(user)
                learnt[info.id] = info
        asked = ((commands.get(key) or ("", {}))[1].get("filter") or {}).get("ID") or ()
        for user_id in map(str, asked):
            learnt.setdefault(user_id, UserInfo(user_id, f"User {user_id}", found=False))
    for key, result in results.items():
        if key.startswith(EXTRANET):
            for user in items_of(result):
                if isinstance(user, dict) and user.get("ID") is not None:
                    info = learnt.get(str(user["ID"])) or _user_info(user)
                    learnt[info.id] = dataclasses.replace(info, user_type="extranet",
                                                          found=True)
    return {**known, **learnt} if learnt else None


def _user_info(user: Mapping[str, Any]) -> UserInfo:
    user_id = str(user["ID"])
    email = str(user.get("EMAIL") or "") or None
    name = _name(user.get("NAME"), user.get("SECOND_NAME"), user.get("LAST_NAME"))
    return UserInfo(user_id, name or email or f"User {user_id}", email,
                    str(user.get("USER_TYPE") or "") or None,
                    bool(user.get("UF_DEPARTMENT")))


def _learn_contacts(known: Mapping[str, ContactInfo],
                    commands: Mapping[str, tuple[str, Any]], results: Mapping[str, Any]
                    ) -> dict[str, ContactInfo] | None:
    learnt: dict[str, ContactInfo] = {}
    for key, result in results.items():
        if key.startswith(CONTACTS):
            asked = ((commands.get(key) or ("", {}))[1].get("filter") or {}).get("@ID") or ()
            for contact_id in map(str, asked):  # deleted since: not asked again
                learnt[contact_id] = ContactInfo(contact_id, f"Contact {contact_id}")
            for contact in items_of(result):
                if isinstance(contact, dict) and contact.get("ID") is not None:
                    emails = [entry.get("VALUE") for entry in contact.get("EMAIL") or ()
                              if isinstance(entry, dict) and entry.get("VALUE")]
                    contact_id = str(contact["ID"])
                    learnt[contact_id] = ContactInfo(
                        contact_id, _name(contact.get("NAME"), contact.get("SECOND_NAME"),
                                          contact.get("LAST_NAME")) or f"Contact {contact_id}",
                        str(emails[0]) if emails else None)
        elif key == ACTIVITIES or key.startswith(ACTIVITIES + PAGE):
            # Activities name their contacts (COMMUNICATIONS[].ENTITY_SETTINGS): no lookup.
            for activity in items_of(result):
                for contact in _communication_contacts(activity):
                    if contact.id not in known and (contact.id not in learnt
                                                    or learnt[contact.id].email is None):
                        learnt[contact.id] = contact
    return {**known, **learnt} if learnt else None


def _communication_contacts(activity: Any) -> Iterator[ContactInfo]:
    for entry in (activity.get("COMMUNICATIONS") or ()) if isinstance(activity, dict) else ():
        if not isinstance(entry, dict) or str(entry.get("ENTITY_TYPE_ID")) != str(CONTACT_TYPE):
            continue
        settings = entry.get("ENTITY_SETTINGS") or {}
        name = _name(settings.get("NAME"), settings.get("SECOND_NAME"), settings.get("LAST_NAME"))
        if entry.get("ENTITY_ID") and name:
            email = entry.get("VALUE") if entry.get("TYPE") == "EMAIL" else None
            yield ContactInfo(str(entry["ENTITY_ID"]), name, str(email) if email else None)


def time_key(task_id: str, seconds: int) -> str:
    """The command key for a task's time records: the total they add up to rides in the
    key, so the answer can be cached against it."""
    return f"{TIME}{task_id}_{seconds}"


def _learn_task_time(known: Mapping[str, TaskTime], results: Mapping[str, Any]
                     ) -> dict[str, TaskTime] | None:
    learnt: dict[str, TaskTime] = {}
    for key, result in results.items():
        task_id, _, seconds = key[len(TIME):].partition("_")
        if key.startswith(TIME) and task_id and seconds.isdigit():
            records = tuple(record for record in items_of(result) if isinstance(record, dict))
            learnt[task_id] = TaskTime(int(seconds), records)
    if not learnt:
        return None
    merged = {**{k: v for k, v in known.items() if k not in learnt}, **learnt}
    while len(merged) > TASK_TIME_CACHE:
        merged.pop(next(iter(merged)))
    return merged


# -- the commands -----------------------------------------------------------------------

def deal_number(deal_id: str | int) -> int:
    """A deal id as the REST methods take it; anything else (an indirect key such as
    `activity:12`) is refused before any call."""
    text = str(deal_id)
    if not (text.isascii() and text.isdigit()) or int(text) <= 0:
        raise ValueError(f"not a Bitrix24 deal id: {deal_id!r}")
    return int(text)


def deal_fields_command() -> tuple[str, dict[str, Any]]:
    return "crm.item.fields", {"entityTypeId": DEAL_TYPE, "useOriginalUfNames": "Y"}


def deal_stages_command(category: str) -> tuple[str, dict[str, Any]]:
    """A pipeline's stages: `DEAL_STAGE` for pipeline 0, `DEAL_STAGE_<id>` for the others
    (D:tutorials/crm/how-to-get-lists/how-to-get-stages-with-semantics.md)."""
    entity = "DEAL_STAGE" if category == "0" else f"DEAL_STAGE_{category}"
    return "crm.status.list", {"filter": {"ENTITY_ID": entity}, "order": {"SORT": "ASC"}}


def invoice_stages_command(category: str) -> tuple[str, dict[str, Any]]:
    return "crm.status.list", {"filter": {"ENTITY_ID": f"SMART_INVOICE_STAGE_{category}"},
                               "order": {"SORT": "ASC"}}


def snapshot_commands(deal_id: str, settings: Bitrix24Settings, known: PortalCatalogue
                      ) -> Commands:
    """The one `batch` that reads a deal: the deal itself with custom fields under their
    `UF_CRM_*` names, its company, comments, activities, tasks, smart invoices, generated
    documents, stage history, and whatever the catalogue still lacks to read them."""
    deal = deal_number(deal_id)
    commands: Commands = {
        DEAL: ("crm.item.get", {"entityTypeId": DEAL_TYPE, "id": deal,
                                "useOriginalUfNames": "Y"}),
        # A reference to the deal's companyId; a deal without company (0) fails this
        # command alone (halt=0) [D:settings/how-to-call-rest-api/batch.md].
        COMPANY: ("crm.item.get", {"entityTypeId": COMPANY_TYPE,
                                   "id": f"$result[{DEAL}][item][companyId]"}),
        COMMENTS: ("crm.timeline.comment.list", {
            "filter": {"ENTITY_ID": deal, "ENTITY_TYPE": "deal"}, "select": COMMENT_SELECT,
            "order": {"ID": "ASC"}}),
        # BINDINGS, not OWNER_ID: an e-mail owned by a contact is bound to the deal too
        # [D:api-reference/crm/timeline/activities/activity-base/crm-activity-list.md].
        ACTIVITIES: ("crm.activity.list", {
            "filter": {"BINDINGS": [{"OWNER_TYPE_ID": DEAL_TYPE, "OWNER_ID": deal}]},
            "select": ACTIVITY_SELECT, "order": {"ID": "ASC"}}),
        TASKS: ("tasks.task.list", {"filter": {"UF_CRM_TASK": [f"D_{deal}"]},
                                    "select": TASK_SELECT, "order": {"ID": "asc"}}),
        INVOICES: ("crm.item.list", {"entityTypeId": INVOICE_TYPE,
                                     "filter": {"parentId2": deal}, "select": INVOICE_SELECT,
                                     "order": {"id": "ASC"}}),
        DOCUMENTS: ("crm.documentgenerator.document.list", {
            "filter": {"entityTypeId": DEAL_TYPE, "entityId": deal}, "order": {"id": "asc"}}),
        STAGE_HISTORY: ("crm.stagehistory.list", {
            "entityTypeId": DEAL_TYPE, "filter": {"OWNER_ID": deal}, "select": HISTORY_SELECT,
            "order": {"ID": "ASC"}}),
    }
    commands.update(known.prefetch_commands(settings))
    return commands


@dataclass(frozen=True)
class Pages:
    """The follow-ups for lists that did not fit one page: `commands` (one per remaining
    page, `<key>_p<start>`) for the next batch, and `whole`, the lists too long for the
    command budget, to read with `list_all`."""

    commands: Commands
    whole: Commands


def pages_needed(commands: Mapping[str, tuple[str, Mapping[str, Any]]], batch: BatchResult,
                 budget: int = BATCH_LIMIT) -> Pages:
    """Every remaining page of every list that came back with `next`, as commands for one
    more batch (at most `budget`); the shortest lists first, a list that does not fit is
    read whole instead."""
    wanted: list[tuple[str, list[int]]] = []
    whole: Commands = {}
    for key, start in batch.nexts.items():
        if key not in commands:
            continue
        total = batch.totals.get(key)
        method, params = commands[key]
        if total is None:
            whole[key] = (method, dict(params))
        else:
            wanted.append((key, list(range(start, total, PAGE_SIZE))))
    pages: Commands = {}
    for key, starts in sorted(wanted, key=lambda item: len(item[1])):
        method, params = commands[key]
        if len(pages) + len(starts) > budget:
            whole[key] = (method, dict(params))
            continue
        for start in starts:
            pages[f"{key}{PAGE}{start}"] = (method, {**params, "start": start})
    return Pages(pages, whole)


@dataclass(frozen=True)
class Lookups:
    """What the catalogue lacks to read one deal's results."""

    users: frozenset[str] = frozenset()
    contacts: frozenset[str] = frozenset()
    deal_categories: frozenset[str] = frozenset()
    invoice_categories: frozenset[str] = frozenset()
    fields: bool = False
    tasks: Mapping[str, int] = field(default_factory=dict)  # task id → seconds logged

    def commands(self) -> Commands:
        """The catalogue commands: users and contacts by 50 ids (one page each)."""
        commands: Commands = {}
        if self.fields:
            commands[DEAL_FIELDS] = deal_fields_command()
        for category in sorted(self.deal_categories):
            commands[DEAL_STAGES + category] = deal_stages_command(category)
        for category in sorted(self.invoice_categories):
            commands[INVOICE_STAGES + category] = invoice_stages_command(category)
        for number, chunk in enumerate(_chunks(sorted(self.users, key=_id_order))):
            commands[f"{USERS}{number}"] = ("user.get", {"filter": {"ID": chunk}})
            # With the `user_brief` scope user.get does not list USER_TYPE among the fields
            # it returns [D:api-reference/user/index.md]; filtering on it still works.
            commands[f"{EXTRANET}{number}"] = ("user.get", {
                "filter": {"ID": chunk, "USER_TYPE": "extranet"}})
        for number, chunk in enumerate(_chunks(sorted(self.contacts, key=_id_order))):
            commands[f"{CONTACTS}{number}"] = ("crm.contact.list", {
                "filter": {"@ID": chunk}, "select": CONTACT_SELECT})
        for task_id, seconds in sorted(self.tasks.items(), key=lambda item: _id_order(item[0])):
            commands[time_key(task_id, seconds)] = ("task.elapseditem.getlist", {
                "TASKID": int(task_id), "ORDER": {"ID": "asc"}})
        return commands

    def __bool__(self) -> bool:
        return bool(self.users or self.contacts or self.deal_categories
                    or self.invoice_categories or self.fields or self.tasks)


def lookups_needed(results: Mapping[str, Any], settings: Bitrix24Settings,
                   catalogue: PortalCatalogue) -> Lookups:
    """What the catalogue must learn before `results` can be read in full: found by mapping
    them once and noting every id, stage or value the catalogue did not know."""
    mapper = _DealMapper(results, settings, catalogue.view(), datetime.max.replace(tzinfo=UTC))
    mapper.engagement(EngagementRef("bitrix24", "", "0"), None)
    return mapper.misses()


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for index in range(0, len(ids), PAGE_SIZE):
        yield ids[index:index + PAGE_SIZE]


def _id_order(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (0, value)


# -- the calls --------------------------------------------------------------------------

class Bitrix24Api(Protocol):
    """What a snapshot needs from `connectors.bitrix24.client.Bitrix24Client`."""

    def batch(self, commands: Mapping[str, tuple[str, Mapping[str, Any]]]) -> BatchResult: ...

    def list_all(self, method: str, params: Mapping[str, Any] | None = None, *,
                 items_key: str | None = None) -> list[Any]: ...


def fetch_deal_data(client: Bitrix24Api, deal_id: str, settings: Bitrix24Settings,
                    catalogue: PortalCatalogue) -> dict[str, Any]:
    """The deal's results by command key, every list complete, and the catalogue taught
    what reading them needs. One batch when the catalogue knows everything and every list
    fits a page; two otherwise; a third only for people first seen on later pages.

    Raises the typed error of the deal (`NotFound` for a deleted deal), and of its
    comments, activities or stage history; other parts that fail are left out (not
    available) and logged."""
    commands = snapshot_commands(deal_id, settings, catalogue)
    first = client.batch(commands)
    _require(first, commands, deal_id)
    _log_failures(first, deal_id)
    results = _merged(first.results)
    catalogue.learn(commands, results)

    follow = lookups_needed(results, settings, catalogue).commands()
    pages = pages_needed(commands, first, budget=max(0, BATCH_LIMIT - len(follow)))
    second_commands = {**follow, **pages.commands}
    if second_commands:
        second = _batches(client, second_commands)
        _require(second, pages.commands, deal_id)
        _log_failures(second, deal_id)
        results = _merged({**results, **second.results})
        catalogue.learn(second_commands, second.results)
    for key, (method, params) in pages.whole.items():
        results[key] = client.list_all(method, params, items_key=LIST_ITEMS.get(key))
    if pages.commands or pages.whole:
        more = lookups_needed(results, settings, catalogue).commands()
        if more:
            extra = _batches(client, more)
            _log_failures(extra, deal_id)
            results.update(extra.results)
            catalogue.learn(more, extra.results)
    return results


def _batches(client: Bitrix24Api, commands: Commands) -> BatchResult:
    """`commands` in as few batches as the 50-command limit allows, answers merged."""
    keys = list(commands)
    merged = BatchResult()
    for index in range(0, len(keys), BATCH_LIMIT):
        part = client.batch({key: commands[key] for key in keys[index:index + BATCH_LIMIT]})
        merged.results.update(part.results)
        merged.errors.update(part.errors)
        merged.totals.update(part.totals)
        merged.nexts.update(part.nexts)
        merged.unmapped_errors.extend(part.unmapped_errors)
    return merged


def fetch_snapshot(client: Bitrix24Api, ref: EngagementRef, settings: Bitrix24Settings,
                   catalogue: PortalCatalogue, known_sticky_id: str | None,
                   now: datetime) -> Snapshot:
    """The deal now (`fetch_deal_data` mapped by `build_engagement`), with our sticky
    comment found among its timeline comments and left out of the engagement's."""
    results = fetch_deal_data(client, ref.key, settings, catalogue)
    deal = deal_item(results.get(DEAL))
    pipeline = str(deal.get("categoryId") or 0)
    if deal and settings.deal_categories and pipeline not in settings.deal_categories:
        raise NotAnEngagement(f"deal {ref.key} is in pipeline {pipeline}, not one of "
                              f"[bitrix24] deal_categories ({', '.join(settings.deal_categories)})")
    search = find_sticky(items_of(results.get(COMMENTS)), known_sticky_id,
                         settings.bot_user_id)
    sticky_id = str(search.comment["ID"]) if search.comment is not None else None
    engagement = build_engagement(ref, results, settings, catalogue, now,
                                  known_sticky_id=sticky_id)
    return Snapshot(ref=ref, engagement=engagement, sticky_id=sticky_id,
                    context=DealContext(deal_id=str(deal_number(ref.key)),
                                        responsible_id=_str_id(deal.get("assignedById"))),
                    duplicates=tuple(str(comment["ID"]) for comment in search.stale))


@dataclass(frozen=True)
class DealContext:
    """What writing to the deal later needs without reading it again."""

    deal_id: str
    responsible_id: str | None


def _require(batch: BatchResult, commands: Mapping[str, Any], deal_id: str) -> None:
    for key in commands:
        if key.partition(PAGE)[0] not in REQUIRED or key in batch.results:
            continue
        if key in batch.errors:
            error = batch.errors[key]
            if key == DEAL or not isinstance(error, NotFound):
                raise error
            continue  # a list of a deal that exists: nothing to list
        if batch.unmapped_errors:
            raise batch.unmapped_errors[0]
        raise PayloadError(f"deal {deal_id}: batch command {key!r} did not run")


def _log_failures(batch: BatchResult, deal_id: str) -> None:
    for key, error in batch.errors.items():
        if key != COMPANY:  # a deal without a company is normal
            log.warning("deal %s: %s is not available: %s", deal_id, key, error)


def _merged(results: Mapping[str, Any]) -> dict[str, Any]:
    """Results with each list's later pages (`<key>_p<start>`) folded into its first, as
    one list of records (a record seen twice, because the list moved between pages, once)."""
    merged: dict[str, Any] = {}
    for key, result in results.items():
        base, _, start = key.partition(PAGE)
        if start and base in LIST_ITEMS:
            continue
        if key in LIST_ITEMS and any(other.startswith(key + PAGE) for other in results):
            records = list(items_of(result))
            pages = sorted((int(other.partition(PAGE)[2]), other) for other in results
                           if other.startswith(key + PAGE))
            for _, page_key in pages:
                records += items_of(results[page_key])
            merged[key] = _unique(records)
        else:
            merged[key] = result
    return merged


def _unique(records: list[Any]) -> list[Any]:
    seen: set[str] = set()
    unique = []
    for record in records:
        ident = str(record.get("ID", record.get("id"))) if isinstance(record, dict) else None
        if ident is None or ident == "None" or ident not in seen:
            unique.append(record)
            if ident is not None:
                seen.add(ident)
    return unique


def items_of(result: Any) -> list[Any]:
    """A list result's records, wherever the method keeps them: the result itself
    (`crm.activity.list`), or `items` / `tasks` / `documents` inside it."""
    if isinstance(result, list):
        return result
    if isinstance(result, dict):
        for key in ("items", "tasks", "documents"):
            if isinstance(result.get(key), list):
                return result[key]
    return []


# -- the sticky comment -----------------------------------------------------------------

def find_sticky(comments: Iterable[Mapping[str, Any]], known_id: str | None,
                bot_user_id: str | None) -> StickySearch:
    """Our comment among a deal's timeline comments: the one with the stored `known_id`,
    else the newest carrying the marker written by `bot_user_id` (any author when None);
    every other such marker comment is reported `stale`. The rule lives with the writing
    side (`connectors.bitrix24.comments.find_sticky`)."""
    return _find_sticky(comments, known_id, author=bot_user_id)


# -- the mapping ------------------------------------------------------------------------

def build_engagement(ref: EngagementRef, results: Mapping[str, Any],
                     settings: Bitrix24Settings, catalogue: PortalCatalogue, now: datetime,
                     *, known_sticky_id: str | None = None) -> Engagement:
    """Map one deal's command results to the model. Pure: no I/O.

    `results` holds each command's `result` by key (a list may already be merged into one
    list of records); an absent key is a part that is not available. A mapped field the
    deal leaves empty is `None` (a finding); an unmapped one is absent (not configured).
    Our own sticky comment (`known_sticky_id`, or a marker comment by the bot user) is not
    among the comments. Activities that end after `now` have not happened yet."""
    return _DealMapper(results, settings, catalogue.view(), now).engagement(
        ref, known_sticky_id)


LEGACY_DEAL_FIELDS = MappingProxyType({
    "ID": "id", "TITLE": "title", "STAGE_ID": "stageId", "CATEGORY_ID": "categoryId",
    "STAGE_SEMANTIC_ID": "stageSemanticId", "ASSIGNED_BY_ID": "assignedById",
    "COMPANY_ID": "companyId", "BEGINDATE": "begindate", "CLOSEDATE": "closedate",
    "DATE_CREATE": "createdTime", "DATE_MODIFY": "updatedTime", "CURRENCY_ID": "currencyId",
    "OPPORTUNITY": "opportunity", "MOVED_TIME": "movedTime", "CREATED_BY_ID": "createdBy"})
"""`crm.deal.get` names (deprecated, but what some callers hold) → `crm.item.get` names."""


def deal_item(result: Any) -> Json:
    """The deal record: `crm.item.get`'s `result.item`, or a legacy `crm.deal.get` result
    renamed to the `crm.item` names (custom `UF_CRM_*` fields keep theirs)."""
    if not isinstance(result, dict):
        return {}
    item = result.get("item", result)
    if not isinstance(item, dict):
        return {}
    if "ID" in item and "id" not in item:
        renamed = {LEGACY_DEAL_FIELDS.get(key, key): value for key, value in item.items()}
        contact = item.get("CONTACT_ID")
        renamed.setdefault("contactIds", [contact] if contact else [])
        return renamed
    return item


class _DealMapper:
    """One deal's results read against one catalogue view; remembers what the view lacked
    (`misses`) so the same reading decides what to look up."""

    def __init__(self, results: Mapping[str, Any], settings: Bitrix24Settings,
                 view: CatalogueView, now: datetime) -> None:
        self.results = results
        self.settings = settings
        self.view = view
        self.now = now
        self.deal = deal_item(results.get(DEAL))
        self._people: dict[str, Person] = {}
        self._missing_users: set[str] = set()
        self._missing_contacts: set[str] = set()
        self._missing_deal_categories: set[str] = set()
        self._missing_invoice_categories: set[str] = set()
        self._fields_stale = view.fields is None
        self._tasks: dict[str, int] = {}

    def misses(self) -> Lookups:
        return Lookups(users=frozenset(self._missing_users),
                       contacts=frozenset(self._missing_contacts),
                       deal_categories=frozenset(self._missing_deal_categories),
                       invoice_categories=frozenset(self._missing_invoice_categories),
                       fields=self._fields_stale, tasks=dict(self._tasks))

    # -- the engagement ---------------------------------------------------------------

    def engagement(self, ref: EngagementRef, known_sticky_id: str | None) -> Engagement:
        deal = self.deal
        if not deal:
            raise PayloadError(f"deal {ref.key}: no deal in the results")
        deal_id = str(deal.get("id"))
        category = str(deal.get("categoryId") or 0)
        stage_id = str(deal.get("stageId") or "")
        stages = self._deal_stages(category, stage_id)
        assignee = self.user(deal.get("assignedById"))
        points_of_contact = self.mapped_people("account_manager")
        if points_of_contact is None:  # the default: the deal's responsible person
            points_of_contact = (assignee,) if assignee is not None else ()
        roles = Roles(points_of_contact=points_of_contact,
                      project_managers=self.mapped_people("project_manager"),
                      assignee=assignee)
        decision_makers = self.mapped_people("decision_maker")
        for contact_id in deal.get("contactIds") or ():
            self.contact(contact_id)
        status_history, changes = self._history(category)
        comments = tuple(self._comments(known_sticky_id))
        documents = tuple(self._documents(known_sticky_id))
        time_entries = tuple(self._time_entries())
        invoices = self._invoices()
        mapped = self._mapped_fields()
        created = as_time(deal.get("createdTime")) or datetime.fromtimestamp(0, UTC)
        return Engagement(
            connector=ref.connector,
            key=f"DEAL-{deal_id}",
            url=self._url(deal_id),
            project=category,
            title=str(deal.get("title") or ""),
            status=_stage_name(stages, stage_id),
            status_category=category_of(stages, stage_id,
                                        str(deal.get("stageSemanticId") or "")),
            created=created,
            updated=as_time(deal.get("updatedTime")) or created,
            due=as_date(deal.get("closedate")),
            client=self._client(decision_makers),
            roles=roles,
            status_history=status_history,
            documents=documents,
            comments=comments,
            time_entries=time_entries,
            invoices=invoices,
            changes=changes,
            fields=mapped,
        )

    def _url(self, deal_id: str) -> str | None:
        base = self.view.portal_url
        if base is None and self.settings.webhook_url:
            parts = urlsplit(self.settings.webhook_url)
            base = f"{parts.scheme}://{parts.netloc}"
        return f"{base.rstrip('/')}/crm/deal/details/{deal_id}/" if base else None

    # -- people -----------------------------------------------------------------------

    def _seen(self, person: Person) -> Person:
        return self._people.setdefault(person.id, person)

    def user(self, user_id: Any) -> Person | None:
        """A portal user: employees are agency, extranet users client, others unknown."""
        ident = _str_id(user_id)
        if ident is None:
            return None
        info = self.view.users.get(ident)
        if info is None:
            self._missing_users.add(ident)
            side = Side.AGENCY if ident == self.settings.bot_user_id else Side.UNKNOWN
            return self._seen(Person(ident, f"User {ident}", side))
        return self._seen(Person(ident, info.name, self._user_side(info), info.email))

    def _user_side(self, info: UserInfo) -> Side:
        if info.id == self.settings.bot_user_id or info.user_type == "employee":
            return Side.AGENCY
        if info.user_type == "extranet":
            return Side.CLIENT
        if info.user_type is None and info.in_department:  # portals without USER_TYPE
            return Side.AGENCY
        return Side.UNKNOWN

    def contact(self, contact_id: Any, name: str | None = None) -> Person | None:
        """A CRM contact: always the client's."""
        ident = _str_id(contact_id)
        if ident is None:
            return None
        info = self.view.contacts.get(ident)
        if info is None and name is None:
            self._missing_contacts.add(ident)
        return self._seen(Person(f"contact:{ident}",
                                 info.name if info else (name or f"Contact {ident}"),
                                 Side.CLIENT, info.email if info else None))

    def _crm_person(self, type_id: Any, entity_id: Any, name: str) -> Person | None:
        kind = str(type_id)
        if kind == str(CONTACT_TYPE):
            return self.contact(entity_id, name or None)
        prefix = {str(COMPANY_TYPE): "company", str(LEAD_TYPE): "lead"}.get(kind)
        ident = _str_id(entity_id)
        if prefix is None or ident is None:
            return None
        return self._seen(Person(f"{prefix}:{ident}", name or f"{prefix.title()} {ident}",
                                 Side.CLIENT))

    def mapped_people(self, name: str) -> tuple[Person, ...] | None:
        """The people in a mapped user, employee or CRM field: `None` when not mapped."""
        field_id = self.settings.fields.get(name)
        if field_id is None:
            return None
        value, info = self._raw(field_id)
        people = []
        for item in _as_list(value):
            people.append(self._linked_person(item, info))
        return tuple(person for person in people if person is not None)

    def _linked_person(self, item: Any, info: FieldInfo | None) -> Person | None:
        text = str(item).strip() if item is not None else ""
        link = re.fullmatch(r"(C|CO|L)_(\d+)", text)
        if link:  # a CRM field linking several kinds: C_12, CO_4, L_7
            kind = {"C": CONTACT_TYPE, "CO": COMPANY_TYPE, "L": LEAD_TYPE}[link[1]]
            return self._crm_person(kind, link[2], "")
        field_type = info.type if info else ""
        kind = "CONTACT" if field_type == "crm_contact" else (
            _crm_single_kind(info) if field_type == "crm" else None)
        if kind is not None:  # a CRM-link field of one kind stores bare ids of that kind
            entity = {"CONTACT": CONTACT_TYPE, "COMPANY": COMPANY_TYPE,
                      "LEAD": LEAD_TYPE}.get(kind)  # a deal is nobody
            return None if entity is None else self._crm_person(entity, text, "")
        return self.user(text) if text.isdigit() else None

    def on_side(self, side: Side) -> tuple[Person, ...]:
        return tuple(person for person in self._people.values() if person.side is side)

    def _client(self, decision_makers: tuple[Person, ...] | None) -> Client:
        """The mapped `client` field when filled, else the company, else the first contact."""
        name = ""
        field_id = self.settings.fields.get("client")
        if field_id is not None:
            value, info = self._raw(field_id)
            name = as_text(self._plain(value, info)) or ""
        company = self.results.get(COMPANY)
        company_item = company.get("item") if isinstance(company, dict) else None
        if not name.strip() and isinstance(company_item, dict):
            name = str(company_item.get("title") or "")
        contacts = [person for person in self._people.values()
                    if person.id.startswith("contact:")]
        if not name.strip() and contacts:
            name = contacts[0].name
        name = name.strip()
        return Client(key=client_key(name), name=name, people=self.on_side(Side.CLIENT),
                      decision_makers=decision_makers)

    # -- stages -----------------------------------------------------------------------

    def _deal_stages(self, category: str, stage_id: str) -> tuple[Stage, ...] | None:
        stages = self.view.deal_stages.get(category)
        if stages is None or (stage_id and all(stage.id != stage_id for stage in stages)):
            self._missing_deal_categories.add(category)
        return stages

    def _history(self, deal_category: str
                 ) -> tuple[tuple[StatusChange, ...], tuple[Change, ...]]:
        """Stage moves from `crm.stagehistory.list`, each also a `status` change. The
        history does not say who moved the deal."""
        moves: list[StatusChange] = []
        changes: list[Change] = []
        previous: str | None = None
        records = sorted((record for record in items_of(self.results.get(STAGE_HISTORY))
                          if isinstance(record, dict)),
                         key=lambda record: _id_order(str(record.get("ID") or "0")))
        for record in records:
            at = as_time(record.get("CREATED_TIME"))
            stage_id = str(record.get("STAGE_ID") or "")
            if at is None or not stage_id:
                continue
            category = str(record.get("CATEGORY_ID") if record.get("CATEGORY_ID") is not None
                           else deal_category)
            stages = self._deal_stages(category, stage_id)
            name = _stage_name(stages, stage_id)
            moves.append(StatusChange(at, name, category_of(
                stages, stage_id, str(record.get("STAGE_SEMANTIC_ID") or ""))))
            changes.append(Change("status", at, previous, name))
            previous = name
        return tuple(moves), tuple(changes)

    # -- comments ---------------------------------------------------------------------

    def _ours(self, comment: Mapping[str, Any], known_sticky_id: str | None) -> bool:
        """ClientGuard's own sticky comment (or a stale copy): by id, or by the marker when
        the bot user wrote it."""
        if known_sticky_id is not None and str(comment.get("ID")) == known_sticky_id:
            return True
        return marked_by(comment, self.settings.bot_user_id)

    def _timeline(self, known_sticky_id: str | None) -> Iterator[Json]:
        for comment in items_of(self.results.get(COMMENTS)):
            if isinstance(comment, dict) and not self._ours(comment, known_sticky_id):
                yield comment

    def _comments(self, known_sticky_id: str | None) -> Iterator[Comment]:
        """Timeline comments (agency-internal: the CRM timeline is shown to no client),
        then e-mails and calls, which the client does see."""
        for comment in self._timeline(known_sticky_id):
            at = as_time(comment.get("CREATED"))
            author = self.user(comment.get("AUTHOR_ID"))
            if at is None or author is None:
                continue
            yield Comment(id=str(comment.get("ID")), author=author,
                          visibility=Visibility.INTERNAL, at=at,
                          text=bbcode_text(str(comment.get("COMMENT") or "")))
        for activity in items_of(self.results.get(ACTIVITIES)):
            if isinstance(activity, dict):
                yield from self._messages(activity)

    def _messages(self, activity: Json) -> Iterator[Comment]:
        """An e-mail or call as client-visible messages: incoming from the client's side
        (the CRM contact, company or lead it was with), outgoing from the agency (the
        activity's responsible user). An incoming call that lasted was answered by the
        responsible user as it ended; a missed one waits for an answer."""
        kind = activity_kind(activity)
        if kind not in ("email", "call"):
            return
        direction = str(activity.get("DIRECTION") or "")
        start = as_time(activity.get("START_TIME")) or as_time(activity.get("CREATED"))
        end = as_time(activity.get("END_TIME"))
        if start is None or start > self.now:
            return
        ident = f"activity:{activity.get('ID')}"
        text = activity_text(activity)
        responsible = self.user(activity.get("RESPONSIBLE_ID"))
        if direction == "1":
            author = self._counterpart(activity) or self._seen(
                Person(f"{ident}:sender", _counterpart_value(activity) or "Unknown sender",
                       Side.UNKNOWN))
            yield Comment(ident, author, Visibility.PUBLIC, start, text)
            if kind == "call" and end is not None and start < end <= self.now \
                    and responsible is not None:
                yield Comment(f"{ident}:answered", responsible, Visibility.PUBLIC, end, text)
        elif direction == "2" and responsible is not None:
            if kind == "call" and str(activity.get("COMPLETED")) != "Y":
                return  # a planned call, not made yet
            yield Comment(ident, responsible, Visibility.PUBLIC, start, text)

    def _counterpart(self, activity: Json) -> Person | None:
        for entry in activity.get("COMMUNICATIONS") or ():
            if not isinstance(entry, dict):
                continue
            settings = entry.get("ENTITY_SETTINGS") or {}
            name = _name(settings.get("NAME"), settings.get("SECOND_NAME"),
                         settings.get("LAST_NAME"))
            if str(entry.get("ENTITY_TYPE_ID")) == str(COMPANY_TYPE):
                name = str(settings.get("COMPANY_TITLE") or name)
            person = self._crm_person(entry.get("ENTITY_TYPE_ID"), entry.get("ENTITY_ID"), name)
            if person is not None:
                return person
        return None

    # -- documents --------------------------------------------------------------------

    def _documents(self, known_sticky_id: str | None) -> Iterator[Document]:
        """Generated documents, files in the deal's file fields, files on timeline
        comments; each classified by `document_patterns` on its name."""
        patterns = self.settings.document_patterns
        for document in items_of(self.results.get(DOCUMENTS)):
            at = as_time(document.get("createTime")) if isinstance(document, dict) else None
            if at is None:
                continue
            title = str(document.get("title") or "")
            template = _str_id(document.get("templateId"))
            yield Document(id=f"document:{document.get('id')}",
                           kind=document_kind(title, patterns), name=title, added_at=at,
                           author=self.user(document.get("createdBy")), template_id=template)
        yield from self._field_files(patterns)
        for comment in self._timeline(known_sticky_id):
            files = comment.get("FILES")
            for file in (files.values() if isinstance(files, dict) else files or ()):
                at = as_time(file.get("date")) if isinstance(file, dict) else None
                if at is None:
                    continue
                name = str(file.get("name") or "")
                author = self.user(file.get("authorId") or comment.get("AUTHOR_ID"))
                yield Document(id=f"file:{file.get('id')}", kind=document_kind(name, patterns),
                               name=name, added_at=at, author=author)

    def _field_files(self, patterns: Mapping[str, tuple[str, ...]]) -> Iterator[Document]:
        """Files in the deal's file fields. `crm.item.get` gives a file only `id` and `url`
        [D:api-reference/crm/universal/object-fields.md]: the name is the field's title,
        the date the deal's creation (the upload date is not available)."""
        added = as_time(self.deal.get("createdTime"))
        fields = self.view.fields or {}
        for key, value in self.deal.items():
            info = fields.get(key)
            files = [item for item in _as_list(value) if _is_file(item)]
            if added is None or not files or (info is not None and info.type != "file"):
                continue
            title = info.title if info is not None else key
            for file in files:
                yield Document(id=f"field-file:{file.get('id')}",
                               kind=document_kind(title, patterns), name=title, added_at=added)

    # -- time -------------------------------------------------------------------------

    def _time_entries(self) -> Iterator[TimeEntry]:
        """Calls and meetings that took place (done, with an end after the start, not
        after `now`), and the time logged on the deal's tasks."""
        for activity in items_of(self.results.get(ACTIVITIES)):
            kind = activity_kind(activity) if isinstance(activity, dict) else None
            if kind not in ("call", "meeting") or str(activity.get("COMPLETED")) != "Y":
                continue
            start = as_time(activity.get("START_TIME"))
            end = as_time(activity.get("END_TIME"))
            person = self.user(activity.get("RESPONSIBLE_ID"))
            if start is None or end is None or not start < end <= self.now or person is None:
                continue
            yield TimeEntry(person=person, hours=(end - start).total_seconds() / 3600,
                            kind=TimeKind.CALL if kind == "call" else TimeKind.MEETING,
                            at=start)
        for task in items_of(self.results.get(TASKS)):
            if isinstance(task, dict):
                yield from self._task_time(task)

    def _task_time(self, task: Json) -> Iterator[TimeEntry]:
        task_id = _str_id(task.get("id", task.get("ID")))
        seconds = _int(task.get("timeSpentInLogs", task.get("TIME_SPENT_IN_LOGS"))) or 0
        if task_id is None or seconds <= 0:
            return
        key = time_key(task_id, seconds)
        if key in self.results:
            records = items_of(self.results[key])
        else:
            cached = self.view.task_time.get(task_id)
            if cached is None or cached.seconds != seconds:
                self._tasks[task_id] = seconds
                return
            records = list(cached.records)
        for record in records:
            at = as_time(record.get("CREATED_DATE")) if isinstance(record, dict) else None
            person = self.user(record.get("USER_ID")) if isinstance(record, dict) else None
            spent = _int(record.get("SECONDS")) if isinstance(record, dict) else None
            if at is not None and person is not None and spent:
                # CREATED_DATE is the day the work was done, also for time added later
                # [D:api-reference/tasks/elapsed-item/task-elapsed-item-get-list.md].
                yield TimeEntry(person=person, hours=spent / 3600, kind=TimeKind.WORK, at=at)

    # -- money ------------------------------------------------------------------------

    def _invoices(self) -> tuple[Invoice, ...] | None:
        """Smart invoices linked to the deal. Paid: a stage with success semantics (the
        day it moved there is the day paid); declined (failure) ones are left out; none
        when any stage cannot be interpreted, or the list is not available."""
        if INVOICES not in self.results:
            return None
        invoices: list[Invoice] = []
        readable = True
        for item in items_of(self.results[INVOICES]):
            if not isinstance(item, dict):
                continue
            category = str(item.get("categoryId") if item.get("categoryId") is not None else 0)
            stage_id = str(item.get("stageId") or "")
            stages = self.view.invoice_stages.get(category)
            stage = next((s for s in stages or () if s.id == stage_id), None)
            if stage is None:
                self._missing_invoice_categories.add(category)
                readable = False
                continue
            issued = as_date(item.get("begindate")) or as_date(item.get("createdTime"))
            due = as_date(item.get("closedate"))
            amount = _decimal(item.get("opportunity"))
            if stage.semantics == "F" or issued is None or due is None or amount is None:
                continue  # declined, or no due date: it can never be overdue
            paid = stage.semantics == "S"
            invoices.append(Invoice(
                id=str(item.get("accountNumber") or item.get("id")), amount=amount,
                issued=issued, due=due, paid=paid,
                paid_on=as_date(item.get("movedTime")) if paid else None,
                currency=str(item.get("currencyId") or "") or None))
        return tuple(invoices) if readable else None

    # -- mapped fields ----------------------------------------------------------------

    def _raw(self, field_id: str) -> tuple[Any, FieldInfo | None]:
        """A deal field's value by its upper-case id (`UF_CRM_…`, `BEGINDATE`); a field
        the deal does not have is empty (None)."""
        fields = self.view.fields
        info = fields.get(field_id) if fields is not None else None
        if fields is not None and info is None and field_id in self.deal:
            self._fields_stale = True  # a field created since the catalogue read them
        for key in (field_id, info.key if info else None, _camel(field_id)):
            if key is not None and key in self.deal:
                return self.deal[key], info
        return None, info

    def _plain(self, value: Any, info: FieldInfo | None) -> Any:
        """A raw value made plain: empty is None, enumeration ids become their values,
        money `100|EUR` its amount."""
        if value is None or value == "" or value == [] or value == {}:
            return None
        if info is not None and info.type == "enumeration":
            values = []
            for item in _as_list(value):
                text = info.items.get(str(item))
                if text is None:
                    self._fields_stale = True  # a value added since
                    text = str(item)
                values.append(text)
            return values if info.multiple or isinstance(value, list) else values[0]
        if info is not None and info.type == "money":
            return [str(item).partition("|")[0] for item in value] if isinstance(
                value, list) else str(value).partition("|")[0]
        return value

    def _mapped_fields(self) -> dict[str, Any]:
        return mapped_values(self.settings.fields,
                             lambda field_id: self._plain(*self._raw(field_id)))


# -- classification and text ------------------------------------------------------------

def category_of(stages: tuple[Stage, ...] | None, stage_id: str, semantic: str = ""
                ) -> StatusCategory:
    """A deal stage's category: success and failure are done; an in-progress stage before
    the pipeline's `EXECUTING` stage is todo (pre-sale), it and later ones in progress. A
    pipeline without `EXECUTING` starts work after its first stage. Unknown stages: todo
    when named `NEW`, else in progress."""
    stage = next((s for s in stages or () if s.id == stage_id), None)
    semantic = semantic or (stage.semantics if stage is not None else "")
    if semantic in ("S", "F"):
        return StatusCategory.DONE
    process = [s for s in stages or () if s.semantics == "P"]
    if stage is None or stage not in process:
        return (StatusCategory.TODO if stage_id.rpartition(":")[2] == "NEW"
                else StatusCategory.IN_PROGRESS)
    work = next((index for index, s in enumerate(process)
                 if s.id.rpartition(":")[2] == WORK_START_STAGE), min(1, len(process) - 1))
    return StatusCategory.TODO if process.index(stage) < work else StatusCategory.IN_PROGRESS


def _stage_name(stages: tuple[Stage, ...] | None, stage_id: str) -> str:
    return next((s.name for s in stages or () if s.id == stage_id and s.name), stage_id)


def activity_kind(activity: Mapping[str, Any]) -> str | None:
    """`email`, `call` or `meeting` by `TYPE_ID` (4, 2, 1) or, for provider activities,
    `PROVIDER_TYPE_ID` [D:api-reference/crm/data-types.md#activity-enums]; else None."""
    by_type = {"1": "meeting", "2": "call", "4": "email"}.get(str(activity.get("TYPE_ID")))
    if by_type is not None:
        return by_type
    provider = str(activity.get("PROVIDER_TYPE_ID") or "").upper()
    return {"EMAIL": "email", "CALL": "call", "MEETING": "meeting"}.get(provider)


def activity_text(activity: Mapping[str, Any]) -> str:
    """Subject and body (`DESCRIPTION_TYPE` 1 plain, 2 BB-code, 3 HTML) as plain text."""
    subject = str(activity.get("SUBJECT") or "").strip()
    body = str(activity.get("DESCRIPTION") or "")
    kind = str(activity.get("DESCRIPTION_TYPE") or "1")
    body = html_text(body) if kind == "3" else bbcode_text(body) if kind == "2" else body.strip()
    return "\n".join(part for part in (subject, body) if part)


def _counterpart_value(activity: Mapping[str, Any]) -> str | None:
    for entry in activity.get("COMMUNICATIONS") or ():
        if isinstance(entry, dict) and entry.get("VALUE"):
            return str(entry["VALUE"])
    return None


_BB_QUOTE = re.compile(r"\[quote(?:=[^\]]*)?\](.*?)\[/quote\]", re.IGNORECASE | re.DOTALL)
_BB_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\[user=\d+\](.*?)\[/user\]", re.IGNORECASE | re.DOTALL), r"@\1"),
    (re.compile(r"\[url=[^\]]*\](.*?)\[/url\]", re.IGNORECASE | re.DOTALL), r"\1"),
    (re.compile(r"\[(?:img|disk file id)[^\]]*\](?:.*?\[/img\])?", re.IGNORECASE), ""),
    (re.compile(r"\[/?(?:[a-z]+|\*)(?:=[^\]]*)?\]", re.IGNORECASE), ""),
)


def bbcode_text(markup: str) -> str:
    """A timeline comment's BB-code as plain text: tags dropped, mentions `@Name`, links
    their text, quotes as lines starting with `> `."""
    text = _BB_QUOTE.sub(
        lambda quote: "\n".join(f"> {line}" for line in quote[1].strip("\n").split("\n")),
        markup)
    for pattern, replacement in _BB_RULES:
        text = pattern.sub(replacement, text)
    return html.unescape(text).strip()


class _HtmlText(HTMLParser):
    """HTML (e-mail bodies) to text: blocks end lines, `<br>` breaks one, a blockquote's
    lines start with `> `, scripts and styles are dropped."""

    BLOCKS = frozenset({"p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self.quote = 0
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag == "br" or tag in self.BLOCKS:
            self.lines.append("")
        elif tag == "blockquote":
            self.quote += 1
            self.lines.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.lines.append("")
        elif tag == "blockquote":
            self.quote = max(0, self.quote - 1)
            self.lines.append("")

    def handle_data(self, data: str) -> None:
        text = re.sub(r"\s+", " ", data)
        if self.skip or not (text.strip() or self.lines[-1]):
            return
        if not self.lines[-1]:
            self.lines[-1] = "> " * self.quote
            text = text.lstrip()
        self.lines[-1] += text


def html_text(markup: str) -> str:
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    lines = [line.rstrip() for line in parser.lines]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line for line in lines
                                               if line.strip("> ") or not line)).strip()


# -- values ------------------------------------------------------------------------------

def _name(*parts: Any) -> str:
    return " ".join(" ".join(str(part or "") for part in parts).split())


def _str_id(value: Any) -> str | None:
    """An id as text; 0, empty and None (Bitrix24's "nobody") are None."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return None if text in ("", "0") else text


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _camel(upper: str) -> str:
    """`ASSIGNED_BY_ID` → `assignedById`: how `crm.item` names a standard field."""
    head, *rest = upper.lower().split("_")
    return head + "".join(part.title() for part in rest)


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _is_file(value: Any) -> bool:
    return isinstance(value, dict) and "id" in value and ("url" in value
                                                          or "urlMachine" in value)


def _crm_single_kind(info: FieldInfo | None) -> str | None:
    """The one CRM kind a CRM-link field links to (it then stores bare ids), or None when it
    links several (its values then say their kind: C_12, CO_4)."""
    if info is None:
        return None
    kinds = [key for key, on in info.settings.items() if on == "Y"
             and key in ("LEAD", "CONTACT", "COMPANY", "DEAL")]
    return kinds[0] if len(kinds) == 1 else None


__all__ = [
    "CatalogueView",
    "Catalogues",
    "DealContext",
    "Lookups",
    "Pages",
    "PortalCatalogue",
    "StickySearch",
    "build_engagement",
    "fetch_deal_data",
    "fetch_snapshot",
    "find_sticky",
    "lookups_needed",
    "pages_needed",
    "snapshot_commands",
]
