"""Is this Jira site ready for ClientGuard? The checks behind `clientguard doctor jira`.

`diagnose` never raises for what Jira answers: every problem is a failing or warning
`Check` with what to do about it. Its calls: `GET myself` (who the
credentials are), `GET mypermissions` (the permissions `manifest.json` lists), `GET field`
(does each mapped field exist, and does its type suit its meaning), and one `GET group/member`
per group in `agency_groups` (may its members be read). The rest is read from
the `[jira]` settings. `fields_table` lists the site's fields for choosing the mapping.

The report's shapes, which rule needs which field and the text are `connectors.doctor`'s:
the same report for every platform.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from connectors import doctor as shared
from connectors.doctor import (
    READ_AS_EMPTY,
    Check,
    Diagnosis,
    FieldRow,
    Level,
    mapped_check,
    unmapped_checks,
)
from connectors.errors import AuthError, ConnectorNotConfigured, NotFound, PlatformError
from connectors.jira import JiraConnector
from connectors.jira.client import JiraClient
from connectors.jira.settings import JiraSettings
from plugin.core.fields import MAPPED_FIELDS
from plugin.manifest import load_manifest

# -- what each semantic field means ---------------------------------------------------

ROLE_KINDS = {"account_manager": "person", "project_manager": "person",
              "decision_maker": "person", "client": "text"}
KINDS: dict[str, str] = {**ROLE_KINDS, **{field.name: field.kind for field in MAPPED_FIELDS}}
"""Every mappable name and the kind of Jira field it should be."""

EXPECTED = {
    "person": "a user picker (single or multi)",
    "text": "a text field or a select list",
    "number": "a number field",
    "date": "a date picker (or date-time picker)",
    "flag": "a checkbox, select list or radio buttons (ticked, or “Yes”, is true)",
    "list": "a multi-select, checkboxes or labels field",
}

_SUITS: dict[str, frozenset[str]] = {
    "person": frozenset({"user", "array<user>"}),
    "text": frozenset({"string", "option", "option-with-child"}),
    "number": frozenset({"number"}),
    "date": frozenset({"date", "datetime"}),
    "flag": frozenset({"option", "array<option>"}),
    "list": frozenset({"array<option>", "array<string>"}),
}
_READABLE: dict[str, frozenset[str] | None] = {
    "person": frozenset(),
    "text": None,  # anything reads as text
    "number": frozenset({"string"}),
    "date": frozenset({"string"}),
    "flag": frozenset({"string", "number"}),
    "list": frozenset({"string", "option"}),
}
"""Types that are not the right kind but that ClientGuard still reads (a number typed into
a text field); None: every type."""

DEFAULTS = {"client": "the client's name is the project name"}
"""What the snapshot reads when these are not mapped: fine to leave unmapped."""


# -- the checks -----------------------------------------------------------------------

def diagnose(connector: JiraConnector, project: str | None = None) -> Diagnosis:
    """Check the credentials, permissions, field mapping and settings of one site.

    `project` (a project key) checks the permissions in that project; without it Jira says
    whether the account has each permission in at least one project."""
    settings = connector.settings
    checks: list[Check] = []
    rows: tuple[FieldRow, ...] = ()
    client, me = _sign_in(connector, checks)
    if client is None or me is None:
        skipped = "not checked: ClientGuard cannot talk to Jira yet (see above)"
        checks += [Check(label, Level.WARN, skipped) for label in (
            "service account", "permissions",
            *(f"agency group {group}" for group in settings.agency_groups),
            "field list", *(f"field {name}" for name in settings.fields))]
    else:
        checks.append(_service_account(settings, client.flavour, me))
        checks.append(_permissions(client, project))
        checks += [_agency_group(client, group) for group in settings.agency_groups]
        try:
            site_fields = client.list_fields()
        except PlatformError as error:
            checks.append(Check("field list", Level.FAIL, f"cannot read it: {error}",
                                "Check that the account may browse the projects."))
        else:
            rows = _rows(site_fields, settings.fields)
            checks += _mapped_fields(settings.fields, {str(f.get("id")): f for f in site_fields})
    checks += _unmapped_fields(settings.fields)
    checks.append(_visibility(settings, me))
    checks.append(_webhook_secret(settings))
    return Diagnosis(settings.site, tuple(checks), rows)


def fields_table(connector: JiraConnector) -> tuple[FieldRow, ...]:
    """Every field of the site (`GET /field`), custom fields first, by name. Raises the
    typed errors of `connectors.errors`, or `ConnectorNotConfigured`."""
    return _rows(connector.client.list_fields(), connector.settings.fields)


def _sign_in(connector: JiraConnector, checks: list[Check]
             ) -> tuple[JiraClient | None, dict[str, Any] | None]:
    try:
        client = connector.client
    except ConnectorNotConfigured as error:
        checks.append(Check("credentials", Level.FAIL, str(error), _credentials_fix(
            connector.settings)))
        return None, None
    try:
        me = client.request("GET", f"{client.api}/myself", params={"expand": "groups"})
    except PlatformError as error:
        if error.status in (401, 403):
            checks.append(Check("credentials", Level.FAIL, str(error),
                                _credentials_fix(connector.settings)))
        else:  # the credentials were never tried
            checks.append(Check("connection", Level.FAIL, str(error),
                                "Check base_url and that this machine can reach Jira."))
        return client, None
    checks.append(Check("credentials", Level.OK,
                        f"signed in as {me.get('displayName') or '?'} ({_account(me)})"))
    return client, me


def _credentials_fix(settings: JiraSettings) -> str:
    if settings.flavour == "cloud":
        return ("Set [jira] base_url, email and api_token (an API token of that e-mail's "
                "account, from id.atlassian.com → Security → API tokens; give it as "
                "CLIENTGUARD_JIRA__API_TOKEN).")
    return ("Set [jira] base_url and personal_access_token (Jira → Profile → Personal Access "
            "Tokens; give it as CLIENTGUARD_JIRA__PERSONAL_ACCESS_TOKEN).")


def _account(me: Mapping[str, Any]) -> str:
    """The id ClientGuard knows an account by: accountId on Cloud, the username on DC."""
    return next((value for value in (me.get("accountId"), me.get("name"))
                 if isinstance(value, str) and value), "?")


def _service_account(settings: JiraSettings, flavour: str, me: Mapping[str, Any]) -> Check:
    who = _account(me)
    kind = "accountId" if flavour == "cloud" else "username"
    fix = f'Set [jira] service_account = "{who}" (the {kind} of the credentials\' account).'
    why = ("ClientGuard recognises its own comment and the events its writes cause by this "
           "account")
    if settings.service_account is None:
        return Check("service account", Level.WARN, f"not set; {why}", fix)
    if settings.service_account != who:
        return Check("service account", Level.FAIL,
                     f"is {settings.service_account!r} but the credentials are {who!r}; {why}, "
                     "so it would not recognise its own comment", fix)
    return Check("service account", Level.OK, f"{who} is the credentials' account")


def _permissions(client: JiraClient, project: str | None) -> Check:
    wanted = load_manifest()["platforms"]["jira"]["permissions"]
    params = {"permissions": ",".join(wanted)}
    where = "in at least one project"
    if project:
        params["projectKey"] = project
        where = f"in project {project}"
    try:
        answer = client.request("GET", f"{client.api}/mypermissions", params=params)
    except PlatformError as error:
        return Check("permissions", Level.FAIL, f"cannot read the permissions: {error}",
                     "Check the credentials and, with a project, that the key exists.")
    granted = answer.get("permissions") or {}
    missing = [name for name in wanted if not (granted.get(name) or {}).get("havePermission")]
    if missing:
        return Check("permissions", Level.FAIL,
                     f"the account lacks {', '.join(missing)} {where}",
                     "Grant them to the account (or a group or role it is in) in the "
                     "permission scheme of every project ClientGuard watches.")
    return Check("permissions", Level.OK, f"{', '.join(wanted)} granted {where}")


def _agency_group(client: JiraClient, group: str) -> Check:
    """Can the account read who is in `group` (its first member is enough to tell)?"""
    label = f"agency group {group}"
    try:
        first = next(client.iter_group_members(group), None)
    except AuthError as error:
        return Check(label, Level.FAIL, f"cannot read its members: {error}",
                     "Grant the account the Browse users and groups global permission "
                     "(Jira Cloud); on Data Center only a Jira administrator may list a "
                     "group's members: list the staff in agency_accounts instead.")
    except NotFound:
        return Check(label, Level.FAIL, "no such group",
                     "Correct the name in agency_groups (group names, as Jira spells them).")
    except PlatformError as error:
        return Check(label, Level.FAIL, f"cannot read its members: {error}", "Try again.")
    if first is None:
        return Check(label, Level.WARN, "has no members",
                     "Add the agency's staff to it, or remove it from agency_groups.")
    return Check(label, Level.OK, "its members count as agency")


def _shape(schema: Mapping[str, Any] | None) -> str:
    """A field's data type as ClientGuard compares it: `user`, `array<option>`, …"""
    if not schema:
        return ""
    kind = str(schema.get("type") or "")
    return f"array<{schema.get('items') or '?'}>" if kind == "array" else kind


def _describe(schema: Mapping[str, Any] | None) -> str:
    """A field's type for people: the data type, and the custom field type when custom."""
    shape = _shape(schema) or "—"
    custom = str((schema or {}).get("custom") or "")
    return f"{shape} ({custom.rpartition(':')[2]})" if custom else shape


def _fit(kind: str, shape: str) -> Level:
    if shape in _SUITS[kind]:
        return Level.OK
    readable = _READABLE[kind]
    return Level.WARN if readable is None or shape in readable else Level.FAIL


def _mapped_fields(mapping: Mapping[str, str],
                   by_id: Mapping[str, Mapping[str, Any]]) -> list[Check]:
    checks = []
    for name, field_id in mapping.items():
        kind = KINDS[name]
        field = by_id.get(field_id)
        label = f"field {name}"
        if field is None:
            checks.append(Check(label, Level.FAIL,
                                f"{field_id} is not a field of this site (or the account "
                                "cannot see it)",
                                f"Map {name} to an id from the field list: {EXPECTED[kind]}."))
            continue
        seen = f"{field_id} (“{field.get('name')}”) is {_describe(field.get('schema'))}"
        level = _fit(kind, _shape(field.get("schema")))
        why = (READ_AS_EMPTY if level is Level.WARN
               else f"ClientGuard cannot read a {kind} from it")
        checks.append(mapped_check(name, level, seen, why, EXPECTED[kind]))
    return checks


def _unmapped_fields(mapping: Mapping[str, str]) -> list[Check]:
    return unmapped_checks(mapping, DEFAULTS, lambda name: (
        f'Map it if the agency keeps it: [jira.fields] {name} = "customfield_…", '
        f"{EXPECTED[KINDS[name]]}."))


def _visibility(settings: JiraSettings, me: Mapping[str, Any] | None) -> Check:
    visibility = settings.internal_visibility
    if not visibility:
        return Check("internal visibility", Level.FAIL,
                     "not configured: ClientGuard writes nothing outside service-desk projects "
                     "(a comment without it would be visible to everyone on the issue)",
                     'Set [jira] internal_visibility = {type = "role", value = "Agency Staff"} '
                     "(a project role or group only agency staff are in).")
    kind, value = visibility["type"], visibility["value"]
    if kind == "group" and me is not None:
        groups = {group.get("name") for group in (me.get("groups") or {}).get("items") or ()}
        if value not in groups:
            return Check("internal visibility", Level.FAIL,
                         f"comments are restricted to group {value!r}, which the account is "
                         "not in: Jira refuses such a comment",
                         f"Add the account to group {value!r}.")
    where = ("the account must be in that role in every project ClientGuard watches"
             if kind == "role" else "the account is in it")
    return Check("internal visibility", Level.OK,
                 f"comments are restricted to {kind} {value!r} ({where}); service-desk "
                 "projects get JSM internal notes instead")


def _webhook_secret(settings: JiraSettings) -> Check:
    if settings.webhook_secret is None:
        return Check("webhook secret", Level.WARN,
                     "not set: deliveries are accepted unsigned, so anyone who knows the URL "
                     "can make ClientGuard re-evaluate an issue",
                     "Register the webhook with a secret (`clientguard install jira`) and set "
                     "CLIENTGUARD_JIRA__WEBHOOK_SECRET to it.")
    return Check("webhook secret", Level.OK,
                 "set: every delivery must carry a valid X-Hub-Signature")


# -- the field list ---------------------------------------------------------------------

def _rows(site_fields: Sequence[Mapping[str, Any]],
          mapping: Mapping[str, str]) -> tuple[FieldRow, ...]:
    names_by_id: dict[str, list[str]] = {}
    for name, field_id in mapping.items():
        names_by_id.setdefault(field_id, []).append(name)
    rows = [FieldRow(id=str(field.get("id")), name=str(field.get("name") or ""),
                     type=_describe(field.get("schema")), custom=bool(field.get("custom")),
                     mapped_as=tuple(names_by_id.get(str(field.get("id")), ())),
                     suits=tuple(kind for kind, shapes in _SUITS.items()
                                 if _shape(field.get("schema")) in shapes))
            for field in site_fields]
    return tuple(sorted(rows, key=lambda row: (not row.custom, row.name.casefold(), row.id)))


# -- text ----------------------------------------------------------------------------

def render_diagnosis(diagnosis: Diagnosis) -> str:
    """The diagnosis as text, headed by the site: one line per check, its fix indented
    below, a summary."""
    return shared.render_diagnosis(diagnosis, f"Jira site {diagnosis.site!r}")
