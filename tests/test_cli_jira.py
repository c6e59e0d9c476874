"""The Jira side of the command line: `check KEY` (live, with and without --dry-run),
`check --connector jira --input` (a saved issue, no HTTP) and `backfill`.

Jira is stood in for by `responses` serving the REST answers in
tests/connectors/jira/fixtures/rest/ (a JSM request on Cloud, a software issue on Data
Center); every stub must be used, and every request to a Cloud platform path is checked
against Atlassian's OpenAPI spec. A write is only possible where a test registers one: on a
dry run none is, so an attempted write would fail the test. The database is the service's
own (an SQLite file per test), so "unchanged" is decided exactly as the pipeline decides it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
import tomli_w
from click.testing import CliRunner, Result
from responses import matchers

from connectors.base import EngagementRef
from connectors.http import MAX_ATTEMPTS
from connectors.jira.jql import open_engagements_jql
from connectors.jira.settings import JiraSettingsSchema
from connectors.jira.snapshot import build_engagement
from plugin.cli import cli
from plugin.config import load_config
from plugin.core.engine import Report, evaluate
from plugin.core.model import StatusCategory
from plugin.core.render import report_document, report_text
from plugin.storage import open_database
from plugin.storage.repository import get_engagement
from tests.connectors.jira.openapi import assert_calls_match_spec
from tests.test_cli import EXAMPLES, NOW, assert_bad_input, configure
from tests.test_cli_bitrix24 import saved_deal

REST = Path(__file__).parent / "connectors" / "jira" / "fixtures" / "rest"
CLOUD, DC = "https://agency.atlassian.net", "https://jira.agency.example"
ROLE = {"type": "role", "value": "Developers"}
JSM_INTERNAL = [{"key": "sd.public.comment", "value": {"internal": True}}]
NOT_FOUND = {"errorMessages": ["Issue does not exist or you do not have permission to see it."],
             "errors": {}}

CLOUD_JIRA = {
    "site": "agency", "base_url": CLOUD, "email": "guard-bot@agency.example",
    "api_token": "witness-api-token", "service_account": "5f8a1c2b3d4e5f6a7b8c9dff",
    "agency_domains": ["agency.example"], "client_domains": ["acme.example"],
    "agency_accounts": ["5f8a1c2b3d4e5f6a7b8c9d02"], "engagement_jql": "project = ACME",
    "fields": {"account_manager": "customfield_10100", "project_manager": "customfield_10101",
               "decision_maker": "customfield_10102", "client": "customfield_10103",
               "goals": "customfield_10104"},
}
DC_JIRA = {
    "site": "agency-dc", "base_url": DC, "flavour": "datacenter",
    "personal_access_token": "witness-pat", "service_account": "clientguard",
    "internal_visibility": ROLE, "agency_domains": ["agency.example"],
    "client_domains": ["acme.example"],
    "fields": {"account_manager": "customfield_10100", "project_manager": "customfield_10101"},
}
IN_PROGRESS = StatusCategory.IN_PROGRESS
DC_STATUSES = [{"id": "1", "name": "Open", "statusCategory": {"key": "new"}},
               {"id": "3", "name": "In Progress", "statusCategory": {"key": "indeterminate"}},
               {"id": "6", "name": "Closed", "statusCategory": {"key": "done"}}]


@pytest.fixture(autouse=True)
def _no_outside_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("CLIENTGUARD_"):
            monkeypatch.delenv(name)


@pytest.fixture
def jira() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock
        assert_calls_match_spec(call.request for call in mock.calls)



def run(config: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", config, *args])


def rest(name: str) -> Any:
    return json.loads((REST / name).read_text(encoding="utf-8"))


def cloud_issue(key: str = "ACME-12", issue_id: str = "10042", *, sticky: bool = True
                ) -> dict[str, Any]:
    """The Cloud JSM request under another key and id; without `sticky`, our comment gone."""
    issue = rest("issue__cloud_service_desk.json")
    issue.update(key=key, id=issue_id)
    page = issue["fields"]["comment"]
    if not sticky:
        page["comments"] = [c for c in page["comments"] if c["id"] != "10206"]
        page["total"] = page["maxResults"] = len(page["comments"])
    return issue


def serve_issue(mock: responses.RequestsMock, site: str, issue: dict[str, Any], *,
                by_key: bool = False) -> None:
    """`GET issue` by id (the snapshot) and, `by_key`, the key's lookup (`check KEY`)."""
    api = "/rest/api/3" if site == CLOUD else "/rest/api/2"
    if by_key:
        mock.get(f"{site}{api}/issue/{issue['key']}",
                 match=[matchers.query_param_matcher({"fields": "id"})],
                 json={"id": issue["id"], "key": issue["key"]})
    mock.get(f"{site}{api}/issue/{issue['id']}", json=issue, match=[
        matchers.query_param_matcher({"expand": "changelog,names"}, strict_match=False)])


def serve_statuses(mock: responses.RequestsMock, site: str) -> None:
    if site == CLOUD:
        mock.get(f"{CLOUD}/rest/api/3/status", json=rest("status__cloud.json"))
    else:
        mock.get(f"{DC}/rest/api/2/status", json=DC_STATUSES)


def accept_internal_note_update(mock: responses.RequestsMock, key: str) -> None:
    """Jira Cloud taking an update of our JSM internal note 10206, and reading it back."""
    url = f"{CLOUD}/rest/api/3/issue/{key}/comment/10206"
    mock.put(url, json={"id": "10206"}, match=[
        matchers.query_param_matcher({"notifyUsers": "false"})])
    mock.get(url, match=[matchers.query_param_matcher({"expand": "properties"})],
             json={"id": "10206", "jsdPublic": False, "properties": JSM_INTERNAL})


def accept_internal_note(mock: responses.RequestsMock, key: str, comment_id: str) -> None:
    """Jira Cloud taking a new JSM internal note, and reading it back."""
    mock.post(f"{CLOUD}/rest/servicedeskapi/request/{key}/comment", status=201,
              json={"id": comment_id}, match=[matchers.json_params_matcher(
                  {"public": False}, strict_match=False)])
    mock.get(f"{CLOUD}/rest/api/3/issue/{key}/comment/{comment_id}",
             match=[matchers.query_param_matcher({"expand": "properties"})],
             json={"id": comment_id, "jsdPublic": False, "properties": JSM_INTERNAL})


def writes(mock: responses.RequestsMock) -> list[str]:
    return [f"{call.request.method} {call.request.url}" for call in mock.calls
            if call.request.method != "GET"]


def core_report(config_path: str, issue: dict[str, Any],
                statuses: dict[str, StatusCategory]) -> Report:
    """What the rule core says about the issue at NOW, mapped without the command line."""
    config = load_config(config_path)
    settings = config.connectors.get("jira") or JiraSettingsSchema().load({})
    fields = issue["fields"]
    engagement = build_engagement(
        EngagementRef("jira", settings.site, issue["id"]), issue,
        fields["comment"]["comments"], fields["worklog"]["worklogs"],
        issue["changelog"]["histories"], statuses, settings)
    return evaluate(engagement, config, datetime.fromisoformat(NOW))


def stored(config_path: str, site: str, issue_id: str) -> tuple[str | None, str | None] | None:
    """The sticky comment id and fingerprint the service's database remembers."""
    database = open_database(load_config(config_path).service.database_url)
    try:
        with database.session() as session:
            record = get_engagement(session, EngagementRef("jira", site, issue_id))
            return None if record is None else (record.sticky_comment_id, record.sticky_hash)
    finally:
        database.close()


# -- check KEY: live ----------------------------------------------------------------------

def test_live_check_prints_the_core_report_and_writes_the_sticky_comment(tmp_path, jira):
    config = configure(tmp_path, jira=DC_JIRA)
    issue = rest("issue__datacenter.json")
    serve_issue(jira, DC, issue, by_key=True)
    serve_statuses(jira, DC)
    jira.post(f"{DC}/rest/api/2/issue/PRJA-7/comment", status=201, json={"id": "90001"})
    jira.get(f"{DC}/rest/api/2/issue/PRJA-7/comment/90001", json={"id": "90001",
                                                                  "visibility": ROLE})
    result = run(config, "check", "prja-7", "--now", NOW)
    report = core_report(config, issue, {"1": StatusCategory.TODO, "3": IN_PROGRESS})
    assert result.exit_code == (1 if report.has_failures else 0), result.output
    assert result.stdout == (report_text(report, "en") + "\n"
                             "PRJA-7: created the sticky comment, restricted to role Developers\n")
    posted = json.loads(next(c.request.body for c in jira.calls if c.request.method == "POST"))
    assert posted["visibility"] == ROLE
    assert "clientguard:sticky" in posted["body"]
    comment_id, fingerprint = stored(config, "agency-dc", "10231")  # keyed by id, as the service
    assert comment_id == "90001" and fingerprint.startswith("sha256:")


def test_live_check_json_on_cloud_then_a_dry_run_finds_it_unchanged(tmp_path, jira):
    config = configure(tmp_path, jira=CLOUD_JIRA)
    issue = cloud_issue()
    serve_issue(jira, CLOUD, issue, by_key=True)
    serve_statuses(jira, CLOUD)
    accept_internal_note_update(jira, "ACME-12")
    result = run(config, "check", "ACME-12", "--now", NOW, "--format", "json")
    document = json.loads(result.stdout)
    shown = document.pop("sticky_comment")
    statuses = {"10000": StatusCategory.TODO, "3": IN_PROGRESS, "10003": IN_PROGRESS,
                "10001": StatusCategory.DONE, "10002": StatusCategory.TODO}
    assert document == report_document(core_report(config, issue, statuses), "en")
    assert result.exit_code == 1  # the fixture's request has failing checks
    assert {key: shown[key] for key in ("ticket", "url", "action", "comment_id", "visibility",
                                        "dry_run")} == {
        "ticket": "ACME-12", "url": f"{CLOUD}/browse/ACME-12", "action": "update",
        "comment_id": "10206", "visibility": "as a JSM internal note", "dry_run": False}
    assert writes(jira) == [f"PUT {CLOUD}/rest/api/3/issue/ACME-12/comment/10206"
                            "?notifyUsers=false"]

    again = run(config, "check", "ACME-12", "--now", NOW, "--dry-run")
    assert len(writes(jira)) == 1
    assert "ACME-12: sticky comment 10206 unchanged, as a JSM internal note\n" in again.stdout


DRY_RUN_ASKED = pytest.mark.parametrize("asked", ["--dry-run", "service.dry_run"])
"""A dry run asked on the command line, or kept by the configuration for the whole
installation (a trial): `check` and `backfill` write nothing either way."""


def dry_run(asked: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The command-line arguments for a dry run asked as `asked`."""
    if asked == "--dry-run":
        return ["--dry-run"]
    monkeypatch.setenv("CLIENTGUARD_SERVICE__DRY_RUN", "true")
    return []


@DRY_RUN_ASKED
def test_dry_run_shows_ticket_visibility_action_and_the_comment_and_writes_nothing(
        tmp_path, jira, monkeypatch, asked):
    config = configure(tmp_path, jira=DC_JIRA)
    serve_issue(jira, DC, rest("issue__datacenter.json"), by_key=True)
    serve_statuses(jira, DC)
    result = run(config, "check", "PRJA-7", "--now", NOW, *dry_run(asked, monkeypatch))
    assert result.exit_code in (0, 1), result.output
    assert ("service.dry_run is on: nothing is written" in result.stderr) == (
        asked == "service.dry_run")
    plan = result.stdout.split("\nPRJA-7: ", 1)[1].splitlines()
    assert plan[0] == "would create the sticky comment, restricted to role Developers"
    assert plan[1].startswith("    ClientGuard — Health score: ")
    assert plan[-1].endswith("clientguard:sticky")
    assert writes(jira) == []
    assert stored(config, "agency-dc", "10231") is None  # the database is not written either


@pytest.mark.parametrize(("lang", "said"), [
    ("ru", "будет создан комментарий ClientGuard, видно только роли Developers"),
    ("da", "ville oprette ClientGuard-kommentaren, kun synlig for rollen Developers"),
])
def test_the_sticky_line_speaks_the_language_of_the_report(tmp_path, jira, lang, said):
    config = configure(tmp_path, jira=DC_JIRA)
    serve_issue(jira, DC, rest("issue__datacenter.json"), by_key=True)
    serve_statuses(jira, DC)
    result = run(config, "check", "PRJA-7", "--now", NOW, "--dry-run", "--lang", lang)
    assert result.stdout.split("\nPRJA-7: ", 1)[1].splitlines()[0] == said


def test_dry_run_in_json(tmp_path, jira):
    config = configure(tmp_path, jira=CLOUD_JIRA)
    serve_issue(jira, CLOUD, cloud_issue(sticky=False), by_key=True)
    serve_statuses(jira, CLOUD)
    result = run(config, "check", "ACME-12", "--now", NOW, "--dry-run", "--format", "json")
    shown = json.loads(result.stdout)["sticky_comment"]
    assert (shown["action"], shown["comment_id"], shown["visibility"], shown["dry_run"]) == (
        "create", None, "as a JSM internal note", True)
    assert shown["text"].startswith("ClientGuard — Health score: ")
    assert writes(jira) == []


def test_a_dry_run_predicts_a_refused_write(tmp_path, jira):
    """No internal visibility for a software project: the write would be refused, so the
    dry run says so too (and the live check would write nothing)."""
    config = configure(tmp_path, jira={k: v for k, v in DC_JIRA.items()
                                       if k != "internal_visibility"})
    serve_issue(jira, DC, rest("issue__datacenter.json"), by_key=True)
    serve_statuses(jira, DC)
    assert_bad_input(run(config, "check", "PRJA-7", "--dry-run"),
                     "PRJA-7: [jira] internal_visibility is not configured")


# -- check KEY: what Jira or the configuration refuses --------------------------------------

def test_an_unknown_issue(tmp_path, jira):
    config = configure(tmp_path, jira=DC_JIRA)
    jira.get(f"{DC}/rest/api/2/issue/PRJA-404", status=404, json=NOT_FOUND)
    assert_bad_input(run(config, "check", "PRJA-404"),
                     "clientguard: no Jira engagement PRJA-404: Jira answered 404 to GET "
                     "/rest/api/2/issue/PRJA-404")


def test_credentials_jira_refuses(tmp_path, jira):
    config = configure(tmp_path, jira=CLOUD_JIRA)
    jira.get(f"{CLOUD}/rest/api/3/issue/ACME-12", status=401, json={
        "message": "Client must be authenticated to access this resource.",
        "status-code": 401})
    assert_bad_input(run(config, "check", "ACME-12"), "Jira refused the account of [jira]",
                     "401", "Client must be authenticated")


@pytest.mark.parametrize(("jira_section", "missing"), [
    (None, "jira → base_url is needed"),
    ({"base_url": CLOUD}, "jira → email and api_token are needed for Jira Cloud"),
    ({"base_url": DC, "flavour": "datacenter"}, "jira → personal_access_token is needed"),
])
@pytest.mark.parametrize("command", [["check", "ACME-1"], ["backfill"]])
def test_missing_jira_configuration_names_the_key(tmp_path, jira_section, missing, command):
    assert_bad_input(run(configure(tmp_path, jira=jira_section), *command), missing)


@pytest.mark.parametrize(("args", "message"), [
    ([], "check takes a Jira issue KEY or --input FILE"),
    (["ACME-1", "--input", "x.json"], "check takes a Jira issue KEY or --input FILE"),
    (["--input", "x.json", "--dry-run"], "--dry-run goes with a live issue KEY"),
    (["ACME 1"], "'ACME 1' is not a Jira issue key"),
    (["--input", "x.json", "--resume"], "--resume goes with a live issue KEY and no dry run"),
    (["ACME-1", "--resume", "--dry-run"], "--resume goes with a live issue KEY and no dry run"),
])
def test_check_arguments(tmp_path, args, message):
    assert_bad_input(run(configure(tmp_path, jira=DC_JIRA), "check", *args), message)


# -- check --connector jira --input: a saved issue, no HTTP --------------------------------
# (inside `jira` with nothing stubbed: any request would fail the test)

def save(tmp_path: Path, issue: Any) -> str:
    path = tmp_path / "issue.json"
    path.write_text(json.dumps(issue), encoding="utf-8")
    return str(path)


def test_a_saved_issue_gives_the_core_report(tmp_path, jira):
    config = configure(tmp_path, jira=DC_JIRA)
    issue = rest("issue__datacenter.json")
    result = run(config, "check", "--connector", "jira", "--input", save(tmp_path, issue),
                 "--now", NOW, "--format", "json")
    # The changelog moves only to the issue's current status, which the file describes.
    report = core_report(config, issue, {"3": IN_PROGRESS})
    assert json.loads(result.stdout) == report_document(report, "en")
    assert result.exit_code == (1 if report.has_failures else 0)
    assert result.stderr == ""


def test_a_saved_issue_names_the_statuses_it_cannot_resolve(tmp_path, jira):
    """Without [jira] the defaults apply. The Cloud request moved through "In Progress"
    (id 3), which only the site's status list describes: that move is left out."""
    config = configure(tmp_path, jira=None)
    issue = cloud_issue()
    result = run(config, "check", "--connector", "jira", "--input", save(tmp_path, issue),
                 "--now", NOW)
    assert result.stderr == (
        "clientguard: warning: ACME-12: the changelog moves to statuses the file does not "
        "describe (In Progress): those moves are left out of the status history\n")
    assert result.stdout == report_text(core_report(config, issue, {"10003": IN_PROGRESS}),
                                        "en")


def test_a_saved_issue_cut_short_says_what_is_missing(tmp_path, jira):
    issue = rest("issue__datacenter.json")
    issue["fields"]["worklog"]["total"] = 35
    del issue["changelog"]
    result = run(configure(tmp_path, jira=DC_JIRA), "check", "--connector", "jira", "--input",
                 save(tmp_path, issue), "--now", NOW)
    assert result.exit_code in (0, 1)
    assert result.stderr.splitlines() == [
        "clientguard: warning: PRJA-7: the file holds 1 of 35 worklogs: the others are not "
        "evaluated",
        "clientguard: warning: PRJA-7: no changelog in the file: save the issue with "
        "?expand=changelog"]


@pytest.mark.parametrize(("content", "message"), [
    ("[1, 2]", "not a Jira issue: expected an object with `key` and `fields`"),
    ('{"key": "PRJA-7", "fields": {"summary": "x"}}',
     "not a Jira issue: no fields.created or fields.updated time"),
    ('{"key": "PRJA-7", "fields": {"created": "soon", "updated": "2026-11-02T09:00:00Z"}}',
     "not a Jira issue: no fields.created time"),
    ('{"key": ', "not valid JSON: Expecting value at line 1, column 9"),
    ('{"key": "PRJA-7", "fields": {"created": "2026-11-02T09:00:00.000+0000", '
     '"updated": "2026-11-02T09:00:00.000+0000", "project": {"key": []}}}',
     "not a Jira issue: fields.project is not an object with a key"),
])
def test_a_file_that_is_not_a_saved_issue(tmp_path, content, message):
    path = tmp_path / "issue.json"
    path.write_text(content, encoding="utf-8")
    assert_bad_input(run(configure(tmp_path, jira=None), "check", "--connector", "jira",
                         "--input", str(path)), f"{path}: {message}")


@pytest.mark.parametrize("odd", [
    lambda fields: fields["comment"].update(comments=5),
    lambda fields: fields["status"]["statusCategory"].update(key=[]),
    lambda fields: fields.update(worklog={"worklogs": [5], "total": 1}),
], ids=["comments a number", "status category a list", "a worklog a number"])
def test_a_saved_issue_of_a_shape_jira_never_sends_is_bad_input(tmp_path, odd):
    issue = rest("issue__cloud_service_desk.json")
    odd(issue["fields"])
    assert_bad_input(run(configure(tmp_path, jira=None), "check", "--connector", "jira",
                         "--input", save(tmp_path, issue), "--now", NOW),
                     "not a Jira issue as Jira answers it:")


def test_a_saved_issue_without_connector_is_named_as_one(tmp_path):
    path = str(REST / "issue__datacenter.json")
    assert_bad_input(run(configure(tmp_path, jira=None), "check", "--input", path),
                     f"{path}: this is saved from Jira, not engagement JSON: add "
                     "--connector jira")


@pytest.mark.parametrize("other", ["engagement JSON", "a saved Bitrix24 deal"])
def test_a_file_given_as_the_wrong_kind_says_what_it_is(tmp_path, other):
    if other == "engagement JSON":
        path, said = EXAMPLES / "healthy.json", "(this is engagement JSON: drop --connector jira)"
    else:
        path, said = saved_deal(tmp_path), "(this is saved from Bitrix24: --connector bitrix24)"
    assert_bad_input(run(configure(tmp_path, jira=None), "check", "--connector", "jira",
                         "--input", str(path), "--now", NOW), f"{path}: not a Jira issue", said)


# -- backfill --------------------------------------------------------------------------------

def search(mock: responses.RequestsMock, jql: str, *pages: list[dict[str, Any]]) -> None:
    """Cloud's `GET /search/jql`, page after page by `nextPageToken`, asked for the keys
    (by default it answers with ids only)."""
    for number, issues in enumerate(pages):
        params = {"jql": jql, "fields": "key", "maxResults": "1000"}
        if number:
            params["nextPageToken"] = f"page-{number}"
        answer: dict[str, Any] = {"issues": [{"id": i["id"], "key": i["key"]} for i in issues],
                                  "isLast": number == len(pages) - 1}
        if number < len(pages) - 1:
            answer["nextPageToken"] = f"page-{number + 1}"
        mock.get(f"{CLOUD}/rest/api/3/search/jql", json=answer,
                 match=[matchers.query_param_matcher(params)])


def test_backfill_over_two_pages_with_a_failing_and_an_unchanged_issue(tmp_path, jira):
    config = configure(tmp_path, jira=CLOUD_JIRA)
    new, changed, same, failing = (cloud_issue("ACME-12", "10042", sticky=False),
                                   cloud_issue("ACME-13", "10043"),
                                   cloud_issue("ACME-14", "10044"),
                                   cloud_issue("ACME-15", "10045"))
    for issue in (new, changed, same):
        serve_issue(jira, CLOUD, issue)
    serve_issue(jira, CLOUD, same, by_key=True)
    jira.get(f"{CLOUD}/rest/api/3/issue/10045", status=500, headers={"Retry-After": "0"},
             json={"errorMessages": ["Internal server error"], "errors": {}})
    serve_statuses(jira, CLOUD)
    accept_internal_note(jira, "ACME-12", "10300")
    accept_internal_note_update(jira, "ACME-13")
    accept_internal_note_update(jira, "ACME-14")
    search(jira, "(project = ACME) AND statusCategory != Done", [new, changed], [same, failing])
    assert run(config, "check", "ACME-14").exit_code == 1  # written once already

    result = run(config, "backfill")
    assert result.exit_code == 1, result.output
    assert result.stdout == (
        "scanned 4, created 1, updated 1, deleted 0, unchanged 1, failed 1\n"
        "  failed ACME-15: Transient: Jira answered 500 to GET /rest/api/3/issue/10045: "
        "Internal server error\n")
    assert "Backfilling 4 engagements" in result.stderr
    assert result.stderr.count(  # said while waiting, not only in the summary
        "clientguard: Jira answered 500 to GET /rest/api/3/issue/10045: Internal server error; "
        "trying again in 0.0 s (attempt ") == MAX_ATTEMPTS - 1
    attempts = [c for c in jira.calls if c.request.path_url.startswith("/rest/api/3/issue/10045?")]
    assert len(attempts) == MAX_ATTEMPTS  # every attempt, then on to the next issue
    assert writes(jira) == [  # the check's write, then the backfill's
        f"PUT {CLOUD}/rest/api/3/issue/ACME-14/comment/10206?notifyUsers=false",
        f"POST {CLOUD}/rest/servicedeskapi/request/ACME-12/comment",
        f"PUT {CLOUD}/rest/api/3/issue/ACME-13/comment/10206?notifyUsers=false"]
    assert stored(config, "agency", "10042")[0] == "10300"
    assert stored(config, "agency", "10045") is None


@DRY_RUN_ASKED
def test_backfill_dry_run_prints_the_plans_and_writes_nothing(tmp_path, jira, monkeypatch,
                                                              asked):
    config = configure(tmp_path, jira=CLOUD_JIRA)
    new, changed = cloud_issue("ACME-12", "10042", sticky=False), cloud_issue("ACME-13", "10043")
    for issue in (new, changed):
        serve_issue(jira, CLOUD, issue)
    serve_statuses(jira, CLOUD)
    search(jira, "statusCategory = Done ORDER BY key", [new, changed])
    result = run(config, "backfill", "--jql", "statusCategory = Done ORDER BY key",
                 *dry_run(asked, monkeypatch))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line for line in lines if not line.startswith("    ")] == [
        "ACME-12: would create the sticky comment, as a JSM internal note",
        "ACME-13: would update sticky comment 10206, as a JSM internal note",
        "scanned 2, would create 1, would update 1, would delete 0, unchanged 0, failed 0 "
        "(dry run: nothing written)"]
    assert writes(jira) == []
    assert stored(config, "agency", "10042") is None


@pytest.mark.parametrize(("lang", "expected"), [
    ("da", ["ACME-12: ville oprette ClientGuard-kommentaren, som intern JSM-note",
            "ACME-13: ville opdatere ClientGuard-kommentar 10206, som intern JSM-note",
            "gennemgået 3, ville oprette 1, ville opdatere 1, ville slette 0, uændret 0, "
            "fejlet 1 (prøvekørsel: intet skrevet)",
            "  fejlet: ACME-15: Transient: Jira answered 500 to GET /rest/api/3/issue/10045: "
            "Internal server error"]),
    ("ru", ["ACME-12: будет создан комментарий ClientGuard, как внутренняя заметка JSM",
            "ACME-13: будет обновлён комментарий ClientGuard 10206, как внутренняя заметка JSM",
            "проверено 3, будет создано 1, будет обновлено 1, будет удалено 0, "
            "без изменений 0, с ошибкой 1 (пробный запуск: ничего не записано)",
            "  ошибка: ACME-15: Transient: Jira answered 500 to GET /rest/api/3/issue/10045: "
            "Internal server error"]),
])
def test_backfill_speaks_the_language_asked_for(tmp_path, jira, lang, expected):
    config = configure(tmp_path, jira=CLOUD_JIRA)
    new, changed, failing = (cloud_issue("ACME-12", "10042", sticky=False),
                             cloud_issue("ACME-13", "10043"), cloud_issue("ACME-15", "10045"))
    for issue in (new, changed):
        serve_issue(jira, CLOUD, issue)
    jira.get(f"{CLOUD}/rest/api/3/issue/10045", status=500, headers={"Retry-After": "0"},
             json={"errorMessages": ["Internal server error"], "errors": {}})
    serve_statuses(jira, CLOUD)
    search(jira, "statusCategory = Done ORDER BY key", [new, changed, failing])
    result = run(config, "backfill", "--jql", "statusCategory = Done ORDER BY key", "--dry-run",
                 "--lang", lang)
    assert result.exit_code == 1, result.output
    assert [line for line in result.stdout.splitlines() if not line.startswith("    ")] == (
        expected)
    assert {"da": "Gennemgår 3 kundeforløb", "ru": "Проверка клиентских проектов: 3"}[lang] in (
        result.stderr)
    assert writes(jira) == []


def test_backfill_refused_search(tmp_path, jira):
    jira.get(f"{CLOUD}/rest/api/3/search/jql", status=400, json={
        "errorMessages": ["Error in the JQL Query: Expecting a field name but got 'AND'."],
        "errors": {}})
    assert_bad_input(run(configure(tmp_path, jira=CLOUD_JIRA), "backfill", "--jql", "AND"),
                     "Error in the JQL Query")


@pytest.mark.parametrize(("engagement_jql", "jql"), [
    ("", "statusCategory != Done"),
    ("project = ACME", "(project = ACME) AND statusCategory != Done"),
    ("project in (ACME, SHOE) OR labels = client order by updated DESC",
     "(project in (ACME, SHOE) OR labels = client) AND statusCategory != Done "
     "order by updated DESC"),
])
def test_the_default_backfill_jql(engagement_jql, jql):
    settings = JiraSettingsSchema().load({"engagement_jql": engagement_jql})
    assert open_engagements_jql(settings) == jql



def test_doctor_and_install_are_commands(tmp_path: Path) -> None:
    """`clientguard doctor jira` prints the checks and the instance's fields and exits 0 on
    a site set up right; a missing [jira] setting is a one-line exit 2 naming the key."""
    from click.testing import CliRunner

    from plugin.cli import cli
    from tests.connectors.jira.test_doctor import GOOD, stub_site

    config = tmp_path / "clientguard.toml"
    config.write_text(tomli_w.dumps({"jira": GOOD}), encoding="utf-8")
    runner = CliRunner()
    with responses.RequestsMock() as site:
        stub_site(site)
        result = runner.invoke(cli, ["--config", str(config), "doctor", "jira"])
    assert result.exit_code == 0, result.output
    assert "customfield_" in result.output
    assert "warning" not in result.stderr
    result = runner.invoke(cli, ["--config", "/dev/null", "install", "jira", "--url",
                                 "https://g.example"])
    assert result.exit_code == 2, result.output
    assert "jira → base_url is needed" in result.output
    result = runner.invoke(cli, ["--config", "/dev/null", "doctor", "jira"])
    assert result.exit_code == 1, result.output  # a report, with what else it can tell
    assert "FAIL  credentials: jira → base_url is needed" in result.output
    assert "internal visibility" in result.output
    assert result.stderr.startswith("clientguard: warning: no [jira] table in the configuration "
                                    "(/dev/null): every jira setting is its default\n")


def install_site(tmp_path: Path, **jira: Any) -> tuple[Path, Any]:
    """A configuration of the Jira site of tests/connectors/jira/test_install.py with a
    migrated SQLite database, and that database open (the running service's)."""
    from plugin.storage import open_database, upgrade
    from tests.connectors.jira.test_install import SECTION

    url = f"sqlite:///{tmp_path / 'clientguard.sqlite3'}"
    config = tmp_path / "clientguard.toml"
    config.write_text(tomli_w.dumps({"service": {"database_url": url},
                                     "jira": {**SECTION, **jira}}), encoding="utf-8")
    upgrade(url)
    return config, open_database(url)


def a_person_edits_an_issue(database: Any) -> threading.Thread:
    """In half a second, Jira's delivery of a person's edit reaches the service."""
    from connectors.base import EngagementRef, Event
    from plugin.storage.repository import record_event

    def edit() -> None:
        time.sleep(0.5)
        with database.session() as session, session.begin():
            record_event(session, Event(EngagementRef("jira", "jira", "10042"),
                                        "jira:issue_updated", "d-1", None, "anna"),
                         b"{}", datetime.now(UTC))

    editor = threading.Thread(target=edit)
    editor.start()
    return editor


def install(config: Path, wait: float) -> Any:
    from click.testing import CliRunner

    from plugin.cli import cli

    return CliRunner().invoke(cli, ["--config", str(config), "install", "jira", "--url",
                                    "https://g.example", "--wait", str(wait)])


def test_install_registers_the_webhook_then_waits_for_a_test_delivery(tmp_path: Path) -> None:
    from connectors.jira.install import WEBHOOKS_PATH
    from tests.connectors.jira.test_install import SECTION, SITE

    config, database = install_site(tmp_path, webhook_secret="s3cret")
    url = f"sqlite:///{tmp_path / 'clientguard.sqlite3'}"
    for wait, edits, exit_code, said in ((10, True, 0, "test delivery arrived: "
                                          "jira:issue_updated on issue 10042"),
                                         (0.5, False, 1, "no delivery from Jira reached")):
        with responses.RequestsMock() as jira:
            jira.get(SITE + WEBHOOKS_PATH, json=[])
            jira.post(SITE + WEBHOOKS_PATH, status=201, json={
                "self": f"{SITE}{WEBHOOKS_PATH}/10042", "isSigned": True,
                "name": "ClientGuard", "url": "https://g.example/hooks/jira", "events": [],
                "filters": {}, "excludeBody": False, "enabled": True})
            editor = a_person_edits_an_issue(database) if edits else None
            result = install(config, wait)
            if editor is not None:
                editor.join()
        assert result.exit_code == exit_code, result.output
        assert said in result.output
        assert "Waiting up to" in result.output
    database.close()
    # no secret configured yet: a new one is registered, which the running service lacks
    config.write_text(tomli_w.dumps({"service": {"database_url": url}, "jira": SECTION}),
                      encoding="utf-8")
    with responses.RequestsMock() as jira:
        jira.get(SITE + WEBHOOKS_PATH, json=[])
        jira.post(SITE + WEBHOOKS_PATH, status=201, json={
            "self": f"{SITE}{WEBHOOKS_PATH}/10043", "isSigned": True, "name": "ClientGuard",
            "url": "https://g.example/hooks/jira", "events": [], "filters": {},
            "excludeBody": False, "enabled": True})
        result = install(config, 30)
    assert result.exit_code == 1, result.output
    assert "CLIENTGUARD_JIRA__WEBHOOK_SECRET=" in result.output
    assert "not waiting for a test delivery: the service does not have the new secret" in (
        result.output)
    assert "Waiting up to" not in result.output


def test_without_admin_rights_install_prints_the_settings_then_waits_for_them_to_work(
        tmp_path: Path) -> None:
    """The normal case for a service account: an administrator enters the printed settings
    meanwhile, and the first signed delivery proves them."""
    from connectors.base import EngagementRef
    from connectors.jira.install import WEBHOOKS_PATH
    from plugin.storage.repository import record_review
    from tests.connectors.jira.test_install import SITE

    config, database = install_site(tmp_path, webhook_secret="s3cret")
    with responses.RequestsMock() as jira:
        jira.get(SITE + WEBHOOKS_PATH, status=403, json={
            "errorMessages": ["You are not authorized to perform this operation. "
                              "Administrator privileges are required."], "errors": {}})
        with database.session() as session, session.begin():  # the service's own: no proof
            record_review(session, EngagementRef("jira", "jira", "10041"),
                          datetime.now(UTC) + timedelta(seconds=1), "time")
        editor = a_person_edits_an_issue(database)
        result = install(config, 10)
        editor.join()
    database.close()
    assert result.exit_code == 0, result.output
    assert "only a Jira administrator may register webhooks" in result.output
    assert "Enter it by hand:" in result.output
    assert "once the settings above are entered in Jira" in result.output
    assert "test delivery arrived: jira:issue_updated on issue 10042" in result.output
