"""Is this Bitrix24 portal ready for ClientGuard? The checks behind `clientguard doctor
bitrix24`.

`diagnose` never raises for what the portal answers: every problem is a failing or warning
`Check` with what to do about it. Everything it asks goes into one `batch` call
(`diagnosis_commands`): who the credentials act as (`profile`; in app mode also `app.info`),
the scopes granted (`scope`), the deal fields (`crm.item.fields`, the command the snapshot
reads them with), the pipelines (`crm.category.list`), the bot user (`user.get`) and
whether smart invoices can be read (`crm.item.list`, entity type 31). A second call happens
only when the portal has more than 50 pipelines. The rest is read from the `[bitrix24]`
settings.

The report's shapes, which rule needs which field and the text are `connectors.doctor`'s:
the same report for every platform.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connectors import doctor as shared
from connectors.bitrix24.auth import REOPEN_HINT
from connectors.bitrix24.client import BatchResult, Bitrix24Client, error_code
from connectors.bitrix24.settings import Bitrix24Settings
from connectors.bitrix24.snapshot import DEAL_FIELDS, DEAL_TYPE, INVOICE_TYPE, deal_fields_command
from connectors.doctor import (
    READ_AS_EMPTY,
    Check,
    Diagnosis,
    FieldRow,
    Level,
    mapped_check,
    unmapped_checks,
    worst,
)
from connectors.errors import AuthError, PayloadError, PlatformError, RateLimited
from plugin.core.fields import MAPPED_FIELDS
from plugin.manifest import load_manifest

Commands = dict[str, tuple[str, dict[str, Any]]]

# Batch command keys (letters, digits and `_`: the client checks).
PROFILE = "profile"
SCOPE = "scope"
APP_INFO = "app_info"
PIPELINES = "pipelines"
BOT_USER = "bot_user"
INVOICES = "invoices"

CHECK_NAMES = ("application", "scopes", "bot user", "pipelines", "smart invoices", "fields")
"""The checks that need the portal's answer, skipped when it cannot be called."""


# -- what each meaning needs --------------------------------------------------------------

KINDS: dict[str, str] = {"account_manager": "staff", "project_manager": "staff",
                         "decision_maker": "person", "client": "text",
                         **{field.name: field.kind for field in MAPPED_FIELDS}}
"""Every mappable name and the kind of deal field it should be: `staff` an agency user,
`person` a user or the client's CRM contact (the snapshot reads both, see
`snapshot._DealMapper.mapped_people`)."""

EXPECTED = {
    "staff": "an employee field (user binding) or a user field such as ASSIGNED_BY_ID",
    "person": "an employee field, or a CRM binding to contacts or companies",
    "text": "a string field or a list (enumeration) field",
    "number": "a number (double), integer or money field",
    "date": "a date or date-time field",
    "flag": "a Yes/No (boolean) field",
    "list": "a list (enumeration) field, or a multiple string field",
}
_NOUN = {"staff": "a user", "person": "a person", "text": "text", "number": "a number",
         "date": "a date", "flag": "a yes/no value", "list": "a list"}

# Field types by `crm.item.fields` `type` [D:api-reference/crm/universal/user-defined-fields/
# crm-userfield-types.md; crm-item-fields.md]. Money values read as their amount (`100|EUR`).
_SUITS: dict[str, frozenset[str]] = {
    "staff": frozenset({"user", "employee"}),
    "person": frozenset({"user", "employee", "crm", "crm_contact"}),
    "text": frozenset({"string", "text", "enumeration", "crm_status"}),
    "number": frozenset({"double", "integer", "money"}),
    "date": frozenset({"date", "datetime"}),
    "flag": frozenset({"boolean"}),
    "list": frozenset({"enumeration"}),
}
_READABLE: dict[str, frozenset[str] | None] = {
    "staff": frozenset({"string", "integer"}),
    "person": frozenset({"string", "integer"}),
    "text": None,  # anything reads as text
    "number": frozenset({"string", "text"}),
    "date": frozenset({"string", "text"}),
    "flag": frozenset({"enumeration", "string", "char", "integer", "double"}),
    "list": frozenset({"string", "text", "crm_status"}),
}
"""Types that are not the right kind but that ClientGuard still reads (user ids typed into
a string field, "Yes" in a list); None: every type."""
_ODD: dict[tuple[str, str], str] = {
    ("staff", "crm"): "a CRM binding names the client's contacts or companies, not agency "
                      "staff",
    ("staff", "crm_contact"): "it names the client's contacts, not agency staff",
}
"""Types ClientGuard reads for a kind, but whose values are probably not what is meant."""

DEFAULTS = {
    "account_manager": "the deal's responsible person (ASSIGNED_BY_ID) is the account manager",
    "client": "the client's name is the deal's company (else its first contact)",
}
"""What the snapshot reads when these are not mapped (docs/bitrix24-mapping.md)."""


# -- what each scope is for ---------------------------------------------------------------

SCOPE_USES: dict[str, tuple[Level, str]] = {
    "crm": (Level.FAIL, "deals, their timeline and the sticky comment"),
    "user_brief": (Level.FAIL, "people's names, and telling employees from the client's "
                               "extranet users"),
    "task": (Level.WARN, "the deal's tasks and the time logged on them"),
    "tasks": (Level.WARN, "tasks of the new task card, REST 3.0"),
    "im": (Level.WARN, "notifying the deal's responsible person, when notify_responsible "
                       "is on"),
    "placement": (Level.WARN, "the Health check tab and menu item in the deal card"),
}
"""Scope → (how bad its absence is, what needs it). Scopes of the manifest not listed here
are warnings."""
_COVERS = {"user_brief": frozenset({"user_brief", "user_basic", "user"})}
"""`user` and `user_basic` include `user_brief`: the same users, more fields
[D:api-reference/scopes/permissions.md]."""

_NOT_COMMERCIAL = re.compile(r"available only (?:on commercial plans|by subscription)",
                             re.IGNORECASE)
"""The `ACCESS_DENIED` of a portal without REST: "REST is available only on commercial
plans" (an application), "… only by subscription" (a webhook) [D:_includes/system-errors.md;
D:first-steps/access-to-rest-api.md]."""


# -- the calls ----------------------------------------------------------------------------

def diagnosis_commands(settings: Bitrix24Settings) -> Commands:
    """Everything the doctor asks the portal, as one batch: `app.info` only in app mode (a
    webhook gets "Application context required"), `user.get` only with a bot user set."""
    commands: Commands = {PROFILE: ("profile", {}), SCOPE: ("scope", {})}
    if settings.mode == "app":
        commands[APP_INFO] = ("app.info", {})
    commands[DEAL_FIELDS] = deal_fields_command()
    # Pipelines the user may not read are left out [D:api-reference/crm/universal/category/
    # crm-category-list.md].
    commands[PIPELINES] = ("crm.category.list", {"entityTypeId": DEAL_TYPE})
    if settings.bot_user_id:
        commands[BOT_USER] = ("user.get", {"filter": {"ID": settings.bot_user_id}})
    commands[INVOICES] = ("crm.item.list", {"entityTypeId": INVOICE_TYPE, "select": ["id"]})
    return commands


def diagnose(client: Bitrix24Client, settings: Bitrix24Settings) -> Diagnosis:
    """Check the credentials, plan, scopes, bot user, pipelines, smart invoices and field
    mapping of one portal; the diagnosis carries the portal's deal fields.

    In app mode pass the portal's own settings (`Bitrix24Connector.settings_for(site)`: the
    installing user is the bot user)."""
    commands = diagnosis_commands(settings)
    try:
        answer = client.batch(commands)
    except PlatformError as error:
        return not_connected(settings, _access_failure(error, settings), site=client.site)
    checks = [_access(settings, answer)]
    if settings.mode == "app":
        checks.append(_application(answer))
    checks += _scopes(settings, answer)
    checks.append(_bot_user(settings, answer))
    checks.append(_pipelines(client, settings, answer))
    checks.append(_invoices(answer))
    rows: tuple[FieldRow, ...] = ()
    fields, error = _outcome(answer, DEAL_FIELDS)
    if error is not None:
        checks.append(Check("fields", Level.FAIL, f"cannot read the deal fields: {error}",
                            "The REST user needs the crm scope and read access to deals."))
    else:
        portal_fields, aliases = _field_list(fields)
        rows = _rows(portal_fields, settings.fields)
        checks += _mapped_fields(settings.fields, portal_fields, aliases)
    checks += _unmapped_fields(settings.fields)
    return Diagnosis(client.site, tuple(checks), rows)


def not_connected(settings: Bitrix24Settings, problem: Check | str, *,
                  site: str | None = None) -> Diagnosis:
    """The diagnosis when the portal cannot be called at all (no webhook URL, no portal
    installed, credentials refused): that failure, every portal check skipped, and what
    the settings alone tell."""
    if isinstance(problem, str):
        problem = Check("REST access", Level.FAIL, problem, _credentials_fix(settings))
    skipped = "not checked: ClientGuard cannot call the portal yet (see REST access)"
    checks = [problem, *(Check(name, Level.WARN, skipped) for name in CHECK_NAMES
                         if name != "application" or settings.mode == "app")]
    checks += _unmapped_fields(settings.fields)
    return Diagnosis(site or settings.site, tuple(checks))


def _outcome(answer: BatchResult, key: str) -> tuple[Any, PlatformError | None]:
    """A command's result, or the typed error it failed with (or did not run)."""
    try:
        return answer.value(key), None
    except PlatformError as error:
        return None, error


# -- REST access --------------------------------------------------------------------------

def _credentials_fix(settings: Bitrix24Settings) -> str:
    if settings.mode == "app":
        return REOPEN_HINT[0].upper() + REOPEN_HINT[1:] + "."
    scopes = [scope for scope in load_manifest()["platforms"]["bitrix24"]["scopes"]
              if scope != "placement"]  # app-only: placement.bind refuses a webhook
    return ("Create an incoming webhook (Applications → Developer resources → Other → "
            f"Incoming webhook) with the scopes {', '.join(scopes)} and give its URL as "
            "CLIENTGUARD_BITRIX24__WEBHOOK_URL.")


def _access_failure(error: PlatformError, settings: Bitrix24Settings) -> Check:
    """The batch itself failed: the plan, the credentials or the network."""
    text = str(error)
    if isinstance(error, AuthError) and error_code(error) == "ACCESS_DENIED" \
            and _NOT_COMMERCIAL.search(text):
        return Check("REST access", Level.FAIL,
                     f"the portal's plan has no REST API: {text}",
                     "REST needs a commercial plan with REST (Vibe+), or the 15-day trial "
                     "(My plan → 15-day trial); see https://apidocs.bitrix24.com/first-steps/"
                     "access-to-rest-api.html.")
    if isinstance(error, AuthError):
        return Check("REST access", Level.FAIL, text, _credentials_fix(settings))
    if isinstance(error, RateLimited):
        wait = f" in {error.retry_after:.0f} s" if error.retry_after else " later"
        return Check("REST access", Level.FAIL, text,
                     f"The portal is over its request limit: run the doctor again{wait}.")
    return Check("REST access", Level.FAIL, text,
                 "Check the portal address (webhook_url, or the installed portal's) and that "
                 "this machine can reach it over HTTPS.")


def _access(settings: Bitrix24Settings, answer: BatchResult) -> Check:
    how = "the application's tokens work" if settings.mode == "app" else (
        "the incoming webhook works")
    me, error = _outcome(answer, PROFILE)
    if error is not None or not isinstance(me, dict):
        return Check("REST access", Level.WARN,
                     f"{how}, but not who it acts as: {error or 'no profile'}")
    return Check("REST access", Level.OK, f"{how}: acting as {_who(me)}")


def _who(user: Mapping[str, Any]) -> str:
    name = " ".join(str(user.get(key) or "") for key in ("NAME", "LAST_NAME")).strip()
    admin = ", administrator" if user.get("ADMIN") is True else ""
    return f"{name or '?'} (user {user.get('ID')}{admin})"


def _application(answer: BatchResult) -> Check:
    """`app.info`: events and placements wait until the installation is finished
    [D:api-reference/common/system/app-info.md]."""
    info, error = _outcome(answer, APP_INFO)
    if error is not None or not isinstance(info, dict):
        return Check("application", Level.WARN, f"cannot read app.info: {error}")
    plan = f"version {info.get('VERSION')}, plan {info.get('LICENSE') or '?'}"
    if info.get("INSTALLED") is not True:
        return Check("application", Level.FAIL,
                     f"installation not finished ({plan}): Bitrix24 sends no events and "
                     "shows no Health check button until it is",
                     REOPEN_HINT[0].upper() + REOPEN_HINT[1:] + " to finish it.")
    return Check("application", Level.OK, f"installed ({plan})")


# -- scopes -------------------------------------------------------------------------------

def _scopes(settings: Bitrix24Settings, answer: BatchResult) -> list[Check]:
    wanted = list(load_manifest()["platforms"]["bitrix24"]["scopes"])
    notes: list[Check] = []
    if settings.mode == "webhook" and "placement" in wanted:
        wanted.remove("placement")
        notes.append(Check("health check button", Level.OK,
                           "not available with a webhook (placements need the local "
                           "application); everything else works without it",
                           "Connect as a local application (client_id, client_secret, "
                           "public_url) to get the button in the deal card."))
    granted, error = _outcome(answer, SCOPE)
    if error is not None or not isinstance(granted, list):
        return [Check("scopes", Level.WARN, f"cannot read the scopes: {error}"), *notes]
    have = {str(scope) for scope in granted}
    missing = [scope for scope in wanted if not have & _COVERS.get(scope, {scope})]
    if not missing:
        return [Check("scopes", Level.OK, f"{', '.join(wanted)} granted"), *notes]
    level = worst(_scope_level(settings, scope) for scope in missing)
    lacking = "; ".join(f"{scope}: {SCOPE_USES.get(scope, (Level.WARN, 'ClientGuard'))[1]}"
                        for scope in missing)
    if settings.mode == "app":
        fix = ("Add them to the local application (Applications → Developer resources → "
               "Integrations → the ClientGuard application) and have an administrator open "
               "it once, so its tokens carry them.")
    else:
        fix = (f"Tick {', '.join(missing)} in the incoming webhook's permissions (editing a "
               "webhook changes its URL: update webhook_url), or create a new one.")
    return [Check("scopes", level, f"missing {lacking}", fix), *notes]


def _scope_level(settings: Bitrix24Settings, scope: str) -> Level:
    if scope == "im" and settings.notify_responsible:
        return Level.FAIL
    return SCOPE_USES.get(scope, (Level.WARN, ""))[0]


# -- bot user, pipelines, invoices --------------------------------------------------------

def _bot_user(settings: Bitrix24Settings, answer: BatchResult) -> Check:
    me, _ = _outcome(answer, PROFILE)
    acting = str(me.get("ID")) if isinstance(me, dict) and me.get("ID") is not None else None
    why = "ClientGuard recognises its own comments and the events its writes cause by it"
    fix = (f'Set [bitrix24] bot_user_id = "{acting}" (the user the credentials act as).'
           if acting else "Set [bitrix24] bot_user_id to the user the credentials act as.")
    bot = settings.bot_user_id
    if not bot:
        return Check("bot user", Level.WARN, f"not set; {why}", fix)
    users, error = _outcome(answer, BOT_USER)
    if error is not None:
        return Check("bot user", Level.WARN, f"cannot look up user {bot}: {error}")
    found = next((user for user in users or () if isinstance(user, dict)
                  and str(user.get("ID")) == bot), None)
    if found is None:
        return Check("bot user", Level.WARN,
                     f"user {bot} does not exist on the portal (or is not active); {why}", fix)
    if acting is not None and acting != bot:
        return Check("bot user", Level.FAIL,
                     f"is {_who(found)} but the credentials act as user {acting}; {why}, so "
                     "it would not recognise its own comments", fix)
    return Check("bot user", Level.OK, f"{_who(found)}, the user ClientGuard writes as")


def _pipelines(client: Bitrix24Client, settings: Bitrix24Settings,
               answer: BatchResult) -> Check:
    wanted = settings.deal_categories
    result, error = _outcome(answer, PIPELINES)
    categories = result.get("categories") if isinstance(result, dict) else None
    start = answer.nexts.get(PIPELINES)
    if error is None and start is not None and isinstance(categories, list):
        try:  # more than 50 pipelines: the other pages
            categories = categories + client.list_all(
                "crm.category.list", {"entityTypeId": DEAL_TYPE, "start": start},
                items_key="categories")
        except PlatformError as later:
            error = later
    if error is None and not isinstance(categories, list):
        error = PayloadError("crm.category.list: no categories in the answer")
    if error is not None:
        return Check("pipelines", Level.FAIL if wanted else Level.WARN,
                     f"cannot read the pipelines: {error}",
                     "The REST user needs the crm scope and read access to deals.")
    assert isinstance(categories, list)
    names = {str(category.get("id")): str(category.get("name") or "")
             for category in categories if isinstance(category, dict)}
    listed = ", ".join(f"{name} ({ident})" for ident, name in names.items())
    if not wanted:
        return Check("pipelines", Level.OK, f"all hold engagements: {listed}")
    missing = [ident for ident in wanted if ident not in names]
    if missing:
        return Check("pipelines", Level.FAIL,
                     f"{', '.join(missing)} in deal_categories: no such pipeline, or the REST "
                     f"user cannot read it; the portal has {listed}",
                     "Set [bitrix24] deal_categories to ids from this list, and let the REST "
                     "user read deals in them.")
    return Check("pipelines", Level.OK,
                 "engagements are the deals of " + ", ".join(f"{names[ident]} ({ident})"
                                                             for ident in wanted))


def _invoices(answer: BatchResult) -> Check:
    """Smart invoices (entity type 31) feed the invoice rules; without them those rules
    say *not configured* (the snapshot's `invoices` is `None`)."""
    _, error = _outcome(answer, INVOICES)
    if error is not None:
        return Check("smart invoices", Level.WARN,
                     f"not available ({error}): overdue-invoices reports “not configured”; "
                     "contract-reviewed checks without the first invoice",
                     "Let the REST user read invoices (CRM access permissions), and use the "
                     "new invoices (entity type 31).")
    total = answer.totals.get(INVOICES)
    count = f" ({total} invoices)" if total is not None else ""
    return Check("smart invoices", Level.OK, f"readable{count}")


# -- fields -------------------------------------------------------------------------------

def _field_list(result: Any) -> tuple[dict[str, Mapping[str, Any]], dict[str, str]]:
    """The deal fields by the id a mapping names them by: `upperName` (`UF_CRM_…`,
    `BEGINDATE`), the id the snapshot looks fields up by; and that id by every spelling
    of it in any case (`begindate`, `ufCrm…`), to name the right one."""
    fields = result.get("fields") if isinstance(result, dict) else None
    by_id: dict[str, Mapping[str, Any]] = {}
    aliases: dict[str, str] = {}
    for key, description in (fields or {}).items():
        if isinstance(description, dict):
            field_id = str(description.get("upperName") or key)
            by_id[field_id] = description
            aliases[str(key).casefold()] = aliases[field_id.casefold()] = field_id
    return by_id, aliases


def _label(field: Mapping[str, Any]) -> str:
    """A field's name for people. A custom field's `title` may be its id; its label is
    then in `listLabel`/`formLabel` [D:api-reference/crm/companies/crm-company-fields.md]."""
    return str(field.get("listLabel") or field.get("formLabel") or field.get("title") or "")


def _describe(field: Mapping[str, Any]) -> str:
    kind = str(field.get("type") or "") or "—"
    return f"{kind}, multiple" if field.get("isMultiple") else kind


def _fit(kind: str, field: Mapping[str, Any]) -> tuple[Level, str]:
    """How well a field suits a kind, and why when it does not quite."""
    field_type = str(field.get("type") or "")
    multiple = bool(field.get("isMultiple"))
    if kind in ("staff", "person") and _single_crm_kind(field) == "DEAL":
        return Level.FAIL, "a CRM binding to deals only names no person"
    if field_type in _SUITS[kind] or (kind == "list" and multiple
                                      and field_type in ("string", "text")):
        return Level.OK, ""
    if (kind, field_type) in _ODD:
        return Level.WARN, _ODD[kind, field_type]
    readable = _READABLE[kind]
    if readable is None or field_type in readable:
        return Level.WARN, READ_AS_EMPTY
    return Level.FAIL, f"ClientGuard cannot read {_NOUN[kind]} from it"


def _single_crm_kind(field: Mapping[str, Any]) -> str | None:
    """For a CRM binding to one kind of entity: that kind (it holds bare ids of it, which the
    snapshot reads as that kind's people — none for deals)."""
    settings = field.get("settings")
    if field.get("type") != "crm" or not isinstance(settings, dict):
        return None
    linked = [kind for kind in ("LEAD", "CONTACT", "COMPANY", "DEAL")
              if settings.get(kind) == "Y"]
    return linked[0] if len(linked) == 1 else None


def _mapped_fields(mapping: Mapping[str, str], by_id: Mapping[str, Mapping[str, Any]],
                   aliases: Mapping[str, str]) -> list[Check]:
    checks = []
    for name, field_id in mapping.items():
        kind = KINDS[name]
        label = f"field {name}"
        field = by_id.get(field_id)
        if field is None:
            known = aliases.get(field_id.casefold())
            if known is not None:
                checks.append(Check(label, Level.FAIL,
                                    f"{field_id} is not how the field list names it: "
                                    f"{known}", f'Write it as "{known}".'))
            else:
                checks.append(Check(label, Level.FAIL,
                                    f"{field_id} is not a deal field of this portal",
                                    f"Map {name} to an id from the field list: "
                                    f"{EXPECTED[kind]}."))
            continue
        seen = f"{field_id} (“{_label(field)}”) is {_describe(field)}"
        level, why = _fit(kind, field)
        checks.append(mapped_check(name, level, seen, why, EXPECTED[kind]))
    return checks


def _unmapped_fields(mapping: Mapping[str, str]) -> list[Check]:
    return unmapped_checks(mapping, DEFAULTS, lambda name: (
        f'Map it if the agency keeps it: [bitrix24.fields] {name} = "UF_CRM_…", '
        f"{EXPECTED[KINDS[name]]}."))


def _rows(by_id: Mapping[str, Mapping[str, Any]],
          mapping: Mapping[str, str]) -> tuple[FieldRow, ...]:
    names_by_id: dict[str, list[str]] = {}
    for name, field_id in mapping.items():
        names_by_id.setdefault(field_id, []).append(name)
    rows = [FieldRow(id=field_id, name=_label(field), type=_describe(field),
                     custom=bool(field.get("isDynamic")),
                     mapped_as=tuple(names_by_id.get(field_id, ())),
                     suits=tuple(kind for kind in _SUITS if _fit(kind, field)[0] is Level.OK))
            for field_id, field in by_id.items()]
    return tuple(sorted(rows, key=lambda row: (not row.custom, row.name.casefold(), row.id)))


# -- text ---------------------------------------------------------------------------------

def render_diagnosis(diagnosis: Diagnosis) -> str:
    """The diagnosis as text, headed by the portal: one line per check, its fix indented
    below, a summary."""
    return shared.render_diagnosis(diagnosis, f"Bitrix24 portal {diagnosis.site!r}")
