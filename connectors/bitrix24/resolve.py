"""Which deal an indirect event belongs to: one `batch` for up to 50 indirect refs of a portal.

Intake stores events that name only a timeline comment, an activity, a task or a smart invoice
under an indirect key (`connectors.bitrix24.events`); the worker's resolve step
(`plugin.pipeline.resolve`) hands them here. Each ref costs exactly one batch command, so 50
refs always fit one call:

- `timeline-comment:<id>` → `crm.timeline.comment.get {id}`: `ENTITY_ID` when `ENTITY_TYPE`
  is `deal`, none for our own sticky comment;
- `activity:<id>` → `crm.activity.binding.list {activityId}`: the first binding of type 2;
- `task:<id>` → `tasks.task.get {taskId, select: [ID, UF_CRM_TASK]}`: the first `D_<id>` in
  `ufCrmTask`;
- `invoice:<id>` → `crm.item.get {entityTypeId: 31, id}`: `parentId2`.

What each answer means for the ref: a deal → that deal; no deal, or an object that is gone
(`NotFound`, or `result: []` from `tasks.task.get`) → None, and its events are dropped; any
other failure of the command (operating limit, access, a 5xx inside the batch, an answer of
an unexpected shape) → the ref is left out and asked again later. A failure of the batch call
itself propagates.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from connectors.base import EngagementRef
from connectors.bitrix24.client import BATCH_LIMIT, BatchResult, Bitrix24Client
from connectors.bitrix24.comments import marked_by
from connectors.bitrix24.events import (
    ACTIVITY,
    CONNECTOR,
    ID,
    INVOICE,
    SMART_INVOICE_TYPE,
    TASK,
    TIMELINE_COMMENT,
)
from connectors.errors import NotFound, PayloadError

log = logging.getLogger(__name__)

DEAL_ENTITY_TYPE = "deal"  # crm.timeline.comment ENTITY_TYPE [D:api-reference/crm/timeline/
# comments/crm-timeline-comment-fields.md: lead, deal, contact, company, order]
DEAL_TYPE_ID = 2  # CRM object type id of a deal [D:api-reference/crm/data-types.md]
TASK_DEAL_LINK = re.compile(r"D_([0-9]{1,19})")
"""A deal in a task's `UF_CRM_TASK`: `D_1723` beside `C_627` (contact), `CO_591` (company),
`L_1177` (lead), `T88_3` (smart process) [D:api-reference/tasks/tasks-task-get.md]."""

Json = Any
Reader = Callable[[str, Json], str | None]
"""Reads one command's `result` for the object with the given id: the deal id, or None when
it belongs to no deal. Raises `PayloadError` for an answer it cannot read."""


def resolve_owners(client: Bitrix24Client, refs: list[EngagementRef],
                   bot_user_id: str | None) -> dict[EngagementRef, EngagementRef | None]:
    """The deal each indirect ref of `client`'s portal belongs to, in one `batch` call.

    None means "belongs to no deal": the object is linked to something else, is gone, or is
    our own sticky comment (a write of ours echoing back must never start an evaluation).
    Refs whose command failed otherwise are left out, to be asked again. `bot_user_id` is the
    user ClientGuard writes as (None: any author's marked comment counts as ours).

    Raises ValueError for more than 50 refs, and for a ref that is not an indirect key of
    this connector and portal: those are programming errors, not platform answers."""
    if len(set(refs)) > BATCH_LIMIT:
        raise ValueError(f"resolve takes at most {BATCH_LIMIT} refs (one batch), got "
                         f"{len(set(refs))}: split them")
    commands: dict[str, tuple[str, Mapping[str, Any]]] = {}
    wanted: dict[EngagementRef, tuple[str, str, Reader]] = {}
    for ref in refs:
        command_key, object_id, method, params, reader = _command(client.site, ref, bot_user_id)
        commands[command_key] = (method, params)
        wanted[ref] = (command_key, object_id, reader)
    answer = client.batch(commands)

    found: dict[EngagementRef, EngagementRef | None] = {}
    for ref, (command_key, object_id, reader) in wanted.items():
        try:
            deal = _deal_of(ref, answer, command_key, object_id, reader)
        except _AskLater as reason:
            log.info("%s: not resolved now, asked again later: %s", ref.key, reason)
            continue
        found[ref] = (None if deal is None
                      else EngagementRef(connector=CONNECTOR, site=ref.site, key=deal))
    return found


# -- building the batch ---------------------------------------------------------------------

def _command(site: str, ref: EngagementRef, bot_user_id: str | None
             ) -> tuple[str, str, str, Mapping[str, Any], Reader]:
    """(command key, object id, method, params, reader) for one indirect ref."""
    if ref.connector != CONNECTOR or ref.site != site:
        raise ValueError(f"{ref} is not a ref of the {CONNECTOR} portal {site!r}")
    if not ref.indirect:
        raise ValueError(f"{ref.key!r} is a deal key, not an indirect one: nothing to resolve")
    prefix, _, object_id = ref.key.partition(":")
    if not ID.fullmatch(object_id):
        raise ValueError(f"indirect key {ref.key!r} does not end in an id (digits)")
    kind = prefix + ":"
    if kind == TIMELINE_COMMENT:
        return (f"comment_{object_id}", object_id, "crm.timeline.comment.get",
                {"id": int(object_id)}, _comment_reader(bot_user_id))
    if kind == ACTIVITY:
        return (f"activity_{object_id}", object_id, "crm.activity.binding.list",
                {"activityId": int(object_id)}, _activity_deal)
    if kind == TASK:
        return (f"task_{object_id}", object_id, "tasks.task.get",
                {"taskId": int(object_id), "select": ["ID", "UF_CRM_TASK"]}, _task_deal)
    if kind == INVOICE:
        return (f"invoice_{object_id}", object_id, "crm.item.get",
                {"entityTypeId": int(SMART_INVOICE_TYPE), "id": int(object_id)}, _invoice_deal)
    raise ValueError(f"indirect key {ref.key!r} is of an unknown kind {prefix!r}")


# -- reading the answers --------------------------------------------------------------------

class _AskLater(Exception):
    """This ref's command failed in a way that may pass (or its answer was unreadable): the
    ref is left out of the result and asked again by a later resolve step."""


def _deal_of(ref: EngagementRef, answer: BatchResult, command_key: str, object_id: str,
             reader: Reader) -> str | None:
    """The deal id for one ref, or None for none; raises `_AskLater`."""
    if command_key in answer.errors:
        error = answer.errors[command_key]
        if isinstance(error, NotFound):
            log.debug("%s: gone (%s); its events belong to no deal", ref.key, error)
            return None
        raise _AskLater(str(error))
    if command_key not in answer.results:
        log.warning("%s: the batch answered nothing for command %s", ref.key, command_key)
        raise _AskLater(f"batch command {command_key} did not run")
    try:
        deal = reader(object_id, answer.results[command_key])
    except PayloadError as error:
        log.warning("%s: %s", ref.key, error)
        raise _AskLater(str(error)) from error
    if deal is None:
        log.debug("%s: belongs to no deal", ref.key)
    return deal


def _comment_reader(bot_user_id: str | None) -> Reader:
    def read(comment_id: str, result: Json) -> str | None:
        """`crm.timeline.comment.get` answers `{ID, ENTITY_ID, ENTITY_TYPE, AUTHOR_ID,
        COMMENT, …}` [D:api-reference/crm/timeline/comments/crm-timeline-comment-get.md].
        Ours is the snapshot's rule (`marked_by`): the marker, written by `bot_user_id`. A
        person quoting our comment copies the marker too, and their reply is theirs."""
        if not isinstance(result, dict):
            raise PayloadError(f"crm.timeline.comment.get {comment_id} answered "
                               f"{type(result).__name__}, not a comment")
        if marked_by(result, bot_user_id):
            log.debug("timeline comment %s is our own sticky comment", comment_id)
            return None
        if str(result.get("ENTITY_TYPE") or "").lower() != DEAL_ENTITY_TYPE:
            return None
        return _deal_id(result.get("ENTITY_ID"), f"timeline comment {comment_id} ENTITY_ID")
    return read


def _activity_deal(activity_id: str, result: Json) -> str | None:
    """`crm.activity.binding.list` answers `[{entityTypeId, entityId}, …]`, every CRM item the
    activity is bound to [D:api-reference/crm/timeline/activities/binding/
    crm-activity-binding-list.md]. Its owner is one of them: an activity always keeps at
    least one binding (`LAST_BINDING_CANNOT_BE_DELETED`, crm-activity-binding-delete.md) and
    `OWNER_ID` changes through `crm.activity.binding.move` (crm-activity-fields.md). So this
    one command covers both the owner and other bindings. `crm.activity.get` would add a
    second command per activity (its documented answer has no BINDINGS), and 50 activities
    would no longer fit one batch. With several deals, the first listed is taken."""
    if not isinstance(result, list):
        raise PayloadError(f"crm.activity.binding.list {activity_id} answered "
                           f"{type(result).__name__}, not a list")
    deals = [binding.get("entityId") for binding in result
             if isinstance(binding, dict) and str(binding.get("entityTypeId")) == str(DEAL_TYPE_ID)]
    if not deals:
        return None
    if len(deals) > 1:
        log.debug("activity %s is bound to deals %s; taking %s", activity_id,
                  ", ".join(map(str, deals)), deals[0])
    return _deal_id(deals[0], f"activity {activity_id} binding entityId")


def _task_deal(task_id: str, result: Json) -> str | None:
    """`tasks.task.get` answers `{"task": {"id", "ufCrmTask": ["C_627", "D_1723", …]}}`, and
    `[]` when the task does not exist or we may not see it
    [D:api-reference/tasks/tasks-task-get.md]. A task may be linked to several deals; the
    event is filed under the first one listed (the order the portal keeps the links in), and
    the others are logged: one event re-evaluates one deal, and the others are evaluated
    again by their own events and by the review's catch-up."""
    if result == [] or result is None:
        return None
    task = result.get("task") if isinstance(result, dict) else None
    if not isinstance(task, dict):
        raise PayloadError(f"tasks.task.get {task_id} answered no task object")
    links = task.get("ufCrmTask")
    if isinstance(links, str):
        links = [links]
    if not isinstance(links, list):  # null or false: linked to nothing
        return None
    deals = [match.group(1) for match in (TASK_DEAL_LINK.fullmatch(str(link)) for link in links)
             if match is not None]
    if not deals:
        return None
    if len(deals) > 1:
        log.debug("task %s is linked to deals %s; taking %s, skipping %s", task_id,
                  ", ".join(deals), deals[0], ", ".join(deals[1:]))
    return _deal_id(deals[0], f"task {task_id} ufCrmTask")


def _invoice_deal(invoice_id: str, result: Json) -> str | None:
    """`crm.item.get` answers `{"item": {…, "parentId2": <deal id or null>}}`: `parentIdN` is
    the parent item of type N, and 2 is the deal [D:api-reference/crm/universal/
    crm-item-get.md, object-fields.md]."""
    item = result.get("item") if isinstance(result, dict) else None
    if not isinstance(item, dict):
        raise PayloadError(f"crm.item.get invoice {invoice_id} answered no item object")
    return _deal_id(item.get(f"parentId{DEAL_TYPE_ID}"), f"invoice {invoice_id} parentId2")


def _deal_id(value: Any, where: str) -> str | None:
    """A deal id as the key of its ref ("410"); None for none (null, "", 0, which Bitrix24
    writes for an empty link). Anything else that is not digits is an unreadable answer."""
    if value is None or value in ("", 0, "0", False):
        return None
    text = str(value)
    if isinstance(value, bool) or not ID.fullmatch(text):
        raise PayloadError(f"{where} is {text[:40]!r}, not a deal id")
    return str(int(text)) if int(text) > 0 else None
