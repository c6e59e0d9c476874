"""The Jira snapshot: REST answers mapped to the `Engagement`, and the calls one costs.

The answers are in `fixtures/rest/` (where each shape comes from: `fixtures/rest/SOURCES.md`):
a Jira Service Management issue on Cloud (API v3, ADF bodies, accountIds) and a software
issue on Data Center (API v2, wiki markup, usernames). Expected values are written out.
HTTP tests run inside `jira`, a `responses` mock that fails on an unused stub and checks
every Cloud request against Atlassian's OpenAPI spec (`tests/connectors/jira/openapi.py`).
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import responses
from responses import matchers

from connectors.base import EngagementRef
from connectors.errors import NotFound, PlatformError
from connectors.jira import GROUP_MEMBERS_SECONDS, JiraConnector
from connectors.jira.client import JiraClient
from connectors.jira.settings import JiraSettings, JiraSettingsSchema
from connectors.jira.snapshot import (
    build_engagement,
    fetch_statuses,
    wiki_text,
)
from connectors.mapping import CONVERTERS, adf_text, as_time
from plugin.config import build_config
from plugin.core.engine import evaluate
from plugin.core.model import (
    Change,
    Client,
    Comment,
    Document,
    DocumentKind,
    Engagement,
    Person,
    Roles,
    Side,
    StatusCategory,
    StatusChange,
    TimeEntry,
    TimeKind,
    Visibility,
)
from plugin.core.rule import Status
from tests.builders import NOW

FIXTURES = Path(__file__).parent / "fixtures" / "rest"
SITE = "https://agency.atlassian.net"
DC_SITE = "https://jira.agency.example"
CEST, CET = timezone(timedelta(hours=2)), timezone(timedelta(hours=1))

TODO, IN_PROGRESS, DONE = StatusCategory.TODO, StatusCategory.IN_PROGRESS, StatusCategory.DONE
STATUSES = {"10000": TODO, "3": IN_PROGRESS, "10003": IN_PROGRESS, "10001": DONE}
DC_STATUSES = {"1": TODO, "3": IN_PROGRESS, "6": DONE}

CLOUD = JiraSettingsSchema().load({
    "site": "agency", "base_url": SITE, "service_account": "5f8a1c2b3d4e5f6a7b8c9dff",
    "agency_domains": ["agency.example"], "client_domains": ["acme.example"],
    "agency_accounts": ["5f8a1c2b3d4e5f6a7b8c9d02"],
    "fields": {
        "account_manager": "customfield_10100", "project_manager": "customfield_10101",
        "decision_maker": "customfield_10102", "client": "customfield_10103",
        "goals": "customfield_10104", "budget_hours": "customfield_10105",
        "channels": "customfield_10106", "prepayment_received": "customfield_10107",
        "input_data": "customfield_10108", "results_expected_on": "customfield_10109",
    },
})
DATACENTER = JiraSettingsSchema().load({
    "site": "agency-dc", "base_url": DC_SITE, "flavour": "datacenter",
    "agency_domains": ["agency.example"], "client_domains": ["acme.example"],
    "fields": {"account_manager": "customfield_10100", "project_manager": "customfield_10101"},
})
CLOUD_REF = EngagementRef("jira", "agency", "10042")
DC_REF = EngagementRef("jira", "agency-dc", "10231")

# Who is who in the Cloud issue: Peter hides his e-mail but is a listed agency account,
# Dina writes from a subdomain, Kim is a JSM customer, Ola is nobody we know.
ANNA = Person("5f8a1c2b3d4e5f6a7b8c9d01", "Anna Account", Side.AGENCY, "anna@agency.example")
PETER = Person("5f8a1c2b3d4e5f6a7b8c9d02", "Peter Project", Side.AGENCY)
DINA = Person("5f8a1c2b3d4e5f6a7b8c9d03", "Dina Developer", Side.AGENCY,
              "dina@dev.agency.example")
CARLA = Person("712020:2f6c9d1e-8b4a-4c3d-9e5f-a1b2c3d4e5f6", "Carla Client", Side.CLIENT,
               "carla@acme.example")
KIM = Person("qm:7c1f0d2e-5a6b-4c8d-9e0f-1a2b3c4d5e6f:8b9c0d1e-2f3a-4b5c-8d6e-7f8091a2b3c4",
             "Kim Marketer", Side.CLIENT, "kim@mail.example")
OLA = Person("5f8a1c2b3d4e5f6a7b8c9d09", "Ola Freelancer", Side.UNKNOWN)
# ... and in the Data Center issue, by username.
DC_ANNA = Person("anna.account", "Anna Account", Side.AGENCY, "anna@agency.example")
DC_CARLA = Person("carla.client", "Carla Client", Side.CLIENT, "carla@acme.example")
DC_BOB = Person("bob", "Bob Builder", Side.UNKNOWN)

CLOUD_FIELDS = ("summary,status,created,updated,duedate,labels,project,reporter,assignee,"
                "attachment,comment,worklog,customfield_10100,customfield_10101,"
                "customfield_10102,customfield_10103,customfield_10104,customfield_10105,"
                "customfield_10106,customfield_10107,customfield_10108,customfield_10109")
DC_FIELDS = ("summary,status,created,updated,duedate,labels,project,reporter,assignee,"
             "attachment,comment,worklog,customfield_10100,customfield_10101")


@functools.cache
def _fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def fixture(name: str) -> Any:
    """A fresh copy of a REST answer, free to change."""
    return json.loads(_fixture_text(name))


def cloud_issue() -> dict[str, Any]:
    return fixture("issue__cloud_service_desk.json")


def dc_issue() -> dict[str, Any]:
    return fixture("issue__datacenter.json")


def engagement_of(issue: dict[str, Any], settings: JiraSettings = CLOUD,
                  statuses: dict[str, StatusCategory] | None = None) -> Engagement:
    """The pure mapping of an issue whose embedded parts are complete."""
    fields = issue["fields"]
    return build_engagement(
        EngagementRef("jira", settings.site, issue["id"]), issue, fields["comment"]["comments"],
        fields["worklog"]["worklogs"], issue["changelog"]["histories"],
        STATUSES if statuses is None else statuses, settings)


# -- Cloud: a JSM request ----------------------------------------------------------------

def test_cloud_identity() -> None:
    engagement = engagement_of(cloud_issue())
    assert (engagement.connector, engagement.key, engagement.url, engagement.project) == (
        "jira", "ACME-12", "https://agency.atlassian.net/browse/ACME-12", "ACME")
    assert (engagement.title, engagement.status, engagement.status_category) == (
        "Webshop relaunch", "Waiting for customer", IN_PROGRESS)
    assert engagement.created == datetime(2026, 10, 1, 9, 0, tzinfo=CEST)
    assert engagement.updated == datetime(2026, 11, 16, 8, 5, tzinfo=CET)
    assert engagement.due == date(2026, 12, 18)
    assert engagement.labels == ("webshop", "phase-2")
    assert engagement.invoices is None  # Jira has none: overdue-invoices is not configured


def test_cloud_people_roles_and_client() -> None:
    engagement = engagement_of(cloud_issue())
    assert engagement.roles == Roles(points_of_contact=(ANNA,), project_managers=(PETER,),
                                     assignee=OLA)
    assert engagement.client == Client(key="acme-shoes-aps", name="Acme Shoes ApS",
                                       people=(CARLA, KIM), decision_makers=(CARLA,))


def test_cloud_comments_plain_text_visibility_and_no_sticky() -> None:
    # 10202 is a JSM internal note (jsdPublic false). 10204 is restricted to a role but
    # jsdPublic: on a service desk the customer portal still shows it. 10206 is ours.
    assert engagement_of(cloud_issue()).comments == (
        Comment("10201", CARLA, Visibility.PUBLIC, datetime(2026, 10, 7, 10, 0, tzinfo=CEST),
                "Hi @Anna Account,\nwhen can we see the checkout?"),
        Comment("10202", PETER, Visibility.INTERNAL, datetime(2026, 10, 7, 15, 0, tzinfo=CEST),
                "Brief read, all clear."),
        Comment("10203", ANNA, Visibility.PUBLIC, datetime(2026, 10, 7, 16, 30, tzinfo=CEST),
                "On Thursday, on the staging site.\nAnna"),
        Comment("10204", DINA, Visibility.PUBLIC, datetime(2026, 11, 10, 9, 0, tzinfo=CET),
                "Checkout is on staging now: https://staging.acme.example/checkout"),
        Comment("10205", KIM, Visibility.PUBLIC, datetime(2026, 11, 16, 8, 0, tzinfo=CET),
                "Could we get a discount on the next phase?"),
    )


def test_a_person_quoting_the_sticky_comment_keeps_their_comment() -> None:
    issue = cloud_issue()
    quoted = {"type": "text", "text": " (as the clientguard:sticky note says)"}
    issue["fields"]["comment"]["comments"][0]["body"]["content"][0]["content"].append(quoted)
    [first, *_] = engagement_of(issue).comments
    assert (first.id, first.text) == (
        "10201", "Hi @Anna Account,\nwhen can we see the checkout? (as the clientguard:sticky "
        "note says)")


def test_cloud_documents_are_classified_by_file_name() -> None:
    assert engagement_of(cloud_issue()).documents == (
        Document("10301", DocumentKind.ESTIMATE, "Estimate v2.pdf",
                 datetime(2026, 10, 2, 10, 0, tzinfo=CEST), ANNA),
        Document("10302", DocumentKind.CONTRACT, "Договор.pdf",
                 datetime(2026, 10, 5, 11, 30, tzinfo=CEST), ANNA),
        Document("10303", DocumentKind.BRIEF, "brief.docx",
                 datetime(2026, 10, 6, 14, 0, tzinfo=CEST), ANNA),
        Document("10304", DocumentKind.OTHER, "checkout-screenshot.png",
                 datetime(2026, 10, 8, 8, 15, tzinfo=CEST), CARLA),
    )


def test_cloud_worklogs_are_work_in_hours() -> None:
    assert engagement_of(cloud_issue()).time_entries == (
        TimeEntry(DINA, 3.5, TimeKind.WORK, datetime(2026, 10, 13, 9, 0, tzinfo=CEST)),
        TimeEntry(PETER, 1.5, TimeKind.WORK, datetime(2026, 10, 14, 13, 0, tzinfo=CEST)),
    )


def test_cloud_changelog_gives_status_history_and_canonical_changes() -> None:
    engagement = engagement_of(cloud_issue())
    assert engagement.status_history == (
        StatusChange(datetime(2026, 10, 12, 9, 0, tzinfo=CEST), "In Progress", IN_PROGRESS,
                     PETER),
        StatusChange(datetime(2026, 11, 16, 8, 5, tzinfo=CET), "Waiting for customer",
                     IN_PROGRESS, ANNA),
    )
    assert engagement.started_at == datetime(2026, 10, 12, 9, 0, tzinfo=CEST)
    assert engagement.changes == (
        Change("account_manager", datetime(2026, 10, 1, 9, 5, tzinfo=CEST), None,
               "Anna Account", ANNA),
        Change("project_manager", datetime(2026, 10, 1, 9, 5, tzinfo=CEST), None,
               "Peter Project", ANNA),
        Change("due", datetime(2026, 10, 9, 9, 0, tzinfo=CEST), None, "2026-12-01", ANNA),
        Change("status", datetime(2026, 10, 12, 9, 0, tzinfo=CEST), "To Do", "In Progress",
               PETER),
        Change("due", datetime(2026, 11, 2, 10, 0, tzinfo=CET), "2026-12-01", "2026-12-18",
               ANNA),
        Change("goals", datetime(2026, 11, 3, 11, 0, tzinfo=CET), "More online sales",
               "More online sales: 20 % more orders by Q2.", PETER),
        Change("status", datetime(2026, 11, 16, 8, 5, tzinfo=CET), "In Progress",
               "Waiting for customer", ANNA),
        Change("labels", datetime(2026, 11, 16, 8, 5, tzinfo=CET), "webshop",
               "webshop phase-2", ANNA),
    )


def test_cloud_mapped_fields_take_their_kind() -> None:
    assert dict(engagement_of(cloud_issue()).fields) == {
        "goals": "More online sales: 20 % more orders by Q2.",  # ADF text area
        "budget_hours": 120.0,
        "channels": ("SEO", "PPC"),  # multi-select
        "prepayment_received": True,  # a ticked checkbox
        "input_data": None,  # mapped, but nobody filled it in: a finding
        "results_expected_on": date(2027, 3, 31),
    }


def test_unmapped_is_absent_and_mapped_but_empty_is_none() -> None:
    settings = replace(CLOUD, fields={
        "project_manager": "customfield_19999",  # not on this issue at all
        "decision_maker": "customfield_10108",  # on it, empty
        "goals": "customfield_10108", "payment_method": "customfield_19999"})
    engagement = engagement_of(cloud_issue(), settings)
    assert dict(engagement.fields) == {"goals": None, "payment_method": None}
    assert engagement.roles.points_of_contact is None  # not mapped: not configured
    assert engagement.roles.project_managers == ()  # mapped, nobody set: a finding
    assert engagement.client == Client(key="acme-service-desk", name="Acme Service Desk",
                                       people=(CARLA, KIM), decision_makers=())
    assert [change.field for change in engagement.changes[:2]] == [
        "Account manager", "Project manager"]  # unmapped fields keep Jira's name


def test_a_status_the_site_no_longer_has_stays_out_of_the_status_history() -> None:
    engagement = engagement_of(cloud_issue(), statuses={"10000": TODO, "3": IN_PROGRESS})
    assert [move.status for move in engagement.status_history] == ["In Progress"]
    assert [c.to_value for c in engagement.changes if c.field == "status"] == [
        "In Progress", "Waiting for customer"]


@pytest.mark.parametrize(("part", "spoil", "left_out"), [
    ("worklog", {"started": None}, None),  # its `created` stands in
    ("worklog", {"started": None, "created": None}, "1 worklogs"),
    ("worklog", {"started": None, "created": "yesterday"}, "1 worklogs"),  # not a time
    ("attachment", {"created": None}, "1 attachments"),
    ("comment", {"created": None}, None),  # its `updated` stands in
    ("comment", {"created": None, "updated": None}, "1 comments"),
    ("history", {"created": None}, "1 changelog histories"),
])
def test_a_part_jira_sent_without_its_time_is_left_out_not_the_ticket(
        part: str, spoil: dict[str, str | None], left_out: str | None,
        caplog: pytest.LogCaptureFixture) -> None:
    # Atlassian's OpenAPI spec makes every one of these times optional
    issue = cloud_issue()
    fields = issue["fields"]
    parts = {"worklog": fields["worklog"]["worklogs"], "attachment": fields["attachment"],
             "comment": fields["comment"]["comments"], "history": issue["changelog"]["histories"]}
    parts[part][0].update(spoil)
    whole, engagement = part_counts(engagement_of(cloud_issue())), part_counts(
        engagement_of(issue))
    if left_out is None:
        assert engagement == whole
        assert not caplog.records
    else:
        assert engagement == {**whole, part: whole[part] - 1}
        assert [record.getMessage() for record in caplog.records] == [
            f"ACME-12: left out what Jira sent without a valid time: {left_out}"]


def part_counts(engagement: Engagement) -> dict[str, int]:
    return {"worklog": len(engagement.time_entries), "attachment": len(engagement.documents),
            "comment": len(engagement.comments),
            "history": len({change.at for change in engagement.changes})}


def test_a_worklog_without_started_counts_from_its_creation_a_comment_from_its_update():
    issue = cloud_issue()
    worklog, comment = issue["fields"]["worklog"]["worklogs"][0], issue["fields"]["comment"][
        "comments"][0]
    del worklog["started"], comment["created"]
    worklog["created"], comment["updated"] = "2026-10-12T08:00:00.000+0200", (
        "2026-10-08T11:00:00.000+0200")  # each unlike any other time of its part
    engagement = engagement_of(issue)
    assert engagement.time_entries[0].at == as_time(worklog["created"])
    assert next(c.at for c in engagement.comments if c.id == comment["id"]) == as_time(
        comment["updated"])


# -- Data Center: usernames, wiki markup, changelog without field ids ---------------------

def test_datacenter_issue() -> None:
    engagement = engagement_of(dc_issue(), DATACENTER, DC_STATUSES)
    assert (engagement.key, engagement.url, engagement.status_category, engagement.due) == (
        "PRJA-7", "https://jira.agency.example/browse/PRJA-7", IN_PROGRESS, date(2026, 12, 1))
    assert engagement.roles == Roles(points_of_contact=(DC_ANNA,), project_managers=(),
                                     assignee=DC_ANNA)
    assert engagement.client == Client("acme-webshop", "Acme Webshop", (DC_CARLA,), None)
    assert engagement.comments == (
        Comment("10301", DC_CARLA, Visibility.PUBLIC, datetime(2026, 10, 5, 10, 0, tzinfo=CEST),
                "Hi @anna.account, can you send the final estimate?\nSee our notes."),
        Comment("10302", DC_ANNA, Visibility.INTERNAL, datetime(2026, 10, 5, 11, 0, tzinfo=CEST),
                "Internal\n> can you send the final estimate?\n"
                "They ask again, it is in the estimate."),
        Comment("10303", DC_ANNA, Visibility.PUBLIC, datetime(2026, 10, 5, 15, 0, tzinfo=CEST),
                "> can you send the final estimate?\nYes: Смета_v3.xlsx is attached.\n"
                "Regards, Anna"),
    )
    assert engagement.documents == (
        Document("10400", DocumentKind.ESTIMATE, "Смета_v3.xlsx",
                 datetime(2026, 10, 3, 12, 0, tzinfo=CEST), DC_ANNA),)
    assert engagement.time_entries == (
        TimeEntry(DC_ANNA, 2.0, TimeKind.WORK, datetime(2026, 10, 13, 9, 0, tzinfo=CEST)),)
    assert engagement.status_history == (
        StatusChange(datetime(2026, 10, 12, 9, 0, tzinfo=CEST), "In Progress", IN_PROGRESS,
                     DC_BOB),)
    assert engagement.changes == (  # "Account manager" is matched through `names`
        Change("account_manager", datetime(2026, 10, 1, 9, 10, tzinfo=CEST), None,
               "Anna Account", DC_ANNA),
        Change("status", datetime(2026, 10, 12, 9, 0, tzinfo=CEST), "Open", "In Progress",
               DC_BOB),
        Change("due", datetime(2026, 11, 12, 10, 0, tzinfo=CET), None, "2026-12-01", DC_ANNA),
    )
    assert dict(engagement.fields) == {}


# -- the rules of the mapping, one by one ------------------------------------------------

STAFF_ONLY = {"type": "role", "value": "Developers"}
JSM_NOTE = [{"key": "sd.public.comment", "value": {"internal": True}}]


@pytest.mark.parametrize(("project_type", "extra", "visibility"), [
    ("software", {}, Visibility.PUBLIC),
    ("software", {"visibility": STAFF_ONLY}, Visibility.INTERNAL),
    ("service_desk", {"jsdPublic": True}, Visibility.PUBLIC),
    ("service_desk", {"jsdPublic": False}, Visibility.INTERNAL),
    ("service_desk", {"properties": JSM_NOTE}, Visibility.INTERNAL),
    ("service_desk", {"visibility": STAFF_ONLY, "jsdPublic": True}, Visibility.PUBLIC),
    ("service_desk", {"jsdPublic": True, "properties": JSM_NOTE}, Visibility.PUBLIC),
])
def test_comment_visibility(project_type: str, extra: dict, visibility: Visibility) -> None:
    issue = cloud_issue()
    issue["fields"]["project"]["projectTypeKey"] = project_type
    comment = {"id": "1", "author": {"accountId": "a-1"}, "created": "2026-11-02T09:00:00.000+0000",
               "body": "Done.", **extra}
    engagement = build_engagement(CLOUD_REF, issue, [comment], [], [], STATUSES, CLOUD)
    assert engagement.comments[0].visibility is visibility


SIDES = JiraSettingsSchema().load({
    "agency_domains": ["agency.example"], "client_domains": ["acme.example"],
    "agency_accounts": ["5b10a2844c20165700ede21g", "anna.account"]})


@pytest.mark.parametrize(("user", "side"), [
    ({"accountId": "x-1", "accountType": "customer"}, Side.CLIENT),
    ({"accountId": "x-2", "accountType": "customer", "emailAddress": "a@agency.example"},
     Side.CLIENT),  # a JSM customer is never agency staff
    ({"accountId": "x-3", "emailAddress": "Carla@ACME.example"}, Side.CLIENT),
    ({"accountId": "x-4", "emailAddress": "carla@eu.acme.example"}, Side.CLIENT),
    ({"accountId": "x-5", "emailAddress": "anna@agency.example"}, Side.AGENCY),
    ({"accountId": "5b10a2844c20165700ede21g"}, Side.AGENCY),
    ({"accountId": "5b10a2844c20165700ede21g", "emailAddress": "pat@acme.example"},
     Side.AGENCY),  # a listed account beats the domain
    ({"name": "anna.account", "key": "JIRAUSER10100"}, Side.AGENCY),
    ({"accountId": "x-6", "emailAddress": "someone@notacme.example"}, Side.UNKNOWN),
    ({"accountId": "x-7", "accountType": "app"}, Side.UNKNOWN),
])
def test_people_sides(user: dict, side: Side) -> None:
    issue = cloud_issue()
    issue["fields"]["assignee"] = {**user, "displayName": "Somebody"}
    assignee = engagement_of(issue, SIDES).roles.assignee
    assert assignee is not None and assignee.side is side


def option(value: str) -> dict:
    return {"self": f"{SITE}/rest/api/3/customFieldOption/10300", "value": value, "id": "10300"}


@pytest.mark.parametrize(("kind", "value", "expected"), [
    ("text", "Bank transfer", "Bank transfer"),
    ("text", option("Cash"), "Cash"),
    ("text", {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "Margin 30 %"}]}]},
     "Margin 30 %"),
    ("text", "", ""),
    ("text", None, None),
    ("flag", [option("Confirmed")], True),
    ("flag", option("Yes"), True),
    ("flag", option("Да"), True),
    ("flag", option("No"), False),
    ("flag", "true", True),
    ("flag", [], False),
    ("flag", None, None),
    ("number", 40, 40.0),
    ("number", "12,5", 12.5),
    ("number", "about forty", None),
    ("number", None, None),
    ("date", "2027-03-31", date(2027, 3, 31)),
    ("date", "2019-08-29T12:40:00.000-0700", date(2019, 8, 29)),
    ("date", None, None),
    ("date", "2027-02-29", None),  # text shaped like a date that is none
    ("list", [option("SEO"), option("Content")], ("SEO", "Content")),
    ("list", ["seo", "ppc"], ("seo", "ppc")),  # a labels field
    ("list", option("SEO"), ("SEO",)),
    ("list", "seo, content", ("seo", "content")),
    ("list", [], ()),
    ("list", None, None),
])
def test_field_values_by_kind(kind: str, value: Any, expected: Any) -> None:
    assert CONVERTERS[kind](value) == expected


def test_adf_text() -> None:
    document = {"type": "doc", "version": 1, "content": [
        {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Plan"}]},
        {"type": "bulletList", "content": [
            {"type": "listItem", "content": [{"type": "paragraph", "content": [
                {"type": "text", "text": "Launch on "},
                {"type": "date", "attrs": {"timestamp": "1796083200000"}}]}]},
            {"type": "listItem", "content": [{"type": "paragraph", "content": [
                {"type": "emoji", "attrs": {"shortName": ":tada:", "text": "🎉"}},
                {"type": "text", "text": " party"}]}]}]},
        {"type": "blockquote", "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "Quoted line"}]}]},
        {"type": "mediaSingle", "content": [{"type": "media", "attrs": {"id": "abc"}}]},
        {"type": "paragraph", "content": [{"type": "status", "attrs": {"text": "BLOCKED"}}]},
    ]}
    assert adf_text(document) == "Plan\nLaunch on 2026-12-01\n🎉 party\n> Quoted line\nBLOCKED"


@pytest.mark.parametrize("timestamp", ["99999999999999999999", "-99999999999999", "soon", None])
def test_an_adf_date_no_calendar_has_reads_as_nothing(timestamp: Any) -> None:
    document = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
        {"type": "text", "text": "Due "}, {"type": "date", "attrs": {"timestamp": timestamp}}]}]}
    assert adf_text(document) == "Due"


@pytest.mark.parametrize(("markup", "text"), [
    ("h2. Status\n*Done*, _mostly_.", "Status\nDone, mostly."),
    ("Ask [~jsmith] or [~accountid:5b10a2844c20165700ede21g]", "Ask @jsmith or "
     "@5b10a2844c20165700ede21g"),
    ("See [the spec|https://x.example/spec] and [https://x.example]",
     "See the spec and https://x.example"),
    ("{color:red}late{color} {code:java}x = 1{code} {{mono}} ??cite??", "late x = 1 mono cite"),
    ("snake_case_name and 2 * 3 * 4 stay", "snake_case_name and 2 * 3 * 4 stay"),
    ("* one\n* *two*", "* one\n* two"),
])
def test_wiki_text(markup: str, text: str) -> None:
    assert wiki_text(markup) == text


# -- the calls one snapshot costs ----------------------------------------------------------

@pytest.fixture
def cloud() -> JiraClient:
    return JiraClient(SITE, ("guard-bot@agency.example", "api-token"), sleep=lambda _: None)


@pytest.fixture
def dc() -> JiraClient:
    return JiraClient(DC_SITE, "personal-access-token", flavour="datacenter",
                      sleep=lambda _: None)


def stub_issue(jira: responses.RequestsMock, url: str, fields: str, issue: dict) -> None:
    jira.get(url, json=issue, match=[matchers.query_param_matcher(
        {"fields": fields, "expand": "changelog,names"})])


def fetch_snapshot(client: JiraClient, settings: JiraSettings, ref: EngagementRef,
                   statuses: dict[str, StatusCategory | None]) -> Engagement:
    """The engagement as the connector reads it, with `statuses` as its status cache (the
    same dict: a test sees what the connector learns)."""
    connector = JiraConnector(settings, client)
    connector._statuses = statuses
    return connector.fetch_snapshot(ref, None).engagement


def page(start: int, **extra: str) -> list:
    return [matchers.query_param_matcher({"startAt": str(start), "maxResults": "100", **extra})]


ISSUE_URL = f"{SITE}/rest/api/3/issue/10042"
DC_ISSUE_URL = f"{DC_SITE}/rest/api/2/issue/10231"


def test_a_small_cloud_issue_costs_one_call(jira, cloud) -> None:
    stub_issue(jira, ISSUE_URL, CLOUD_FIELDS, cloud_issue())
    engagement = fetch_snapshot(cloud, CLOUD, CLOUD_REF, dict(STATUSES))
    assert len(jira.calls) == 1
    assert engagement == engagement_of(cloud_issue())


def test_a_small_datacenter_issue_costs_one_call(jira, dc) -> None:
    stub_issue(jira, DC_ISSUE_URL, DC_FIELDS, dc_issue())
    engagement = fetch_snapshot(dc, DATACENTER, DC_REF, dict(DC_STATUSES))
    assert len(jira.calls) == 1
    assert engagement == engagement_of(dc_issue(), DATACENTER, DC_STATUSES)


def test_comments_beyond_the_embedded_page_are_paged(jira, cloud) -> None:
    issue = cloud_issue()
    template = issue["fields"]["comment"]["comments"][4]  # Kim's
    comments = [{**template, "id": str(30000 + n)} for n in range(103)]
    issue["fields"]["comment"] = {"comments": comments[:100], "maxResults": 100, "total": 103,
                                  "startAt": 0}
    stub_issue(jira, ISSUE_URL, CLOUD_FIELDS, issue)
    for start in (0, 100):
        jira.get(f"{ISSUE_URL}/comment", match=page(start, orderBy="created",
                                                    expand="properties"),
                 json={"startAt": start, "maxResults": 100, "total": 103,
                       "comments": comments[start:start + 100]})
    engagement = fetch_snapshot(cloud, CLOUD, CLOUD_REF, dict(STATUSES))
    assert len(jira.calls) == 3
    assert [comment.id for comment in engagement.comments][-3:] == ["30100", "30101", "30102"]
    assert len(engagement.comments) == 103


def test_truncated_worklogs_and_changelog_are_paged(jira, cloud) -> None:
    issue = cloud_issue()
    worklog = issue["fields"]["worklog"]["worklogs"][1]
    worklogs = [{**worklog, "id": str(40000 + n)} for n in range(21)]
    issue["fields"]["worklog"] = {"startAt": 0, "maxResults": 20, "total": 21,
                                  "worklogs": worklogs[:20]}
    labels = issue["changelog"]["histories"][0]
    histories = [{**labels, "id": str(50000 + n), "items": labels["items"][1:]}
                 for n in range(101)]
    issue["changelog"] = {"startAt": 0, "maxResults": 100, "total": 101,
                          "histories": histories[:100]}
    stub_issue(jira, ISSUE_URL, CLOUD_FIELDS, issue)
    jira.get(f"{ISSUE_URL}/worklog", match=page(0),
             json={"startAt": 0, "maxResults": 100, "total": 21, "worklogs": worklogs})
    for start, last in ((0, False), (100, True)):
        jira.get(f"{ISSUE_URL}/changelog", match=page(start),
                 json={"startAt": start, "maxResults": 100, "total": 101, "isLast": last,
                       "values": histories[start:start + 100]})
    engagement = fetch_snapshot(cloud, CLOUD, CLOUD_REF, dict(STATUSES))
    assert len(jira.calls) == 4
    assert len(engagement.time_entries) == 21
    assert len(engagement.changes) == 101


@pytest.mark.parametrize(("part", "extra"), [
    ("comment", {"orderBy": "created", "expand": "properties"}),
    ("worklog", {}),  # Atlassian's spec: also where time tracking is disabled
])
def test_a_part_not_found_is_a_failure_not_a_deleted_issue(jira, cloud, part, extra) -> None:
    issue = cloud_issue()
    issue["fields"][part]["total"] = 101  # more than embedded: paged
    stub_issue(jira, ISSUE_URL, CLOUD_FIELDS, issue)
    jira.get(f"{ISSUE_URL}/{part}", match=page(0, **extra), status=404,
             json={"errorMessages": ["Issue does not exist."], "errors": {}})
    with pytest.raises(PlatformError) as raised:
        fetch_snapshot(cloud, CLOUD, CLOUD_REF, dict(STATUSES))
    assert not isinstance(raised.value, NotFound)  # `process` would close the engagement
    assert raised.value.status == 404


def test_a_datacenter_service_desk_reads_internal_notes_from_comment_properties(jira,
                                                                                 dc) -> None:
    # DC comments carry no `jsdPublic`; a JSM internal note shows only in its properties.
    issue = dc_issue()
    issue["fields"]["project"]["projectTypeKey"] = "service_desk"
    comments = copy.deepcopy(issue["fields"]["comment"]["comments"])
    for comment in comments:
        comment.pop("visibility", None)
        comment["properties"] = []
    comments[1]["properties"] = [{"key": "sd.public.comment", "value": {"internal": True}}]
    stub_issue(jira, DC_ISSUE_URL, DC_FIELDS, issue)
    jira.get(f"{DC_ISSUE_URL}/comment", match=page(0, orderBy="created", expand="properties"),
             json={"startAt": 0, "maxResults": 100, "total": 3, "comments": comments})
    engagement = fetch_snapshot(dc, DATACENTER, DC_REF, dict(DC_STATUSES))
    assert len(jira.calls) == 2
    assert [(c.id, c.visibility) for c in engagement.comments] == [
        ("10301", Visibility.PUBLIC), ("10302", Visibility.INTERNAL),
        ("10303", Visibility.PUBLIC)]


def test_fetch_statuses_maps_each_status_to_its_category(jira, cloud) -> None:
    jira.get(f"{SITE}/rest/api/3/status", json=fixture("status__cloud.json"))
    assert fetch_statuses(cloud) == {"10000": TODO, "3": IN_PROGRESS, "10003": IN_PROGRESS,
                                     "10001": DONE, "10002": TODO}  # 10002: no category


def test_a_status_missing_from_the_cache_refreshes_it_once(jira, cloud) -> None:
    stub_issue(jira, ISSUE_URL, CLOUD_FIELDS, cloud_issue())
    jira.get(f"{SITE}/rest/api/3/status", json=fixture("status__cloud.json"))
    statuses = {"10000": TODO, "3": IN_PROGRESS}  # cached before "Waiting for customer"
    engagement = fetch_snapshot(cloud, CLOUD, CLOUD_REF, statuses)
    assert len(jira.calls) == 2
    assert statuses["10003"] is IN_PROGRESS  # the caller's cache learnt it
    assert engagement == engagement_of(cloud_issue())


def test_a_status_deleted_since_is_asked_about_once_not_at_every_evaluation(
        jira, cloud) -> None:
    """`GET /status` lists the statuses of active workflows: one deleted since, still named
    by old changelog entries, is not there however often it is read again."""
    stub_issue(jira, ISSUE_URL, CLOUD_FIELDS, cloud_issue())
    jira.get(f"{SITE}/rest/api/3/status", json=[
        status for status in fixture("status__cloud.json") if status["id"] != "10003"])
    statuses: dict[str, StatusCategory | None] = {}
    first = fetch_snapshot(cloud, CLOUD, CLOUD_REF, statuses)
    second = fetch_snapshot(cloud, CLOUD, CLOUD_REF, statuses)
    assert [call.request.url.split("?")[0].rsplit("/", 1)[1] for call in jira.calls] == [
        "10042", "status", "10042"]
    assert statuses["10003"] is None
    assert first == second
    assert "Waiting for customer" not in [move.status for move in first.status_history]


# -- end to end: the mapping feeds the rules ---------------------------------------------

def test_the_snapshot_feeds_the_rules() -> None:
    report = evaluate(engagement_of(cloud_issue()), build_config({}), NOW)
    statuses = {result.rule.id: result.status
                for result in (*report.findings, *report.passed, *report.not_configured)}
    assert report.faulty == ()
    assert {rule: statuses[rule] for rule in (
        "single-point-of-contact", "pm-briefed", "decision-maker", "client-answered",
        "goals-defined", "overdue-invoices", "analytics-in-place")} == {
        "single-point-of-contact": Status.PASS,  # Anna, and only Anna
        "pm-briefed": Status.PASS,  # Anna's brief.docx, then Peter's note, then In Progress
        "decision-maker": Status.PASS,  # Carla
        "client-answered": Status.FAIL,  # Kim's question of 16 November is unanswered
        "goals-defined": Status.FAIL,  # client input data is mapped but empty
        "overdue-invoices": Status.NOT_CONFIGURED,  # Jira has no invoices
        "analytics-in-place": Status.NOT_CONFIGURED,  # goal_type is not mapped
    }


def test_without_the_brief_pm_briefed_fails() -> None:
    issue = cloud_issue()
    issue["fields"]["attachment"] = [attachment for attachment in issue["fields"]["attachment"]
                                     if attachment["filename"] != "brief.docx"]
    report = evaluate(engagement_of(issue), build_config({}), NOW)
    [result] = [result for result in report.findings if result.rule.id == "pm-briefed"]
    assert [reason.message.code for reason in result.outcome.reasons] == ["no_brief"]


# -- agency groups --------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stub_group(jira: responses.RequestsMock, *account_ids: str) -> None:
    jira.get(f"{SITE}/rest/api/3/group/member", json={
        "startAt": 0, "maxResults": 100, "total": len(account_ids), "isLast": True,
        "values": [{"accountId": account_id, "displayName": "…", "active": True}
                   for account_id in account_ids]},
        match=page(0, groupname="agency-staff", includeInactiveUsers="true"))


def test_members_of_an_agency_group_are_agency_and_the_group_is_read_every_15_minutes(
        jira, cloud) -> None:
    """Peter hides his e-mail and is not listed in agency_accounts: only the group tells."""
    settings = replace(CLOUD, agency_accounts=(), agency_groups=("agency-staff",))
    clock = Clock()
    connector = JiraConnector(settings, cloud, clock=clock)
    jira.get(f"{SITE}/rest/api/3/status", json=[
        {"id": status_id, "statusCategory": {"key": key}} for status_id, key in (
            ("10000", "new"), ("3", "indeterminate"), ("10003", "indeterminate"),
            ("10001", "done"))])
    stub_issue(jira, ISSUE_URL, CLOUD_FIELDS, cloud_issue())
    stub_group(jira, PETER.id)
    first = connector.fetch_snapshot(CLOUD_REF, None).engagement
    assert first.roles.project_managers == (PETER,)
    assert first == engagement_of(cloud_issue())  # as when Peter is listed by account
    clock.now += GROUP_MEMBERS_SECONDS - 1
    connector.fetch_snapshot(CLOUD_REF, None)
    assert [call.request.url.split("?")[0] for call in jira.calls].count(
        f"{SITE}/rest/api/3/group/member") == 1
    clock.now += 2
    jira.replace(responses.GET, f"{SITE}/rest/api/3/group/member", json={
        "startAt": 0, "maxResults": 100, "total": 0, "isLast": True, "values": []})
    later = connector.fetch_snapshot(CLOUD_REF, None).engagement
    assert later.roles.project_managers == (replace(PETER, side=Side.UNKNOWN),)


@pytest.mark.parametrize(("status", "message"), [
    (404, "Specified group does not exist."),
    (403, "You do not have permission to browse users and groups."),
], ids=["no such group", "not permitted"])
def test_an_agency_group_jira_will_not_list_leaves_people_to_their_e_mail_domain(
        jira, cloud, caplog: pytest.LogCaptureFixture, status: int, message: str) -> None:
    """A setting to fix, not a deleted ticket (a 404 would close the engagement) nor a reason
    to hold every evaluation back: the snapshot is taken, and the log says why."""
    settings = replace(CLOUD, agency_accounts=(), agency_groups=("agency-staff",))
    connector = JiraConnector(settings, cloud)
    jira.get(f"{SITE}/rest/api/3/status", json=[
        {"id": status_id, "statusCategory": {"key": "indeterminate"}}
        for status_id in STATUSES])
    stub_issue(jira, ISSUE_URL, CLOUD_FIELDS, cloud_issue())
    jira.get(f"{SITE}/rest/api/3/group/member", status=status,
             json={"errorMessages": [message], "errors": {}})
    engagement = connector.fetch_snapshot(CLOUD_REF, None).engagement
    assert engagement.roles.project_managers == (replace(PETER, side=Side.UNKNOWN),)
    assert "cannot read the members of agency group 'agency-staff'" in caplog.text


def test_the_sticky_found_by_its_stored_id_is_never_read_as_a_comment(jira, cloud) -> None:
    """`service_account` naming another account than the one writing (a setting doctor
    flags): the sticky, found by its stored id, must still not count as an agency reply."""
    settings = replace(CLOUD, service_account="5f8a1c2b3d4e5f6a7b8c9d77")
    stub_issue(jira, ISSUE_URL, CLOUD_FIELDS, cloud_issue())
    connector = JiraConnector(settings, cloud)
    connector._statuses = dict(STATUSES)
    snapshot = connector.fetch_snapshot(CLOUD_REF, "10206")
    assert snapshot.sticky_id == "10206"
    assert snapshot.engagement.comments == engagement_of(cloud_issue()).comments
