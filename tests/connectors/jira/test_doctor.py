"""`clientguard doctor jira` against stubbed Jira answers: every problem is a check with a
fix, never an exception.

Every test runs inside `jira`, a `responses.RequestsMock` that fails on an unused stub; at the
end every request sent to a Cloud platform path is checked against Atlassian's OpenAPI spec
(`tests/connectors/jira/openapi.py`). Outside that spec, so checked by the `responses`
matchers only: the Data Center routes (`/rest/api/2/mypermissions`, `/myself`, `/field`:
Atlassian publishes no DC spec). The field list is composed from the spec's `getFields`
example shape with Jira's real custom field type keys.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import responses
from responses import matchers

from connectors.doctor import (
    RULE_CAVEATS,
    RULE_NEEDS,
    RULE_USES,
    Check,
    Diagnosis,
    Level,
    render_fields,
)
from connectors.jira.doctor import KINDS, diagnose, fields_table, render_diagnosis
from connectors.mapping import MAPPABLE
from plugin.core.comment import STICKY_MARKER
from plugin.core.i18n import UI
from plugin.core.model import DocumentKind, Engagement
from plugin.core.rule import Status
from plugin.manifest import load_manifest
from plugin.rules import CATALOGUE, RULES_BY_ID
from plugin.rules.docs import rules_markdown
from tests.builders import CLIENT_BOSS, NOW, ago, document, engagement, time_entry
from tests.connectors.jira.sites import connector_for

SITE = "https://acme.atlassian.net"
DC_SITE = "https://jira.acme.example/jira"
ACCOUNT_ID = "5b10a2844c20165700ede21g"
PERMISSIONS = load_manifest()["platforms"]["jira"]["permissions"]
CUSTOM = "com.atlassian.jira.plugin.system.customfieldtypes:"


def custom(number: int, name: str, kind: str, custom_type: str,
           items: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind, "custom": CUSTOM + custom_type, "customId": number}
    if items:
        schema["items"] = items
    return {"id": f"customfield_{number}", "key": f"customfield_{number}", "name": name,
            "custom": True, "orderable": True, "navigable": True, "searchable": True,
            "clauseNames": [f"cf[{number}]", name], "schema": schema}


SYSTEM_FIELDS = [
    {"id": "summary", "key": "summary", "name": "Summary", "custom": False, "orderable": True,
     "navigable": True, "searchable": True, "clauseNames": ["summary"],
     "schema": {"type": "string", "system": "summary"}},
    {"id": "assignee", "key": "assignee", "name": "Assignee", "custom": False,
     "orderable": True, "navigable": True, "searchable": True, "clauseNames": ["assignee"],
     "schema": {"type": "user", "system": "assignee"}},
    {"id": "issuekey", "key": "issuekey", "name": "Key", "custom": False, "orderable": False,
     "navigable": True, "searchable": False, "clauseNames": ["id", "issue", "issuekey", "key"]},
]
BY_NAME = {
    "account_manager": custom(10100, "Account manager", "user", "userpicker"),
    "project_manager": custom(10101, "Project manager", "user", "userpicker"),
    "decision_maker": custom(10102, "Decision makers", "array", "multiuserpicker", "user"),
    "client": custom(10103, "Client", "option", "select"),
    "brief": custom(10104, "Brief", "string", "textarea"),
    "brief_acknowledged": custom(10105, "Brief read by PM", "array", "multicheckboxes",
                                 "option"),
    "estimate_approved": custom(10106, "Estimate approved", "option", "radiobuttons"),
    "contract_template": custom(10107, "Contract template", "string", "textfield"),
    "contract_reviewed": custom(10108, "Contract reviewed", "option", "select"),
    "prepayment_required": custom(10109, "Prepayment required", "option", "select"),
    "prepayment_received": custom(10110, "Prepayment received", "array", "multicheckboxes",
                                  "option"),
    "prepayment_received_on": custom(10111, "Prepayment received on", "date", "datepicker"),
    "budget_hours": custom(10112, "Budget, hours", "number", "float"),
    "manager_hours_budget": custom(10113, "Manager hours", "number", "float"),
    "goals": custom(10114, "Goals / KPIs", "string", "textarea"),
    "input_data": custom(10115, "Input data", "string", "textarea"),
    "goal_type": custom(10116, "Goal type", "option", "select"),
    "analytics_confirmed": custom(10117, "Analytics confirmed", "array", "multicheckboxes",
                                  "option"),
    "call_tracking_confirmed": custom(10118, "Call tracking confirmed", "array",
                                      "multicheckboxes", "option"),
    "channels": custom(10119, "Channels", "array", "multiselect", "option"),
    "results_expected_on": custom(10120, "Results expected", "date", "datepicker"),
    "sale_date": custom(10121, "Sold on", "datetime", "datetime"),
    "discount_requests": custom(10122, "Discount requests", "number", "float"),
    "payment_method": custom(10123, "Payment method", "option", "select"),
}
EXTRA = [custom(10200, "Notes", "string", "textfield"),
         custom(10201, "Tags", "array", "labels", "string")]
FIELDS = [*SYSTEM_FIELDS, *BY_NAME.values(), *EXTRA]
FULL_MAPPING = {name: field["id"] for name, field in BY_NAME.items()}

ME = {"self": f"{SITE}/rest/api/3/user?accountId={ACCOUNT_ID}", "accountId": ACCOUNT_ID,
      "accountType": "atlassian", "emailAddress": "guard-bot@agency.example",
      "displayName": "ClientGuard Bot", "active": True, "timeZone": "Europe/Copenhagen",
      "key": "", "name": "",
      "groups": {"size": 2, "items": [
          {"name": "jira-software-users", "groupId": "0b6b7a3c-0000-4b2b-9d3e-5c0a1e2f3a4b"},
          {"name": "agency-staff", "groupId": "6e1d2f3a-0000-4c5d-8e9f-0a1b2c3d4e5f"}]}}
ALL_GRANTED = {"permissions": {
    name: {"id": str(index), "key": name, "name": name.replace("_", " ").title(),
           "type": "PROJECT", "description": "…", "havePermission": True}
    for index, name in enumerate(PERMISSIONS, start=10)}}

GOOD = {"base_url": SITE, "email": "guard-bot@agency.example", "api_token": "witness-token",
        "service_account": ACCOUNT_ID, "webhook_secret": "witness-secret",
        "internal_visibility": {"type": "role", "value": "Agency Staff"},
        "fields": FULL_MAPPING}


def stub_site(jira: responses.RequestsMock, *, me: dict | None = None,
              granted: dict | None = None, fields: list | None = None,
              site: str = SITE, api: str = "/rest/api/3") -> None:
    jira.get(f"{site}{api}/myself", json=me or ME,
             match=[matchers.query_param_matcher({"expand": "groups"})])
    jira.get(f"{site}{api}/mypermissions", json=granted or ALL_GRANTED,
             match=[matchers.query_param_matcher({"permissions": ",".join(PERMISSIONS)})])
    jira.get(f"{site}{api}/field", json=FIELDS if fields is None else fields)


def check(diagnosis: Diagnosis, name: str) -> Check:
    return next(check for check in diagnosis.checks if check.name == name)


def levels(diagnosis: Diagnosis) -> dict[str, Level]:
    return {check.name: check.level for check in diagnosis.checks}


# -- a site set up right ----------------------------------------------------------------

def test_an_instance_set_up_right_passes_every_check(jira):
    stub_site(jira)
    diagnosis = diagnose(connector_for(GOOD))
    assert diagnosis.ok and diagnosis.level is Level.OK, render_diagnosis(diagnosis)
    assert check(diagnosis, "credentials").message == (
        f"signed in as ClientGuard Bot ({ACCOUNT_ID})")
    assert check(diagnosis, "permissions").message == (
        f"{', '.join(PERMISSIONS)} granted in at least one project")
    assert check(diagnosis, "field budget_hours").message == (
        "customfield_10112 (“Budget, hours”) is number (float)")
    assert {f"field {name}" for name in MAPPABLE} <= levels(diagnosis).keys()
    assert not [name for name in levels(diagnosis) if name.startswith("unmapped")]


def test_the_checks_come_in_a_stable_order(jira):
    stub_site(jira)
    names = [check.name for check in diagnose(connector_for(GOOD)).checks]
    assert names[:3] == ["credentials", "service account", "permissions"]
    assert names[-2:] == ["internal visibility", "webhook secret"]


def test_permissions_in_one_project(jira):
    jira.get(f"{SITE}/rest/api/3/myself", json=ME)
    jira.get(f"{SITE}/rest/api/3/mypermissions", json=ALL_GRANTED, match=[
        matchers.query_param_matcher({"permissions": ",".join(PERMISSIONS),
                                      "projectKey": "ACME"})])
    jira.get(f"{SITE}/rest/api/3/field", json=FIELDS)
    diagnosis = diagnose(connector_for(GOOD), project="ACME")
    assert check(diagnosis, "permissions").message.endswith("granted in project ACME")


def test_a_missing_permission_fails_naming_it(jira):
    granted = {"permissions": {**ALL_GRANTED["permissions"],
                               "EDIT_OWN_COMMENTS": {"key": "EDIT_OWN_COMMENTS",
                                                     "havePermission": False}}}
    del granted["permissions"]["DELETE_OWN_COMMENTS"]  # not in the answer: not granted
    stub_site(jira, granted=granted)
    result = check(diagnose(connector_for(GOOD)), "permissions")
    assert result.level is Level.FAIL
    assert result.message == ("the account lacks EDIT_OWN_COMMENTS, DELETE_OWN_COMMENTS "
                              "in at least one project")
    assert "permission scheme" in result.fix


# -- the field mapping ------------------------------------------------------------------

def test_a_mapped_field_id_the_site_lacks_fails(jira):
    stub_site(jira)
    diagnosis = diagnose(connector_for({**GOOD, "fields": {**FULL_MAPPING,
                                                       "budget_hours": "customfield_99999"}}))
    result = check(diagnosis, "field budget_hours")
    assert result.level is Level.FAIL and not diagnosis.ok
    assert result.message == ("customfield_99999 is not a field of this site (or the account "
                              "cannot see it)")
    assert "a number field" in result.fix


@pytest.mark.parametrize(("name", "field", "level", "said"), [
    pytest.param("budget_hours", BY_NAME["account_manager"], Level.FAIL,
                 "customfield_10100 (“Account manager”) is user (userpicker); ClientGuard "
                 "cannot read a number from it", id="number-from-a-user-picker"),
    pytest.param("account_manager", EXTRA[0], Level.FAIL,
                 "customfield_10200 (“Notes”) is string (textfield); ClientGuard cannot read "
                 "a person from it", id="person-from-text"),
    pytest.param("channels", BY_NAME["account_manager"], Level.FAIL,
                 "cannot read a list", id="list-from-a-user-picker"),
    pytest.param("results_expected_on", EXTRA[0], Level.WARN,
                 "customfield_10200 (“Notes”) is string (textfield); ClientGuard reads it, "
                 "but a value it cannot read counts as empty", id="date-from-text"),
    pytest.param("analytics_confirmed", BY_NAME["budget_hours"], Level.WARN,
                 "reads it", id="flag-from-a-number"),
    pytest.param("channels", EXTRA[1], Level.OK, "is array<string> (labels)", id="labels-list"),
    pytest.param("goals", BY_NAME["channels"], Level.WARN, "reads it", id="text-from-a-list"),
    pytest.param("sale_date", BY_NAME["sale_date"], Level.OK, "is datetime (datetime)",
                 id="date-time"),
])
def test_each_mapped_field_type_is_judged_by_its_meaning(jira, name, field, level, said):
    stub_site(jira)
    result = check(diagnose(connector_for({**GOOD, "fields": {**FULL_MAPPING,
                                                          name: field["id"]}})),
                   f"field {name}")
    assert result.level is level
    assert said in result.message


def test_every_semantic_name_has_a_kind_and_the_fixture_suits_it():
    assert set(KINDS) == set(MAPPABLE)
    assert set(BY_NAME) == set(MAPPABLE)


def test_unmapped_fields_name_the_rules_that_report_not_configured(jira):
    stub_site(jira)
    mapping = {name: FULL_MAPPING[name] for name in ("prepayment_received", "goal_type")}
    diagnosis = diagnose(connector_for({**GOOD, "fields": mapping}))
    budget = check(diagnosis, "unmapped budget_hours")
    assert budget.level is Level.WARN
    assert budget.message == ("not mapped: service-cost, meeting-load report “not configured”")
    assert budget.fix == ('Map it if the agency keeps it: [jira.fields] budget_hours = '
                          '"customfield_…", a number field.')
    assert check(diagnosis, "unmapped analytics_confirmed").message == (
        "not mapped: analytics-in-place (when the goal type is a sales goal) reports "
        "“not configured”")
    assert check(diagnosis, "unmapped estimate_approved").level is Level.OK
    assert check(diagnosis, "unmapped estimate_approved").message == (
        "not mapped (optional): transparent-estimate checks without it")
    # an alternative is mapped: the rule is configured
    received_on = check(diagnosis, "unmapped prepayment_received_on")
    assert received_on.level is Level.OK
    assert received_on.message == "not mapped (optional): prepayment reads prepayment_received"
    assert check(diagnosis, "unmapped client").message == (
        "not mapped (optional): the client's name is the project name")
    assert check(diagnosis, "unmapped account_manager").level is Level.WARN
    assert diagnosis.ok  # warnings only


# -- the tables of who needs which field agree with the rules ---------------------------

NEEDY_FIELDS: dict[str, Any] = {
    "brief": "Relaunch brief", "brief_acknowledged": False, "estimate_approved": False,
    "contract_template": "tpl-2019", "contract_reviewed": False, "prepayment_required": True,
    "prepayment_received": False, "prepayment_received_on": None, "budget_hours": 100.0,
    "manager_hours_budget": 10.0, "goals": "More leads", "input_data": "Margin 30 %",
    "goal_type": "sales", "analytics_confirmed": False, "call_tracking_confirmed": False,
    "channels": ("seo",), "results_expected_on": date(2026, 12, 1),
    "sale_date": date(2026, 10, 1), "discount_requests": 0, "payment_method": "bank transfer",
}


def needy() -> Engagement:
    """Every field mapped, and facts that make each rule reach its configuration check:
    started, a contract attached before the start, work logged, a sales goal."""
    base = engagement(fields=NEEDY_FIELDS, invoices=(),
                      documents=(document(DocumentKind.CONTRACT, ago(45)),),
                      time_entries=(time_entry(5, ago(30)),))
    return replace(base, client=replace(base.client, decision_makers=(CLIENT_BOSS,)))


def unmapped(e: Engagement, names: tuple[str, ...]) -> Engagement:
    roles = e.roles
    if "account_manager" in names:
        roles = replace(roles, points_of_contact=None)
    if "project_manager" in names:
        roles = replace(roles, project_managers=None)
    client = (replace(e.client, decision_makers=None) if "decision_maker" in names
              else e.client)
    return replace(e, roles=roles, client=client,
                   fields={k: v for k, v in e.fields.items() if k not in names})


def status(rule_id: str, e: Engagement) -> Status:
    rule = RULES_BY_ID[rule_id]
    return rule(e, rule.settings.defaults(), NOW).status


@pytest.mark.parametrize("rule_id", RULE_NEEDS)
def test_rule_needs_is_what_the_rule_does(rule_id):
    assert status(rule_id, needy()) is not Status.NOT_CONFIGURED
    for group in RULE_NEEDS[rule_id]:
        assert status(rule_id, unmapped(needy(), group)) is Status.NOT_CONFIGURED, group
        for alternative in group if len(group) > 1 else ():
            assert status(rule_id, unmapped(needy(), (alternative,))) is not (
                Status.NOT_CONFIGURED), alternative


def test_no_other_rule_reports_not_configured_for_want_of_a_field():
    nothing = unmapped(needy(), tuple(MAPPABLE))
    for rule in CATALOGUE:
        if rule.id not in RULE_NEEDS:
            assert status(rule.id, nothing) is not Status.NOT_CONFIGURED, rule.id


def test_rule_uses_names_fields_the_rule_reads():
    for rule_id, names in RULE_USES.items():
        source = inspect.getsource(inspect.getmodule(RULES_BY_ID[rule_id].check))
        assert all(f'"{name}"' in source for name in names), rule_id
    named = {name for groups in RULE_NEEDS.values() for group in groups for name in group}
    named |= {name for names in RULE_USES.values() for name in names}
    assert set(MAPPABLE) - named == {"client"}  # the client name falls back to the project
    assert set(RULE_CAVEATS) <= set(RULE_NEEDS)


# -- credentials, settings --------------------------------------------------------------

def test_bad_credentials_are_a_failing_check_never_an_exception(jira):
    jira.get(f"{SITE}/rest/api/3/myself", status=401, json={
        "message": "Client must be authenticated to access this resource.",
        "status-code": 401})
    diagnosis = diagnose(connector_for(GOOD))
    credentials = check(diagnosis, "credentials")
    assert credentials.level is Level.FAIL and not diagnosis.ok
    assert "Client must be authenticated" in credentials.message
    assert "api_token" in credentials.fix
    assert "witness-token" not in render_diagnosis(diagnosis)
    for name in ("service account", "permissions", "field list",
                 *(f"field {field}" for field in FULL_MAPPING)):
        assert check(diagnosis, name).level is Level.WARN
        assert check(diagnosis, name).message.startswith("not checked")
    # what the settings alone tell is still said
    assert check(diagnosis, "internal visibility").level is Level.OK
    assert check(diagnosis, "webhook secret").level is Level.OK


def test_a_site_not_answering_as_jira_is_a_failing_connection_not_bad_credentials(jira):
    """A wrong base_url (a proxy's or another server's 404): the credentials were never
    tried, so the doctor does not send the person to renew them."""
    jira.get(f"{SITE}/rest/api/3/myself", status=404, body="<html>Not Found</html>",
             content_type="text/html")
    diagnosis = diagnose(connector_for({**GOOD, "agency_groups": ["agency-staff"]}))
    names = [found.name for found in diagnosis.checks]
    assert "credentials" not in names
    connection = check(diagnosis, "connection")
    assert connection.level is Level.FAIL and "base_url" in connection.fix
    assert check(diagnosis, "agency group agency-staff").message.startswith("not checked")


def test_missing_base_url_or_credentials_fail_without_a_request(jira):
    diagnosis = diagnose(connector_for({"flavour": "datacenter"}))
    credentials = check(diagnosis, "credentials")
    assert credentials.level is Level.FAIL
    assert "base_url" in credentials.message
    assert "personal_access_token" in credentials.fix
    assert check(diagnosis, "internal visibility").level is Level.FAIL
    assert check(diagnosis, "webhook secret").level is Level.WARN


def test_an_unreadable_field_list_is_a_failing_check(jira):
    jira.get(f"{SITE}/rest/api/3/myself", json=ME)
    jira.get(f"{SITE}/rest/api/3/mypermissions", json=ALL_GRANTED)
    jira.get(f"{SITE}/rest/api/3/field", status=403, json={
        "errorMessages": ["You do not have permission."], "errors": {}})
    diagnosis = diagnose(connector_for(GOOD))
    assert check(diagnosis, "field list").level is Level.FAIL
    assert diagnosis.fields == ()


def test_service_account_unset_says_what_to_set(jira):
    stub_site(jira)
    result = check(diagnose(connector_for({**GOOD, "service_account": None})), "service account")
    assert result.level is Level.WARN
    assert result.fix == (f'Set [jira] service_account = "{ACCOUNT_ID}" (the accountId of the '
                          "credentials' account).")


def test_service_account_of_someone_else_fails(jira):
    stub_site(jira)
    result = check(diagnose(connector_for({**GOOD, "service_account": "557058:other"})),
                   "service account")
    assert result.level is Level.FAIL
    assert "would not recognise its own comment" in result.message
    assert ACCOUNT_ID in result.fix


def test_no_internal_visibility_fails_nothing_can_be_written(jira):
    stub_site(jira)
    diagnosis = diagnose(connector_for({**GOOD, "internal_visibility": None}))
    result = check(diagnosis, "internal visibility")
    assert result.level is Level.FAIL and not diagnosis.ok
    assert result.message.startswith("not configured: ClientGuard writes nothing")


@pytest.mark.parametrize(("group", "level"), [("agency-staff", Level.OK),
                                              ("agency-leads", Level.FAIL)])
def test_a_visibility_group_must_include_the_account(jira, group, level):
    stub_site(jira)
    result = check(diagnose(connector_for({**GOOD, "internal_visibility": {
        "type": "group", "value": group}})), "internal visibility")
    assert result.level is level


def test_no_webhook_secret_warns(jira):
    stub_site(jira)
    diagnosis = diagnose(connector_for({**GOOD, "webhook_secret": None}))
    assert check(diagnosis, "webhook secret").level is Level.WARN
    assert diagnosis.ok


def test_data_center_uses_api_v2_and_the_username(jira):
    dc_me = {"self": f"{DC_SITE}/rest/api/2/user?username=clientguard", "key": "JIRAUSER10100",
             "name": "clientguard", "emailAddress": "guard-bot@agency.example",
             "displayName": "ClientGuard Bot", "active": True,
             "groups": {"size": 1, "items": [{"name": "jira-software-users"}]}}
    stub_site(jira, me=dc_me, site=DC_SITE, api="/rest/api/2")
    diagnosis = diagnose(connector_for({
        **GOOD, "base_url": DC_SITE, "flavour": "datacenter", "email": None, "api_token": None,
        "personal_access_token": "witness-pat", "service_account": "clientguard"}))
    assert diagnosis.ok, render_diagnosis(diagnosis)
    assert check(diagnosis, "credentials").message == "signed in as ClientGuard Bot (clientguard)"
    assert jira.calls[0].request.headers["Authorization"] == "Bearer witness-pat"


# -- the field list and the text -------------------------------------------------------

def test_fields_table_lists_every_field_custom_first_with_what_it_suits(jira):
    jira.get(f"{SITE}/rest/api/3/field", json=FIELDS)
    rows = fields_table(connector_for({**GOOD, "fields": {"budget_hours": "customfield_10112",
                                                      "manager_hours_budget":
                                                          "customfield_10112"}}))
    assert len(rows) == len(FIELDS)
    assert [row.custom for row in rows] == sorted((row.custom for row in rows), reverse=True)
    budget = next(row for row in rows if row.id == "customfield_10112")
    assert (budget.name, budget.type, budget.custom, budget.mapped_as, budget.suits) == (
        "Budget, hours", "number (float)", True, ("budget_hours", "manager_hours_budget"),
        ("number",))
    key = next(row for row in rows if row.id == "issuekey")
    assert (key.type, key.suits) == ("—", ())
    text = render_fields(rows)
    assert text.splitlines()[0].split() == ["id", "name", "type", "custom", "suits", "mapped",
                                            "as"]
    assert "customfield_10112" in text and "budget_hours, manager_hours_budget" in text


def test_the_diagnosis_carries_the_field_list(jira):
    stub_site(jira)
    assert len(diagnose(connector_for(GOOD)).fields) == len(FIELDS)


def test_render_diagnosis_shows_levels_fixes_and_a_summary(jira):
    stub_site(jira)
    text = render_diagnosis(diagnose(connector_for({**GOOD, "internal_visibility": None,
                                                "webhook_secret": None})))
    lines = text.splitlines()
    assert lines[0] == "Jira site 'jira':"
    assert "  ok    credentials: signed in as ClientGuard Bot (5b10a2844c20165700ede21g)" in lines
    assert any(line.startswith("  FAIL  internal visibility: not configured") for line in lines)
    assert any(line.startswith("  WARN  webhook secret: not set") for line in lines)
    assert any(line.startswith("          fix: Set [jira] internal_visibility") for line in lines)
    assert lines[-1].startswith("1 failing, 1 warnings, ")


# -- docs/jira.md stays with the code --------------------------------------------------

JIRA_MD = Path(__file__).resolve().parents[3] / "docs" / "jira.md"


def test_docs_jira_md_names_every_rule_meaning_event_and_permission():
    text = JIRA_MD.read_text(encoding="utf-8")
    anchors = set(re.findall(r"\]\(#([^)]+)\)", rules_markdown()))
    for rule in CATALOGUE:
        links = re.findall(rf"\(rules\.md#({re.escape(rule.id)}--[^)]+)\)", text)
        assert links and set(links) <= anchors, rule.id
    assert all(f"`{name}`" in text for name in MAPPABLE)
    assert all(f"`{event}`" in text for event in load_manifest()["platforms"]["jira"]["webhook"]
               ["events"])
    names = {"BROWSE_PROJECTS": "Browse projects", "ADD_COMMENTS": "Add comments",
             "EDIT_OWN_COMMENTS": "Edit own comments", "DELETE_OWN_COMMENTS": "Delete own comments"}
    assert set(names) == set(PERMISSIONS)
    assert all(f"*{name}*" in text for name in names.values())
    flowing = " ".join(text.split())
    assert f"{UI['sticky_footer'].en} {STICKY_MARKER}" in flowing
    assert "ClientGuard — " + UI["score"].en.format(score=68, band="amber") in flowing


GROUP_MEMBERS = f"{SITE}/rest/api/3/group/member"


@pytest.mark.parametrize(("answer", "level", "said"), [
    ({"json": {"startAt": 0, "maxResults": 100, "total": 1, "isLast": True,
               "values": [{"accountId": ACCOUNT_ID}]}}, Level.OK,
     "its members count as agency"),
    ({"json": {"startAt": 0, "maxResults": 100, "total": 0, "isLast": True, "values": []}},
     Level.WARN, "has no members"),
    ({"status": 403, "json": {"errorMessages": ["You do not have permission."]}},
     Level.FAIL, "cannot read its members"),
    ({"status": 404, "json": {"errorMessages": ["Specified group does not exist."]}},
     Level.FAIL, "no such group"),
], ids=["readable", "empty", "not permitted", "unknown"])
def test_each_agency_group_is_checked_readable(jira, answer, level, said):
    stub_site(jira)
    jira.get(GROUP_MEMBERS, match=[matchers.query_param_matcher(
        {"groupname": "agency-staff", "includeInactiveUsers": "true", "startAt": "0",
         "maxResults": "100"})], **answer)
    group = check(diagnose(connector_for({**GOOD, "agency_groups": ["agency-staff"]})),
                  "agency group agency-staff")
    assert (group.level, group.message.startswith(said)) == (level, True), group
