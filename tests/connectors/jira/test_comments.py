"""The sticky comment on Jira: its markup, finding it again, and writing it agency-internal on
every path — checked on the exact request bodies.

Every test runs inside `jira`, a `responses.RequestsMock` that fails on an unused stub; at the
end every request sent to the Cloud site is checked against Atlassian's OpenAPI spec
(`tests/connectors/jira/openapi.py`). Outside that spec, so checked by the body matchers only:
the JSM route `POST /rest/servicedeskapi/request/{key}/comment` (JSM has its own spec, not
vendored) and the Data Center tests (`/rest/api/2/…`: Atlassian publishes no DC spec).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from responses import matchers

from connectors.base import STICKY_MARKER, Written
from connectors.errors import LeakPrevented, StickyRefused
from connectors.jira.client import JiraClient
from connectors.jira.comments import (
    carries_marker,
    client_visible,
    delete_sticky,
    find_sticky,
    left_as_written,
    write_sticky,
)
from connectors.jira.markup import to_adf, to_wiki, wiki_escape
from connectors.jira.settings import JiraSettings, JiraSettingsSchema
from plugin.core.comment import CheckBlock, Link, StickyContent

SITE = "https://acme.atlassian.net"
DC_SITE = "https://jira.acme.example/jira"
COMMENTS = f"{SITE}/rest/api/3/issue/ACME-7/comment"
DC_COMMENTS = f"{DC_SITE}/rest/api/2/issue/ACME-7/comment"
JSM_COMMENTS = f"{SITE}/rest/servicedeskapi/request/ACME-7/comment"
STAFF_ONLY = {"type": "role", "value": "Agency Staff"}
JSM_INTERNAL = [{"key": "sd.public.comment", "value": {"internal": True}}]

ISSUE = {"key": "ACME-7", "fields": {"project": {"key": "ACME", "projectTypeKey": "software"}}}
JSM_ISSUE = {"key": "ACME-7",
             "fields": {"project": {"key": "ACME", "projectTypeKey": "service_desk"}}}

CONTENT = StickyContent(
    heading="ClientGuard — Health score: 68/100 (amber)",
    checks=(
        CheckBlock("FAIL", "Project manager briefed",
                   ("No agency brief; Carla Client uploaded “brief.docx”.",
                    "Quoted: *bold* [link|http://x] {code}"),
                   "How to fix", "Write the brief and have the PM acknowledge it."),
        CheckBlock("WARN", "Client answered", ("A client question waited 11 business hours.",),
                   "How to fix", "Answer within the SLA."),
    ),
    all_clear=None,
    unchecked=None,
    link=Link("Open health check", "https://guard.agency.example/health/jira/ACME-7"),
    footer="Agency-internal: the client cannot see this. ClientGuard keeps this one comment "
           "up to date; manual edits are overwritten. clientguard:sticky",
)


@pytest.fixture
def cloud() -> JiraClient:
    return JiraClient(SITE, ("guard-bot@agency.example", "token"), sleep=lambda _: None)


@pytest.fixture
def dc() -> JiraClient:
    return JiraClient(DC_SITE, "pat", flavour="datacenter", sleep=lambda _: None)


@pytest.fixture
def settings() -> JiraSettings:
    return JiraSettingsSchema().load({"internal_visibility": STAFF_ONLY})


def restricted(comment_id: str = "10100") -> dict:
    """How Jira returns a comment restricted to a role."""
    return {"id": comment_id, "body": to_adf(CONTENT), "jsdPublic": True, "properties": [],
            "visibility": {"type": "role", "value": "Agency Staff",
                           "identifier": "Agency Staff"}}


def internal_note(comment_id: str = "10100") -> dict:
    """How Jira returns a JSM internal note."""
    return {"id": comment_id, "body": to_adf(CONTENT), "jsdPublic": False,
            "properties": JSM_INTERNAL}


def read_back(mock: responses.RequestsMock, url: str, answer: dict) -> None:
    mock.get(url, json=answer, match=[matchers.query_param_matcher({"expand": "properties"})])


# -- the markup ------------------------------------------------------------------------

WIKI = """\
h3. ClientGuard — Health score: 68/100 (amber)

*FAIL* — *Project manager briefed*

* No agency brief; Carla Client uploaded “brief.docx”.
* Quoted: \\*bold\\* \\[link\\|http://x\\] \\{code\\}

_How to fix:_ Write the brief and have the PM acknowledge it.

*WARN* — *Client answered*

* A client question waited 11 business hours.

_How to fix:_ Answer within the SLA.

[Open health check|https://guard.agency.example/health/jira/ACME-7]

{color:#6b778c}Agency\\-internal: the client cannot see this. ClientGuard keeps this one \
comment up to date; manual edits are overwritten. clientguard:sticky{color}"""


def test_wiki_markup_for_data_center():
    assert to_wiki(CONTENT) == WIKI


@pytest.mark.parametrize(("text", "shown"), [
    ("*bold* [link|http://x] {code}", r"\*bold\* \[link\|http://x\] \{code\}"),
    ("_em_ -strike- +ins+ ^sup^ ~sub~ ??cite?? !image.png! #1", r"\_em\_ \-strike\- \+ins\+ "
     r"\^sup\^ \~sub\~ \?\?cite\?\? \!image.png\! \#1"),
    ("[~accountid:5b10a2844c20165700ede21g]", r"\[\~accountid:5b10a2844c20165700ede21g\]"),
    ("C:\\temp \\\\ end", "C:&#92;temp &#92;&#92; end"),
    ("Плохо: «идиот»", "Плохо: «идиот»"),
])
def test_wiki_escaping_shows_ticket_text_as_typed(text, shown):
    assert wiki_escape(text) == shown


def test_ticket_text_cannot_break_the_wiki_structure():
    content = StickyContent("h", (CheckBlock("FAIL", "T", ("one\nh1. two\n* three",), "F", "x"),),
                            None, None, Link("L", "https://g.example/h?a=1|b]c d"), "f")
    wiki = to_wiki(content)
    assert "* one h1. two \\* three" in wiki.splitlines()
    assert "[L|https://g.example/h?a=1%7Cb%5Dc%20d]" in wiki.splitlines()


ADF = {"type": "doc", "version": 1, "content": [
    {"type": "heading", "attrs": {"level": 3},
     "content": [{"type": "text", "text": "ClientGuard — Health score: 68/100 (amber)"}]},
    {"type": "paragraph", "content": [
        {"type": "text", "text": "FAIL", "marks": [{"type": "strong"}]},
        {"type": "text", "text": " — "},
        {"type": "text", "text": "Project manager briefed", "marks": [{"type": "strong"}]}]},
    {"type": "bulletList", "content": [
        {"type": "listItem", "content": [{"type": "paragraph", "content": [
            {"type": "text", "text": "No agency brief; Carla Client uploaded “brief.docx”."}]}]},
        {"type": "listItem", "content": [{"type": "paragraph", "content": [
            {"type": "text", "text": "Quoted: *bold* [link|http://x] {code}"}]}]}]},
    {"type": "paragraph", "content": [
        {"type": "text", "text": "How to fix:", "marks": [{"type": "em"}]},
        {"type": "text", "text": " Write the brief and have the PM acknowledge it."}]},
    {"type": "paragraph", "content": [
        {"type": "text", "text": "WARN", "marks": [{"type": "strong"}]},
        {"type": "text", "text": " — "},
        {"type": "text", "text": "Client answered", "marks": [{"type": "strong"}]}]},
    {"type": "bulletList", "content": [
        {"type": "listItem", "content": [{"type": "paragraph", "content": [
            {"type": "text", "text": "A client question waited 11 business hours."}]}]}]},
    {"type": "paragraph", "content": [
        {"type": "text", "text": "How to fix:", "marks": [{"type": "em"}]},
        {"type": "text", "text": " Answer within the SLA."}]},
    {"type": "paragraph", "content": [
        {"type": "text", "text": "Open health check", "marks": [
            {"type": "link",
             "attrs": {"href": "https://guard.agency.example/health/jira/ACME-7"}}]}]},
    {"type": "paragraph", "content": [
        {"type": "text", "text": CONTENT.footer,
         "marks": [{"type": "textColor", "attrs": {"color": "#6b778c"}}]}]},
]}


def test_adf_for_cloud():
    assert to_adf(CONTENT) == ADF


def _nodes(node: dict) -> Iterator[dict]:
    yield node
    for child in node.get("content", ()):
        yield from _nodes(child)


@pytest.mark.parametrize("content", [
    CONTENT,
    StickyContent("ClientGuard — Health score: 100/100 (green)", (), "Every check passes.",
                  None, None, "f clientguard:sticky"),
    StickyContent("h", (CheckBlock("WARN", "T", ("", " \n "), "F", "x"),), None,
                  "Could not be checked (internal error): X", None, "f"),
], ids=["failing", "clean", "blank-evidence"])
def test_adf_is_a_valid_document(content):
    doc = to_adf(content)
    assert doc["type"] == "doc" and doc["version"] == 1 and isinstance(doc["content"], list)
    allowed = {"doc", "heading", "paragraph", "bulletList", "listItem", "text"}
    for node in _nodes(doc):
        assert node["type"] in allowed
        if node["type"] == "text":
            assert node["text"] and "\n" not in node["text"]
            assert set(node) <= {"type", "text", "marks"}
        else:
            assert isinstance(node.get("content", []), list)
        if node["type"] == "listItem":
            assert [child["type"] for child in node["content"]] == ["paragraph"]


# -- finding our comment ---------------------------------------------------------------

def _comment(comment_id: str, body, author: str = "557058:clientguard-bot") -> dict:
    return {"id": comment_id, "body": body, "author": {"accountId": author}}


PERSON_ID = "5b10a2844c20165700ede21g"  # a person's accountId
WIKI_MARKED = f"h3. ClientGuard\n\n{{color:#6b778c}}… {STICKY_MARKER}{{color}}"


def test_find_sticky_by_the_stored_id():
    comments = [_comment("10001", "Hello", PERSON_ID), _comment("10002", to_adf(CONTENT))]
    found = find_sticky(comments, "10002")
    assert found.comment["id"] == "10002" and found.stale == ()


def test_find_sticky_by_the_marker_in_adf_or_wiki_when_the_id_is_unknown():
    assert find_sticky([_comment("10001", "Hi", PERSON_ID), _comment("10002", to_adf(CONTENT))],
                       None).comment["id"] == "10002"
    assert find_sticky([_comment("10003", WIKI_MARKED)], "99999").comment["id"] == "10003"


def test_find_sticky_finds_nothing_on_a_ticket_without_our_comment():
    found = find_sticky([_comment("10001", "Hello", PERSON_ID)], "10002")
    assert (found.comment, found.stale) == (None, ())


def test_after_a_crash_the_newest_marked_comment_wins_and_the_others_are_stale():
    comments = [_comment("10009", WIKI_MARKED), _comment("10010", "Hi", PERSON_ID),
                _comment("10012", to_adf(CONTENT)), _comment("10011", to_adf(CONTENT))]
    found = find_sticky(comments, None)
    assert found.comment["id"] == "10012"
    assert [c["id"] for c in found.stale] == ["10009", "10011"]


def test_a_marked_comment_without_an_id_is_neither_ours_nor_stale():
    # nothing could edit or delete it; the OpenAPI spec makes a comment's id optional
    nameless = _comment("10013", to_adf(CONTENT))
    del nameless["id"]
    found = find_sticky([_comment("10011", to_adf(CONTENT)), nameless], None)
    assert found.comment["id"] == "10011" and found.stale == ()


def test_with_a_stored_id_every_other_marked_comment_is_stale():
    comments = [_comment("10011", to_adf(CONTENT)), _comment("10012", to_adf(CONTENT))]
    found = find_sticky(comments, "10011")
    assert found.comment["id"] == "10011" and [c["id"] for c in found.stale] == ["10012"]


def test_a_person_quoting_our_comment_is_not_taken_for_it():
    quoted = _comment("10013", to_adf(CONTENT), author=PERSON_ID)
    found = find_sticky([quoted], None, author="557058:clientguard-bot")
    assert (found.comment, found.stale) == (None, ())
    dc_ours = {"id": "20001", "body": WIKI_MARKED, "author": {"name": "clientguard"}}
    assert find_sticky([dc_ours, quoted], None, author="clientguard").comment["id"] == "20001"


def test_without_a_service_account_the_author_of_the_stored_comment_is_ours():
    """A person pasting our footer into a reply is no stale copy of ours to delete, even
    with `service_account` unset; a copy our account left after a crash still is."""
    comments = [_comment("10011", to_adf(CONTENT)), _comment("10012", to_adf(CONTENT)),
                _comment("10013", to_adf(CONTENT), author=PERSON_ID)]
    found = find_sticky(comments, "10011")
    assert found.comment["id"] == "10011" and [c["id"] for c in found.stale] == ["10012"]


def test_the_marker_survives_both_markups():
    assert carries_marker({"body": to_adf(CONTENT)})
    assert carries_marker({"body": to_wiki(CONTENT)})
    assert not carries_marker({"body": {"type": "doc", "version": 1, "content": []}})


# -- writing: agency-internal on every path --------------------------------------------

def test_create_on_a_project_restricts_to_the_configured_role(jira, cloud, settings):
    jira.post(COMMENTS, status=201, json=restricted(), match=[
        matchers.json_params_matcher({"body": ADF, "visibility": STAFF_ONLY})])
    read_back(jira, f"{COMMENTS}/10100", restricted())
    assert write_sticky(cloud, settings, ISSUE, CONTENT, None).comment_id == "10100"


def test_update_on_a_project_is_silent_and_restates_the_role(jira, cloud, settings):
    jira.put(f"{COMMENTS}/10100", json=restricted(), match=[
        matchers.query_param_matcher({"notifyUsers": "false"}),
        matchers.json_params_matcher({"body": ADF, "visibility": STAFF_ONLY})])
    read_back(jira, f"{COMMENTS}/10100", restricted())
    assert write_sticky(cloud, settings, ISSUE, CONTENT, "10100").comment_id == "10100"


def test_create_on_a_service_desk_is_an_internal_note_via_servicedeskapi(jira, cloud):
    """JSM route: outside the vendored Cloud platform spec (JSM has its own); the matcher
    checks the body. No role visibility: it would not hide the note from the portal."""
    jira.post(JSM_COMMENTS, status=201, json={"id": "10100", "body": WIKI, "public": False},
              match=[matchers.json_params_matcher({"body": WIKI, "public": False})])
    read_back(jira, f"{COMMENTS}/10100", internal_note())
    no_visibility = JiraSettingsSchema().load({})
    assert write_sticky(cloud, no_visibility, JSM_ISSUE, CONTENT, None).comment_id == "10100"


def test_update_on_a_service_desk_restates_the_internal_property(jira, cloud, settings):
    jira.put(f"{COMMENTS}/10100", json=internal_note(), match=[
        matchers.query_param_matcher({"notifyUsers": "false"}),
        matchers.json_params_matcher({"body": ADF, "properties": JSM_INTERNAL})])
    read_back(jira, f"{COMMENTS}/10100", internal_note())
    assert write_sticky(cloud, settings, JSM_ISSUE, CONTENT, "10100").comment_id == "10100"


def test_data_center_writes_wiki_markup_restricted_to_the_role(jira, dc, settings):
    jira.post(DC_COMMENTS, status=201, json={"id": "20001", "body": WIKI}, match=[
        matchers.json_params_matcher({"body": WIKI, "visibility": STAFF_ONLY})])
    read_back(jira, f"{DC_COMMENTS}/20001", {"id": "20001", "body": WIKI, "visibility": STAFF_ONLY,
                                              "updated": "2026-11-20T10:00:00.000+0100"})
    # the time Jira gave the comment, and the issue: the review's catch-up skips our write
    assert write_sticky(dc, settings, ISSUE, CONTENT, None) == Written(
        "20001", datetime(2026, 11, 20, 9, 0, tzinfo=UTC))


def test_data_center_service_desk_update_restates_the_internal_property(jira, dc, settings):
    jira.put(f"{DC_COMMENTS}/20001", json={"id": "20001"}, match=[
        matchers.query_param_matcher({"notifyUsers": "false"}),
        matchers.json_params_matcher({"body": WIKI, "properties": JSM_INTERNAL})])
    read_back(jira, f"{DC_COMMENTS}/20001",
              {"id": "20001", "body": WIKI, "properties": JSM_INTERNAL})
    assert write_sticky(dc, settings, JSM_ISSUE, CONTENT, "20001").comment_id == "20001"


def test_data_center_service_desk_create_is_an_internal_note_via_servicedeskapi(jira, dc,
                                                                               settings):
    jira.post(f"{DC_SITE}/rest/servicedeskapi/request/ACME-7/comment", status=201,
              json={"id": "20002", "body": WIKI, "public": False},
              match=[matchers.json_params_matcher({"body": WIKI, "public": False})])
    read_back(jira, f"{DC_COMMENTS}/20002",
              {"id": "20002", "body": WIKI, "properties": JSM_INTERNAL})
    assert write_sticky(dc, settings, JSM_ISSUE, CONTENT, None).comment_id == "20002"


def test_an_issue_of_a_service_desk_that_is_no_request_gets_its_note_via_the_platform(
        jira, cloud, settings):
    """Created in Jira, moved in, no request type: JSM's API answers 404 for it (its own
    error shape). The platform's API creates the note, internal by its property in the same
    request, never with a role visibility the portal ignores."""
    jira.post(JSM_COMMENTS, status=404, json={
        "errorMessage": "Either you don't have access to this request type, or it doesn't "
                        "exist.", "i18nErrorMessage": {
                            "i18nKey": "sd.customerview.error.vpOriginMissing",
                            "parameters": []}})
    jira.post(COMMENTS, status=201, json=internal_note("10102"), match=[
        matchers.json_params_matcher({"body": ADF, "properties": JSM_INTERNAL})])
    read_back(jira, f"{COMMENTS}/10102", internal_note("10102"))
    assert write_sticky(cloud, settings, JSM_ISSUE, CONTENT, None).comment_id == "10102"


def test_an_internal_note_deleted_meanwhile_is_written_anew_as_an_internal_note(jira, cloud,
                                                                                settings):
    jira.put(f"{COMMENTS}/10100", status=404,
             json={"errorMessages": ["Can not find a comment for the id: 10100."], "errors": {}},
             match=[matchers.json_params_matcher({"body": ADF, "properties": JSM_INTERNAL})])
    jira.post(JSM_COMMENTS, status=201, json={"id": "10101", "body": WIKI, "public": False},
              match=[matchers.json_params_matcher({"body": WIKI, "public": False})])
    read_back(jira, f"{COMMENTS}/10101", internal_note("10101"))
    assert write_sticky(cloud, settings, JSM_ISSUE, CONTENT, "10100").comment_id == "10101"


def test_a_sticky_comment_deleted_meanwhile_is_written_anew(jira, cloud, settings):
    jira.put(f"{COMMENTS}/10100", status=404,
             json={"errorMessages": ["Can not find a comment for the id: 10100."], "errors": {}})
    jira.post(COMMENTS, status=201, json=restricted("10101"), match=[
        matchers.json_params_matcher({"body": ADF, "visibility": STAFF_ONLY})])
    read_back(jira, f"{COMMENTS}/10101", restricted("10101"))
    assert write_sticky(cloud, settings, ISSUE, CONTENT, "10100").comment_id == "10101"


def test_without_internal_visibility_nothing_is_sent(jira, cloud):
    with pytest.raises(StickyRefused, match="internal_visibility"):
        write_sticky(cloud, JiraSettingsSchema().load({}), ISSUE, CONTENT, None)
    assert len(jira.calls) == 0


def test_without_the_project_type_nothing_is_sent(jira, cloud, settings):
    with pytest.raises(StickyRefused, match="projectTypeKey"):
        write_sticky(cloud, settings, {"key": "ACME-7", "fields": {}}, CONTENT, None)
    assert len(jira.calls) == 0


def test_a_comment_read_back_public_is_deleted_and_the_write_fails(jira, cloud, settings):
    jira.post(COMMENTS, status=201, json=restricted(), match=[
        matchers.json_params_matcher({"body": ADF, "visibility": STAFF_ONLY})])
    public = {**restricted(), "visibility": None}
    read_back(jira, f"{COMMENTS}/10100", public)
    jira.delete(f"{COMMENTS}/10100", status=204)
    with pytest.raises(LeakPrevented) as caught:
        write_sticky(cloud, settings, ISSUE, CONTENT, None)
    assert (caught.value.comment_id, caught.value.deleted) == ("10100", True)


def test_an_internal_note_read_back_public_is_deleted_and_the_write_fails(jira, cloud, settings):
    jira.put(f"{COMMENTS}/10100", json=internal_note(), match=[
        matchers.json_params_matcher({"body": ADF, "properties": JSM_INTERNAL})])
    read_back(jira, f"{COMMENTS}/10100", {**internal_note(), "jsdPublic": True})
    jira.delete(f"{COMMENTS}/10100", status=204)
    with pytest.raises(LeakPrevented, match="deleted it"):
        write_sticky(cloud, settings, JSM_ISSUE, CONTENT, "10100")


def test_a_leak_that_cannot_be_deleted_says_so(jira, cloud, settings):
    jira.post(COMMENTS, status=201, json=restricted(), match=[
        matchers.json_params_matcher({"body": ADF, "visibility": STAFF_ONLY})])
    read_back(jira, f"{COMMENTS}/10100", {**restricted(), "visibility": None})
    jira.delete(f"{COMMENTS}/10100", status=403,
                json={"errorMessages": ["You do not have permission to delete this comment."],
                      "errors": {}})
    with pytest.raises(LeakPrevented, match="could NOT delete") as caught:
        write_sticky(cloud, settings, ISSUE, CONTENT, None)
    assert caught.value.deleted is False


@pytest.mark.parametrize(("comment", "visible"), [
    ({"jsdPublic": False}, False),
    ({"properties": JSM_INTERNAL}, False),
    ({"jsdPublic": False, "properties": JSM_INTERNAL}, False),
    ({"jsdPublic": True, "properties": JSM_INTERNAL}, True),
    ({"jsdPublic": False,
      "properties": [{"key": "sd.public.comment", "value": {"internal": False}}]}, True),
    ({"properties": [{"key": "sd.public.comment", "value": "internal"}]}, True),
    ({"visibility": STAFF_ONLY}, True),  # role visibility does not hide from the JSM portal
    ({}, True),
])
def test_what_counts_as_internal_on_a_service_desk(comment, visible):
    assert client_visible(comment, service_desk=True) is visible


@pytest.mark.parametrize(("comment", "visible"), [
    ({"visibility": STAFF_ONLY}, False),
    ({"visibility": {"type": "group", "identifier": "7f3c-…"}}, False),
    ({"visibility": {"type": "role", "value": ""}}, True),
    ({"visibility": None, "jsdPublic": False}, True),
    ({}, True),
])
def test_what_counts_as_internal_elsewhere(comment, visible):
    assert client_visible(comment, service_desk=False) is visible


def test_delete_sticky_tolerates_a_comment_already_gone(jira, cloud):
    jira.delete(f"{COMMENTS}/10100", status=404,
                json={"errorMessages": ["Can not find a comment for the id: 10100."], "errors": {}})
    jira.delete(f"{COMMENTS}/10101", status=204)
    delete_sticky(cloud, "ACME-7", "10100")
    delete_sticky(cloud, "ACME-7", "10101")


OURS = {"accountId": "557058:clientguard-bot"}
PERSON = {"accountId": PERSON_ID}


@pytest.mark.parametrize(("comment", "service_desk", "as_written"), [
    ({"author": OURS, "updateAuthor": OURS, "visibility": STAFF_ONLY}, False, True),
    ({"author": OURS, "visibility": STAFF_ONLY}, False, True),
    ({"author": OURS, "updateAuthor": OURS, "visibility": None}, False, False),
    ({"author": OURS, "updateAuthor": PERSON, "visibility": STAFF_ONLY}, False, False),
    ({"author": OURS, "updateAuthor": OURS, "jsdPublic": False}, True, True),
    ({"author": OURS, "updateAuthor": PERSON, "jsdPublic": True}, True, False),
    ({"author": {"name": "clientguard", "key": "JIRAUSER10100"},
      "updateAuthor": {"name": "clientguard", "key": "JIRAUSER10100"},
      "visibility": STAFF_ONLY}, False, True),
], ids=["restricted", "never edited", "opened to all", "edited by a person",
        "internal note", "shared with the customer", "data center"])
def test_a_sticky_is_as_written_while_internal_and_last_edited_by_its_author(
        comment: dict[str, Any], service_desk: bool, as_written: bool) -> None:
    """Its author is ClientGuard's account, whatever `service_account` is set to: a setting
    naming another account must not make each of our own edits look like someone else's
    (a rewrite, its webhook, a rewrite…)."""
    assert left_as_written(comment, service_desk=service_desk) is as_written
