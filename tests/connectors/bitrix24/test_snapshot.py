"""The Bitrix24 deal snapshot: which commands read a deal, how many batches that costs, and
how the answers map to the `Engagement`.

The answers are in `fixtures/rest/` (where each comes from: `fixtures/rest/SOURCES.md`): the
two batches of a cold snapshot of deal 410, composed from the documented examples and the
real samples in `fixtures/`. Batch calls run against `FakeBitrix24`, a stand-in for
`Bitrix24Client` that decodes those answers with the client's own `decode_batch` and counts
the calls. Expected values are written out.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.base import EngagementRef
from connectors.bitrix24.client import BatchResult, decode_batch
from connectors.bitrix24.settings import Bitrix24Settings, Bitrix24SettingsSchema
from connectors.bitrix24.snapshot import (
    PortalCatalogue,
    Stage,
    bbcode_text,
    build_engagement,
    category_of,
    fetch_deal_data,
    fetch_snapshot,
    find_sticky,
    html_text,
    lookups_needed,
    pages_needed,
    snapshot_commands,
)
from connectors.errors import NotFound, PlatformError
from plugin.config import build_config
from plugin.core.engine import evaluate
from plugin.core.model import (
    Change,
    Client,
    Comment,
    Document,
    DocumentKind,
    Engagement,
    Invoice,
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

FIXTURES = Path(__file__).parent / "fixtures"
REST = FIXTURES / "rest"

NOW = datetime(2024, 9, 6, 12, 0, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))
TODO, IN_PROGRESS, DONE = StatusCategory.TODO, StatusCategory.IN_PROGRESS, StatusCategory.DONE

FIELDS = {
    "project_manager": "UF_CRM_1725001000", "decision_maker": "UF_CRM_1725001001",
    "estimate_approved": "UF_CRM_1725001002", "budget_hours": "UF_CRM_1725001003",
    "channels": "UF_CRM_1725001004", "payment_method": "UF_CRM_1725001005",
    "results_expected_on": "UF_CRM_1725001006", "goals": "UF_CRM_1725001007",
    "prepayment_received": "UF_CRM_1725001009", "input_data": "UF_CRM_1725001010",
    "sale_date": "BEGINDATE",
}


def settings_with(**overrides: Any) -> Bitrix24Settings:
    """A webhook connection (its user, 1, is the one ClientGuard writes as)."""
    return Bitrix24SettingsSchema().load({
        "site": "acme-b24", "webhook_url": "https://acme.bitrix24.com/rest/1/abcdef123456/",
        "outgoing_token": "outgoing-token", "fields": FIELDS, **overrides})


SETTINGS = settings_with()
REF = EngagementRef("bitrix24", "acme-b24", "410")

VADIM = Person("1", "Vadim Valeev", Side.AGENCY, "v.r.valeev@bitrix.com")
JOHN = Person("3", "John Doe", Side.AGENCY, "test@gmail.com")
KLAUS = Person("contact:84", "Klaus Weber", Side.CLIENT, "klaus@acme.example")
KIM = Person("contact:85", "Kim Marketer", Side.CLIENT, "kim@acme.example")


@functools.cache
def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def rest(name: str) -> Any:
    """A fresh copy of a batch answer (the HTTP body), free to change."""
    return json.loads(_text(REST / name))


def shared(name: str) -> Any:
    """A fresh copy of one of the platform samples in `fixtures/` (fixtures/SOURCES.md)."""
    return json.loads(_text(FIXTURES / name))


def first_answer() -> dict[str, Any]:
    return rest("batch__deal_410__cold_first.json")["result"]


def second_answer() -> dict[str, Any]:
    return rest("batch__deal_410__cold_second.json")["result"]


def all_results() -> dict[str, Any]:
    """Every command result of both batches, by key: what `build_engagement` reads."""
    return {**first_answer()["result"], **second_answer()["result"]}


def warm_catalogue() -> PortalCatalogue:
    catalogue = PortalCatalogue()
    catalogue.learn({}, all_results())
    return catalogue


def engagement_of(results: Mapping[str, Any] | None = None,
                  settings: Bitrix24Settings = SETTINGS,
                  catalogue: PortalCatalogue | None = None,
                  known_sticky_id: str | None = None) -> Engagement:
    return build_engagement(REF, all_results() if results is None else results, settings,
                            catalogue or warm_catalogue(), NOW,
                            known_sticky_id=known_sticky_id)


class FakeBitrix24:
    """`Bitrix24Client.batch` / `list_all` over canned answers: each command key is answered
    from the parts (`result`, `result_error`, `result_total`, `result_next`) of the given
    batch answers, decoded by the client's `decode_batch`; a command with no answer fails
    the test, unless an answer's errors are a list tied to no command (the captured quirk),
    which is then passed on as it came. Every batch is recorded in `calls`."""

    PARTS = ("result", "result_error", "result_total", "result_next")

    def __init__(self, *answers: Mapping[str, Any]) -> None:
        self.parts: dict[str, dict[str, Any]] = {part: {} for part in self.PARTS}
        self.unkeyed: list[Any] = []
        for answer in answers:
            for part in self.PARTS:
                if isinstance(answer.get(part), dict):
                    self.parts[part].update(answer[part])
            if isinstance(answer.get("result_error"), list):
                self.unkeyed += answer["result_error"]
        self.calls: list[dict[str, tuple[str, Mapping[str, Any]]]] = []
        self.whole: list[tuple[str, Mapping[str, Any], str | None]] = []
        self.lists: dict[str, list[Any]] = {}

    def batch(self, commands: Mapping[str, tuple[str, Mapping[str, Any]]]) -> BatchResult:
        assert len(commands) <= 50
        self.calls.append(dict(commands))
        answer: dict[str, Any] = {part: {} for part in self.PARTS}
        for key in commands:
            assert (key in self.parts["result"] or key in self.parts["result_error"]
                    or self.unkeyed), f"no answer for batch command {key!r}"
            for part in self.PARTS:
                if key in self.parts[part]:
                    answer[part][key] = self.parts[part][key]
        if self.unkeyed:
            answer["result_error"] = list(self.unkeyed)
        return decode_batch(answer, commands)

    def list_all(self, method: str, params: Mapping[str, Any] | None = None, *,
                 items_key: str | None = None) -> list[Any]:
        self.whole.append((method, dict(params or {}), items_key))
        return self.lists[method]


# -- the commands ------------------------------------------------------------------------

def test_a_cold_deal_is_read_with_these_commands() -> None:
    assert snapshot_commands("410", SETTINGS, PortalCatalogue()) == {
        "deal": ("crm.item.get", {"entityTypeId": 2, "id": 410, "useOriginalUfNames": "Y"}),
        "company": ("crm.item.get", {"entityTypeId": 4, "id": "$result[deal][item][companyId]"}),
        "comments": ("crm.timeline.comment.list", {
            "filter": {"ENTITY_ID": 410, "ENTITY_TYPE": "deal"},
            "select": ["ID", "CREATED", "AUTHOR_ID", "COMMENT", "FILES"],
            "order": {"ID": "ASC"}}),
        "activities": ("crm.activity.list", {
            "filter": {"BINDINGS": [{"OWNER_TYPE_ID": 2, "OWNER_ID": 410}]},
            "select": ["ID", "TYPE_ID", "PROVIDER_ID", "PROVIDER_TYPE_ID", "DIRECTION",
                       "SUBJECT", "DESCRIPTION", "DESCRIPTION_TYPE", "CREATED", "START_TIME",
                       "END_TIME", "COMPLETED", "RESPONSIBLE_ID", "AUTHOR_ID",
                       "COMMUNICATIONS"],
            "order": {"ID": "ASC"}}),
        "tasks": ("tasks.task.list", {
            "filter": {"UF_CRM_TASK": ["D_410"]},
            "select": ["ID", "TITLE", "RESPONSIBLE_ID", "CREATED_DATE", "CLOSED_DATE",
                       "STATUS", "TIME_SPENT_IN_LOGS", "UF_CRM_TASK"],
            "order": {"ID": "asc"}}),
        "invoices": ("crm.item.list", {
            "entityTypeId": 31, "filter": {"parentId2": 410},
            "select": ["id", "accountNumber", "title", "categoryId", "stageId", "opportunity",
                       "currencyId", "begindate", "closedate", "createdTime", "movedTime"],
            "order": {"id": "ASC"}}),
        "documents": ("crm.documentgenerator.document.list", {
            "filter": {"entityTypeId": 2, "entityId": 410}, "order": {"id": "asc"}}),
        "stage_history": ("crm.stagehistory.list", {
            "entityTypeId": 2, "filter": {"OWNER_ID": 410},
            "select": ["ID", "TYPE_ID", "CREATED_TIME", "CATEGORY_ID", "STAGE_SEMANTIC_ID",
                       "STAGE_ID"],
            "order": {"ID": "ASC"}}),
        "deal_fields": ("crm.item.fields", {"entityTypeId": 2, "useOriginalUfNames": "Y"}),
        "deal_stages_0": ("crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE"},
                                              "order": {"SORT": "ASC"}}),
    }


def test_a_warm_catalogue_leaves_the_catalogue_commands_out() -> None:
    assert list(snapshot_commands("410", SETTINGS, warm_catalogue())) == [
        "deal", "company", "comments", "activities", "tasks", "invoices", "documents",
        "stage_history"]


def test_the_configured_pipelines_stages_come_in_the_first_batch() -> None:
    commands = snapshot_commands("410", settings_with(deal_categories=["3"]),
                                 PortalCatalogue())
    assert commands["deal_stages_3"] == ("crm.status.list", {
        "filter": {"ENTITY_ID": "DEAL_STAGE_3"}, "order": {"SORT": "ASC"}})
    assert "deal_stages_0" in commands


@pytest.mark.parametrize("key", ["activity:12", "0", "-4", "D_410", ""])
def test_only_a_deal_id_is_read(key: str) -> None:
    with pytest.raises(ValueError, match="not a Bitrix24 deal id"):
        snapshot_commands(key, SETTINGS, PortalCatalogue())


# -- what a snapshot costs -----------------------------------------------------------------

def test_a_cold_snapshot_takes_two_batches_and_a_warm_one_one() -> None:
    portal = FakeBitrix24(first_answer(), second_answer())
    catalogue = PortalCatalogue()

    cold = fetch_snapshot(portal, REF, SETTINGS, catalogue, None, NOW)
    assert len(portal.calls) == 2
    assert portal.calls[1] == {
        "invoice_stages_2": ("crm.status.list", {
            "filter": {"ENTITY_ID": "SMART_INVOICE_STAGE_2"}, "order": {"SORT": "ASC"}}),
        "users_0": ("user.get", {"filter": {"ID": ["1", "3"]}}),
        "extranet_0": ("user.get", {"filter": {"ID": ["1", "3"], "USER_TYPE": "extranet"}}),
        "contacts_0": ("crm.contact.list", {
            "filter": {"@ID": ["85"]},
            "select": ["ID", "NAME", "SECOND_NAME", "LAST_NAME", "EMAIL"]}),
        "time_8017_3600": ("task.elapseditem.getlist", {"TASKID": 8017,
                                                        "ORDER": {"ID": "asc"}}),
    }

    warm = fetch_snapshot(portal, REF, SETTINGS, catalogue, cold.sticky_id, NOW)
    assert len(portal.calls) == 3
    assert list(portal.calls[2]) == ["deal", "company", "comments", "activities", "tasks",
                                     "invoices", "documents", "stage_history"]
    assert warm.engagement == cold.engagement == engagement_of()
    assert (warm.sticky_id, warm.duplicates) == ("1001", ("998",))
    assert (warm.context.deal_id, warm.context.responsible_id) == ("410", "1")


def test_task_time_is_read_again_when_its_total_changed() -> None:
    catalogue = warm_catalogue()
    results = first_answer()["result"]
    results["tasks"]["tasks"][0]["timeSpentInLogs"] = "5400"
    assert lookups_needed(results, SETTINGS, catalogue).commands() == {
        "time_8017_5400": ("task.elapseditem.getlist", {"TASKID": 8017,
                                                        "ORDER": {"ID": "asc"}})}


def test_a_new_enumeration_value_reads_the_fields_again() -> None:
    results = first_answer()["result"]
    results["deal"]["item"]["UF_CRM_1725001004"] = [79, 82]  # 82: added on the portal since
    assert lookups_needed(results, SETTINGS, warm_catalogue()).fields is True
    assert engagement_of({**all_results(), "deal": results["deal"]}).fields["channels"] == (
        "SEO", "82")


def test_a_deal_in_an_unknown_pipeline_asks_for_its_stages() -> None:
    results = first_answer()["result"]
    results["deal"]["item"].update(categoryId=3, stageId="C3:UC_WORK")
    lookups = lookups_needed(results, SETTINGS, warm_catalogue())
    assert lookups.commands() == {"deal_stages_3": ("crm.status.list", {
        "filter": {"ENTITY_ID": "DEAL_STAGE_3"}, "order": {"SORT": "ASC"}})}


def test_remaining_pages_of_every_list_come_in_one_more_batch() -> None:
    commands = snapshot_commands("410", SETTINGS, warm_catalogue())
    answer = {"result": {key: [] for key in commands},
              "result_total": {"comments": 120, "activities": 60, "tasks": 1},
              "result_next": {"comments": 50, "activities": 50}}
    pages = pages_needed(commands, decode_batch(answer, commands))
    assert {key: params["start"] for key, (_, params) in pages.commands.items()} == {
        "activities_p50": 50, "comments_p50": 50, "comments_p100": 100}
    assert pages.commands["comments_p100"] == ("crm.timeline.comment.list", {
        **commands["comments"][1], "start": 100})
    assert pages.whole == {}

    tight = pages_needed(commands, decode_batch(answer, commands), budget=2)
    assert list(tight.commands) == ["activities_p50"]
    assert tight.whole == {"comments": commands["comments"]}


def test_a_list_that_fits_a_page_needs_no_follow_up() -> None:
    captured = shared("response_crm.item.list.captured.json")  # total 3, no next
    commands = {"invoices": ("crm.item.list", {"entityTypeId": 31})}
    answer = {"result": {"invoices": captured["result"]},
              "result_total": {"invoices": captured["total"]}}
    pages = pages_needed(commands, decode_batch(answer, commands))
    assert (pages.commands, pages.whole) == ({}, {})


def test_later_pages_are_merged_and_their_new_people_looked_up() -> None:
    first = first_answer()
    first["result_total"]["comments"] = 70
    first["result_next"] = {"comments": 50}
    later = {"ID": "1100", "ENTITY_ID": "410", "ENTITY_TYPE": "deal",
             "CREATED": "2024-09-06T08:00:00+02:00", "COMMENT": "Page two", "AUTHOR_ID": "5",
             "FILES": {}}
    pages = {"result": {"comments_p50": [later]}, "result_total": {"comments_p50": 70}}
    newcomer = {"result": {"users_0": [{"ID": "5", "NAME": "Ida", "LAST_NAME": "Intern",
                                        "USER_TYPE": "employee", "UF_DEPARTMENT": [1]}],
                           "extranet_0": []}}
    portal = FakeBitrix24(first, second_answer(), pages, newcomer)
    catalogue = warm_catalogue()
    results = fetch_deal_data(portal, "410", SETTINGS, catalogue)
    assert [list(call) for call in portal.calls[1:]] == [["comments_p50"],
                                                          ["users_0", "extranet_0"]]
    assert portal.calls[2]["users_0"] == ("user.get", {"filter": {"ID": ["5"]}})
    assert [c["ID"] for c in results["comments"]] == ["998", "999", "1000", "1001", "1003",
                                                      "1100"]
    comments = build_engagement(REF, results, SETTINGS, catalogue, NOW).comments
    assert comments[-1] == Comment("1100", Person("5", "Ida Intern", Side.AGENCY),
                                   Visibility.INTERNAL,
                                   datetime(2024, 9, 6, 8, 0, tzinfo=CEST), "Page two")


def test_a_list_too_long_for_one_batch_is_read_whole() -> None:
    first = first_answer()
    first["result_total"]["activities"] = 50 * 60
    first["result_next"] = {"activities": 50}
    portal = FakeBitrix24(first, second_answer())
    portal.lists["crm.activity.list"] = first["result"]["activities"]
    fetch_deal_data(portal, "410", SETTINGS, warm_catalogue())
    assert len(portal.calls) == 1
    assert portal.whole == [("crm.activity.list",
                             snapshot_commands("410", SETTINGS, warm_catalogue())[
                                 "activities"][1], None)]


def test_a_deleted_deal_is_not_found() -> None:
    first = first_answer()
    del first["result"]["deal"]
    first["result_error"] = {"deal": {"error": "NOT_FOUND", "error_description": "Not found"}}
    with pytest.raises(NotFound):
        fetch_deal_data(FakeBitrix24(first), "410", SETTINGS, warm_catalogue())


def test_errors_the_portal_ties_to_no_command_fail_the_snapshot() -> None:
    """The captured quirk (fixtures/response_batch.json): errors as a list, no keys."""
    captured = shared("response_batch.json")["captured_batch_of_two_errors__fast_bitrix24"]
    first = first_answer()
    del first["result"]["deal"], first["result"]["comments"]
    first["result_error"] = captured["result"]["result_error"]
    with pytest.raises(PlatformError, match="ID is not defined or invalid"):
        fetch_deal_data(FakeBitrix24(first), "410", SETTINGS, warm_catalogue())


def test_optional_parts_that_fail_are_not_available() -> None:
    first = first_answer()
    del first["result"]["invoices"], first["result"]["documents"]
    first["result_error"] = {
        "invoices": {"error": "ENTITY_TYPE_NOT_SUPPORTED", "error_description": "…"},
        "documents": {"error": "insufficient_scope", "error_description": ""}}
    catalogue = warm_catalogue()
    results = fetch_deal_data(FakeBitrix24(first), "410", SETTINGS, catalogue)
    engagement = build_engagement(REF, results, SETTINGS, catalogue, NOW)
    assert engagement.invoices is None
    assert [doc.id for doc in engagement.documents if doc.id.startswith("document:")] == []


# -- the mapping: identity and status ------------------------------------------------------

def test_identity() -> None:
    engagement = engagement_of()
    assert (engagement.connector, engagement.key, engagement.url, engagement.project) == (
        "bitrix24", "DEAL-410", "https://acme.bitrix24.com/crm/deal/details/410/", "0")
    assert (engagement.title, engagement.status, engagement.status_category) == (
        "New Deal #1", "Document preparation", TODO)
    assert engagement.created == datetime(2024, 8, 30, 14, 29, tzinfo=CEST)
    assert engagement.updated == datetime(2024, 9, 5, 19, 0, tzinfo=CEST)
    assert engagement.due == date(2024, 9, 9)
    assert engagement.labels == ()


def test_the_portal_of_an_installed_app_gives_the_url() -> None:
    catalogue = PortalCatalogue("https://acme.bitrix24.de")
    catalogue.learn({}, all_results())
    engagement = engagement_of(settings=settings_with(webhook_url=None, outgoing_token=None,
                                                      client_id="local.1", client_secret="s",
                                                      public_url="https://guard.example"),
                               catalogue=catalogue)
    assert engagement.url == "https://acme.bitrix24.de/crm/deal/details/410/"


def test_a_legacy_crm_deal_get_result_maps_too() -> None:
    """The documented `crm.deal.get` answer (UPPER_CASE names), alone."""
    deal = shared("response_crm.deal.get.json")["result"]
    engagement = engagement_of({"deal": deal},
                               settings=settings_with(fields={"goals": "UF_CRM_1721244482250"}))
    assert (engagement.key, engagement.title, engagement.status, engagement.status_category,
            engagement.created, engagement.due) == (
        "DEAL-410", "New Deal #1", "Document preparation", TODO,
        datetime(2024, 8, 30, 14, 29, tzinfo=CEST), date(2024, 9, 9))
    assert engagement.roles.assignee == VADIM
    assert dict(engagement.fields) == {"goals": "Hello world!"}
    # no company answer: the client is named after the deal's contact
    assert engagement.client == Client("klaus-weber", "Klaus Weber", people=(KLAUS,))
    assert (engagement.comments, engagement.invoices) == ((), None)


DEAL_STAGES = (Stage("NEW", "New", 10, "P"), Stage("PREPARATION", "Document preparation", 20,
               "P"), Stage("PREPAYMENT_INVOICE", "Prepayment invoice", 30, "P"),
               Stage("EXECUTING", "In progress", 40, "P"),
               Stage("FINAL_INVOICE", "Final invoice", 50, "P"),
               Stage("WON", "Deal successful", 60, "S"), Stage("LOSE", "Deal failed", 70, "F"),
               Stage("APOLOGY", "Failure reason analysis", 80, "F"))
NO_EXECUTING = (Stage("C3:NEW", "Lead in", 10, "P"), Stage("C3:UC_BRIEF", "Briefing", 20, "P"),
                Stage("C3:UC_WORK", "Production", 30, "P"), Stage("C3:WON", "Done", 40, "S"))


@pytest.mark.parametrize(("stages", "stage", "semantic", "category"), [
    (DEAL_STAGES, "NEW", "", TODO),
    (DEAL_STAGES, "PREPARATION", "", TODO),
    (DEAL_STAGES, "PREPAYMENT_INVOICE", "P", TODO),
    (DEAL_STAGES, "EXECUTING", "P", IN_PROGRESS),
    (DEAL_STAGES, "FINAL_INVOICE", "", IN_PROGRESS),
    (DEAL_STAGES, "WON", "", DONE),
    (DEAL_STAGES, "LOSE", "F", DONE),
    (DEAL_STAGES, "APOLOGY", "", DONE),
    (NO_EXECUTING, "C3:NEW", "P", TODO),
    (NO_EXECUTING, "C3:UC_BRIEF", "P", IN_PROGRESS),
    (NO_EXECUTING, "C3:WON", "S", DONE),
    (None, "C5:NEW", "P", TODO),
    (None, "C5:UC_X7", "P", IN_PROGRESS),
    (None, "C5:UC_X8", "S", DONE),
])
def test_status_category_from_stage_semantics(stages: tuple[Stage, ...] | None, stage: str,
                                              semantic: str, category: StatusCategory
                                              ) -> None:
    assert category_of(stages, stage, semantic) is category


def test_the_stage_history_is_the_status_history() -> None:
    engagement = engagement_of()
    assert engagement.status_history == (
        StatusChange(datetime(2024, 8, 30, 14, 29, tzinfo=CEST), "New", TODO),
        StatusChange(datetime(2024, 8, 31, 10, 0, tzinfo=CEST), "Document preparation", TODO))
    assert engagement.changes == (
        Change("status", datetime(2024, 8, 30, 14, 29, tzinfo=CEST), None, "New"),
        Change("status", datetime(2024, 8, 31, 10, 0, tzinfo=CEST), "New",
               "Document preparation"))
    assert engagement.started_at is None


def test_work_starts_with_the_move_into_executing() -> None:
    results = all_results()
    results["stage_history"]["items"].append({
        "ID": 57, "TYPE_ID": 2, "OWNER_ID": 410, "CREATED_TIME": "2024-09-05T09:00:00+02:00",
        "CATEGORY_ID": 0, "STAGE_SEMANTIC_ID": "P", "STAGE_ID": "EXECUTING"})
    results["deal"]["item"]["stageId"] = "EXECUTING"
    engagement = engagement_of(results)
    assert (engagement.status, engagement.status_category) == ("In progress", IN_PROGRESS)
    assert engagement.started_at == datetime(2024, 9, 5, 9, 0, tzinfo=CEST)


# -- people, roles, client ---------------------------------------------------------------

def test_roles_and_the_client() -> None:
    engagement = engagement_of()
    assert engagement.roles == Roles(points_of_contact=(VADIM,), project_managers=(JOHN,),
                                     assignee=VADIM)
    assert engagement.client == Client(key="acme-shoes-aps", name="Acme Shoes ApS",
                                       people=(KIM, KLAUS), decision_makers=(KIM,))


def test_an_account_manager_field_replaces_the_responsible_person() -> None:
    engagement = engagement_of(settings=settings_with(fields={
        "account_manager": "UF_CRM_1725001000", "project_manager": "UF_CRM_1725001010"}))
    assert engagement.roles == Roles(points_of_contact=(JOHN,), project_managers=(),
                                     assignee=VADIM)
    assert engagement.client.decision_makers is None  # not mapped: not configured


def test_people_sides() -> None:
    catalogue = warm_catalogue()
    catalogue.learn({"users_1": ("user.get", {"filter": {"ID": ["7", "8", "9"]}})}, {
        "users_1": [{"ID": "7", "NAME": "Carla", "LAST_NAME": "Client", "USER_TYPE": "extranet",
                     "EMAIL": "carla@acme.example", "UF_DEPARTMENT": []},
                    {"ID": "8", "NAME": "Old", "LAST_NAME": "Box", "UF_DEPARTMENT": [4]}]})
    results = all_results()
    results["deal"]["item"]["UF_CRM_1725001001"] = ["7", "8", "9", "CO_9", "L_12"]
    results["deal"]["item"]["assignedById"] = 44
    engagement = engagement_of(results, settings=settings_with(fields={
        "decision_maker": "UF_CRM_1725001001", "project_manager": "UF_CRM_1725001000"}),
        catalogue=catalogue)
    assert engagement.client.decision_makers == (
        Person("7", "Carla Client", Side.CLIENT, "carla@acme.example"),  # extranet
        Person("8", "Old Box", Side.AGENCY),  # no USER_TYPE, in a department
        Person("9", "User 9", Side.UNKNOWN),  # user.get did not return it
        Person("company:9", "Company 9", Side.CLIENT),
        Person("lead:12", "Lead 12", Side.CLIENT))
    assert engagement.roles.assignee == Person("44", "User 44", Side.UNKNOWN)  # not looked up


def test_extranet_users_are_told_by_the_user_type_filter() -> None:
    """With the `user_brief` scope user.get returns no USER_TYPE: the filter tells."""
    catalogue = PortalCatalogue()
    catalogue.learn({"users_0": ("user.get", {"filter": {"ID": ["7", "8"]}})}, {
        "users_0": [{"ID": "7", "NAME": "Carla", "LAST_NAME": "Client", "UF_DEPARTMENT": []},
                    {"ID": "8", "NAME": "Ola", "LAST_NAME": "Nobody"}],
        "extranet_0": [{"ID": "7", "NAME": "Carla", "LAST_NAME": "Client"}]})
    users = catalogue.view().users
    assert (users["7"].user_type, users["8"].user_type) == ("extranet", None)
    results = all_results()
    results["deal"]["item"]["UF_CRM_1725001001"] = ["7", "8"]
    engagement = engagement_of(results, settings=settings_with(fields={
        "decision_maker": "UF_CRM_1725001001"}), catalogue=catalogue)
    assert engagement.client.decision_makers == (Person("7", "Carla Client", Side.CLIENT),
                                                 Person("8", "Ola Nobody", Side.UNKNOWN))


def test_the_client_field_comes_before_the_company_and_a_contact_last() -> None:
    results = all_results()
    named = engagement_of(results, settings=settings_with(fields={
        "client": "UF_CRM_1725001005"}))  # a list field naming the client
    assert (named.client.key, named.client.name) == ("bank-transfer", "Bank transfer")
    del results["company"]
    by_contact = engagement_of(results)
    assert (by_contact.client.key, by_contact.client.name) == ("kim-marketer", "Kim Marketer")


# -- comments --------------------------------------------------------------------------

def test_comments_timeline_internal_emails_and_calls_public() -> None:
    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2024, 9, day, hour, minute, tzinfo=CEST)

    public, internal = Visibility.PUBLIC, Visibility.INTERNAL
    assert engagement_of().comments == (
        Comment("activity:20", VADIM, public, at(2, 10), "Outgoing call Klaus Weber"),
        Comment("999", VADIM, internal, at(2, 12), "New comment was added"),
        Comment("1000", VADIM, internal, at(2, 12, 30), "Test comment"),
        Comment("activity:21", KLAUS, public, at(3, 9),
                "Question about the estimate\nHello,\n\ncan you explain line 4 of the "
                "estimate?\n\nKlaus"),
        Comment("activity:22", JOHN, public, at(3, 11),
                "Re: Question about the estimate\nLine 4 is the SEO audit.\n\n> can you "
                "explain line 4 of the estimate?"),
        Comment("activity:26", KLAUS, public, at(4, 9), "Incoming call Klaus Weber"),
        Comment("activity:26:answered", VADIM, public, at(4, 9, 12),
                "Incoming call Klaus Weber"),
        Comment("activity:25", KLAUS, public, at(5, 17), "Missed call Klaus Weber"),
        Comment("1003", JOHN, internal, at(5, 19),
                "> FAIL Every client comment answered within the SLA\u200b\n"
                "@Vadim Valeev I will call Klaus back tomorrow."),
    )


def test_the_documented_timeline_comments_are_internal_notes_with_files() -> None:
    documented = shared("response_crm.timeline.comment.json")["crm.timeline.comment.list"]
    engagement = engagement_of({**all_results(), "comments": documented["result"]})
    msk = timezone(timedelta(hours=3))
    assert [c for c in engagement.comments if not c.id.startswith("activity:")] == [
        Comment("999", VADIM, Visibility.INTERNAL, datetime(2020, 3, 2, 12, 0, tzinfo=msk),
                "New comment was added"),
        Comment("1000", VADIM, Visibility.INTERNAL, datetime(2020, 3, 2, 12, 0, tzinfo=msk),
                "Test comment")]
    assert [doc for doc in engagement.documents if doc.id.startswith("file:")] == [
        Document("file:1", DocumentKind.OTHER, "1.gif", datetime(2020, 3, 2, 12, 0, tzinfo=msk),
                 author=VADIM),
        Document("file:2", DocumentKind.OTHER, "2.gif", datetime(2020, 3, 2, 12, 0, tzinfo=msk),
                 author=VADIM)]


def test_client_messages_pair_with_the_agencys_next_email_or_call() -> None:
    assert [(question.id, answer.id if answer else None)
            for question, answer in engagement_of().replies] == [
        ("activity:21", "activity:22"), ("activity:26", "activity:26:answered"),
        ("activity:25", None)]


def test_an_incoming_email_from_no_crm_client_is_from_nobody_known() -> None:
    results = all_results()
    for activity in results["activities"]:
        if activity["ID"] == "21":
            activity["COMMUNICATIONS"] = [{"ID": "9", "TYPE": "EMAIL",
                                           "VALUE": "someone@example.org"}]
    [question] = [c for c in engagement_of(results).comments if c.id == "activity:21"]
    assert question.author == Person("activity:21:sender", "someone@example.org",
                                     Side.UNKNOWN)


def test_the_sticky_comment_is_found_by_id_or_marker_and_left_out() -> None:
    comments = all_results()["comments"]
    by_id = find_sticky(comments, "1001", "1")
    assert (by_id.comment["ID"], [c["ID"] for c in by_id.stale]) == ("1001", ["998"])
    by_marker = find_sticky(comments, None, "1")
    assert (by_marker.comment["ID"], [c["ID"] for c in by_marker.stale]) == ("1001", ["998"])
    gone = find_sticky(comments, "5", "1")  # the stored one was deleted by a person
    assert (gone.comment["ID"], [c["ID"] for c in gone.stale]) == ("1001", ["998"])
    older = find_sticky(comments, "998", "1")  # the stored id wins over a newer copy
    assert (older.comment["ID"], [c["ID"] for c in older.stale]) == ("998", ["1001"])
    none = find_sticky([c for c in comments if c["ID"] not in ("998", "1001")], None, "1")
    assert (none.comment, none.stale) == (None, ())

    ids = [comment.id for comment in engagement_of(known_sticky_id="1001").comments]
    assert "1001" not in ids and "998" not in ids
    assert "1003" in ids  # John quoting the sticky comment keeps his comment


def test_without_a_bot_user_every_marker_comment_is_ours() -> None:
    catalogue = warm_catalogue()
    settings = settings_with(bot_user_id=None, webhook_url=None, outgoing_token=None,
                             client_id="local.1", client_secret="s",
                             public_url="https://guard.example")
    assert settings.bot_user_id is None
    search = find_sticky(all_results()["comments"], None, settings.bot_user_id)
    assert (search.comment["ID"], [c["ID"] for c in search.stale]) == ("1003", ["998", "1001"])
    ids = [c.id for c in engagement_of(settings=settings, catalogue=catalogue).comments]
    assert [i for i in ids if not i.startswith("activity:")] == ["999", "1000"]


# -- documents, time, money ----------------------------------------------------------------

def test_documents_from_templates_file_fields_and_comment_files() -> None:
    assert engagement_of().documents == (
        Document("field-file:4321", DocumentKind.ESTIMATE, "Estimate",
                 datetime(2024, 8, 30, 14, 29, tzinfo=CEST)),
        Document("file:1", DocumentKind.OTHER, "1.gif",
                 datetime(2024, 9, 2, 12, 0, tzinfo=CEST), author=VADIM),
        Document("file:2", DocumentKind.OTHER, "2.gif",
                 datetime(2024, 9, 2, 12, 0, tzinfo=CEST), author=VADIM),
        Document("file:3", DocumentKind.BRIEF, "Brief – Acme webshop.docx",
                 datetime(2024, 9, 2, 12, 30, tzinfo=CEST), author=JOHN),
        Document("document:1523", DocumentKind.OTHER, "Act (USA) 1",
                 datetime(2024, 9, 2, 16, 4, 40, tzinfo=CEST), template_id="115"),
        Document("document:1524", DocumentKind.CONTRACT, "Contract 2024-17",
                 datetime(2024, 9, 3, 10, 0, tzinfo=CEST), template_id="117"),
    )


def test_time_from_calls_meetings_and_task_logs() -> None:
    assert engagement_of().time_entries == (
        TimeEntry(VADIM, 0.5, TimeKind.CALL, datetime(2024, 9, 2, 10, 0, tzinfo=CEST)),
        TimeEntry(VADIM, 0.2, TimeKind.CALL, datetime(2024, 9, 4, 9, 0, tzinfo=CEST)),
        TimeEntry(VADIM, 1.0, TimeKind.WORK, datetime(2024, 9, 4, 10, 33, tzinfo=CEST)),
        TimeEntry(VADIM, 1.5, TimeKind.MEETING, datetime(2024, 9, 4, 14, 0, tzinfo=CEST)),
    )  # the missed call, the planned meeting and the to-do took no time


def test_a_task_without_logged_time_needs_no_lookup() -> None:
    documented = shared("response_tasks.task.get.json")["result"]["task"]  # no time logged
    results = {**all_results(), "tasks": {"tasks": [documented]}}
    assert lookups_needed(results, SETTINGS, warm_catalogue()).tasks == {}
    assert [entry.kind for entry in engagement_of(results).time_entries] == [
        TimeKind.CALL, TimeKind.CALL, TimeKind.MEETING]


def test_a_meeting_still_going_on_is_not_counted_yet() -> None:
    during = datetime(2024, 9, 4, 13, 0, tzinfo=UTC)  # 15:00 CEST, the kick-off ends 15:30
    engagement = build_engagement(REF, all_results(), SETTINGS, warm_catalogue(), during)
    assert [entry.kind for entry in engagement.time_entries] == [
        TimeKind.CALL, TimeKind.CALL, TimeKind.WORK]


def test_smart_invoices_paid_by_stage_semantics() -> None:
    assert engagement_of().invoices == (
        Invoice("INV-2024-001", Decimal("5000"), date(2024, 9, 1), date(2024, 9, 10),
                paid=True, paid_on=date(2024, 9, 5), currency="EUR"),
        Invoice("INV-2024-002", Decimal("7500.5"), date(2024, 9, 3), date(2024, 9, 30),
                paid=False, currency="EUR"),
    )  # INV-2024-003 was declined


@pytest.mark.parametrize("no_date", ["0000-00-00", "2027-02-29T10:00:00+03:00"])
def test_a_date_that_is_none_reads_as_empty_not_a_failed_deal(no_date: str) -> None:
    """Text shaped like a date, as a portal may keep it: the deal is still evaluated."""
    first = first_answer()
    deal = first["result"]["deal"]["item"]
    paid, unpaid = first["result"]["invoices"]["items"][:2]
    deal["closedate"], paid["movedTime"], unpaid["closedate"] = no_date, no_date, no_date
    portal = FakeBitrix24(first, second_answer())

    engagement = fetch_snapshot(portal, REF, SETTINGS, PortalCatalogue(), None, NOW).engagement

    assert engagement.due is None
    assert engagement.invoices == (  # the unpaid one has no due date: never overdue
        Invoice("INV-2024-001", Decimal("5000"), date(2024, 9, 1), date(2024, 9, 10),
                paid=True, paid_on=None, currency="EUR"),)


def test_invoices_are_not_available_without_their_stages_or_their_list() -> None:
    catalogue = PortalCatalogue()
    catalogue.learn({}, first_answer()["result"])  # no smart-invoice stages learnt
    assert engagement_of(catalogue=catalogue).invoices is None
    results = all_results()
    del results["invoices"]
    assert engagement_of(results).invoices is None
    results["invoices"] = {"items": []}
    assert engagement_of(results).invoices == ()  # none at all: a real answer


# -- mapped fields -------------------------------------------------------------------------

def test_mapped_fields() -> None:
    assert dict(engagement_of().fields) == {
        "estimate_approved": True,  # boolean "Y"
        "budget_hours": 120.0,
        "channels": ("SEO", "PPC"),  # enumeration ids 79, 81
        "payment_method": "Bank transfer",  # enumeration id 90
        "results_expected_on": date(2024, 12, 1),
        "goals": None,  # "" — mapped, empty: a finding
        "prepayment_received": False,  # boolean "N"
        "input_data": None,  # null
        "sale_date": date(2024, 8, 30),  # the standard BEGINDATE
    }


def test_unmapped_is_absent_and_an_unknown_field_is_empty() -> None:
    engagement = engagement_of(settings=settings_with(fields={"goals": "UF_CRM_999"}))
    assert dict(engagement.fields) == {"goals": None}
    assert not engagement.field_mapped("budget_hours")


@pytest.mark.parametrize(("raw", "flag"), [
    ("Y", True), ("N", False), (1, True), (0, False), ("1", True), ("0", False),
    (True, True), ("", None), (None, None)])
def test_bitrix24_booleans(raw: Any, flag: bool | None) -> None:
    results = all_results()
    results["deal"]["item"]["UF_CRM_1725001002"] = raw
    assert engagement_of(results).fields["estimate_approved"] is flag


def test_money_and_single_values() -> None:
    catalogue = warm_catalogue()
    results = all_results()
    results["deal_fields"]["fields"]["UF_CRM_1725001003"]["type"] = "money"
    results["deal"]["item"]["UF_CRM_1725001003"] = "1500.50|EUR"
    results["deal"]["item"]["UF_CRM_1725001004"] = []
    catalogue.learn({}, {"deal_fields": results["deal_fields"]})
    fields = engagement_of(results, catalogue=catalogue).fields
    assert (fields["budget_hours"], fields["channels"]) == (1500.5, None)


# -- text ------------------------------------------------------------------------------

def test_bbcode_to_text() -> None:
    assert bbcode_text("[B]Bold[/B] [url=https://x.example]the link[/url] "
                       "[USER=7]Carla Client[/USER]\n[QUOTE]first\nsecond[/QUOTE]\n"
                       "[list][*]one[/list] &#91;not a tag&#93;") == (
        "Bold the link @Carla Client\n> first\n> second\none [not a tag]")


def test_html_to_text() -> None:
    assert html_text("<div>Hi <b>Klaus</b>,<br>thanks!</div><blockquote><p>Old</p>"
                     "<p>mail</p></blockquote><style>p{}</style>") == (
        "Hi Klaus,\nthanks!\n\n> Old\n\n> mail")


# -- the catalogue ---------------------------------------------------------------------

def test_the_catalogue_learns_from_many_threads_at_once() -> None:
    catalogue = PortalCatalogue()

    def learn(first: int) -> None:
        for user_id in range(first, first + 50):
            catalogue.learn({}, {"users_0": [{"ID": str(user_id), "NAME": f"U{user_id}",
                                              "USER_TYPE": "employee"}]})

    threads = [threading.Thread(target=learn, args=(start,)) for start in range(0, 400, 50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(int, catalogue.view().users)) == list(range(400))


def test_people_the_portal_does_not_return_are_not_asked_for_again() -> None:
    catalogue = PortalCatalogue()
    catalogue.learn({"users_0": ("user.get", {"filter": {"ID": ["1", "3", "9"]}}),
                     "contacts_0": ("crm.contact.list", {"filter": {"@ID": ["85", "86"]}})},
                    all_results())
    view = catalogue.view()
    assert (view.users["9"].found, view.users["1"].found) == (False, True)
    assert view.contacts["86"].name == "Contact 86"  # deleted: named by its id
    results = all_results()
    results["deal"]["item"].update(assignedById=9, contactIds=[84, 85, 86])
    lookups = lookups_needed(results, SETTINGS, catalogue)
    assert (lookups.users, lookups.contacts) == (frozenset(), frozenset())


def test_cleared_catalogue_reads_everything_again() -> None:
    catalogue = warm_catalogue()
    catalogue.clear()
    assert "deal_fields" in snapshot_commands("410", SETTINGS, catalogue)


# -- end to end: the mapping feeds the rules ---------------------------------------------

def test_the_snapshot_feeds_the_rules() -> None:
    report = evaluate(engagement_of(), build_config({}), NOW)
    statuses = {result.rule.id: result.status
                for result in (*report.findings, *report.passed, *report.not_configured)}
    assert report.faulty == ()
    assert {rule: statuses[rule] for rule in (
        "single-point-of-contact", "decision-maker", "client-answered", "overdue-invoices",
        "official-payment", "contract-reviewed", "analytics-in-place")} == {
        "single-point-of-contact": Status.PASS,  # Vadim, the responsible person
        "decision-maker": Status.PASS,  # Kim
        "client-answered": Status.PASS,  # the missed call is 3 business hours old
        "overdue-invoices": Status.PASS,  # INV-2024-002 is due on 30 September
        "official-payment": Status.PASS,  # bank transfer
        "contract-reviewed": Status.FAIL,  # the contract came after the first invoice
        "analytics-in-place": Status.NOT_CONFIGURED,  # goal_type is not mapped
    }


def test_a_later_look_finds_the_missed_call_unanswered() -> None:
    later = datetime(2024, 9, 10, 12, 0, tzinfo=UTC)
    engagement = build_engagement(REF, all_results(), SETTINGS, warm_catalogue(), later)
    report = evaluate(engagement, build_config({}), later)
    [result] = [r for r in report.findings if r.rule.id == "client-answered"]
    assert [reason.message.code for reason in result.outcome.reasons] == ["unanswered"]


def test_results_are_not_changed_by_the_mapping() -> None:
    results = all_results()
    before = copy.deepcopy(results)
    engagement_of(results)
    assert results == before


def test_a_crm_field_of_one_kind_holds_bare_ids_of_that_kind() -> None:
    """Set to companies only, the field stores `4`, company 4 — not user 4."""
    results = all_results()
    fields = results["deal_fields"]["fields"]
    fields["UF_CRM_1725001001"]["settings"] = {"LEAD": "N", "CONTACT": "N", "COMPANY": "Y",
                                               "DEAL": "N"}
    results["deal"]["item"]["UF_CRM_1725001001"] = ["4"]
    catalogue = PortalCatalogue()
    catalogue.learn({}, results)
    engagement = engagement_of(results, settings=settings_with(fields={
        "decision_maker": "UF_CRM_1725001001"}), catalogue=catalogue)
    assert engagement.client.decision_makers == (Person("company:4", "Company 4", Side.CLIENT),)
