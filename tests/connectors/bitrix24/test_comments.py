"""The sticky comment on a Bitrix24 deal's timeline: written, updated, re-created, pinned and
deleted with the exact REST calls; found again by its marker; and the notification of the
deal's responsible person.

Most tests run against `rest`, a scripted fake with the REST client's one entry point,
`call(method, params) -> result`, raising the typed errors of `connectors.errors` as the
client does (the client was written in parallel). Like a `responses.RequestsMock`, it answers
only the calls it was told to expect, in order, with exactly those parameters, and fails the
test when an expected call is never made. The last tests run the same paths through the real
`Bitrix24Client` against `responses` stubs with the documented HTTP answers of
`fixtures/response_crm.timeline.comment.json` (a 400 NOT_FOUND for a comment that is gone).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from responses import matchers

from connectors.bitrix24.auth import WebhookAuth
from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.comments import (
    carries_marker,
    comment_text,
    deal_owner,
    delete_stale,
    delete_sticky,
    find_sticky,
    notify_responsible,
    write_sticky,
)
from connectors.bitrix24.markup import to_bbcode
from connectors.bitrix24.throttle import LeakyBucket
from connectors.errors import AuthError, NotFound, PayloadError
from plugin.core.comment import CheckBlock, Link, StickyContent

FIXTURES = Path(__file__).parent / "fixtures"
DOCUMENTED = json.loads((FIXTURES / "response_crm.timeline.comment.json").read_text("utf-8"))
ADDED_ID = DOCUMENTED["crm.timeline.comment.add"]["result"]  # 999
GONE = DOCUMENTED["crm.timeline.comment.add__error_400"]  # NOT_FOUND, HTTP 400

CONTENT = StickyContent(
    heading="ClientGuard — Health score: 68/100 (amber)",
    checks=(CheckBlock("FAIL", "Project manager briefed",
                       ("Quoted: [b]bold[/b] [user=7]Ann[/user]",), "How to fix",
                       "Write the brief and have the PM acknowledge it."),),
    all_clear=None,
    unchecked=None,
    link=Link("Open health check", "https://guard.agency.example/health/bitrix24/42"),
    footer="Agency-internal: the client cannot see this. ClientGuard keeps this one comment "
           "up to date; manual edits are overwritten. clientguard:sticky",
)
COMMENT = (
    "[b]ClientGuard — Health score: 68/100 (amber)[/b]\n"
    "[b]FAIL[/b] — [b]Project manager briefed[/b]\n"
    "[list]\n[*]Quoted: &#91;b&#93;bold&#91;/b&#93; &#91;user=7&#93;Ann&#91;/user&#93;\n[/list]\n"
    "[i]How to fix:[/i] Write the brief and have the PM acknowledge it.\n"
    "[url=https://guard.agency.example/health/bitrix24/42]Open health check[/url]\n"
    "[color=#828b95]Agency-internal: the client cannot see this. ClientGuard keeps this one "
    "comment up to date; manual edits are overwritten.[/color]"
    "[url=https://clientguard.invalid/clientguard:sticky]\u200b[/url]"
)


@dataclass
class Expected:
    method: str
    params: dict[str, Any]
    result: Any = None
    error: Exception | None = None


@dataclass
class ScriptedRest:
    """Answers the expected calls in order; anything else fails the test."""

    expected: list[Expected] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def expect(self, method: str, params: dict[str, Any], result: Any = None, *,
               error: Exception | None = None) -> None:
        self.expected.append(Expected(method, params, result, error))

    def call(self, method: str, params: Mapping[str, Any]) -> Any:
        self.calls.append((method, dict(params)))
        assert self.expected, f"unexpected call {method} {dict(params)}"
        step = self.expected.pop(0)
        assert (method, dict(params)) == (step.method, step.params)
        if step.error is not None:
            raise step.error
        return step.result


@pytest.fixture
def rest() -> Iterator[ScriptedRest]:
    scripted = ScriptedRest()
    yield scripted
    assert not scripted.expected, f"expected calls never made: {scripted.expected}"


def gone() -> NotFound:
    return NotFound(f"{GONE['error']}: {GONE['error_description']}", status=400)


# -- writing ----------------------------------------------------------------------------

def test_the_comment_written_is_the_bbcode_of_the_content():
    assert to_bbcode(CONTENT) == COMMENT


def test_created_on_the_deal_timeline_when_there_is_none(rest):
    rest.expect("crm.timeline.comment.add",
                {"fields": {"ENTITY_ID": 42, "ENTITY_TYPE": "deal", "COMMENT": COMMENT}},
                ADDED_ID)
    assert write_sticky(rest, "42", None, CONTENT, pin=False) == "999"


def test_updated_in_place_when_known(rest):
    rest.expect("crm.timeline.comment.update",
                {"id": 1000, "fields": {"COMMENT": COMMENT}, "ownerTypeId": 2, "ownerId": 42},
                1000)
    assert write_sticky(rest, 42, "1000", CONTENT, pin=True) == "1000"  # no pin on update


def test_re_created_when_the_known_one_is_gone(rest):
    rest.expect("crm.timeline.comment.update",
                {"id": 1000, "fields": {"COMMENT": COMMENT}, "ownerTypeId": 2, "ownerId": 42},
                error=gone())
    rest.expect("crm.timeline.comment.add",
                {"fields": {"ENTITY_ID": 42, "ENTITY_TYPE": "deal", "COMMENT": COMMENT}},
                ADDED_ID)
    assert write_sticky(rest, "42", "1000", CONTENT, pin=False) == "999"


def test_pinned_when_configured(rest):
    rest.expect("crm.timeline.comment.add",
                {"fields": {"ENTITY_ID": 42, "ENTITY_TYPE": "deal", "COMMENT": COMMENT}},
                ADDED_ID)
    rest.expect("crm.timeline.item.pin", {"id": 999, "ownerTypeId": 2, "ownerId": 42}, None)
    assert write_sticky(rest, "42", None, CONTENT, pin=True) == "999"


def test_a_re_created_comment_is_pinned_again(rest):
    rest.expect("crm.timeline.comment.update",
                {"id": 1000, "fields": {"COMMENT": COMMENT}, "ownerTypeId": 2, "ownerId": 42},
                error=gone())
    rest.expect("crm.timeline.comment.add",
                {"fields": {"ENTITY_ID": 42, "ENTITY_TYPE": "deal", "COMMENT": COMMENT}},
                ADDED_ID)
    rest.expect("crm.timeline.item.pin", {"id": 999, "ownerTypeId": 2, "ownerId": 42}, None)
    assert write_sticky(rest, "42", "1000", CONTENT, pin=True) == "999"


def test_a_refused_pin_is_a_warning_and_the_comment_stays_written(rest, caplog):
    rest.expect("crm.timeline.comment.add",
                {"fields": {"ENTITY_ID": 42, "ENTITY_TYPE": "deal", "COMMENT": COMMENT}},
                ADDED_ID)
    rest.expect("crm.timeline.item.pin", {"id": 999, "ownerTypeId": 2, "ownerId": 42},
                error=PayloadError("0: Only three events can be added to favorites",
                                   status=400))
    with caplog.at_level(logging.WARNING, logger="connectors.bitrix24.comments"):
        assert write_sticky(rest, "42", None, CONTENT, pin=True) == "999"
    assert caplog.messages == ["could not pin sticky comment 999 on deal 42: "
                               "0: Only three events can be added to favorites"]


def test_other_errors_are_not_swallowed(rest):
    rest.expect("crm.timeline.comment.update",
                {"id": 1000, "fields": {"COMMENT": COMMENT}, "ownerTypeId": 2, "ownerId": 42},
                error=AuthError("ACCESS_DENIED: Access denied", status=403))
    with pytest.raises(AuthError):
        write_sticky(rest, "42", "1000", CONTENT, pin=False)


@pytest.mark.parametrize("owner", ["task:12", "timeline-comment:5", "0", "-3", "", "4.2",
                                   "٤٢", "D_42"])
def test_nothing_but_a_deal_can_own_the_comment(rest, owner):
    with pytest.raises(ValueError, match="not a Bitrix24 deal id"):
        write_sticky(rest, owner, None, CONTENT, pin=False)
    with pytest.raises(ValueError, match="not a Bitrix24 deal id"):
        delete_sticky(rest, owner, "999")
    assert rest.calls == []


def test_a_deal_id_is_a_positive_integer():
    assert deal_owner("42") == 42
    assert deal_owner(7) == 7


# -- deleting ---------------------------------------------------------------------------

def test_delete_names_the_deal_as_owner(rest):
    rest.expect("crm.timeline.comment.delete", {"id": 999, "ownerTypeId": 2, "ownerId": 42})
    delete_sticky(rest, "42", "999")


def test_delete_of_a_comment_already_gone_is_fine(rest):
    rest.expect("crm.timeline.comment.delete", {"id": 999, "ownerTypeId": 2, "ownerId": 42},
                error=gone())
    delete_sticky(rest, "42", "999")


def test_delete_lets_other_errors_through(rest):
    rest.expect("crm.timeline.comment.delete", {"id": 999, "ownerTypeId": 2, "ownerId": 42},
                error=AuthError("ACCESS_DENIED: Access denied", status=403))
    with pytest.raises(AuthError):
        delete_sticky(rest, "42", "999")


def test_stale_duplicates_are_deleted(rest):
    rest.expect("crm.timeline.comment.delete", {"id": 1001, "ownerTypeId": 2, "ownerId": 42})
    rest.expect("crm.timeline.comment.delete", {"id": 1002, "ownerTypeId": 2, "ownerId": 42},
                error=gone())
    delete_stale(rest, 42, ["1001", "1002"])


# -- finding it again -------------------------------------------------------------------

def timeline(*ours: tuple[str, str]) -> list[dict[str, Any]]:
    """The documented list answer plus comments of ours: (ID, AUTHOR_ID)."""
    items = [dict(item) for item in DOCUMENTED["crm.timeline.comment.list"]["result"]]
    return items + [{"ID": comment_id, "ENTITY_ID": "42", "ENTITY_TYPE": "deal",
                     "CREATED": "2026-03-02T12:00:00+03:00", "COMMENT": COMMENT,
                     "AUTHOR_ID": author, "FILES": {}} for comment_id, author in ours]


def test_the_marker_is_found_in_the_raw_comment():
    assert carries_marker({"COMMENT": COMMENT})
    assert not carries_marker(DOCUMENTED["crm.timeline.comment.list"]["result"][0])
    assert not carries_marker({"COMMENT": None})


def test_found_by_the_known_id():
    found = find_sticky(timeline(("1005", "1"), ("1007", "1")), "1005", author="1")
    assert found.comment["ID"] == "1005"
    assert [c["ID"] for c in found.stale] == ["1007"]


def test_found_by_marker_the_newest_wins_and_the_rest_are_stale():
    found = find_sticky(timeline(("1010", "1"), ("1005", "1"), ("1007", "1")), None,
                        author="1")
    assert found.comment["ID"] == "1010"
    assert [c["ID"] for c in found.stale] == ["1005", "1007"]


def test_a_person_quoting_our_comment_is_left_alone():
    found = find_sticky(timeline(("1005", "1"), ("1006", "17")), None, author="1")
    assert found.comment["ID"] == "1005"
    assert found.stale == ()


def test_none_found():
    assert find_sticky(timeline(), "123", author="1").comment is None


# -- the notification -------------------------------------------------------------------

MESSAGE = ("ClientGuard — Health score: 68/100 (amber)\n"
           "[url=https://acme.bitrix24.com/crm/deal/details/42/]#42[/url]")


def test_the_responsible_person_gets_one_notification_per_deal(rest):
    rest.expect("im.notify.system.add",
                {"USER_ID": 5, "MESSAGE": MESSAGE, "TAG": "CLIENTGUARD|DEAL|42"}, 12345)
    assert notify_responsible(rest, "5", "42", CONTENT,
                              "https://acme.bitrix24.com/crm/deal/details/42/",
                              webhook=False) == "12345"


def test_over_a_webhook_the_tag_comes_with_a_client_id(rest):
    rest.expect("im.notify.system.add",
                {"USER_ID": 5, "MESSAGE": MESSAGE, "TAG": "CLIENTGUARD|DEAL|42",
                 "CLIENT_ID": "clientguard"}, 12345)
    notify_responsible(rest, 5, 42, CONTENT, "https://acme.bitrix24.com/crm/deal/details/42/",
                       webhook=True)


def test_the_deal_title_labels_the_link_and_opens_no_tag(rest):
    rest.expect("im.notify.system.add", {
        "USER_ID": 5, "TAG": "CLIENTGUARD|DEAL|42",
        "MESSAGE": "ClientGuard — Health score: 68/100 (amber)\n"
                   "[url=https://acme.bitrix24.com/crm/deal/details/42/]"
                   "Shop (url=https://evil.example)x(/url) ‹b› relaunch[/url]"}, False)
    assert notify_responsible(
        rest, 5, 42, CONTENT, "https://acme.bitrix24.com/crm/deal/details/42/", webhook=False,
        title="Shop [url=https://evil.example]x[/url] <b>\n relaunch") is None


def test_the_notification_refuses_what_is_not_a_user_or_a_link(rest):
    with pytest.raises(ValueError, match="not a Bitrix24 user id"):
        notify_responsible(rest, "0", 42, CONTENT, "https://acme.bitrix24.com/", webhook=False)
    with pytest.raises(ValueError, match="http"):
        notify_responsible(rest, 5, 42, CONTENT, "javascript:alert(1)", webhook=False)
    assert rest.calls == []


# -- plain text -------------------------------------------------------------------------

def test_comment_text_is_what_a_reader_sees():
    assert comment_text(CONTENT) == (
        "ClientGuard — Health score: 68/100 (amber)\n"
        "FAIL — Project manager briefed\n"
        "• Quoted: [b]bold[/b] [user=7]Ann[/user]\n"
        "How to fix: Write the brief and have the PM acknowledge it.\n"
        "Open health check <https://guard.agency.example/health/bitrix24/42>\n"
        "Agency-internal: the client cannot see this. ClientGuard keeps this one comment up "
        "to date; manual edits are overwritten.")


# -- through the real client ------------------------------------------------------------

WEBHOOK = "https://acme.bitrix24.com/rest/1/s3cr3tc0de/"


@pytest.fixture
def client() -> Bitrix24Client:
    bucket = LeakyBucket(2.0, 50, clock=lambda: 0.0, sleep=lambda _: None)
    return Bitrix24Client(WebhookAuth(WEBHOOK, site="acme"), bucket, sleep=lambda _: None,
                          clock=lambda: 0.0)


def test_re_created_and_pinned_through_the_client(portal, client):
    portal.post(WEBHOOK + "crm.timeline.comment.update", status=400, json=GONE,
                match=[matchers.json_params_matcher({
                    "id": 1000, "fields": {"COMMENT": COMMENT}, "ownerTypeId": 2,
                    "ownerId": 42})])
    portal.post(WEBHOOK + "crm.timeline.comment.add",
                json=DOCUMENTED["crm.timeline.comment.add"],
                match=[matchers.json_params_matcher({"fields": {
                    "ENTITY_ID": 42, "ENTITY_TYPE": "deal", "COMMENT": COMMENT}})])
    portal.post(WEBHOOK + "crm.timeline.item.pin", json={"result": None},
                match=[matchers.json_params_matcher({"id": 999, "ownerTypeId": 2,
                                                     "ownerId": 42})])
    assert write_sticky(client, "42", "1000", CONTENT, pin=True) == "999"


def test_delete_of_a_comment_already_gone_through_the_client(portal, client):
    portal.post(WEBHOOK + "crm.timeline.comment.delete", status=400, json=GONE,
                match=[matchers.json_params_matcher({"id": 999, "ownerTypeId": 2,
                                                     "ownerId": 42})])
    delete_sticky(client, "42", "999")
