"""Bitrix24 event deliveries in; `Event`, `Ignored` or `PortalChange` out.

Bitrix24 posts events as a PHP-style form, signs nothing and never retries. The only proof of
origin is `auth[application_token]`, a secret per portal (local application) or per outgoing
webhook, compared here in constant time [D:api-reference/events/safe-event-handlers.md].

`EVENT_HANDLERS` is the allowlist of events we act on. Each handler finds the key of the
engagement to re-evaluate. Deal events carry the deal id. Timeline comments, activities,
tasks and smart invoices carry only their own id, so they get an indirect key
(`"task:<id>"`) that a worker later resolves to a deal, and intake makes no REST call.
`PORTAL_EVENTS` are the application's own install/update/uninstall. `IGNORED_EVENTS` are
events Bitrix24 sends that we drop on purpose. Any other name is dropped as unknown.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from connectors.base import Delivery, EngagementRef, Event, Ignored
from connectors.bitrix24.form import parse_form
from connectors.bitrix24.settings import Bitrix24Settings
from connectors.errors import BadSignature, MalformedDelivery
from connectors.mapping import dig

CONNECTOR = "bitrix24"
FORM_TYPE = "application/x-www-form-urlencoded"
# entityTypeId of the new (smart) invoices [D:api-reference/crm/universal/invoice.md]
SMART_INVOICE_TYPE = "31"
TIMELINE_COMMENT = "timeline-comment:"
ACTIVITY = "activity:"
TASK = "task:"
INVOICE = "invoice:"

ID = re.compile(r"[0-9]{1,19}")
EVENT_NAME = re.compile(r"[A-Za-z0-9_]{1,100}")
MEMBER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
TIMESTAMP = re.compile(r"[0-9]{1,12}")

PortalKind = Literal["install", "update", "uninstall"]
PORTAL_AUTH_FIELDS = ("domain", "client_endpoint", "server_endpoint", "application_token",
                      "access_token", "refresh_token", "expires", "expires_in", "scope",
                      "user_id")


@dataclass(frozen=True)
class PortalChange:
    """The local application was installed, updated or uninstalled on the portal `member_id`.

    `auth` holds the delivery's `auth[...]` fields from `PORTAL_AUTH_FIELDS` that were
    present, tokens included (hence no repr). `verified` is True when `auth[application_token]`
    matched the token stored for the portal. An install or update that is not verified (a new
    portal, or a token that changed) proves nothing by itself. Check `auth["access_token"]`
    with `app.info` (member_id, domain, client_id) before storing anything
    [D:api-reference/events/safe-event-handlers.md]. An uninstall is always verified."""

    kind: PortalKind
    member_id: str
    auth: dict[str, str] = field(repr=False)
    verified: bool


Handler = Callable[[str, Any], str | Ignored]



def _field_name(path: tuple[str, ...]) -> str:
    return "data" + "".join(f"[{key}]" for key in path)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _object_id(name: str, data: Any, *paths: tuple[str, ...]) -> str:
    """The id at the first of `paths` that is present in `data`. It must be digits."""
    for path in paths:
        value = dig(data, *path)
        if value is not None:
            if not isinstance(value, str) or not ID.fullmatch(value):
                raise MalformedDelivery(f"{name}: {_field_name(path)} is {_shown(value)}, "
                                        "not an id (digits)")
            return value
    wanted = " or ".join(_field_name(path) for path in paths)
    raise MalformedDelivery(f"{name} has no {wanted}")


def _keyed(prefix: str, *paths: tuple[str, ...]) -> Handler:
    """A handler whose key is `prefix` + the id found at the first present path."""
    def handler(name: str, data: Any) -> str:
        return prefix + _object_id(name, data, *paths)
    return handler


def _smart_item(name: str, data: Any) -> str | Ignored:
    # Smart-process events fire for every smart process, smart invoices included. Only the
    # ENTITY_TYPE_ID tells them apart [D:api-reference/crm/universal/events/index.md].
    entity_type = _object_id(name, data, ("FIELDS", "ENTITY_TYPE_ID"))
    if entity_type != SMART_INVOICE_TYPE:
        return Ignored(name, f"not a smart invoice (entity type {entity_type})")
    return INVOICE + _object_id(name, data, ("FIELDS", "ID"))


_deal = _keyed("", ("FIELDS", "ID"))
# The docs show `data[ID]`, but several third-party handlers read `data[FIELDS][ID]` from
# real portals (spec §1.3). Accept both (event_ONCRMTIMELINECOMMENTADD.fields_id.json).
_timeline_comment = _keyed(TIMELINE_COMMENT, ("ID",), ("FIELDS", "ID"))
_activity = _keyed(ACTIVITY, ("FIELDS", "ID"))
# FIELDS_BEFORE is the string "undefined" on ONTASKADD, FIELDS_AFTER on ONTASKDELETE.
_task = _keyed(TASK, ("FIELDS_AFTER", "ID"), ("FIELDS_BEFORE", "ID"))
# Comment events name the task in TASK_ID. The new task card (tasks 25.700.0) sends `ID: 0`
# plus MESSAGE_ID, and the old card sends the comment's ID (event_ONTASKCOMMENTADD.json).
_task_comment = _keyed(TASK, ("FIELDS_AFTER", "TASK_ID"), ("FIELDS_BEFORE", "TASK_ID"))

EVENT_HANDLERS: dict[str, Handler] = {
    "ONCRMDEALADD": _deal,
    "ONCRMDEALUPDATE": _deal,
    "ONCRMDEALDELETE": _deal,
    "ONCRMDEALMOVETOCATEGORY": _deal,  # another pipeline: the deal may enter or leave our scope
    "ONCRMTIMELINECOMMENTADD": _timeline_comment,
    "ONCRMTIMELINECOMMENTUPDATE": _timeline_comment,
    "ONCRMTIMELINECOMMENTDELETE": _timeline_comment,
    "ONCRMACTIVITYADD": _activity,
    "ONCRMACTIVITYUPDATE": _activity,
    "ONCRMACTIVITYDELETE": _activity,
    "ONTASKADD": _task,
    "ONTASKUPDATE": _task,
    "ONTASKDELETE": _task,
    "ONTASKCOMMENTADD": _task_comment,
    "ONTASKCOMMENTUPDATE": _task_comment,  # old task card only
    "ONTASKCOMMENTDELETE": _task_comment,  # old task card only
    "ONCRMDYNAMICITEMADD": _smart_item,
    "ONCRMDYNAMICITEMUPDATE": _smart_item,
    "ONCRMDYNAMICITEMDELETE": _smart_item,
}

PORTAL_EVENTS: dict[str, PortalKind] = {
    "ONAPPINSTALL": "install",
    "ONAPPUPDATE": "update",
    "ONAPPUNINSTALL": "uninstall",
}

SUPPORTED_EVENTS: tuple[str, ...] = (*EVENT_HANDLERS, *PORTAL_EVENTS)

IGNORED_EVENTS = frozenset({
    "ONCRMLEADADD", "ONCRMLEADUPDATE", "ONCRMLEADDELETE",
    "ONCRMCONTACTADD", "ONCRMCONTACTUPDATE", "ONCRMCONTACTDELETE",
    "ONCRMCOMPANYADD", "ONCRMCOMPANYUPDATE", "ONCRMCOMPANYDELETE",
    "ONCRMQUOTEADD", "ONCRMQUOTEUPDATE", "ONCRMQUOTEDELETE",
    "ONCRMDEALRECURRINGADD", "ONCRMDEALRECURRINGUPDATE", "ONCRMDEALRECURRINGDELETE",
    "ONCRMDEALRECURRINGEXPOSE",
    "ONCRMDEALUSERFIELDADD", "ONCRMDEALUSERFIELDUPDATE", "ONCRMDEALUSERFIELDDELETE",
    "ONCRMDEALUSERFIELDSETENUMVALUES",
    "ONCRMTYPEADD", "ONCRMTYPEUPDATE", "ONCRMTYPEDELETE",
    "ONAPPPAYMENT", "ONAPPMETHODCONFIRM", "ONAPPUSERREADY", "ONUSERADD", "ONOFFLINEEVENT",
})
"""Events Bitrix24 sends that say nothing we can tie to a deal without a REST call (contacts,
companies, leads, quotes), or that are about configuration, not engagements."""


def event_key(name: str, data: Any) -> str | Ignored:
    """The key of what event `name` (upper case) with `data` (its `data[...]` table) is
    about: a deal id, an indirect key (`"task:8017"`), or `Ignored` for an event not in
    `EVENT_HANDLERS` or about something else (a smart process that is no invoice). Raises
    `MalformedDelivery` when `data` lacks the id. One mapping for the events posted to us
    and the records of the offline queue (`offline.py`), so both name the same refs."""
    handler = EVENT_HANDLERS.get(name)
    if handler is None:
        return Ignored(name, "not handled" if name in IGNORED_EVENTS else "unknown event")
    return handler(name, data)


def delivery_id(delivery: Delivery) -> str:
    """Bitrix24 gives deliveries no id (and never retries), but a proxy may replay one. The
    body's SHA-256 stands in; two changes of one object within a second have identical
    bodies (`ts` counts seconds), so the event says `by_content` and a copy is a duplicate
    only while the first still waits (`plugin.storage.repository.record_event`)."""
    return "sha256:" + hashlib.sha256(delivery.body).hexdigest()


def _read(delivery: Delivery) -> dict[str, Any]:
    content_type = delivery.headers.get("content-type", FORM_TYPE)
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == "application/json":
        raise MalformedDelivery("body is JSON; Bitrix24 posts events as " + FORM_TYPE)
    if delivery.body.lstrip()[:1] in (b"{", b"["):
        raise MalformedDelivery("body starts like JSON; Bitrix24 posts events as " + FORM_TYPE)
    if media_type != FORM_TYPE:
        raise MalformedDelivery(f"Content-Type is {_shown(content_type)}; Bitrix24 posts events "
                                f"as {FORM_TYPE}")
    return parse_form(delivery.body)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _auth(form: dict[str, Any]) -> dict[str, str]:
    auth = form.get("auth")
    if auth is None:
        return {}
    if not isinstance(auth, dict):
        raise MalformedDelivery("auth is a single value, not a table of auth[...] fields")
    return {key: value for key, value in auth.items() if isinstance(value, str)}


def _token(auth: dict[str, str], name: str) -> str:
    token = auth.get("application_token")
    if not token:
        raise BadSignature(f"{name} has no auth[application_token]")
    return token


def _check_webhook(name: str, auth: dict[str, str], settings: Bitrix24Settings) -> None:
    """An outgoing webhook's events carry the token shown in its settings in the portal
    [D:local-integrations/local-webhooks.md]."""
    if settings.outgoing_token is None:
        raise BadSignature("[bitrix24] outgoing_token is not set, so no event can be verified")
    if not _same(_token(auth, name), settings.outgoing_token):
        raise BadSignature(f"{name}: auth[application_token] does not match "
                           "[bitrix24] outgoing_token")
    if settings.member_id is not None and auth.get("member_id") != settings.member_id:
        raise BadSignature(f"{name}: auth[member_id] {_shown(auth.get('member_id'))} is not "
                           "the portal set in [bitrix24] member_id")


def _portal_auth(auth: dict[str, str]) -> dict[str, str]:
    return {key: auth[key] for key in PORTAL_AUTH_FIELDS if key in auth}


def _occurred_at(ts: Any) -> datetime | None:
    """`ts`: Unix seconds (a string) at which the queue sent the event."""
    if not isinstance(ts, str) or not TIMESTAMP.fullmatch(ts):
        return None
    try:
        return datetime.fromtimestamp(int(ts), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_delivery(delivery: Delivery, settings: Bitrix24Settings,
                   token_for: Callable[[str], str | None]) -> Event | Ignored | PortalChange:
    """Verify one delivery and say which deal (or indirect key) to re-evaluate, why it is
    dropped, or which portal installed, updated or uninstalled the application.

    `token_for(member_id)` is the application token stored for an installed portal (app mode),
    or None. Raises `MalformedDelivery` for a body Bitrix24 would not send, and `BadSignature`
    for a missing or wrong token or an unknown portal."""
    form = _read(delivery)
    raw_name = form.get("event")
    if not isinstance(raw_name, str) or not EVENT_NAME.fullmatch(raw_name):
        raise MalformedDelivery(f"body has no event name (event={_shown(raw_name)})")
    # Codes are upper case in most examples but camelCase in some (onCrmTimelineCommentAdd).
    name = raw_name.upper()
    auth = _auth(form)
    portal_kind = PORTAL_EVENTS.get(name)

    if settings.mode == "app":
        member_id = auth.get("member_id")
        if not member_id:
            raise BadSignature(f"{name} has no auth[member_id]: no portal to check it against")
        if not MEMBER_ID.fullmatch(member_id):
            raise MalformedDelivery(f"{name}: auth[member_id] {_shown(member_id)} is not a "
                                    "portal id")
        token = _token(auth, name)
        stored = token_for(member_id)
        matches = stored is not None and _same(token, stored)
        if portal_kind in ("install", "update"):
            # A first install has no stored token, and an update may bring a new one. The
            # connector checks the access token with app.info instead.
            if not matches and not auth.get("access_token"):
                raise BadSignature(f"{name} for portal {member_id} cannot be verified: its "
                                   "application token is not the stored one and it carries "
                                   "no auth[access_token]")
            return PortalChange(portal_kind, member_id, _portal_auth(auth), verified=matches)
        if stored is None:
            raise BadSignature(f"{name} from unknown portal {member_id} "
                               f"({_shown(auth.get('domain', ''))}): the application is not "
                               "installed there")
        if not matches:
            raise BadSignature(f"{name}: auth[application_token] does not match the token "
                               f"stored for portal {member_id}")
        if portal_kind == "uninstall":
            return PortalChange("uninstall", member_id, _portal_auth(auth), verified=True)
        site = member_id
    else:
        _check_webhook(name, auth, settings)
        if portal_kind is not None:
            return Ignored(name, "application event, but [bitrix24] uses webhooks")
        site = settings.site

    key = event_key(name, form.get("data"))
    if isinstance(key, Ignored):
        return key
    actor = auth.get("user_id") or None
    # Our own sticky comment echoes back as a timeline-comment event by our user. Deal updates
    # by that user are not marked: in webhook mode a person may act through the same account.
    by_us = (key.startswith(TIMELINE_COMMENT) and actor is not None
             and actor == settings.bot_user_id)
    return Event(
        ref=EngagementRef(connector=CONNECTOR, site=site, key=key),
        name=name,
        delivery_id=delivery_id(delivery),
        occurred_at=_occurred_at(form.get("ts")),
        actor=actor,
        by_us=by_us,
        by_content=True,
    )

