"""A saved Jira issue as an `Engagement`, without a single request: what
`clientguard check --connector jira --input issue.json` reads.

The file is Jira's answer to `GET /rest/api/{3|2}/issue/{key}?expand=changelog` (add
`,names` on Data Center, whose changelog names custom fields by display name), with the
comments and worklogs Jira embeds in it. It is mapped by `build_engagement`, like a live
snapshot, with what a file cannot have said as warnings:

- Status categories. A live snapshot asks Jira for every status of the site; a file knows
  only the status objects inside it: the issue's own status and, when present, those of its
  parent, sub-tasks and linked issues. A changelog move to any other status is left out of
  the status history, as a move to a status deleted since is (the change itself is kept);
  each such status is named in a warning. Statuses are not guessed from their names.
- Completeness. Jira embeds at most 20 worklogs, and comments and histories up to its page
  size; a part cut short is mapped as it is, with a warning. So is a service desk export
  whose comments lack `jsdPublic`: internal notes cannot be told from public comments
  there (Data Center; the live snapshot reads the comment properties).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from connectors.base import EngagementRef, Export
from connectors.errors import ExportError
from connectors.jira.comments import in_service_desk
from connectors.jira.settings import JiraSettings
from connectors.jira.snapshot import build_engagement, category_of, page_complete
from connectors.mapping import as_time
from plugin.core.model import StatusCategory
from plugin.core.schema import decode_json


def loads_export(text: str, settings: JiraSettings) -> Export:
    """Decode a saved issue and map it; every problem with the file is an `ExportError`."""
    return load_export(decode_json(text, ExportError), settings)


def load_export(issue: Any, settings: JiraSettings) -> Export:
    """Map a decoded saved issue (see the module's docstring)."""
    fields = issue.get("fields") if isinstance(issue, dict) else None
    if not isinstance(fields, dict) or not isinstance(issue.get("key"), str):
        raise ExportError("not a Jira issue: expected an object with `key` and `fields` "
                          "(GET /rest/api/{3|2}/issue/{key}?expand=changelog)")
    missing = [name for name in ("created", "updated") if as_time(fields.get(name)) is None]
    if missing:
        raise ExportError(f"not a Jira issue: no {' or '.join(f'fields.{m}' for m in missing)} "
                          "time")
    project = fields.get("project")
    if project is not None and not (isinstance(project, dict)
                                    and isinstance(project.get("key"), str)):
        raise ExportError("not a Jira issue: fields.project is not an object with a key")
    try:
        return _mapped(issue, fields, settings)
    # a shape Jira never sends, somewhere deeper: said as such, not as a traceback
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ExportError(f"not a Jira issue as Jira answers it: {type(error).__name__} "
                          f"{error}") from None


def _mapped(issue: dict[str, Any], fields: dict[str, Any], settings: JiraSettings) -> Export:
    statuses = dict(_status_objects(fields))
    comment_page, worklog_page = fields.get("comment"), fields.get("worklog")
    changelog = issue.get("changelog")
    comments = _items(comment_page, "comments")
    histories = _items(changelog, "histories")
    ref = EngagementRef("jira", settings.site, str(issue.get("id") or issue["key"]))
    engagement = build_engagement(ref, issue, comments, _items(worklog_page, "worklogs"),
                                  histories, statuses, settings)
    warnings = [*_incomplete(comment_page, "comments", "no comments in the file"),
                *_incomplete(worklog_page, "worklogs", "no worklogs in the file"),
                *_incomplete(changelog, "histories", "no changelog in the file: save the "
                                                     "issue with ?expand=changelog")]
    if comments and in_service_desk(fields) and any(
            "jsdPublic" not in comment and not comment.get("properties")
            for comment in comments):
        warnings.append("service desk comments without `jsdPublic`: internal notes cannot be "
                        "told from public comments and count as public")
    unknown = sorted({str(item.get("toString") or item.get("to")) for item in _moves(histories)
                      if str(item.get("to")) not in statuses})
    if unknown:
        warnings.append(f"the changelog moves to statuses the file does not describe "
                        f"({', '.join(unknown)}): those moves are left out of the status "
                        f"history")
    return Export(engagement, tuple(f"{issue['key']}: {line}" for line in warnings))


def _status_objects(fields: dict[str, Any]) -> Iterator[tuple[str, StatusCategory]]:
    """Every status object (`{id, statusCategory}`) anywhere in the fields, by id: the
    issue's own, its parent's, its sub-tasks' and linked issues'. Walked without recursion:
    the file decides how deep it nests."""
    stack: list[Any] = [fields]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "statusCategory" in node and node.get("id") is not None:
                yield str(node["id"]), category_of(node["statusCategory"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _items(page: Any, items_key: str) -> list[Any]:
    items = page.get(items_key) if isinstance(page, dict) else None
    return items if isinstance(items, list) else []


def _incomplete(page: Any, items_key: str, absent: str) -> list[str]:
    """What a part of the file lacks: all of it (said by `absent`), or its later pages."""
    if not isinstance(page, dict):
        return [absent]
    if page_complete(page, items_key):
        return []
    return [f"the file holds {len(_items(page, items_key))} of {page.get('total')} "
            f"{items_key}: the others are not evaluated"]


def _moves(histories: list[Any]) -> Iterator[dict[str, Any]]:
    for history in histories:
        for item in (history.get("items") or () if isinstance(history, dict) else ()):
            if isinstance(item, dict) and item.get("field") == "status":
                yield item
