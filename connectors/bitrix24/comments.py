"""The sticky comment on a Bitrix24 deal: a CRM timeline comment — find it, write it, pin it,
delete it — and the optional notification of the deal's responsible person.

Agency-internal by construction, and there is no visibility parameter to forget: the CRM
timeline is read inside the CRM card, by employees with CRM rights to the deal ("timeline
comments capture agreements, clarifications, and service notes within the CRM card … access
depends on the current user's rights to the specific entity",
D:api-reference/crm/timeline/comments/index.md); clients invited to a portal are extranet
users, who see extranet pages only and no company information (bitrix24-core-corp
modules/intranet/lang/en/public/services/help/extranet.php). A timeline comment is sent
nowhere. So the guarantee is *where* we write: every function here writes to the timeline of
one deal (`ENTITY_TYPE` "deal", `ownerTypeId` 2, a positive deal id, checked before any call)
and nothing here can write to a task chat, an open channel or an e-mail.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from connectors.base import STICKY_MARKER
from connectors.bitrix24.markup import bb_url, to_bbcode, visible
from connectors.errors import NotFound, PlatformError
from connectors.markup import plain_text
from connectors.sticky import StickySearch
from connectors.sticky import find_sticky as _find_sticky
from plugin.core.comment import StickyContent

log = logging.getLogger(__name__)

DEAL_ENTITY_TYPE = "deal"  # crm.timeline.comment.add ENTITY_TYPE
DEAL_OWNER_TYPE_ID = 2  # CRM object type id of a deal (D:api-reference/crm/data-types.md)
NOTIFY_CLIENT_ID = "clientguard"
"""Sent with `TAG` over an incoming webhook, which has no application to scope tags to: "Pass
it with CLIENT_ID when calling via webhook" (D:api-reference/chats/notifications/
im-notify-system-add.md)."""


class RestClient(Protocol):
    """The one thing needed from the REST client: a call that returns `result` and raises
    the typed errors of `connectors.errors`."""

    def call(self, method: str, params: Mapping[str, Any]) -> Any: ...


def _positive_id(value: int | str, what: str) -> int:
    text = str(value)
    if not (text.isascii() and text.isdigit()) or int(text) <= 0:
        raise ValueError(f"not a Bitrix24 {what} id: {value!r}")
    return int(text)


def deal_owner(deal_id: int | str) -> int:
    """The deal id as the timeline methods take it. Anything but a positive integer — an
    indirect key such as "task:12", another kind of owner — is refused before any call."""
    return _positive_id(deal_id, "deal")


def _comment_id(comment_id: int | str) -> int:
    return _positive_id(comment_id, "timeline comment")


# -- finding it again -------------------------------------------------------------------

def carries_marker(comment: Mapping[str, Any]) -> bool:
    """Whether a timeline comment (as `crm.timeline.comment.list/get` returns it, BB-code in
    `COMMENT`) carries the sticky marker."""
    return STICKY_MARKER in str(comment.get("COMMENT") or "")


def marked_by(comment: Mapping[str, Any], author: str | None) -> bool:
    """Whether a timeline comment counts as ours by the marker: it carries it and, with
    `author` (`bot_user_id`), that user wrote it. One rule for finding the sticky comment
    and for leaving it out of a snapshot."""
    return carries_marker(comment) and (author is None or str(comment.get("AUTHOR_ID")) == author)


def find_sticky(comments: Iterable[Mapping[str, Any]], known_id: str | None, *,
                author: str | None = None) -> StickySearch:
    """Find our comment: the one with the stored `known_id`, else the newest carrying the
    marker; every other marker comment is stale. With `author` (`bot_user_id`, the user we
    write as) only that user's comments count by marker, so a person pasting our comment
    never has theirs deleted. The rule is `connectors.sticky.find_sticky`'s; timeline
    comment ids are `ID`."""
    return _find_sticky(comments, known_id, id_key="ID",
                        marked=lambda comment: marked_by(comment, author))


# -- writing and deleting ---------------------------------------------------------------

def write_sticky(client: RestClient, deal_id: int | str, existing_id: str | None,
                 content: StickyContent, *, pin: bool) -> str:
    """Update the deal's sticky comment in place, or add it when there is none or the known
    one was deleted meanwhile; returns its id. With `pin`, a comment added now is pinned to
    the top of the timeline (a failed pin is logged, never fails the write; an updated
    comment keeps whatever pinning a person gave or took from it)."""
    deal = deal_owner(deal_id)
    text = to_bbcode(content)
    if existing_id is not None:
        try:
            client.call("crm.timeline.comment.update", {
                "id": _comment_id(existing_id), "fields": {"COMMENT": text},
                "ownerTypeId": DEAL_OWNER_TYPE_ID, "ownerId": deal})
            return str(existing_id)
        except NotFound:
            log.info("sticky comment %s on deal %d is gone; adding a new one", existing_id, deal)
    # lower-case `fields` only: other spellings are refused since crm 23.100.0
    # (D:api-reference/crm/timeline/comments/crm-timeline-comment-add.md)
    comment_id = str(client.call("crm.timeline.comment.add", {"fields": {
        "ENTITY_ID": deal, "ENTITY_TYPE": DEAL_ENTITY_TYPE, "COMMENT": text}}))
    if pin:
        _pin(client, deal, comment_id)
    return comment_id


def _pin(client: RestClient, deal: int, comment_id: str) -> None:
    """A timeline comment's id is a timeline item id, which `crm.timeline.item.pin` takes
    (D:api-reference/crm/timeline/actions/crm-timeline-item-pin.md). It refuses a fourth
    pinned item (error `0`); pinning is a convenience, so that is a warning."""
    try:
        client.call("crm.timeline.item.pin", {"id": int(comment_id),
                                              "ownerTypeId": DEAL_OWNER_TYPE_ID,
                                              "ownerId": deal})
    except PlatformError as error:
        log.warning("could not pin sticky comment %s on deal %d: %s", comment_id, deal, error)


def delete_sticky(client: RestClient, deal_id: int | str, comment_id: str) -> None:
    """Delete the sticky comment (everything passes and the agency wants none, or a stale
    duplicate); one already gone is fine. The owner is named, so a comment bound to several
    CRM items is only ever removed from this deal's timeline
    (D:api-reference/crm/timeline/comments/crm-timeline-comment-delete.md)."""
    deal = deal_owner(deal_id)
    with contextlib.suppress(NotFound):
        client.call("crm.timeline.comment.delete", {
            "id": _comment_id(comment_id), "ownerTypeId": DEAL_OWNER_TYPE_ID,
            "ownerId": deal})


def delete_stale(client: RestClient, deal_id: int | str, comment_ids: Iterable[str]) -> None:
    """Delete the stale duplicates `find_sticky` reported (by id)."""
    for comment_id in comment_ids:
        delete_sticky(client, deal_id, comment_id)


# -- the notification -------------------------------------------------------------------

_IM_UNSAFE = str.maketrans({"[": "(", "]": ")", "<": "‹", ">": "›"})


def _im_text(text: str) -> str:
    """Text for a notification, on one line. The messenger's own parser is not the
    timeline's, so instead of relying on entities, brackets become look-alikes that open no
    tag."""
    return " ".join(text.split()).translate(_IM_UNSAFE)


def notification_tag(deal_id: int | str) -> str:
    """One tag per deal: a newer notification about the deal replaces the older one."""
    return f"CLIENTGUARD|DEAL|{deal_owner(deal_id)}"


def notify_responsible(client: RestClient, user_id: int | str, deal_id: int | str,
                       content: StickyContent, deal_url: str, *, webhook: bool,
                       title: str | None = None) -> str | None:
    """Tell the deal's responsible person, in one short notification, that the sticky
    comment changed: its heading (the score) and a link to the deal, labelled with the deal's
    `title` when given. The connector calls this only when it wrote a new or changed comment.

    A system notification (`im.notify.system.add`: "a notification from the system"), not a
    personal one, which would come from whichever user the webhook or app acts as
    (D:api-reference/chats/notifications/index.md). `TAG` replaces the previous notification
    about the same deal; over an incoming webhook (`webhook`) the portal needs `CLIENT_ID`
    with it. Returns the notification id (None when the portal answers `false`)."""
    deal = deal_owner(deal_id)
    recipient = _positive_id(user_id, "user")
    if urlsplit(deal_url).scheme not in ("https", "http"):
        raise ValueError(f"the deal link must be an http(s) URL, got {deal_url!r}")
    label = _im_text(title or f"#{deal}")  # a title is typed by people, maybe by the client
    params: dict[str, Any] = {
        "USER_ID": recipient,
        "MESSAGE": f"{_im_text(content.heading)}\n[url={bb_url(deal_url)}]{label}[/url]",
        "TAG": notification_tag(deal),
    }
    if webhook:
        params["CLIENT_ID"] = NOTIFY_CLIENT_ID
    result = client.call("im.notify.system.add", params)
    return None if result is False or result is None else str(result)


# -- plain text -------------------------------------------------------------------------

def comment_text(content: StickyContent) -> str:
    """The comment as plain text, as a reader sees it on the timeline (for dry runs): the
    marker hidden."""
    return plain_text(visible(content))
