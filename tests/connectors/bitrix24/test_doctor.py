"""`clientguard doctor bitrix24` against stubbed portal answers: every problem is a check
with a fix, never an exception, and everything is asked in one `batch`.

Every test runs inside `portal`, a `responses.RequestsMock` that fails on an unused stub, and
talks to it through the real `Bitrix24Client` (webhook auth, or an installed portal's
tokens) whose throttle and retries must never sleep. The answers are
`fixtures/rest/batch__doctor__webhook.json` and its neighbours, composed from the documented
examples (`fixtures/rest/SOURCES.md`); a test changes its own fresh copy. Expected values are
written out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import responses
from responses import matchers

from connectors.bitrix24.auth import PortalAuth, WebhookAuth
from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.doctor import (
    KINDS,
    diagnose,
    diagnosis_commands,
    not_connected,
    render_diagnosis,
)
from connectors.bitrix24.settings import Bitrix24Settings, Bitrix24SettingsSchema
from connectors.bitrix24.throttle import LeakyBucket
from connectors.doctor import Check, Diagnosis, Level, render_fields
from connectors.mapping import MAPPABLE
from tests.connectors.bitrix24.stores import MemoryInstallationStore

REST_FIXTURES = Path(__file__).parent / "fixtures" / "rest"
WEBHOOK_CODE = "WITNESS0doctor0code9"
REST = f"https://acme.bitrix24.com/rest/1/{WEBHOOK_CODE}"
APP_REST = "https://acme.bitrix24.com/rest"
MEMBER = "a223c6b3710f85df22e9377d6c4f7553"
ACCESS = "WITNESS-doctor-access-9f3k2m"

FIELDS = {
    "project_manager": "UF_CRM_1725001000", "decision_maker": "UF_CRM_1725001001",
    "estimate_approved": "UF_CRM_1725001002", "budget_hours": "UF_CRM_1725001003",
    "channels": "UF_CRM_1725001004", "payment_method": "UF_CRM_1725001005",
    "results_expected_on": "UF_CRM_1725001006", "goals": "UF_CRM_1725001007",
    "prepayment_received": "UF_CRM_1725001009", "input_data": "UF_CRM_1725001010",
    "sale_date": "BEGINDATE", "contract_reviewed": "UF_CRM_1725001011",
    "goal_type": "UF_CRM_1725001012", "analytics_confirmed": "UF_CRM_1725001013",
    "discount_requests": "UF_CRM_1725001014",
}
"""Every meaning a rule cannot do without, mapped to a field that suits it."""


def webhook_settings(**overrides: Any) -> Bitrix24Settings:
    """A webhook connection; its user, 1, is the bot user."""
    return Bitrix24SettingsSchema().load({
        "site": "acme-b24", "webhook_url": f"{REST}/", "outgoing_token": "outgoing-token",
        "fields": FIELDS, **overrides})


def app_settings(**overrides: Any) -> Bitrix24Settings:
    """A local application; the installing user, 1, is the bot user (as
    `Bitrix24Connector.settings_for` sets it)."""
    return Bitrix24SettingsSchema().load({
        "client_id": "local.6716ce0a1b2c34.56789012", "client_secret": "WITNESS-secret-x",
        "public_url": "https://guard.agency.example", "bot_user_id": "1", "fields": FIELDS,
        **overrides})


def rest(name: str) -> Any:
    """A fresh copy of a fixture, free to change."""
    return json.loads((REST_FIXTURES / name).read_text(encoding="utf-8"))


def doctor_answer() -> dict[str, Any]:
    return rest("batch__doctor__webhook.json")


def results(answer: dict[str, Any]) -> dict[str, Any]:
    return answer["result"]["result"]


def never_sleep(seconds: float) -> None:
    raise AssertionError(f"the doctor slept {seconds} s")


def webhook_client() -> Bitrix24Client:
    bucket = LeakyBucket(2.0, 50, clock=lambda: 0.0, sleep=never_sleep)
    return Bitrix24Client(WebhookAuth(f"{REST}/", site="acme-b24"), bucket, sleep=never_sleep,
                          clock=lambda: 1_724_916_000.0)


def app_client() -> Bitrix24Client:
    store = MemoryInstallationStore({MEMBER: {
        "member_id": MEMBER, "domain": "acme.bitrix24.com",
        "client_endpoint": f"{APP_REST}/", "server_endpoint": "https://oauth.bitrix.info/rest/",
        "application_token": "x" * 32, "access_token": ACCESS, "refresh_token": "r" * 32,
        "expires": 1_724_919_600, "scope": "crm,task,tasks,im,user_brief,placement",
        "user_id": "1", "installed": True}})
    bucket = LeakyBucket(2.0, 50, clock=lambda: 0.0, sleep=never_sleep)
    auth = PortalAuth(store, MEMBER, "local.6716ce0a1b2c34.56789012", "WITNESS-secret-x",
                      clock=lambda: 1_724_916_000.0)
    return Bitrix24Client(auth, bucket, sleep=never_sleep, clock=lambda: 1_724_916_000.0)


def run(portal: responses.RequestsMock, answer: Any, settings: Bitrix24Settings | None = None,
        *, status: int = 200) -> Diagnosis:
    """The doctor on a webhook portal whose one batch answers `answer`."""
    portal.post(f"{REST}/batch", json=answer, status=status)
    return diagnose(webhook_client(), settings or webhook_settings())


def check(diagnosis: Diagnosis, name: str) -> Check:
    found = [c for c in diagnosis.checks if c.name == name]
    assert len(found) == 1, (name, [c.name for c in diagnosis.checks])
    return found[0]


# -- a ready portal ------------------------------------------------------------------------

def test_a_ready_portal_passes_every_check_with_one_batch(portal):
    portal.post(f"{REST}/batch", json=doctor_answer(), match=[matchers.json_params_matcher({
        "halt": 0, "cmd": {
            "profile": "profile",
            "scope": "scope",
            "deal_fields": "crm.item.fields?entityTypeId=2&useOriginalUfNames=Y",
            "pipelines": "crm.category.list?entityTypeId=2",
            "bot_user": "user.get?filter[ID]=1",
            "invoices": "crm.item.list?entityTypeId=31&select[0]=id"}})])
    diagnosis = diagnose(webhook_client(), webhook_settings())
    assert [c for c in diagnosis.checks if c.level is not Level.OK] == []
    assert diagnosis.ok and diagnosis.level is Level.OK
    assert diagnosis.site == "acme-b24"
    assert len(portal.calls) == 1
    assert check(diagnosis, "REST access").message == (
        "the incoming webhook works: acting as Vadim Valeev (user 1, administrator)")
    assert check(diagnosis, "scopes").message == "crm, task, tasks, im, user_brief granted"
    assert check(diagnosis, "health check button").message == (
        "not available with a webhook (placements need the local application); everything "
        "else works without it")
    assert check(diagnosis, "bot user").message == (
        "Vadim Valeev (user 1), the user ClientGuard writes as")
    assert check(diagnosis, "pipelines").message == (
        "all hold engagements: Funnel with Original Name (9), Lead Route (10), "
        "Path to Success (11), General (0)")
    assert check(diagnosis, "smart invoices").message == "readable (3 invoices)"
    assert check(diagnosis, "field budget_hours").message == (
        "UF_CRM_1725001003 (“Budget, hours”) is double")
    assert check(diagnosis, "unmapped account_manager").message == (
        "not mapped (optional): the deal's responsible person (ASSIGNED_BY_ID) is the account "
        "manager")
    assert check(diagnosis, "unmapped client").message == (
        "not mapped (optional): the client's name is the deal's company (else its first "
        "contact)")


def test_every_meaning_has_a_kind():
    assert set(KINDS) == set(MAPPABLE)


def test_an_installed_application_is_checked_with_app_info_in_the_same_batch(portal):
    answer = doctor_answer()
    results(answer)["app_info"] = rest("app.info.json")["result"]
    results(answer)["scope"].append("placement")
    portal.post(f"{APP_REST}/batch", json=answer, match=[matchers.json_params_matcher({
        "halt": 0, "auth": ACCESS, "cmd": {
            "profile": "profile", "scope": "scope", "app_info": "app.info",
            "deal_fields": "crm.item.fields?entityTypeId=2&useOriginalUfNames=Y",
            "pipelines": "crm.category.list?entityTypeId=2",
            "bot_user": "user.get?filter[ID]=1",
            "invoices": "crm.item.list?entityTypeId=31&select[0]=id"}})])
    diagnosis = diagnose(app_client(), app_settings())
    assert diagnosis.ok and diagnosis.level is Level.OK, render_diagnosis(diagnosis)
    assert diagnosis.site == MEMBER
    assert check(diagnosis, "REST access").message == (
        "the application's tokens work: acting as Vadim Valeev (user 1, administrator)")
    assert check(diagnosis, "application").message == "installed (version 4, plan de_ent10000)"
    assert check(diagnosis, "scopes").message == (
        "crm, task, tasks, im, user_brief, placement granted")
    assert "health check button" not in [c.name for c in diagnosis.checks]


def test_an_application_whose_installation_is_not_finished_fails(portal):
    answer = doctor_answer()
    results(answer)["app_info"] = {**rest("app.info.json")["result"], "INSTALLED": False}
    results(answer)["scope"].append("placement")
    portal.post(f"{APP_REST}/batch", json=answer)
    result = check(diagnose(app_client(), app_settings()), "application")
    assert result.level is Level.FAIL
    assert result.message == ("installation not finished (version 4, plan de_ent10000): "
                              "Bitrix24 sends no events and shows no Health check button "
                              "until it is")
    assert result.fix.startswith("A Bitrix24 administrator must open the ClientGuard "
                                 "application in the portal once")


# -- the deal fields -----------------------------------------------------------------------

def test_the_field_list_names_every_deal_field_with_its_label_and_type(portal):
    diagnosis = run(portal, doctor_answer())
    rows = {row.id: row for row in diagnosis.fields}
    assert len(rows) == len(results(doctor_answer())["deal_fields"]["fields"]) == 32
    assert [row.custom for row in diagnosis.fields] == sorted(
        (row.custom for row in diagnosis.fields), reverse=True)
    channels = rows["UF_CRM_1725001004"]
    assert (channels.name, channels.type, channels.custom, channels.suits,
            channels.mapped_as) == ("Channels", "enumeration, multiple", True,
                                    ("text", "list"), ("channels",))
    # crm-company-fields.md: a custom field's title is its id, its label the listLabel
    assert rows["UF_CRM_1687188367"].name == "Subsidiary"
    assert (rows["BEGINDATE"].name, rows["BEGINDATE"].custom, rows["BEGINDATE"].suits,
            rows["BEGINDATE"].mapped_as) == ("Start date", False, ("date",), ("sale_date",))
    assert rows["ASSIGNED_BY_ID"].suits == ("staff", "person")
    assert rows["UF_CRM_1725001008"].suits == ()  # a file field means nothing to a rule
    lines = render_fields(diagnosis.fields).splitlines()
    assert lines[0].split() == ["id", "name", "type", "custom", "suits", "mapped", "as"]
    assert re.split(" {2,}", lines[3]) == ["UF_CRM_1725001004", "Channels",
                                           "enumeration, multiple", "yes", "text, list",
                                           "channels"]


def test_a_mapped_field_the_portal_lacks_fails(portal):
    diagnosis = run(portal, doctor_answer(),
                    webhook_settings(fields={**FIELDS, "budget_hours": "UF_CRM_1725009999"}))
    result = check(diagnosis, "field budget_hours")
    assert result.level is Level.FAIL and not diagnosis.ok
    assert result.message == "UF_CRM_1725009999 is not a deal field of this portal"
    assert result.fix == ("Map budget_hours to an id from the field list: a number (double), "
                          "integer or money field.")


@pytest.mark.parametrize("written", ["begindate", "BeginDate"])
def test_a_field_id_spelt_otherwise_names_the_id_to_write(portal, written):
    result = check(run(portal, doctor_answer(),
                       webhook_settings(fields={**FIELDS, "sale_date": written})),
                   "field sale_date")
    assert result.level is Level.FAIL
    assert result.message == f"{written} is not how the field list names it: BEGINDATE"
    assert result.fix == 'Write it as "BEGINDATE".'


@pytest.mark.parametrize(("name", "field_id", "level", "said"), [
    pytest.param("budget_hours", "UF_CRM_1725001000", Level.FAIL,
                 "UF_CRM_1725001000 (“Project manager”) is employee; ClientGuard cannot read "
                 "a number from it", id="number-from-an-employee-field"),
    pytest.param("prepayment_received", "UF_CRM_1725001006", Level.FAIL,
                 "UF_CRM_1725001006 (“Results expected on”) is date; ClientGuard cannot read "
                 "a yes/no value from it", id="flag-from-a-date"),
    pytest.param("channels", "OBSERVERS", Level.FAIL,
                 "OBSERVERS (“Observers”) is user, multiple; ClientGuard cannot read a list "
                 "from it", id="list-from-users"),
    pytest.param("decision_maker", "COMPANY_ID", Level.FAIL,
                 "COMPANY_ID (“Company”) is crm_company; ClientGuard cannot read a person from "
                 "it", id="person-from-the-company-field"),
    pytest.param("decision_maker", "UF_CRM_1687188367", Level.OK,
                 "UF_CRM_1687188367 (“Subsidiary”) is crm",
                 id="person-from-a-companies-only-binding"),
    pytest.param("project_manager", "UF_CRM_1725001007", Level.WARN,
                 "UF_CRM_1725001007 (“Goals and KPIs”) is string; ClientGuard reads it, but a "
                 "value it cannot read counts as empty", id="user-ids-typed-as-text"),
    pytest.param("account_manager", "UF_CRM_1725001001", Level.WARN,
                 "UF_CRM_1725001001 (“Decision maker”) is crm, multiple; a CRM binding names "
                 "the client's contacts or companies, not agency staff",
                 id="agency-role-from-a-crm-binding"),
    pytest.param("analytics_confirmed", "UF_CRM_1725001005", Level.WARN,
                 "UF_CRM_1725001005 (“Payment method”) is enumeration; ClientGuard reads it",
                 id="flag-from-a-list"),
    pytest.param("decision_maker", "CONTACT_IDS", Level.OK,
                 "CONTACT_IDS (“CONTACT_IDS”) is crm_contact, multiple", id="deal-contacts"),
    pytest.param("account_manager", "ASSIGNED_BY_ID", Level.OK,
                 "ASSIGNED_BY_ID (“Responsible”) is user", id="responsible-person"),
    pytest.param("manager_hours_budget", "UF_CRM_1725001015", Level.OK,
                 "UF_CRM_1725001015 (“Prepayment amount”) is money", id="number-from-money"),
    pytest.param("results_expected_on", "CREATED_TIME", Level.OK,
                 "CREATED_TIME (“Created at”) is datetime", id="date-from-date-time"),
    pytest.param("goals", "SOURCE_DESCRIPTION", Level.OK,
                 "SOURCE_DESCRIPTION (“Additional source info”) is text", id="text"),
    pytest.param("client", "UF_CRM_64A29A1CD5CC2", Level.OK,
                 "UF_CRM_64A29A1CD5CC2 (“New Field”) is string", id="label-not-title"),
])
def test_each_mapped_field_type_is_judged_by_its_meaning(portal, name, field_id, level, said):
    result = check(run(portal, doctor_answer(),
                       webhook_settings(fields={**FIELDS, name: field_id})), f"field {name}")
    assert result.level is level
    assert said in result.message


def test_unmapped_meanings_name_the_rules_that_report_not_configured(portal):
    mapping = {name: field for name, field in FIELDS.items()
               if name not in ("budget_hours", "goals", "estimate_approved")}
    diagnosis = run(portal, doctor_answer(), webhook_settings(fields=mapping))
    budget = check(diagnosis, "unmapped budget_hours")
    assert budget.level is Level.WARN
    assert budget.message == "not mapped: service-cost, meeting-load report “not configured”"
    assert budget.fix == ('Map it if the agency keeps it: [bitrix24.fields] budget_hours = '
                          '"UF_CRM_…", a number (double), integer or money field.')
    assert check(diagnosis, "unmapped goals").message == (
        "not mapped (optional): goals-defined reads input_data")
    assert check(diagnosis, "unmapped estimate_approved").message == (
        "not mapped (optional): transparent-estimate checks without it")
    assert check(diagnosis, "unmapped account_manager").level is Level.OK
    assert diagnosis.ok  # warnings only


def test_unreadable_deal_fields_fail_and_leave_the_mapping_unchecked(portal):
    answer = doctor_answer()
    del results(answer)["deal_fields"]
    answer["result"]["result_error"] = {"deal_fields": {
        "error": "insufficient_scope",
        "error_description": "The request requires higher privileges than provided by the "
                             "webhook token"}}
    diagnosis = run(portal, answer)
    fields = check(diagnosis, "fields")
    assert fields.level is Level.FAIL
    assert fields.message.startswith("cannot read the deal fields: batch deal_fields "
                                     "(crm.item.fields): Bitrix24 answered insufficient_scope")
    assert diagnosis.fields == ()
    assert not [c for c in diagnosis.checks if c.name.startswith("field ")]
    assert check(diagnosis, "unmapped account_manager").level is Level.OK


# -- scopes --------------------------------------------------------------------------------

def test_missing_scopes_say_what_each_is_for(portal):
    answer = doctor_answer()
    results(answer)["scope"] = ["crm", "task"]
    diagnosis = run(portal, answer)
    scopes = check(diagnosis, "scopes")
    assert scopes.level is Level.FAIL and not diagnosis.ok
    assert scopes.message == (
        "missing tasks: tasks of the new task card, REST 3.0; im: notifying the deal's "
        "responsible person, when notify_responsible is on; user_brief: people's names, and "
        "telling employees from the client's extranet users")
    assert scopes.fix == ("Tick tasks, im, user_brief in the incoming webhook's permissions "
                          "(editing a webhook changes its URL: update webhook_url), or create "
                          "a new one.")


@pytest.mark.parametrize(("granted", "settings", "level"), [
    pytest.param(["crm", "task", "tasks", "user"], {}, Level.WARN, id="no-im"),
    pytest.param(["crm", "task", "tasks", "user"], {"notify_responsible": True}, Level.FAIL,
                 id="no-im-but-notifications-on"),
    pytest.param(["task", "tasks", "im", "user_brief"], {}, Level.FAIL, id="no-crm"),
    pytest.param(["crm", "task", "tasks", "im", "user_basic"], {}, Level.OK,
                 id="user-basic-covers-user-brief"),
])
def test_a_missing_scope_is_as_bad_as_what_needs_it(portal, granted, settings, level):
    answer = doctor_answer()
    results(answer)["scope"] = granted
    assert check(run(portal, answer, webhook_settings(**settings)), "scopes").level is level


def test_an_application_without_placement_warns(portal):
    answer = doctor_answer()
    results(answer)["app_info"] = rest("app.info.json")["result"]
    portal.post(f"{APP_REST}/batch", json=answer)
    scopes = check(diagnose(app_client(), app_settings()), "scopes")
    assert scopes.level is Level.WARN
    assert scopes.message == ("missing placement: the Health check tab and menu item in the "
                              "deal card")
    assert scopes.fix.startswith("Add them to the local application")


# -- the plan and the credentials ----------------------------------------------------------

@pytest.mark.parametrize("variant", ["application", "application_spec", "webhook"])
def test_a_portal_without_rest_on_its_plan_fails_clearly(portal, variant):
    error = rest("errors__rest_plan.json")[variant]
    diagnosis = run(portal, error["body"], status=error["http_status"])
    access = check(diagnosis, "REST access")
    assert access.level is Level.FAIL and not diagnosis.ok
    assert access.message.startswith("the portal's plan has no REST API: POST batch: "
                                     f"Bitrix24 answered {error['http_status']} ACCESS_DENIED: ")
    assert error["body"]["error_description"] in access.message
    assert access.fix.startswith("REST needs a commercial plan with REST (Vibe+), or the "
                                 "15-day trial")
    for name in ("scopes", "bot user", "pipelines", "smart invoices", "fields"):
        assert check(diagnosis, name).level is Level.WARN
        assert check(diagnosis, name).message.startswith("not checked")
    assert check(diagnosis, "unmapped account_manager").level is Level.OK  # settings only
    assert WEBHOOK_CODE not in render_diagnosis(diagnosis)


def test_a_deleted_webhook_fails_the_credentials(portal):
    # _includes/system-errors.md: no active webhook with this user id and code
    diagnosis = run(portal, {"error": "INVALID_CREDENTIALS",
                             "error_description": "Invalid request credentials"}, status=401)
    access = check(diagnosis, "REST access")
    assert access.level is Level.FAIL
    assert access.message == ("POST batch: Bitrix24 answered 401 INVALID_CREDENTIALS: Invalid "
                              "request credentials")
    assert "CLIENTGUARD_BITRIX24__WEBHOOK_URL" in access.fix
    assert WEBHOOK_CODE not in render_diagnosis(diagnosis)


def test_no_webhook_url_is_a_diagnosis_without_a_call():
    settings = Bitrix24SettingsSchema().load({"site": "acme-b24", "fields": FIELDS})
    diagnosis = not_connected(settings, "bitrix24 → webhook_url is needed to call the portal "
                                        "(CLIENTGUARD_BITRIX24__WEBHOOK_URL)")
    access = check(diagnosis, "REST access")
    assert access.level is Level.FAIL and not diagnosis.ok
    assert access.fix.startswith("Create an incoming webhook")
    assert diagnosis.site == "acme-b24"
    assert [c.name for c in diagnosis.checks[:6]] == [
        "REST access", "scopes", "bot user", "pipelines", "smart invoices", "fields"]


# -- bot user, pipelines, invoices ---------------------------------------------------------

def test_a_bot_user_the_portal_lacks_warns(portal):
    answer = doctor_answer()
    results(answer)["bot_user"] = []
    answer["result"]["result_total"]["bot_user"] = 0
    diagnosis = run(portal, answer)
    bot = check(diagnosis, "bot user")
    assert bot.level is Level.WARN and diagnosis.ok
    assert bot.message.startswith("user 1 does not exist on the portal (or is not active)")


def test_a_bot_user_other_than_the_webhooks_user_fails(portal):
    answer = doctor_answer()
    john = rest("batch__deal_410__cold_second.json")["result"]["result"]["users_0"][1]
    results(answer)["bot_user"] = [john]
    bot = check(run(portal, answer, webhook_settings(bot_user_id="3")), "bot user")
    assert bot.level is Level.FAIL
    assert bot.message.startswith("is John Doe (user 3) but the credentials act as user 1")
    assert bot.fix == 'Set [bitrix24] bot_user_id = "1" (the user the credentials act as).'


def test_an_application_without_a_bot_user_warns_and_asks_no_user(portal):
    answer = doctor_answer()
    results(answer)["app_info"] = rest("app.info.json")["result"]
    results(answer)["scope"].append("placement")
    del results(answer)["bot_user"]
    portal.post(f"{APP_REST}/batch", json=answer)
    settings = app_settings(bot_user_id=None)
    assert "bot_user" not in diagnosis_commands(settings)
    bot = check(diagnose(app_client(), settings), "bot user")
    assert bot.level is Level.WARN
    assert bot.message.startswith("not set; ClientGuard recognises its own comments")


def test_an_unknown_pipeline_fails(portal):
    diagnosis = run(portal, doctor_answer(), webhook_settings(deal_categories=["0", "7"]))
    pipelines = check(diagnosis, "pipelines")
    assert pipelines.level is Level.FAIL and not diagnosis.ok
    assert pipelines.message == (
        "7 in deal_categories: no such pipeline, or the REST user cannot read it; the portal "
        "has Funnel with Original Name (9), Lead Route (10), Path to Success (11), General (0)")
    assert pipelines.fix.startswith("Set [bitrix24] deal_categories to ids from this list")


def test_configured_pipelines_that_exist_pass(portal):
    pipelines = check(run(portal, doctor_answer(), webhook_settings(deal_categories=["0", "9"])),
                      "pipelines")
    assert pipelines.level is Level.OK
    assert pipelines.message == ("engagements are the deals of General (0), Funnel with "
                                 "Original Name (9)")


def test_more_than_fifty_pipelines_are_read_to_the_end(portal):
    answer = doctor_answer()
    answer["result"]["result_next"] = {"pipelines": 50}
    answer["result"]["result_total"]["pipelines"] = 51
    portal.post(f"{REST}/batch", json=answer)
    portal.post(f"{REST}/crm.category.list", json={
        "result": {"categories": [{"id": 57, "name": "Retainers", "sort": 900,
                                   "entityTypeId": 2, "isDefault": "N"}]},
        "total": 51, "time": {}},
        match=[matchers.json_params_matcher({"entityTypeId": 2, "start": 50})])
    diagnosis = diagnose(webhook_client(), webhook_settings(deal_categories=["57"]))
    assert check(diagnosis, "pipelines").message == (
        "engagements are the deals of Retainers (57)")


def test_unreadable_smart_invoices_warn_that_invoice_rules_are_not_configured(portal):
    answer = doctor_answer()
    del results(answer)["invoices"]
    del answer["result"]["result_total"]["invoices"]
    # crm-item-fields.md / crm-item-list.md: no read permission for the type
    answer["result"]["result_error"] = {"invoices": {
        "error": "ACCESS_DENIED", "error_description": "You do not have permission to view "
                                                       "this item"}}
    diagnosis = run(portal, answer)
    invoices = check(diagnosis, "smart invoices")
    assert invoices.level is Level.WARN and diagnosis.ok
    assert invoices.message == (
        "not available (batch invoices (crm.item.list): Bitrix24 answered ACCESS_DENIED: You "
        "do not have permission to view this item): overdue-invoices reports “not "
        "configured”; contract-reviewed checks without the first invoice")


# -- the text ------------------------------------------------------------------------------

def test_the_rendered_diagnosis(portal):
    answer = doctor_answer()
    results(answer)["scope"].remove("im")
    diagnosis = run(portal, answer, webhook_settings(
        fields={**FIELDS, "budget_hours": "UF_CRM_1725001000"}, deal_categories=["0", "7"]))
    assert render_diagnosis(diagnosis) == """\
Bitrix24 portal 'acme-b24':
  ok    REST access: the incoming webhook works: acting as Vadim Valeev (user 1, administrator)
  WARN  scopes: missing im: notifying the deal's responsible person, when notify_responsible \
is on
          fix: Tick im in the incoming webhook's permissions (editing a webhook changes its \
URL: update webhook_url), or create a new one.
  ok    health check button: not available with a webhook (placements need the local \
application); everything else works without it
  ok    bot user: Vadim Valeev (user 1), the user ClientGuard writes as
  FAIL  pipelines: 7 in deal_categories: no such pipeline, or the REST user cannot read it; \
the portal has Funnel with Original Name (9), Lead Route (10), Path to Success (11), General (0)
          fix: Set [bitrix24] deal_categories to ids from this list, and let the REST user \
read deals in them.
  ok    smart invoices: readable (3 invoices)
  ok    field project_manager: UF_CRM_1725001000 (“Project manager”) is employee
  ok    field decision_maker: UF_CRM_1725001001 (“Decision maker”) is crm, multiple
  ok    field estimate_approved: UF_CRM_1725001002 (“Estimate approved by the client”) is \
boolean
  FAIL  field budget_hours: UF_CRM_1725001000 (“Project manager”) is employee; ClientGuard \
cannot read a number from it
          fix: Map budget_hours to a number (double), integer or money field.
  ok    field channels: UF_CRM_1725001004 (“Channels”) is enumeration, multiple
  ok    field payment_method: UF_CRM_1725001005 (“Payment method”) is enumeration
  ok    field results_expected_on: UF_CRM_1725001006 (“Results expected on”) is date
  ok    field goals: UF_CRM_1725001007 (“Goals and KPIs”) is string
  ok    field prepayment_received: UF_CRM_1725001009 (“Prepayment received”) is boolean
  ok    field input_data: UF_CRM_1725001010 (“Client input data”) is string
  ok    field sale_date: BEGINDATE (“Start date”) is date
  ok    field contract_reviewed: UF_CRM_1725001011 (“Contract reviewed by legal”) is boolean
  ok    field goal_type: UF_CRM_1725001012 (“Goal type”) is enumeration
  ok    field analytics_confirmed: UF_CRM_1725001013 (“Analytics confirmed”) is boolean
  ok    field discount_requests: UF_CRM_1725001014 (“Discount requests”) is integer
  ok    unmapped account_manager: not mapped (optional): the deal's responsible person \
(ASSIGNED_BY_ID) is the account manager
  ok    unmapped client: not mapped (optional): the client's name is the deal's company \
(else its first contact)
  ok    unmapped brief: not mapped (optional): pm-briefed checks without it
  ok    unmapped brief_acknowledged: not mapped (optional): pm-briefed checks without it
  ok    unmapped contract_template: not mapped (optional): contract-reviewed checks without it
  ok    unmapped prepayment_required: not mapped (optional): prepayment checks without it
  ok    unmapped prepayment_received_on: not mapped (optional): prepayment reads \
prepayment_received
  ok    unmapped manager_hours_budget: not mapped (optional): service-cost checks without it
  ok    unmapped call_tracking_confirmed: not mapped (optional): analytics-in-place reads \
analytics_confirmed
2 failing, 1 warnings, 27 ok.
"""
