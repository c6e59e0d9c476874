"""Jira webhook deliveries in, `Event` or `Ignored` out.

`EVENT_HANDLERS` is the allowlist: each handled event name maps to the function that finds
the issue the event is about and who caused it; `SUPPORTED_EVENTS` is derived from it.
`IGNORED_EVENTS` are events Jira sends that we drop on purpose, answered "not handled"; any
other name is accepted and answered "unknown event" (as the Bitrix24 connector answers). The
engagement key is the issue id: unlike the issue key it survives a move to another project,
and every handled event kind carries it somewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from connectors.base import STICKY_MARKER, Delivery, EngagementRef, Event, Ignored
from connectors.errors import BadSignature, MalformedDelivery
from connectors.jira.comments import is_account, user_ids
from connectors.jira.settings import JiraSettings
from connectors.mapping import dig
from plugin.core.schema import decode_json

SIGNATURE_HEADER = "x-hub-signature"
SIGNATURE_METHOD = "sha256"
DELIVERY_ID_HEADER = "x-atlassian-webhook-identifier"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ISSUE_ID = re.compile(r"[0-9]+")
ISSUE_ID_IN_COMMENT_URL = re.compile(r"/rest/api/[^/]+/issue/([0-9]+)/comment/")


class Subject(NamedTuple):
    """What a handler finds in a payload: the issue's id, the user object of whoever caused
    the event, and the comment body when the event carries a comment."""

    issue_id: str | None
    user: Any
    comment_body: Any = None



def _issue_id(value: Any) -> str | None:
    return value if isinstance(value, str) and ISSUE_ID.fullmatch(value) else None


def _issue_event(payload: dict[str, Any]) -> Subject:
    # Data Center may report a new comment as jira:issue_updated (`issue_commented`) with the
    # comment beside the issue (jira_issue_updated__datacenter_commented.json).
    return Subject(_issue_id(dig(payload, "issue", "id")), payload.get("user"),
                   dig(payload, "comment", "body"))


def _comment_event(payload: dict[str, Any]) -> Subject:
    comment = payload.get("comment")
    issue_id = _issue_id(dig(payload, "issue", "id"))
    if issue_id is None:
        # Data Center's comment_created has no `issue`; the id is only inside `comment.self`
        # (comment_created__datacenter_no_issue.json).
        url = dig(comment, "self")
        match = ISSUE_ID_IN_COMMENT_URL.search(url) if isinstance(url, str) else None
        issue_id = match.group(1) if match else None
    return Subject(issue_id, dig(comment, "updateAuthor") or dig(comment, "author"),
                   dig(comment, "body"))


def _comment_deleted_event(payload: dict[str, Any]) -> Subject:
    # The payload names the deleted comment's author and last editor, not who deleted it
    # (comment_deleted__cloud.json): no one to go by, and no body to take for our echo. A
    # person deleting our sticky comment must get it back; our own deletes cost one
    # evaluation that writes nothing.
    return Subject(_comment_event(payload).issue_id, None)


def _worklog_event(payload: dict[str, Any]) -> Subject:
    # Worklog events have no `issue`, only `worklog.issueId`
    # (worklog_created__cloud_issue_id_only.json).
    worklog = payload.get("worklog")
    return Subject(_issue_id(dig(worklog, "issueId")),
                   dig(worklog, "updateAuthor") or dig(worklog, "author"))


def _attachment_event(payload: dict[str, Any]) -> Subject:
    return Subject(_issue_id(dig(payload, "issue", "id")), dig(payload, "attachment", "author"))


EVENT_HANDLERS: dict[str, Callable[[dict[str, Any]], Subject]] = {
    "jira:issue_created": _issue_event,
    "jira:issue_updated": _issue_event,
    "jira:issue_deleted": _issue_event,
    "comment_created": _comment_event,
    "comment_updated": _comment_event,
    "comment_deleted": _comment_deleted_event,
    "worklog_created": _worklog_event,
    "worklog_updated": _worklog_event,
    "worklog_deleted": _worklog_event,
    "attachment_created": _attachment_event,
    "attachment_deleted": _attachment_event,
}
SUPPORTED_EVENTS: tuple[str, ...] = tuple(EVENT_HANDLERS)

IGNORED_EVENTS = frozenset({
    "issue_property_set", "issue_property_deleted",
    "issuelink_created", "issuelink_deleted",
    "issuetype_created", "issuetype_updated", "issuetype_deleted",
    "project_created", "project_updated", "project_deleted", "project_soft_deleted",
    "project_restored_deleted", "project_archived", "project_restored_archived",
    "jira:version_released", "jira:version_unreleased", "jira:version_created",
    "jira:version_moved", "jira:version_updated", "jira:version_deleted",
    "filter_created", "filter_updated", "filter_deleted",
    "user_created", "user_updated", "user_deleted",
    "option_voting_changed", "option_watching_changed", "option_unassigned_issues_changed",
    "option_subtasks_changed", "option_issuelinks_changed", "option_timetracking_changed",
    "option_timetracking_provider_changed",
    "sprint_created", "sprint_deleted", "sprint_updated", "sprint_started", "sprint_closed",
    "board_created", "board_updated", "board_deleted", "board_configuration_changed",
    "jira_expression_evaluation_failed",
    "app_access_to_objects_blocked", "app_access_to_objects_in_container_blocked",
})
"""Events on Jira's webhook list that say nothing about an engagement's service quality."""


def verify_signature(body: bytes, header: str | None, secret: str) -> None:
    """Check `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>`; raise `BadSignature`.

    The header names its method (WebSub style); only sha256 is accepted, so a future method
    is refused loudly instead of being trusted unchecked."""
    if not header:
        raise BadSignature("missing X-Hub-Signature header")
    method, _, signature = header.partition("=")
    if method != SIGNATURE_METHOD:
        raise BadSignature(f"unsupported signature method {method!r}; expected sha256=<hex>")
    if not hmac.compare_digest(signature.encode(), _hmac_sha256(secret.encode(), body).encode()):
        raise BadSignature("X-Hub-Signature does not match the body")


GIL_HELD_CHUNK = 2047  # hashlib lets go of the interpreter lock for updates of 2048 bytes up


def _hmac_sha256(key: bytes, body: bytes) -> str:
    """Hex HMAC-SHA256 of `body`, fed in pieces short enough that hashlib keeps the
    interpreter lock. Why: hashing a few KiB takes microseconds, but letting go of the lock
    while seven other request threads want it costs two thread switches, which under load
    cost more than the hashing (measured: 0.7 of 1.0 thread switches per parsed webhook)."""
    digest = hmac.new(key, digestmod=hashlib.sha256)
    view = memoryview(body)
    for start in range(0, len(view), GIL_HELD_CHUNK):
        digest.update(view[start:start + GIL_HELD_CHUNK])
    return digest.hexdigest()


MAX_DELIVERY_ID = 128


def delivery_id(delivery: Delivery) -> str:
    """Jira Cloud's delivery id, the same on every retry. Data Center sends none, so the body's
    SHA-256 stands in: an identical body delivered again is the same delivery."""
    identifier = delivery.headers.get(DELIVERY_ID_HEADER)
    if identifier and len(identifier) <= MAX_DELIVERY_ID:
        return identifier
    # The header's format is not documented: an unusually long one is stored as its hash.
    source = identifier.encode() if identifier else delivery.body
    return "sha256:" + hashlib.sha256(source).hexdigest()


def _decode(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedDelivery(f"body is not UTF-8 (byte {error.start}: {error.reason})") from None
    payload = decode_json(text, lambda problem: MalformedDelivery(f"body is {problem}"))
    if not isinstance(payload, dict):
        raise MalformedDelivery(f"body is a JSON {type(payload).__name__}, not an object")
    return payload


def _occurred_at(timestamp: Any) -> datetime | None:
    """Jira's top-level `timestamp`, epoch milliseconds, as an aware UTC datetime."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        return None
    try:
        return EPOCH + timedelta(milliseconds=timestamp)
    except OverflowError:
        return None


def parse_delivery(delivery: Delivery, settings: JiraSettings) -> Event | Ignored:
    """Verify one delivery and say which engagement to re-evaluate, or why it is dropped.

    Raises `MalformedDelivery` for a body Jira would not send, and `BadSignature` when a
    webhook secret is configured and the signature is missing or wrong.
    """
    if settings.webhook_secret is not None:
        verify_signature(delivery.body, delivery.headers.get(SIGNATURE_HEADER),
                         settings.webhook_secret)
    payload = _decode(delivery.body)
    name = payload.get("webhookEvent")
    if not isinstance(name, str) or not name:
        raise MalformedDelivery("body has no webhookEvent string")
    handler = EVENT_HANDLERS.get(name)
    if handler is None:
        return Ignored(name, "not handled" if name in IGNORED_EVENTS else "unknown event")
    subject = handler(payload)
    if subject.issue_id is None:
        return Ignored(name, "no issue reference")
    actor = next(iter(user_ids(subject.user)), None)
    if actor is not None and settings.service_account is not None:
        # Who caused it decides: a person who edits our comment, shares it with the client
        # or quotes it is not us, and the evaluation this asks for puts the comment right.
        by_us = is_account(subject.user, settings.service_account)
    else:  # no one to go by: a comment carrying our marker is taken for our own write
        by_us = isinstance(subject.comment_body, str) and STICKY_MARKER in subject.comment_body
    return Event(
        ref=EngagementRef(connector="jira", site=settings.site, key=subject.issue_id),
        name=name,
        delivery_id=delivery_id(delivery),
        occurred_at=_occurred_at(payload.get("timestamp")),
        actor=actor,
        by_us=by_us,
        # Jira stamps every body to the millisecond, so a stamped body's hash names one
        # change, as a delivery id would; only an unstamped one could be two identical changes
        by_content=DELIVERY_ID_HEADER not in delivery.headers and "timestamp" not in payload,
    )
