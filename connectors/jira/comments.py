"""The sticky comment on a Jira issue: find it, write it (agency-internal by construction),
delete it.

Nothing here takes a visibility: where the comment goes decides it.

- A Jira Service Management project (`projectTypeKey` `service_desk`): a JSM internal note.
  Created through `POST /rest/servicedeskapi/request/{key}/comment` with `public: false`
  (on an issue that is no portal request, which that API does not know, through the
  platform API with the property below); updated through the platform API with the
  `sd.public.comment` = `{"internal": true}` property restated in the same request. Role
  or group visibility is not used there: it does not hide a comment from the customer
  portal.
- Any other project: a comment restricted to `JiraSettings.internal_visibility` (a role or
  group). Without it nothing is written (`StickyRefused`): never a comment for all users.

Every write is read back (`?expand=properties`); a comment the client could read is deleted
at once and `LeakPrevented` raised.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any, cast
from urllib.parse import quote

from connectors.base import STICKY_MARKER, Written
from connectors.errors import LeakPrevented, NotFound, PlatformError, StickyRefused
from connectors.jira.client import CommentVisibility, JiraClient
from connectors.jira.markup import to_adf, to_wiki
from connectors.jira.settings import JiraSettings
from connectors.mapping import as_time
from connectors.sticky import StickySearch
from connectors.sticky import find_sticky as _find_sticky
from plugin.core.comment import StickyContent

SERVICE_DESK = "service_desk"
JSM_INTERNAL_PROPERTY = "sd.public.comment"
JSM_INTERNAL = {"internal": True}


def _texts(node: Any) -> Iterable[str]:
    """Every text of an ADF document (depth first)."""
    if isinstance(node, Mapping):
        if isinstance(node.get("text"), str):
            yield node["text"]
        yield from _texts(node.get("content"))
    elif isinstance(node, list):
        for child in node:
            yield from _texts(child)


def carries_marker(comment: Mapping[str, Any]) -> bool:
    """Whether the comment's body (ADF on Cloud v3, a wiki string on v2 and in webhooks)
    contains the sticky marker."""
    body = comment.get("body")
    text = body if isinstance(body, str) else "".join(_texts(body))
    return STICKY_MARKER in text


def user_ids(user: Any) -> tuple[str, ...]:
    """A Jira user object's ids, the most lasting first: accountId on Cloud, name and key on
    Data Center (Cloud payloads may still carry the retired name, "admin", beside the
    accountId: comment_created__cloud.json)."""
    if not isinstance(user, Mapping):
        return ()
    return tuple(value for value in (user.get("accountId"), user.get("name"), user.get("key"))
                 if isinstance(value, str) and value)


def is_account(user: Any, account: str) -> bool:
    """Whether a Jira user object is `account` (any of its ids)."""
    return account in user_ids(user)


def is_ours(comment: Mapping[str, Any], service_account: str | None) -> bool:
    """A sticky comment of ClientGuard's: it carries the marker and, when a service account
    is configured, that account wrote it (a person quoting our comment keeps theirs)."""
    return carries_marker(comment) and (
        service_account is None or is_account(comment.get("author"), service_account))


def find_sticky(comments: Iterable[Mapping[str, Any]], known_id: str | None, *,
                author: str | None = None) -> StickySearch:
    """Find our comment: the one with the stored `known_id`, else the newest carrying the
    marker. Every other marker comment is reported as stale. With `author` (the service
    account: accountId on Cloud, username on Data Center) only that account's comments
    count by marker, so a person quoting our comment never has theirs deleted; without it,
    whoever wrote the comment of `known_id` is taken for the service account. The rule is
    `connectors.sticky.find_sticky`'s; Jira's comment ids are `id`."""
    comments = list(comments)
    if author is None and known_id is not None:
        known = next((c for c in comments if str(c.get("id")) == known_id), None)
        author = next(iter(user_ids(known.get("author"))), None) if known else None
    return _find_sticky(comments, known_id, id_key="id", marked=lambda c: is_ours(c, author))


def in_service_desk(fields: Mapping[str, Any]) -> bool:
    """Whether an issue's `fields` place it in a JSM project (reading: unknown counts as no)."""
    return (fields.get("project") or {}).get("projectTypeKey") == SERVICE_DESK


def is_service_desk(issue: Mapping[str, Any]) -> bool:
    """Whether the issue is a JSM request, for writing. The project type must be in the issue
    (fetch `project` with it): guessing wrong would choose the wrong kind of internal."""
    try:
        issue["fields"]["project"]["projectTypeKey"]
    except (KeyError, TypeError):
        raise StickyRefused(f"{issue.get('key')}: no fields.project.projectTypeKey in the "
                            "issue; cannot tell a JSM request from another issue") from None
    return in_service_desk(issue["fields"])


def write_sticky(client: JiraClient, settings: JiraSettings, issue: Mapping[str, Any],
                 content: StickyContent, existing: str | None) -> Written:
    """Create the sticky comment, or update the `existing` one (by id; created anew when it
    was deleted meanwhile), always agency-internal, updates without notifications; returns
    its id and its `updated` as read back (Jira gives the issue the comment's time).

    Raises `StickyRefused` before any request when the comment could not be internal,
    and `LeakPrevented` when the read-back shows a client-visible comment."""
    key = issue["key"]
    service_desk = is_service_desk(issue)
    if service_desk:
        comment_id = _write_internal_note(client, key, content, existing)
    else:
        comment_id = _write_restricted(client, key, content, existing,
                                       staff_only(settings, key))
    updated = _ensure_internal(client, key, comment_id, service_desk=service_desk).get("updated")
    return Written(comment_id, as_time(updated))


def delete_sticky(client: JiraClient, issue_key: str, comment_id: str) -> None:
    """Delete the sticky comment (all checks pass and the agency wants it gone, or a stale
    duplicate); one already gone is fine."""
    with contextlib.suppress(NotFound):
        client.delete_comment(issue_key, comment_id)


# -- the two kinds of internal ---------------------------------------------------------

def staff_only(settings: JiraSettings, key: str) -> CommentVisibility:
    visibility = settings.internal_visibility
    if not visibility:
        raise StickyRefused(f"{key}: [jira] internal_visibility is not configured; a comment "
                            "without it would be visible to everyone on the issue")
    return cast(CommentVisibility, {"type": visibility["type"], "value": visibility["value"]})


def _platform_body(client: JiraClient, content: StickyContent) -> dict[str, Any] | str:
    return to_adf(content) if client.flavour == "cloud" else to_wiki(content)


def _write_restricted(client: JiraClient, key: str, content: StickyContent,
                      existing: str | None, visibility: CommentVisibility) -> str:
    body = _platform_body(client, content)
    if existing is not None:
        try:
            return str(client.update_comment(key, existing, body, visibility)["id"])
        except NotFound:
            pass  # deleted by a person meanwhile: write a new one
    return str(client.add_comment(key, body, visibility)["id"])


def _write_internal_note(client: JiraClient, key: str, content: StickyContent,
                         existing: str | None) -> str:
    if existing is not None:
        try:
            return _platform_internal_note(client, key, content, existing)
        except NotFound:
            pass  # deleted by a person meanwhile: write a new one
    try:
        return str(client.add_servicedesk_internal_comment(key, to_wiki(content))["id"])
    except NotFound:  # an issue of the JSM project that is no portal request (created in
        # Jira, moved in, no request type): JSM's API does not know it, the platform's does
        return _platform_internal_note(client, key, content, None)


def _platform_internal_note(client: JiraClient, key: str, content: StickyContent,
                            existing: str | None) -> str:
    """A JSM internal note through the platform's comment API, which keeps it internal by
    stating its `sd.public.comment` property in the same request (no window where it is
    public): to update one (JSM has no comment update), silently, or to create one where
    JSM's API cannot. Raises `NotFound` when the comment or the issue is gone."""
    json = {"body": _platform_body(client, content),
            "properties": [{"key": JSM_INTERNAL_PROPERTY, "value": JSM_INTERNAL}]}
    if existing is not None:
        client.request("PUT", _comment_path(client, key, existing), issue=key,
                       params={"notifyUsers": "false"}, json=json)
        return existing
    return str(client.request("POST", _comment_path(client, key), issue=key, json=json)["id"])


# -- the read-back ---------------------------------------------------------------------

def _comment_path(client: JiraClient, key: str, comment_id: str | None = None) -> str:
    """The issue's comments, or one of them."""
    path = f"{client.api}/issue/{quote(key, safe='')}/comment"
    return path if comment_id is None else f"{path}/{quote(comment_id, safe='')}"


def _property(comment: Mapping[str, Any], name: str) -> Any:
    return next((item.get("value") for item in comment.get("properties") or ()
                 if item.get("key") == name), None)


def client_visible(comment: Mapping[str, Any], *, service_desk: bool) -> bool:
    """Whether the client could read this comment. On a JSM request: unless `jsdPublic` is
    false or the `sd.public.comment` property says internal, and neither says public.
    Elsewhere: unless it is restricted to a role or group."""
    if service_desk:
        public = comment.get("jsdPublic")
        flag = _property(comment, JSM_INTERNAL_PROPERTY)
        internal = flag.get("internal") if isinstance(flag, Mapping) else None
        if public is True or internal is False:
            return True
        return not (public is False or internal is True)
    visibility = comment.get("visibility") or {}
    return not (visibility.get("type") in ("role", "group")
                and (visibility.get("value") or visibility.get("identifier")))


def left_as_written(comment: Mapping[str, Any], *, service_desk: bool) -> bool:
    """Whether our sticky comment is as ClientGuard left it: hidden from the client, and
    last edited by whoever wrote it (ClientGuard's account, whatever `service_account`
    says). A person may have shared it with the client or changed its text; then it is
    written again even though its content did not change."""
    editor = user_ids(comment.get("updateAuthor"))
    return not client_visible(comment, service_desk=service_desk) and (
        not editor or bool(set(editor) & set(user_ids(comment.get("author")))))


def _ensure_internal(client: JiraClient, key: str, comment_id: str, *,
                     service_desk: bool) -> dict[str, Any]:
    """The comment as read back, when it is internal."""
    written = client.request("GET", _comment_path(client, key, comment_id),
                             params={"expand": "properties"})
    if not client_visible(written, service_desk=service_desk):
        return written
    try:
        delete_sticky(client, key, comment_id)
    except PlatformError as error:
        raise LeakPrevented(key, comment_id, deleted=False) from error
    raise LeakPrevented(key, comment_id, deleted=True)
