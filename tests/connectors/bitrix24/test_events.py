"""Bitrix24 deliveries → events: one test per fixture and variant, posted as the real form
bodies Bitrix24 sends (the JSON fixtures encoded with `encode_form`, the `.form.txt` one raw),
then tokens and portals, malformed bodies, names and our own writes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Delivery, EngagementRef, Event, Ignored
from connectors.bitrix24.events import (
    EVENT_HANDLERS,
    IGNORED_EVENTS,
    PORTAL_EVENTS,
    SUPPORTED_EVENTS,
    PortalChange,
    parse_delivery,
)
from connectors.bitrix24.form import encode_form
from connectors.bitrix24.settings import Bitrix24SettingsSchema
from connectors.errors import BadSignature, MalformedDelivery

FIXTURES = Path(__file__).parent / "fixtures"
RECEIVED_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded"

# The doc examples' portal and application token (most fixtures).
MEMBER = "a223c6b3710f85df22e9377d6c4f7553"
TOKEN = "51856fefc120afa4b628cc82d3935cce"
# The outgoing-webhook example's portal and token (event_ONCRMDEALADD.outgoing_webhook.json).
WEBHOOK_MEMBER = "d897063e1ce7c5eb9f04b9751eef5915"
WEBHOOK_TOKEN = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"

APP = {"site": "acme-b24", "client_id": "local.abc123.def456", "client_secret": "app-secret",
       "public_url": "https://guard.example.com"}
WEBHOOK = {"site": "acme-b24", "webhook_url": "https://acme.bitrix24.com/rest/7/w3bh00kc0de/",
           "outgoing_token": WEBHOOK_TOKEN}


def payload(fixture: str, variant: str | None = None) -> dict[str, Any]:
    data = json.loads((FIXTURES / fixture).read_text())
    return data[variant] if variant else data


def body(fixture: str, variant: str | None = None,
         change: Callable[[dict[str, Any]], Any] | None = None) -> bytes:
    """A JSON fixture as the form body Bitrix24 posts, after `change(payload)` when given."""
    data = payload(fixture, variant)
    if change is not None:
        change(data)
    return encode_form(data)


def delivery(raw: bytes, content_type: str | None = FORM) -> Delivery:
    headers = {"content-type": content_type} if content_type else {}
    return Delivery(body=raw, headers=headers, received_at=RECEIVED_AT)


def sha(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def app(raw: bytes, tokens: dict[str, str] | None = None, *, content_type: str | None = FORM,
        **settings: Any) -> Event | Ignored | PortalChange:
    """Parse in app mode; `tokens` are the installed portals' application tokens."""
    stored = {MEMBER: TOKEN} if tokens is None else tokens
    loaded = Bitrix24SettingsSchema().load({**APP, **settings})
    return parse_delivery(delivery(raw, content_type), loaded, stored.get)


def webhook(raw: bytes, **settings: Any) -> Event | Ignored | PortalChange:
    loaded = Bitrix24SettingsSchema().load({**WEBHOOK, **settings})

    def no_portals(member_id: str) -> str | None:
        raise AssertionError("webhook mode must not look up portals")

    return parse_delivery(delivery(raw), loaded, no_portals)


def app_event(key: str, name: str, raw: bytes, occurred_at: datetime | None,
              actor: str | None = None, by_us: bool = False) -> Event:
    return Event(ref=EngagementRef("bitrix24", MEMBER, key), name=name, delivery_id=sha(raw),
                 occurred_at=occurred_at, actor=actor, by_us=by_us, by_content=True)


def set_token(token: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["auth"]["application_token"] = token
    return change


# --- deals -----------------------------------------------------------------------------------

def test_deal_update__app() -> None:
    raw = body("event_ONCRMDEALUPDATE.app.json")
    assert app(raw) == app_event("759", "ONCRMDEALUPDATE", raw,
                                 datetime(2025, 1, 9, 6, 56, 47, tzinfo=UTC))


def test_deal_add__outgoing_webhook() -> None:
    raw = body("event_ONCRMDEALADD.outgoing_webhook.json")
    assert webhook(raw) == Event(
        ref=EngagementRef("bitrix24", "acme-b24", "7405"),
        name="ONCRMDEALADD",
        delivery_id=sha(raw),
        occurred_at=datetime(2025, 12, 18, 8, 38, 44, tzinfo=UTC),
        actor=None,
        by_us=False,
        by_content=True,
    )


def test_deal_update__outgoing_webhook_raw_form() -> None:
    raw = (FIXTURES / "event_ONCRMDEALUPDATE.outgoing_webhook.form.txt").read_bytes()
    assert webhook(raw, outgoing_token="x" * 32, member_id="x" * 32) == Event(
        ref=EngagementRef("bitrix24", "acme-b24", "662"),
        name="ONCRMDEALUPDATE",
        delivery_id="sha256:a0512eaa7fb853c8b12674a5d6ad2391ce7ac5aebf8c379569b7a250a211a48f",
        occurred_at=datetime(2024, 8, 20, 8, 0, tzinfo=UTC),
        actor=None,
        by_us=False,
        by_content=True,
    )


def test_deal_delete() -> None:
    raw = body("event_ONCRMDEALDELETE.json")
    assert app(raw) == app_event("1765", "ONCRMDEALDELETE", raw,
                                 datetime(2025, 1, 9, 6, 48, 14, tzinfo=UTC))


def test_deal_move_to_category() -> None:
    raw = body("event_ONCRMDEALMOVETOCATEGORY.json")
    assert app(raw) == app_event("6675", "ONCRMDEALMOVETOCATEGORY", raw,
                                 datetime(2025, 1, 9, 12, 3, 2, tzinfo=UTC))


# --- timeline comments -----------------------------------------------------------------------

DOC_TS = datetime(2016, 6, 20, 16, 21, 54, tzinfo=UTC)  # ts 1466439714 of many doc examples


def test_timeline_comment_add__documented_data_id() -> None:
    raw = body("event_ONCRMTIMELINECOMMENTADD.json")
    assert app(raw) == app_event("timeline-comment:999", "ONCRMTIMELINECOMMENTADD", raw, DOC_TS)


def test_timeline_comment_add__fields_id_as_seen_by_third_parties() -> None:
    raw = body("event_ONCRMTIMELINECOMMENTADD.fields_id.json")
    assert app(raw) == app_event("timeline-comment:1001", "ONCRMTIMELINECOMMENTADD", raw,
                                 datetime(2025, 12, 18, 8, 40, tzinfo=UTC), actor="7")


def test_timeline_comment_update() -> None:
    raw = body("event_ONCRMTIMELINECOMMENTUPDATE.json")
    assert app(raw) == app_event("timeline-comment:999", "ONCRMTIMELINECOMMENTUPDATE", raw,
                                 DOC_TS)


def test_timeline_comment_delete() -> None:
    raw = body("event_ONCRMTIMELINECOMMENTDELETE.json")
    assert app(raw) == app_event("timeline-comment:999", "ONCRMTIMELINECOMMENTDELETE", raw,
                                 DOC_TS)


# --- activities ------------------------------------------------------------------------------

@pytest.mark.parametrize(("fixture", "name"), [
    ("event_ONCRMACTIVITYADD.json", "ONCRMACTIVITYADD"),
    ("event_ONCRMACTIVITYUPDATE.json", "ONCRMACTIVITYUPDATE"),
    ("event_ONCRMACTIVITYDELETE.json", "ONCRMACTIVITYDELETE"),
])
def test_activity(fixture: str, name: str) -> None:
    raw = body(fixture)
    assert app(raw) == app_event("activity:999", name, raw, DOC_TS)


# --- tasks -----------------------------------------------------------------------------------

def test_task_add() -> None:
    raw = body("event_ONTASKADD.json")
    assert app(raw) == app_event("task:123", "ONTASKADD", raw, DOC_TS)


def test_task_update() -> None:
    raw = body("event_ONTASKUPDATE.json")
    assert app(raw) == app_event("task:123", "ONTASKUPDATE", raw, DOC_TS)


def test_task_update__only_fields_before() -> None:
    def only_before(data: dict[str, Any]) -> None:
        data["data"]["FIELDS_AFTER"] = "undefined"

    raw = body("event_ONTASKUPDATE.json", change=only_before)
    assert app(raw) == app_event("task:123", "ONTASKUPDATE", raw, DOC_TS)


def test_task_delete() -> None:
    raw = body("event_ONTASKDELETE.json")
    assert app(raw) == app_event("task:123", "ONTASKDELETE", raw, DOC_TS)


def test_task_comment_add__old_task_card() -> None:
    raw = body("event_ONTASKCOMMENTADD.json", "legacy_task_card_before_tasks_25.700.0")
    assert app(raw) == app_event("task:555", "ONTASKCOMMENTADD", raw, DOC_TS)


def test_task_comment_add__new_task_card_with_chat() -> None:
    raw = body("event_ONTASKCOMMENTADD.json", "new_task_card_with_chat_tasks_25.700.0_plus")
    assert app(raw) == app_event("task:555", "ONTASKCOMMENTADD", raw, DOC_TS)


def test_task_comment_update() -> None:
    raw = body("event_ONTASKCOMMENTUPDATE.json")
    assert app(raw) == app_event("task:555", "ONTASKCOMMENTUPDATE", raw, DOC_TS)


def test_task_comment_delete() -> None:
    raw = body("event_ONTASKCOMMENTDELETE.json")
    assert app(raw) == app_event("task:555", "ONTASKCOMMENTDELETE", raw, DOC_TS)


# --- smart processes and invoices ------------------------------------------------------------

def test_smart_invoice_update() -> None:
    raw = body("event_ONCRMDYNAMICITEMUPDATE.smart_invoice.json")
    assert app(raw) == app_event("invoice:24", "ONCRMDYNAMICITEMUPDATE", raw,
                                 datetime(2024, 8, 13, 8, 41, 57, tzinfo=UTC))


def test_smart_invoice_add_and_delete() -> None:
    def as_invoice(name: str) -> Callable[[dict[str, Any]], None]:
        def change(data: dict[str, Any]) -> None:
            data["event"] = name
            data["data"]["FIELDS"]["ENTITY_TYPE_ID"] = "31"
        return change

    for name in ("ONCRMDYNAMICITEMADD", "ONCRMDYNAMICITEMDELETE"):
        raw = body("event_ONCRMDYNAMICITEMADD.json", change=as_invoice(name))
        assert app(raw) == app_event("invoice:22", name, raw,
                                     datetime(2024, 8, 13, 7, 27, 13, tzinfo=UTC))


def test_other_smart_process_update_ignored() -> None:
    assert app(body("event_ONCRMDYNAMICITEMUPDATE.json")) == Ignored(
        "ONCRMDYNAMICITEMUPDATE", "not a smart invoice (entity type 1220)")


def test_other_smart_process_add_ignored() -> None:
    assert app(body("event_ONCRMDYNAMICITEMADD.json")) == Ignored(
        "ONCRMDYNAMICITEMADD", "not a smart invoice (entity type 1220)")


def test_smart_item_without_entity_type() -> None:
    def no_type(data: dict[str, Any]) -> None:
        del data["data"]["FIELDS"]["ENTITY_TYPE_ID"]

    with pytest.raises(MalformedDelivery) as caught:
        app(body("event_ONCRMDYNAMICITEMUPDATE.json", change=no_type))
    assert caught.value.detail == "ONCRMDYNAMICITEMUPDATE has no data[FIELDS][ENTITY_TYPE_ID]"


# --- ignored and unknown events --------------------------------------------------------------

def test_contact_add__captured_ignored() -> None:
    raw = body("event_ONCRMCONTACTADD.captured.json")
    tokens = {"010b6886ebc205e43ae65000ee00addb": "e24831714bb347622e3ef25af61525cf"}
    assert app(raw, tokens) == Ignored("ONCRMCONTACTADD", "not handled")


def test_unknown_event() -> None:
    def rename(data: dict[str, Any]) -> None:
        data["event"] = "onCrmSomethingNew"

    assert app(body("event_ONCRMDEALUPDATE.app.json", change=rename)) == Ignored(
        "ONCRMSOMETHINGNEW", "unknown event")


def test_unknown_event_still_needs_the_token() -> None:
    def rename(data: dict[str, Any]) -> None:
        data["event"] = "ONCRMSOMETHINGNEW"
        data["auth"]["application_token"] = "wrong"

    with pytest.raises(BadSignature):
        app(body("event_ONCRMDEALUPDATE.app.json", change=rename))


def test_event_names_compared_case_insensitively() -> None:
    def camel(data: dict[str, Any]) -> None:
        data["event"] = "onCrmDealUpdate"

    raw = body("event_ONCRMDEALUPDATE.app.json", change=camel)
    assert app(raw) == app_event("759", "ONCRMDEALUPDATE", raw,
                                 datetime(2025, 1, 9, 6, 56, 47, tzinfo=UTC))


def test_event_lists() -> None:
    assert SUPPORTED_EVENTS == (
        "ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE", "ONCRMDEALMOVETOCATEGORY",
        "ONCRMTIMELINECOMMENTADD", "ONCRMTIMELINECOMMENTUPDATE", "ONCRMTIMELINECOMMENTDELETE",
        "ONCRMACTIVITYADD", "ONCRMACTIVITYUPDATE", "ONCRMACTIVITYDELETE",
        "ONTASKADD", "ONTASKUPDATE", "ONTASKDELETE",
        "ONTASKCOMMENTADD", "ONTASKCOMMENTUPDATE", "ONTASKCOMMENTDELETE",
        "ONCRMDYNAMICITEMADD", "ONCRMDYNAMICITEMUPDATE", "ONCRMDYNAMICITEMDELETE",
        "ONAPPINSTALL", "ONAPPUPDATE", "ONAPPUNINSTALL",
    )
    assert not IGNORED_EVENTS & set(SUPPORTED_EVENTS)
    assert all(name == name.upper() for name in (*EVENT_HANDLERS, *PORTAL_EVENTS,
                                                 *IGNORED_EVENTS))


# --- our own writes --------------------------------------------------------------------------

def test_own_timeline_comment_is_by_us__app() -> None:
    raw = body("event_ONCRMTIMELINECOMMENTADD.fields_id.json")
    assert app(raw, bot_user_id="7") == app_event(
        "timeline-comment:1001", "ONCRMTIMELINECOMMENTADD", raw,
        datetime(2025, 12, 18, 8, 40, tzinfo=UTC), actor="7", by_us=True)


def test_own_timeline_comment_is_by_us__webhook_user() -> None:
    # The incoming webhook …/rest/7/… writes as user 7 (the settings derive bot_user_id).
    raw = body("event_ONCRMTIMELINECOMMENTADD.fields_id.json", change=set_token(WEBHOOK_TOKEN))
    assert webhook(raw) == Event(
        ref=EngagementRef("bitrix24", "acme-b24", "timeline-comment:1001"),
        name="ONCRMTIMELINECOMMENTADD",
        delivery_id=sha(raw),
        occurred_at=datetime(2025, 12, 18, 8, 40, tzinfo=UTC),
        actor="7",
        by_us=True,
        by_content=True,
    )


def test_someone_elses_timeline_comment_is_not_by_us() -> None:
    raw = body("event_ONCRMTIMELINECOMMENTADD.fields_id.json")
    event = app(raw, bot_user_id="8")
    assert isinstance(event, Event)
    assert (event.actor, event.by_us) == ("7", False)


def test_deal_update_by_our_user_is_not_by_us() -> None:
    def by_user_7(data: dict[str, Any]) -> None:
        data["auth"]["user_id"] = "7"

    raw = body("event_ONCRMDEALUPDATE.app.json", change=by_user_7)
    assert app(raw, bot_user_id="7") == app_event(
        "759", "ONCRMDEALUPDATE", raw, datetime(2025, 1, 9, 6, 56, 47, tzinfo=UTC),
        actor="7", by_us=False)


# --- the application's own lifecycle ---------------------------------------------------------

INSTALL_AUTH = {
    "domain": "some-domain.bitrix24.com",
    "client_endpoint": "https://some-domain.bitrix24.com/rest/",
    "server_endpoint": "https://oauth.bitrix.info/rest/",
    "application_token": "51856fefc120afa4b628cc82d3935cce",
    "access_token": "s6p6eclrvim6da22ft9ch94ekreb52lv",
    "refresh_token": "4s386p3q0tr8dy89xvmt96234v3dljg8",
    "expires_in": "3600",
    "scope": "imbot",
}


def test_install__new_portal_to_be_verified_by_the_connector() -> None:
    assert app(body("event_ONAPPINSTALL.json"), tokens={}) == PortalChange(
        kind="install", member_id=MEMBER, auth=INSTALL_AUTH, verified=False)


def test_install__known_portal_same_token() -> None:
    assert app(body("event_ONAPPINSTALL.json")) == PortalChange(
        kind="install", member_id=MEMBER, auth=INSTALL_AUTH, verified=True)


def test_install__known_portal_new_token_to_be_verified() -> None:
    assert app(body("event_ONAPPINSTALL.json"), tokens={MEMBER: "old-token"}) == PortalChange(
        kind="install", member_id=MEMBER, auth=INSTALL_AUTH, verified=False)


def test_install__unverifiable_without_access_token() -> None:
    def no_access_token(data: dict[str, Any]) -> None:
        del data["auth"]["access_token"]

    with pytest.raises(BadSignature) as caught:
        app(body("event_ONAPPINSTALL.json", change=no_access_token), tokens={})
    assert caught.value.status == 401
    assert caught.value.detail == (
        "ONAPPINSTALL for portal a223c6b3710f85df22e9377d6c4f7553 cannot be verified: its "
        "application token is not the stored one and it carries no auth[access_token]")


def test_update() -> None:
    tokens = {"d41d8cd98f00b204e9800998ecf8427e": "c917d38f6bdb84e9d9e0bfe9d585be73"}
    assert app(body("event_ONAPPUPDATE.json"), tokens) == PortalChange(
        kind="update",
        member_id="d41d8cd98f00b204e9800998ecf8427e",
        auth={
            "domain": "some-domain.bitrix24.com",
            "client_endpoint": "https://some-domain.bitrix24.com/rest/",
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "application_token": "c917d38f6bdb84e9d9e0bfe9d585be73",
            "access_token": "lh8ze36o8ulgrljbyscr36c7ay5sinva",
            "refresh_token": "5f1ih5tsnsb11sc5heg3kp4ywqnjhd09",
            "expires_in": "3600",
            "scope": "crm,user",
        },
        verified=True,
    )


def test_uninstall() -> None:
    assert app(body("event_ONAPPUNINSTALL.json")) == PortalChange(
        kind="uninstall",
        member_id=MEMBER,
        auth={
            "domain": "some-domain.bitrix24.com",
            "client_endpoint": "https://some-domain.bitrix24.com/rest/",
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "application_token": "51856fefc120afa4b628cc82d3935cce",
        },
        verified=True,
    )


def test_uninstall__wrong_token() -> None:
    with pytest.raises(BadSignature) as caught:
        app(body("event_ONAPPUNINSTALL.json"), tokens={MEMBER: "another-token"})
    assert caught.value.status == 401
    assert caught.value.detail == ("ONAPPUNINSTALL: auth[application_token] does not match the "
                                   "token stored for portal a223c6b3710f85df22e9377d6c4f7553")


def test_uninstall__unknown_portal() -> None:
    with pytest.raises(BadSignature) as caught:
        app(body("event_ONAPPUNINSTALL.json"), tokens={})
    assert caught.value.status == 401
    assert caught.value.detail == (
        "ONAPPUNINSTALL from unknown portal a223c6b3710f85df22e9377d6c4f7553 "
        "('some-domain.bitrix24.com'): the application is not installed there")


def test_install_in_webhook_mode_ignored() -> None:
    assert webhook(body("event_ONAPPINSTALL.json"), outgoing_token=TOKEN) == Ignored(
        "ONAPPINSTALL", "application event, but [bitrix24] uses webhooks")


def test_portal_change_repr_hides_tokens() -> None:
    change = app(body("event_ONAPPINSTALL.json"), tokens={})
    assert repr(change) == ("PortalChange(kind='install', "
                            "member_id='a223c6b3710f85df22e9377d6c4f7553', verified=False)")


# --- tokens and portals ----------------------------------------------------------------------

def rejected(parse: Callable[[], Any]) -> BadSignature:
    with pytest.raises(BadSignature) as caught:
        parse()
    assert caught.value.status == 401
    return caught.value


def test_app__wrong_token() -> None:
    one_off = "51856fefc120afa4b628cc82d3935ccf"  # the stored token but for its last character
    raw = body("event_ONCRMDEALUPDATE.app.json", change=set_token(one_off))
    assert rejected(lambda: app(raw)).detail == (
        "ONCRMDEALUPDATE: auth[application_token] does not match the token stored for portal "
        "a223c6b3710f85df22e9377d6c4f7553")


def test_app__missing_token() -> None:
    def no_token(data: dict[str, Any]) -> None:
        del data["auth"]["application_token"]

    raw = body("event_ONCRMDEALUPDATE.app.json", change=no_token)
    assert rejected(lambda: app(raw)).detail == "ONCRMDEALUPDATE has no auth[application_token]"


def test_app__no_auth_at_all() -> None:
    raw = encode_form({"event": "ONCRMDEALUPDATE", "data": {"FIELDS": {"ID": "759"}}})
    assert rejected(lambda: app(raw)).detail == (
        "ONCRMDEALUPDATE has no auth[member_id]: no portal to check it against")


def test_app__unknown_portal() -> None:
    raw = body("event_ONCRMDEALUPDATE.app.json")
    assert rejected(lambda: app(raw, tokens={"0123": TOKEN})).detail == (
        "ONCRMDEALUPDATE from unknown portal a223c6b3710f85df22e9377d6c4f7553 "
        "('some-domain.bitrix24.com'): the application is not installed there")


def test_app__member_id_not_an_id() -> None:
    def odd_member(data: dict[str, Any]) -> None:
        data["auth"]["member_id"] = "../../etc"

    with pytest.raises(MalformedDelivery) as caught:
        app(body("event_ONCRMDEALUPDATE.app.json", change=odd_member))
    assert caught.value.detail == "ONCRMDEALUPDATE: auth[member_id] '../../etc' is not a portal id"


def test_webhook__wrong_token() -> None:
    raw = body("event_ONCRMDEALADD.outgoing_webhook.json", change=set_token(TOKEN))
    assert rejected(lambda: webhook(raw)).detail == (
        "ONCRMDEALADD: auth[application_token] does not match [bitrix24] outgoing_token")


def test_webhook__missing_token() -> None:
    def no_token(data: dict[str, Any]) -> None:
        del data["auth"]["application_token"]

    raw = body("event_ONCRMDEALADD.outgoing_webhook.json", change=no_token)
    assert rejected(lambda: webhook(raw)).detail == "ONCRMDEALADD has no auth[application_token]"


def test_webhook__member_mismatch() -> None:
    raw = body("event_ONCRMDEALADD.outgoing_webhook.json")
    assert rejected(lambda: webhook(raw, member_id=MEMBER)).detail == (
        "ONCRMDEALADD: auth[member_id] 'd897063e1ce7c5eb9f04b9751eef5915' is not the portal set "
        "in [bitrix24] member_id")


def test_webhook__member_match() -> None:
    event = webhook(body("event_ONCRMDEALADD.outgoing_webhook.json"), member_id=WEBHOOK_MEMBER)
    assert isinstance(event, Event)
    assert event.ref == EngagementRef("bitrix24", "acme-b24", "7405")


def test_webhook__no_outgoing_token_configured() -> None:
    raw = body("event_ONCRMDEALADD.outgoing_webhook.json")
    assert rejected(lambda: webhook(raw, outgoing_token=None)).detail == (
        "[bitrix24] outgoing_token is not set, so no event can be verified")


# --- malformed bodies ------------------------------------------------------------------------

def malformed(parse: Callable[[], Any]) -> MalformedDelivery:
    with pytest.raises(MalformedDelivery) as caught:
        parse()
    assert caught.value.status == 400
    return caught.value


def test_json_body_refused() -> None:
    raw = (FIXTURES / "event_ONCRMDEALUPDATE.app.json").read_bytes()
    assert malformed(lambda: app(raw)).detail == (
        "body starts like JSON; Bitrix24 posts events as application/x-www-form-urlencoded")


def test_a_body_saved_with_a_byte_order_mark_is_read_as_without() -> None:
    """As a file saved by an editor and replayed with curl begins."""
    event = app("\ufeff".encode() + body("event_ONCRMDEALUPDATE.app.json"))
    assert isinstance(event, Event) and event.name == "ONCRMDEALUPDATE"


def test_json_content_type_refused() -> None:
    raw = body("event_ONCRMDEALUPDATE.app.json")
    assert malformed(lambda: app(raw, content_type="application/json")).detail == (
        "body is JSON; Bitrix24 posts events as application/x-www-form-urlencoded")


def test_other_content_type_refused() -> None:
    raw = body("event_ONCRMDEALUPDATE.app.json")
    assert malformed(lambda: app(raw, content_type="text/plain")).detail == (
        "Content-Type is 'text/plain'; Bitrix24 posts events as "
        "application/x-www-form-urlencoded")


def test_form_content_type_with_charset_and_none_at_all_accepted() -> None:
    raw = body("event_ONCRMDEALUPDATE.app.json")
    for content_type in ("application/x-www-form-urlencoded; charset=UTF-8", None):
        event = app(raw, content_type=content_type)
        assert isinstance(event, Event)
        assert event.ref.key == "759"


def test_broken_percent_encoding() -> None:
    raw = body("event_ONCRMDEALUPDATE.app.json") + b"&x=%G0"
    assert malformed(lambda: app(raw)).detail == "broken percent-encoding '%G0' in the value of 'x'"


def test_repeated_token_refused() -> None:
    raw = body("event_ONCRMDEALUPDATE.app.json") + b"&auth%5Bapplication_token%5D=other"
    assert malformed(lambda: app(raw)).detail == (
        "field 'auth[application_token]' is given twice")


def test_no_event_name() -> None:
    def no_event(data: dict[str, Any]) -> None:
        del data["event"]

    raw = body("event_ONCRMDEALUPDATE.app.json", change=no_event)
    assert malformed(lambda: app(raw)).detail == "body has no event name (event=None)"


def test_event_name_not_a_name() -> None:
    def odd_event(data: dict[str, Any]) -> None:
        data["event"] = "ONCRMDEALUPDATE<script>"

    raw = body("event_ONCRMDEALUPDATE.app.json", change=odd_event)
    assert malformed(lambda: app(raw)).detail == (
        "body has no event name (event='ONCRMDEALUPDATE<script>')")


def test_auth_not_a_table() -> None:
    raw = encode_form({"event": "ONCRMDEALUPDATE", "auth": "token"})
    assert malformed(lambda: app(raw)).detail == (
        "auth is a single value, not a table of auth[...] fields")


def test_deal_event_without_id() -> None:
    def no_id(data: dict[str, Any]) -> None:
        data["data"]["FIELDS"] = {"TITLE": "x"}

    raw = body("event_ONCRMDEALUPDATE.app.json", change=no_id)
    assert malformed(lambda: app(raw)).detail == "ONCRMDEALUPDATE has no data[FIELDS][ID]"


def test_deal_id_not_digits() -> None:
    def odd_id(data: dict[str, Any]) -> None:
        data["data"]["FIELDS"]["ID"] = "75 9"

    raw = body("event_ONCRMDEALUPDATE.app.json", change=odd_id)
    assert malformed(lambda: app(raw)).detail == (
        "ONCRMDEALUPDATE: data[FIELDS][ID] is '75 9', not an id (digits)")


def test_deal_id_a_table() -> None:
    raw = body("event_ONCRMDEALUPDATE.app.json") + b"&data%5BFIELDS%5D%5BID%5D%5Bx%5D=1"
    assert malformed(lambda: app(raw)).detail == (
        "field 'data[FIELDS][ID][x]' is both a value and a table")


def test_timeline_comment_without_id() -> None:
    def no_id(data: dict[str, Any]) -> None:
        data["data"] = {"OTHER": "1"}

    raw = body("event_ONCRMTIMELINECOMMENTADD.json", change=no_id)
    assert malformed(lambda: app(raw)).detail == (
        "ONCRMTIMELINECOMMENTADD has no data[ID] or data[FIELDS][ID]")


def test_task_comment_without_task_id() -> None:
    def no_task(data: dict[str, Any]) -> None:
        del data["data"]["FIELDS_AFTER"]["TASK_ID"]

    raw = body("event_ONTASKCOMMENTADD.json", "legacy_task_card_before_tasks_25.700.0",
               change=no_task)
    assert malformed(lambda: app(raw)).detail == (
        "ONTASKCOMMENTADD has no data[FIELDS_AFTER][TASK_ID] or data[FIELDS_BEFORE][TASK_ID]")


def test_task_without_id() -> None:
    def no_task(data: dict[str, Any]) -> None:
        data["data"]["FIELDS_AFTER"] = "undefined"

    raw = body("event_ONTASKADD.json", change=no_task)
    assert malformed(lambda: app(raw)).detail == (
        "ONTASKADD has no data[FIELDS_AFTER][ID] or data[FIELDS_BEFORE][ID]")


# --- delivery ids and times ------------------------------------------------------------------

def test_replayed_body_is_the_same_delivery() -> None:
    raw = body("event_ONCRMDEALUPDATE.app.json")
    first, second = app(raw), app(raw)
    assert isinstance(first, Event) and isinstance(second, Event)
    assert first.delivery_id == second.delivery_id


@pytest.mark.parametrize("ts", ["", "soon", "1.5", "99999999999999"])
def test_unreadable_ts_leaves_the_time_unknown(ts: str) -> None:
    def set_ts(data: dict[str, Any]) -> None:
        data["ts"] = ts

    event = app(body("event_ONCRMDEALUPDATE.app.json", change=set_ts))
    assert isinstance(event, Event)
    assert event.occurred_at is None
