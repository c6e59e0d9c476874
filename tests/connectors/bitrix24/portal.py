"""`FakePortal`: a stateful Bitrix24 portal behind `responses`, for end-to-end tests and the
bench.

It is built from the real samples in `fixtures/` (where each comes from: `fixtures/SOURCES.md`
and `fixtures/rest/SOURCES.md`): deal 410 of the composed cold-snapshot batches with its
company, timeline comments, activities (calls and e-mails in and out, meetings), linked task
with its time log, smart invoices, generated documents and stage history, and the portal's
catalogue (deal fields, stages, users, contacts). Further deals (411, 412, …) are copies of
it under new ids. ClientGuard's own sticky comments of the sample (998, 1001) are left out:
the portal starts without one.

It answers REST calls as a portal does — in webhook mode at
`https://acme.bitrix24.example/rest/1/witnesscode/<method>`, in app mode at
`https://acme.bitrix24.example/rest/<method>` with `auth` in the JSON body — with the real
envelope (`result`, `total`, `next`, `time`), list pages of 50, `batch` with `$result[...]`
references (command query strings read with `connectors.bitrix24.form.parse_form`, PHP
bracket keys), and Bitrix24's error bodies: a method it does not know is
`404 ERROR_METHOD_NOT_FOUND`, so a call nobody modelled is loud. It also stands in for the
OAuth server (`https://oauth.bitrix.info/oauth/token/`): refresh tokens rotate and are
single-use.

Every HTTP call is recorded (`calls`: method, batch sub-commands, access token used) and
every write (`writes`: timeline comments added, updated, deleted, pinned; notifications).
Knobs: `limit_storm(n)`, `outage(n)`, `restore()`, `expire_access_token()`, `change_deal(...)`,
`client_writes(deal)`, `agency_replies(deal)`, `person_comments(deal)`; `before_call` runs
outside the portal's lock before each call is answered (a test can hold a call there).

No pytest at module level: `mock(responses.RequestsMock)` registers the callbacks, and
`answer(method, url, body)` answers one request for any other transport.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import responses

from connectors.bitrix24.form import encode_form, parse_form

FIXTURES = Path(__file__).parent / "fixtures"

PORTAL = "https://acme.bitrix24.example"
DOMAIN = "acme.bitrix24.example"
WEBHOOK_USER = "1"
WEBHOOK_CODE = "witnesscode"
WEBHOOK_URL = f"{PORTAL}/rest/{WEBHOOK_USER}/{WEBHOOK_CODE}/"
CLIENT_ENDPOINT = f"{PORTAL}/rest/"
OAUTH_SERVER = "https://oauth.bitrix.info"
SERVER_ENDPOINT = f"{OAUTH_SERVER}/rest/"
TOKEN_URL = f"{OAUTH_SERVER}/oauth/token/"
MEMBER_ID = "a223c6b3710f85df22e9377d6c4f7553"
CLIENT_ID = "local.6568a1b2c3d4e5.12345678"
CLIENT_SECRET = "witness-client-secret"
APPLICATION_TOKEN = "witness-application-token"
OUTGOING_TOKEN = "witness-token"
FIRST_DEAL = 410
PAGE = 50
CEST = timezone(timedelta(hours=2))

_SAMPLE = json.loads((FIXTURES / "rest" / "batch__deal_410__cold_first.json")
                     .read_text("utf-8"))["result"]["result"]
_CATALOGUE = json.loads((FIXTURES / "rest" / "batch__deal_410__cold_second.json")
                        .read_text("utf-8"))["result"]["result"]
_ERRORS = json.loads((FIXTURES / "errors.json").read_text("utf-8"))
_OUR_STICKY = ("998", "1001")  # ClientGuard's comments in the sample: not on a fresh portal
_REFERENCE = re.compile(r"\$result\[([A-Za-z0-9_]+)\]((?:\[[^\[\]]*\])*)")
_METHOD = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")


class PortalError(Exception):
    """A Bitrix24 error answer: `status` with `{"error": code, "error_description": …}`."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(f"{status} {code}: {description}")
        self.status, self.code, self.description = status, code, description

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


def not_found(description: str = "Not found.") -> PortalError:
    return PortalError(400, "NOT_FOUND", description)


@dataclass(frozen=True)
class Call:
    """One HTTP request to the portal: the REST `method` (`batch`, `crm.item.get`, …), the
    methods of a batch's commands in order, and the access token it carried (app mode)."""

    method: str
    commands: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    token: str | None = None


@dataclass(frozen=True)
class Write:
    """A change ClientGuard made on the portal: `method` with its parameters."""

    method: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Page:
    """A list method's answer: one page of `records` from `start`."""

    records: list[Any]
    start: int
    wrap: str | None = None  # result is {wrap: records} (`items`, `tasks`, `documents`)

    def answer(self) -> tuple[Any, int, int | None]:
        page = self.records[self.start:self.start + PAGE]
        following = self.start + PAGE
        result = {self.wrap: page} if self.wrap else page
        return result, len(self.records), following if following < len(self.records) else None


def _moment(value: datetime) -> str:
    return value.astimezone(CEST).isoformat(timespec="seconds")


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, list | tuple) else [value]


def _same(left: Any, right: Any) -> bool:
    return str(left) == str(right)


class FakePortal:
    """A Bitrix24 portal with `deals` deals (410, 411, …), answering through `responses`.

    `now` gives the current time for what happens on the portal from now on (new activities
    and comments); `clock` is Unix time for token expiry."""

    def __init__(self, deals: int = 1, *, now: Callable[[], datetime] | None = None) -> None:
        self._lock = threading.RLock()
        self._now = now or (lambda: datetime.now(UTC))
        self._ids = itertools.count(10_001)  # every object created here gets a new id
        self.calls: list[Call] = []
        self.refused_in_batch: list[tuple[str, str]] = []  # (method, error code) per command
        self.writes: list[Write] = []
        self.token_requests: list[dict[str, str]] = []
        self.before_call: Callable[[Call], None] | None = None
        self._failures: list[tuple[int, str, dict[str, str]]] = []
        self._catalogue()
        self.deals: dict[int, dict[str, Any]] = {}
        self.companies = {9: copy.deepcopy(_SAMPLE["company"]["item"])}
        self.comments: dict[int, dict[str, Any]] = {}
        self.activities: dict[int, dict[str, Any]] = {}
        self.bindings: dict[int, list[dict[str, int]]] = {}
        self.tasks: dict[int, dict[str, Any]] = {}
        self.time_logs: dict[int, list[dict[str, Any]]] = {}
        self.invoices: dict[int, dict[str, Any]] = {}
        self.documents: dict[int, dict[str, Any]] = {}
        self.stage_history: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []
        for number in range(deals):
            self._add_deal(FIRST_DEAL + number, fresh_ids=number > 0)
        # app mode: the tokens the portal and its OAuth server accept now
        self.access_token = "witness-access-" + secrets.token_hex(4)
        self.refresh_token = "witness-refresh-" + secrets.token_hex(4)
        self._expired_tokens: set[str] = set()
        self.expires = int(time.time()) + 3600

    # -- the sample, loaded --------------------------------------------------------------

    def _catalogue(self) -> None:
        self.deal_fields = copy.deepcopy(_SAMPLE["deal_fields"])
        self.statuses: dict[str, list[dict[str, Any]]] = {
            "DEAL_STAGE": copy.deepcopy(_SAMPLE["deal_stages_0"]),
            "SMART_INVOICE_STAGE_2": copy.deepcopy(_CATALOGUE["invoice_stages_2"]),
        }
        self.users = {int(user["ID"]): copy.deepcopy(user) for user in _CATALOGUE["users_0"]}
        contact = _SAMPLE["activities"][1]["COMMUNICATIONS"][0]  # Klaus Weber, by e-mail
        settings = contact["ENTITY_SETTINGS"]
        self.contacts = {
            84: {"ID": "84", "NAME": settings["NAME"].strip(), "SECOND_NAME": "",
                 "LAST_NAME": settings["SECOND_NAME"],
                 "EMAIL": [{"ID": "200", "VALUE_TYPE": "WORK", "VALUE": contact["VALUE"],
                            "TYPE_ID": "EMAIL"}]},
            **{int(c["ID"]): copy.deepcopy(c) for c in _CATALOGUE["contacts_0"]},
        }

    def _new_id(self) -> int:
        return next(self._ids)

    def _add_deal(self, deal_id: int, *, fresh_ids: bool) -> None:
        def new(old: Any) -> int:
            return self._new_id() if fresh_ids else int(old)

        deal = copy.deepcopy(_SAMPLE["deal"]["item"])
        deal["id"] = deal_id
        if fresh_ids:
            deal["title"] = f"New Deal #{deal_id - FIRST_DEAL + 1}"
        self.deals[deal_id] = deal
        for comment in _SAMPLE["comments"]:
            if comment["ID"] in _OUR_STICKY:
                continue
            comment = copy.deepcopy(comment)
            comment["ID"], comment["ENTITY_ID"] = str(new(comment["ID"])), str(deal_id)
            self.comments[int(comment["ID"])] = comment
        for activity in _SAMPLE["activities"]:
            activity = copy.deepcopy(activity)
            activity["ID"], activity["OWNER_ID"] = str(new(activity["ID"])), str(deal_id)
            self.activities[int(activity["ID"])] = activity
            self.bindings[int(activity["ID"])] = [{"entityTypeId": 2, "entityId": deal_id}]
        for task in _SAMPLE["tasks"]["tasks"]:
            task = copy.deepcopy(task)
            task_id = new(task["id"])
            task["id"] = str(task_id)
            task["ufCrmTask"] = [link for link in task["ufCrmTask"] if not link.startswith("D_")]
            task["ufCrmTask"].append(f"D_{deal_id}")
            self.tasks[task_id] = task
            self.time_logs[task_id] = [{**record, "TASK_ID": str(task_id)} for record in
                                       copy.deepcopy(_CATALOGUE["time_8017_3600"])]
        for invoice in _SAMPLE["invoices"]["items"]:
            invoice = copy.deepcopy(invoice)
            invoice["id"] = new(invoice["id"])
            invoice.update(parentId2=deal_id, entityTypeId=31)
            self.invoices[invoice["id"]] = invoice
        for document in _SAMPLE["documents"]["documents"]:
            document = copy.deepcopy(document)
            document["id"], document["entityId"] = str(new(document["id"])), str(deal_id)
            self.documents[int(document["id"])] = document
        for record in _SAMPLE["stage_history"]["items"]:
            record = copy.deepcopy(record)
            record["ID"], record["OWNER_ID"] = new(record["ID"]), deal_id
            self.stage_history.append(record)

    # -- what happens on the portal ----------------------------------------------------

    def change_deal(self, deal_id: int = FIRST_DEAL, **fields: Any) -> None:
        """Someone edits the deal: `fields` by their `crm.item.get` names
        (`assignedById=3`, `UF_CRM_1725001000=None`)."""
        with self._lock:
            self.deals[deal_id].update(fields)
            self.deals[deal_id]["updatedTime"] = _moment(self._now())

    def client_writes(self, deal_id: int = FIRST_DEAL, text: str = "Any news on the launch?"
                      ) -> int:
        """The client (contact 84, Klaus Weber) sends an e-mail the portal files on the deal:
        a new incoming e-mail activity. Returns its id."""
        return self._email(deal_id, incoming=True, text=text)

    def agency_replies(self, deal_id: int = FIRST_DEAL, text: str = "Launch is on Monday."
                       ) -> int:
        """The deal's responsible person answers by e-mail: an outgoing e-mail activity."""
        return self._email(deal_id, incoming=False, text=text)

    def _email(self, deal_id: int, *, incoming: bool, text: str) -> int:
        with self._lock:
            template = next(a for a in self.activities.values()
                            if a["OWNER_ID"] == str(deal_id) and a["TYPE_ID"] == "4"
                            and a["DIRECTION"] == ("1" if incoming else "2"))
            activity = copy.deepcopy(template)
            activity_id = self._new_id()
            at = _moment(self._now())
            activity.update(ID=str(activity_id), SUBJECT=("Re: " if incoming else "") + text[:40],
                            DESCRIPTION=f"<p>{text}</p>", CREATED=at, START_TIME=at,
                            END_TIME=at, COMPLETED="N" if incoming else "Y")
            self.activities[activity_id] = activity
            self.bindings[activity_id] = [{"entityTypeId": 3, "entityId": 84},
                                          {"entityTypeId": 2, "entityId": deal_id}]
            self.deals[deal_id]["lastActivityTime"] = at
            return activity_id

    def person_comments(self, deal_id: int = FIRST_DEAL, text: str = "Called Klaus.",
                        author: str = "3") -> int:
        """An employee (John Doe) writes a timeline comment on the deal; returns its id."""
        with self._lock:
            return self._add_comment(deal_id, text, author)

    def _add_comment(self, deal_id: int, text: str, author: str) -> int:
        comment_id = self._new_id()
        self.comments[comment_id] = {
            "ID": str(comment_id), "ENTITY_ID": str(deal_id), "ENTITY_TYPE": "deal",
            "CREATED": _moment(self._now()), "COMMENT": text, "AUTHOR_ID": author,
            "FILES": {}}
        return comment_id

    def deal_comments(self, deal_id: int = FIRST_DEAL) -> list[dict[str, Any]]:
        """The deal's timeline comments now, oldest first."""
        with self._lock:
            return [copy.deepcopy(c) for _, c in sorted(self.comments.items())
                    if c["ENTITY_ID"] == str(deal_id) and c["ENTITY_TYPE"] == "deal"]

    def task_of(self, deal_id: int = FIRST_DEAL) -> int:
        return next(task_id for task_id, task in self.tasks.items()
                    if f"D_{deal_id}" in task["ufCrmTask"])

    def invoice_of(self, deal_id: int = FIRST_DEAL) -> int:
        return next(invoice_id for invoice_id, invoice in self.invoices.items()
                    if invoice["parentId2"] == deal_id)

    # -- knobs -------------------------------------------------------------------------

    def limit_storm(self, calls: int) -> None:
        """The next `calls` requests are refused: `503 QUERY_LIMIT_EXCEEDED`."""
        limit = _ERRORS["QUERY_LIMIT_EXCEEDED"]
        self._fail(calls, limit["http_status"], json.dumps(limit["body"]),
                   {"Content-Type": "application/json"})

    def outage(self, calls: int) -> None:
        """The next `calls` requests meet a proxy's error page (`502`, HTML)."""
        self._fail(calls, 502, "<html><head><title>502 Bad Gateway</title></head>"
                   "<body><h1>502 Bad Gateway</h1></body></html>", {"Content-Type": "text/html"})

    def restore(self) -> None:
        """The storm or outage is over: the next request is answered again."""
        with self._lock:
            self._failures.clear()

    def _fail(self, calls: int, status: int, body: str, headers: dict[str, str]) -> None:
        with self._lock:
            self._failures.extend([(status, body, headers)] * calls)

    def expire_access_token(self) -> None:
        """The access token is over its hour: calls with it answer `401 expired_token`."""
        with self._lock:
            self._expired_tokens.add(self.access_token)

    def installation(self) -> dict[str, Any]:
        """The portal as the installation store keeps it after an install (app mode)."""
        with self._lock:
            return {"member_id": MEMBER_ID, "domain": DOMAIN, "client_endpoint": CLIENT_ENDPOINT,
                    "server_endpoint": SERVER_ENDPOINT, "application_token": APPLICATION_TOKEN,
                    "access_token": self.access_token, "refresh_token": self.refresh_token,
                    "expires": self.expires, "scope": "crm,task,tasks,im,user_brief,placement",
                    "user_id": int(WEBHOOK_USER), "installed": True}

    def reopen_app(self) -> dict[str, str]:
        """An administrator opens the application: the portal issues a new token pair (as
        a placement frame or install page delivers it). Returns the fields delivered."""
        with self._lock:
            self._issue_tokens()
            return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                    "expires": str(self.expires), "user_id": WEBHOOK_USER}

    def _issue_tokens(self) -> None:
        self.access_token = "witness-access-" + secrets.token_hex(4)
        self.refresh_token = "witness-refresh-" + secrets.token_hex(4)
        self.expires = int(time.time()) + 3600

    # -- what the connector did --------------------------------------------------------

    def methods(self) -> list[str]:
        """The REST method of every call so far, in order."""
        with self._lock:
            return [call.method for call in self.calls]

    def comment_writes(self) -> list[Write]:
        with self._lock:
            return [w for w in self.writes if w.method.startswith("crm.timeline.comment.")]

    # -- transport ---------------------------------------------------------------------

    def mock(self, mock: responses.RequestsMock) -> None:
        """Answer every request to the portal and its OAuth server made through
        `requests` while `mock` is active."""

        def reply(request: Any) -> tuple[int, dict[str, str], str]:
            return self.answer(request.method, request.url, request.body)

        mock.add_callback(responses.POST, re.compile(re.escape(PORTAL) + r"/rest/.*"),
                          callback=reply)
        mock.add_callback(responses.GET, re.compile(re.escape(TOKEN_URL) + r".*"),
                          callback=reply)

    def answer(self, http_method: str, url: str, body: bytes | str | None
               ) -> tuple[int, dict[str, str], str]:
        """(status, headers, body) for one request."""
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}{parts.path}" == TOKEN_URL:
            return self._token(dict(parse_qsl(parts.query)))
        path = parts.path.removeprefix("/rest/")
        segments = path.split("/")
        raw = body.decode("utf-8") if isinstance(body, bytes) else (body or "")
        params = json.loads(raw) if raw.strip() else {}
        if len(segments) == 3:  # <user>/<code>/<method>: an incoming webhook
            user, code, method = segments
            token = None
            if (user, code) != (WEBHOOK_USER, WEBHOOK_CODE):
                return self._error(PortalError(401, "INVALID_CREDENTIALS",
                                               "Invalid request credentials"))
        elif len(segments) == 1:
            method, token = segments[0], params.pop("auth", None)
        else:
            return self._error(PortalError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!"))
        method = method.removesuffix(".json")
        call = Call(method, token=token)
        if method.lower() == "batch":
            cmd = params.get("cmd") or {}
            call = Call(method, tuple(str(c).partition("?")[0] for c in cmd.values()),
                        tuple(cmd), token)
        if self.before_call is not None:
            self.before_call(call)
        with self._lock:
            self.calls.append(call)
            if self._failures:
                status, text, headers = self._failures.pop(0)
                return status, headers, text
            started = time.time()
            try:
                if len(segments) == 1:
                    self._check_token(token)
                if method.lower() == "batch":
                    result: Any = self._batch(params)
                    total = following = None
                else:
                    result, total, following = self._run(method, params)
            except PortalError as error:
                return self._error(error)
        envelope: dict[str, Any] = {"result": result}
        if total is not None:
            envelope["total"] = total
        if following is not None:
            envelope["next"] = following
        envelope["time"] = self._time(started)
        return 200, {"Content-Type": "application/json"}, json.dumps(envelope)

    @staticmethod
    def _error(error: PortalError) -> tuple[int, dict[str, str], str]:
        return error.status, {"Content-Type": "application/json"}, json.dumps(error.body())

    @staticmethod
    def _time(started: float) -> dict[str, Any]:
        finished = time.time()
        return {"start": started, "finish": finished, "duration": finished - started,
                "processing": finished - started,
                "date_start": datetime.fromtimestamp(started, CEST).isoformat(timespec="seconds"),
                "date_finish": datetime.fromtimestamp(finished, CEST).isoformat(
                    timespec="seconds"),
                "operating_reset_at": int(finished) + 600, "operating": 0}

    # -- OAuth -------------------------------------------------------------------------

    def _check_token(self, token: str | None) -> None:
        if not token:
            raise PortalError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        if token in self._expired_tokens:
            expired = _ERRORS["expired_token"]
            raise PortalError(expired["http_status"], expired["body"]["error"],
                              expired["body"]["error_description"])
        if token != self.access_token:
            raise PortalError(401, "invalid_token", "The access token provided is invalid.")

    def _token(self, query: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """`GET /oauth/token/?grant_type=refresh_token&client_id&client_secret&refresh_token`
        [D:settings/oauth/index.md]: a new pair; the refresh token used is spent."""
        headers = {"Content-Type": "application/json"}
        with self._lock:
            self.token_requests.append(query)
            if query.get("client_id") != CLIENT_ID or query.get("client_secret") != CLIENT_SECRET:
                return 401, headers, json.dumps({"error": "invalid_client",
                                                 "error_description": "Invalid client"})
            if (query.get("grant_type") != "refresh_token"
                    or query.get("refresh_token") != self.refresh_token):
                return 400, headers, json.dumps({"error": "invalid_grant",
                                                 "error_description": "Invalid grant"})
            self._issue_tokens()
            return 200, headers, json.dumps({
                "access_token": self.access_token, "expires": self.expires, "expires_in": 3600,
                "scope": "crm,task,tasks,im,user_brief,placement", "domain": "oauth.bitrix.info",
                "server_endpoint": SERVER_ENDPOINT, "status": "L",
                "client_endpoint": CLIENT_ENDPOINT, "member_id": MEMBER_ID,
                "user_id": int(WEBHOOK_USER), "refresh_token": self.refresh_token})

    # -- batch -------------------------------------------------------------------------

    def _batch(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`batch {halt, cmd: {key: "method?query"}}` [D:settings/how-to-call-rest-api/
        batch.md]: commands in order, each able to refer to an earlier result."""
        cmd = params.get("cmd") or {}
        if not isinstance(cmd, dict):
            raise PortalError(400, "INVALID_ARG_VALUE", "cmd must be an object")
        if len(cmd) > PAGE:
            raise PortalError(400, "ERROR_BATCH_LENGTH_EXCEEDED",
                              "Max batch length exceeded")
        halt = str(params.get("halt", 0)) == "1"
        parts: dict[str, dict[str, Any]] = {
            "result": {}, "result_error": {}, "result_total": {}, "result_next": {},
            "result_time": {}}
        for key, command in cmd.items():
            method, _, query = str(command).partition("?")
            started = time.time()
            try:
                if method.lower() == "batch":
                    raise PortalError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED",
                                      "Batch call is not allowed in batch")
                query = _REFERENCE.sub(lambda ref: self._refer(parts["result"], ref), query)
                result, total, following = self._run(method, parse_form(query.encode()))
            except PortalError as error:
                code = error.code
                if method.startswith("crm.timeline.comment.") and code == "NOT_FOUND":
                    code = ""  # as captured: "" with "Not found" [fixtures response_batch.json]
                parts["result_error"][key] = {"error": code,
                                              "error_description": error.description}
                self.refused_in_batch.append((method, code))
                if halt:
                    break
                continue
            parts["result"][key] = result
            if total is not None:
                parts["result_total"][key] = total
            if following is not None:
                parts["result_next"][key] = following
            parts["result_time"][key] = self._time(started)
        # PHP's json_encode writes an empty array as [] [fixtures response_batch.json]
        return {name: value or [] for name, value in parts.items()}

    @staticmethod
    def _refer(results: Mapping[str, Any], match: re.Match[str]) -> str:
        value: Any = results.get(match.group(1))
        for name in re.findall(r"\[([^\[\]]*)\]", match.group(2)):
            if isinstance(value, dict):
                value = value.get(name)
            elif isinstance(value, list) and name.isdigit() and int(name) < len(value):
                value = value[int(name)]
            else:
                value = None
        return "" if value is None or isinstance(value, dict | list) else str(value)

    # -- the methods ---------------------------------------------------------------------

    def _run(self, method: str, params: Mapping[str, Any]) -> tuple[Any, int | None, int | None]:
        """(result, total, next) of one REST method."""
        handler = _HANDLERS.get(method.lower()) if _METHOD.match(method) else None
        if handler is None:
            raise PortalError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        answer = handler(self, params)
        if isinstance(answer, _Page):
            return answer.answer()
        return answer, None, None

    def _start(self, params: Mapping[str, Any]) -> int:
        return max(0, _int(params.get("start")) or 0)

    # crm.item.*

    def _items(self, entity_type: Any) -> dict[int, dict[str, Any]]:
        items = {2: self.deals, 4: self.companies, 31: self.invoices}.get(_int(entity_type) or 0)
        if items is None:
            raise PortalError(400, "NOT_FOUND", "Smart process not found")
        return items

    def crm_item_get(self, params: Mapping[str, Any]) -> Any:
        item = self._items(params.get("entityTypeId")).get(_int(params.get("id")) or 0)
        if item is None:
            raise not_found("Element not found")
        return {"item": copy.deepcopy(item)}

    def crm_item_list(self, params: Mapping[str, Any]) -> _Page:
        items = [copy.deepcopy(item) for _, item in
                 sorted(self._items(params.get("entityTypeId")).items())
                 if _matches(item, params.get("filter") or {})]
        select = _as_list(params.get("select"))
        if select and "*" not in select:
            items = [{key: value for key, value in item.items() if key in select or key == "id"}
                     for item in items]
        return _Page(items, self._start(params), "items")

    def crm_item_fields(self, params: Mapping[str, Any]) -> Any:
        if _int(params.get("entityTypeId")) != 2:
            raise PortalError(400, "NOT_FOUND", "Smart process not found")
        return copy.deepcopy(self.deal_fields)

    def crm_status_list(self, params: Mapping[str, Any]) -> _Page:
        entity = (params.get("filter") or {}).get("ENTITY_ID")
        return _Page(copy.deepcopy(self.statuses.get(str(entity), [])), self._start(params))

    # crm.timeline.comment.*, crm.timeline.item.pin

    def _comment(self, comment_id: Any) -> dict[str, Any]:
        comment = self.comments.get(_int(comment_id) or 0)
        if comment is None:
            raise not_found()
        return comment

    def _deal_owner(self, params: Mapping[str, Any], comment: Mapping[str, Any]) -> None:
        if params.get("ownerTypeId") is not None and (
                not _same(params.get("ownerTypeId"), 2)
                or not _same(params.get("ownerId"), comment["ENTITY_ID"])):
            raise not_found()

    def crm_timeline_comment_list(self, params: Mapping[str, Any]) -> _Page:
        where = params.get("filter") or {}
        found = [copy.deepcopy(c) for _, c in sorted(self.comments.items())
                 if _same(c["ENTITY_ID"], where.get("ENTITY_ID"))
                 and c["ENTITY_TYPE"] == str(where.get("ENTITY_TYPE", "")).lower()]
        return _Page(found, self._start(params))

    def crm_timeline_comment_get(self, params: Mapping[str, Any]) -> Any:
        return copy.deepcopy(self._comment(params.get("id")))

    def crm_timeline_comment_add(self, params: Mapping[str, Any]) -> Any:
        fields = params.get("fields")
        if not isinstance(fields, dict):  # only lower-case `fields` since crm 23.100.0
            raise PortalError(400, "100", "Required fields: ENTITY_ID, ENTITY_TYPE, COMMENT")
        entity_type = str(fields.get("ENTITY_TYPE") or "").lower()
        entity_id = _int(fields.get("ENTITY_ID")) or 0
        if not str(fields.get("COMMENT") or "").strip():
            raise PortalError(400, "INVALID_ARG_VALUE", "Empty comment")
        if entity_type != "deal" or entity_id not in self.deals:
            raise PortalError(400, "OWNER_NOT_FOUND", "Owner not found")
        comment_id = self._add_comment(entity_id, str(fields["COMMENT"]), WEBHOOK_USER)
        self.writes.append(Write("crm.timeline.comment.add", copy.deepcopy(dict(params))))
        return comment_id

    def crm_timeline_comment_update(self, params: Mapping[str, Any]) -> Any:
        comment = self._comment(params.get("id"))
        self._deal_owner(params, comment)
        comment["COMMENT"] = str((params.get("fields") or {}).get("COMMENT") or "")
        self.writes.append(Write("crm.timeline.comment.update", copy.deepcopy(dict(params))))
        return int(comment["ID"])

    def crm_timeline_comment_delete(self, params: Mapping[str, Any]) -> Any:
        comment = self._comment(params.get("id"))
        self._deal_owner(params, comment)
        del self.comments[int(comment["ID"])]
        self.writes.append(Write("crm.timeline.comment.delete", copy.deepcopy(dict(params))))
        return None

    def crm_timeline_item_pin(self, params: Mapping[str, Any]) -> Any:
        self._deal_owner(params, self._comment(params.get("id")))
        self.writes.append(Write("crm.timeline.item.pin", copy.deepcopy(dict(params))))
        return None

    # crm.activity.*

    def crm_activity_list(self, params: Mapping[str, Any]) -> _Page:
        where = dict(params.get("filter") or {})
        wanted = [(str(b.get("OWNER_TYPE_ID")), str(b.get("OWNER_ID")))
                  for b in _as_list(where.pop("BINDINGS", None)) if isinstance(b, dict)]
        found = []
        for activity_id, activity in sorted(self.activities.items()):
            bound = {(str(b["entityTypeId"]), str(b["entityId"]))
                     for b in self.bindings[activity_id]}
            if wanted and not bound & set(wanted):
                continue
            if _matches(activity, where):
                found.append(copy.deepcopy(activity))
        return _Page(found, self._start(params))

    def crm_activity_get(self, params: Mapping[str, Any]) -> Any:
        activity = self.activities.get(_int(params.get("id")) or 0)
        if activity is None:
            raise not_found("Element not found")
        return copy.deepcopy(activity)

    def crm_activity_binding_list(self, params: Mapping[str, Any]) -> Any:
        activity_id = _int(params.get("activityId")) or 0
        if activity_id not in self.bindings:
            raise not_found("Element not found")
        return copy.deepcopy(self.bindings[activity_id])

    # tasks

    def tasks_task_list(self, params: Mapping[str, Any]) -> _Page:
        links = set(map(str, _as_list((params.get("filter") or {}).get("UF_CRM_TASK"))))
        found = [copy.deepcopy(task) for _, task in sorted(self.tasks.items())
                 if not links or links & set(task["ufCrmTask"])]
        return _Page(found, self._start(params), "tasks")

    def tasks_task_get(self, params: Mapping[str, Any]) -> Any:
        task = self.tasks.get(_int(params.get("taskId")) or 0)
        if task is None:
            return []  # gone, or not ours to see [D:api-reference/tasks/tasks-task-get.md]
        return {"task": copy.deepcopy(task)}

    def task_elapseditem_getlist(self, params: Mapping[str, Any]) -> Any:
        records = self.time_logs.get(_int(params.get("TASKID")) or 0, [])
        return copy.deepcopy(records)

    # documents, stage history

    def crm_documentgenerator_document_list(self, params: Mapping[str, Any]) -> _Page:
        where = params.get("filter") or {}
        found = [copy.deepcopy(d) for _, d in sorted(self.documents.items())
                 if _same(d["entityTypeId"], where.get("entityTypeId"))
                 and _same(d["entityId"], where.get("entityId"))]
        return _Page(found, self._start(params), "documents")

    def crm_stagehistory_list(self, params: Mapping[str, Any]) -> _Page:
        owner = (params.get("filter") or {}).get("OWNER_ID")
        found = [copy.deepcopy(r) for r in sorted(self.stage_history, key=lambda r: r["ID"])
                 if _same(r["OWNER_ID"], owner)]
        return _Page(found, self._start(params), "items")

    # people

    def user_get(self, params: Mapping[str, Any]) -> _Page:
        where = params.get("filter") or {}
        ids = {str(value) for value in _as_list(where.get("ID"))}
        found = [copy.deepcopy(user) for _, user in sorted(self.users.items())
                 if (not ids or user["ID"] in ids)
                 and ("USER_TYPE" not in where or user.get("USER_TYPE") == where["USER_TYPE"])]
        return _Page(found, self._start(params))

    def crm_contact_list(self, params: Mapping[str, Any]) -> _Page:
        ids = {str(value) for value in _as_list((params.get("filter") or {}).get("@ID"))}
        found = [copy.deepcopy(c) for _, c in sorted(self.contacts.items())
                 if not ids or c["ID"] in ids]
        return _Page(found, self._start(params))

    def im_notify_system_add(self, params: Mapping[str, Any]) -> Any:
        notification_id = self._new_id()
        self.notifications.append({"ID": notification_id, **copy.deepcopy(dict(params))})
        self.writes.append(Write("im.notify.system.add", copy.deepcopy(dict(params))))
        return notification_id


def _matches(record: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    """A `filter` with Bitrix24's operator prefixes: `=` (or none), `!`, `>`, `>=`, `<`,
    `<=`, `@` (in a list) [D:api-reference/crm/universal/crm-item-list.md]."""
    for raw_key, wanted in where.items():
        match = re.match(r"^(>=|<=|!=|!@|=|!|>|<|@)?(.+)$", str(raw_key))
        assert match is not None
        operator, key = match.group(1) or "=", match.group(2)
        value = record.get(key)
        if operator in ("@", "!@"):
            inside = any(_same(value, item) for item in _as_list(wanted))
            if inside != (operator == "@"):
                return False
        elif operator in ("=", "!", "!="):
            if _same(value, wanted) != (operator == "="):
                return False
        elif not _compare(value, operator, wanted):
            return False
    return True


def _compare(value: Any, operator: str, wanted: Any) -> bool:
    left: Any
    right: Any
    try:
        left, right = float(value), float(wanted)
    except (TypeError, ValueError):
        try:
            left = datetime.fromisoformat(str(value))
            right = datetime.fromisoformat(str(wanted))
        except ValueError:
            return False
    return {">": left > right, ">=": left >= right, "<": left < right,
            "<=": left <= right}[operator]


_HANDLERS: dict[str, Callable[[FakePortal, Mapping[str, Any]], Any]] = {
    method: getattr(FakePortal, method.replace(".", "_")) for method in (
        "crm.item.get", "crm.item.list", "crm.item.fields", "crm.status.list",
        "crm.timeline.comment.list", "crm.timeline.comment.get", "crm.timeline.comment.add",
        "crm.timeline.comment.update", "crm.timeline.comment.delete", "crm.timeline.item.pin",
        "crm.activity.list", "crm.activity.get", "crm.activity.binding.list",
        "tasks.task.list", "tasks.task.get", "task.elapseditem.getlist",
        "crm.documentgenerator.document.list", "crm.stagehistory.list", "user.get",
        "crm.contact.list", "im.notify.system.add")}
"""The methods the portal knows, by lower-case name; any other is ERROR_METHOD_NOT_FOUND."""


# -- events -----------------------------------------------------------------------------

EVENT_FIXTURES = {
    "ONCRMDEALUPDATE": "event_ONCRMDEALUPDATE.app.json",
    "ONCRMDEALADD": "event_ONCRMDEALADD.outgoing_webhook.json",
    "ONCRMACTIVITYADD": "event_ONCRMACTIVITYADD.json",
    "ONCRMTIMELINECOMMENTADD": "event_ONCRMTIMELINECOMMENTADD.fields_id.json",
    "ONTASKUPDATE": "event_ONTASKUPDATE.json",
    "ONCRMDYNAMICITEMUPDATE": "event_ONCRMDYNAMICITEMUPDATE.smart_invoice.json",
    "ONCRMCONTACTADD": "event_ONCRMCONTACTADD.captured.json",
}
"""The sample each event body is built from (its `data` and `auth` shapes)."""


def webhook_auth(token: str = OUTGOING_TOKEN, user_id: str | None = None) -> dict[str, str]:
    """`auth[...]` of an outgoing webhook's event [fixtures
    event_ONCRMDEALADD.outgoing_webhook.json], optionally with the acting `user_id`."""
    auth = {"domain": DOMAIN, "client_endpoint": CLIENT_ENDPOINT,
            "server_endpoint": SERVER_ENDPOINT, "member_id": MEMBER_ID,
            "application_token": token}
    if user_id is not None:
        auth["user_id"] = user_id
    return auth


def app_auth(portal: FakePortal, *, member_id: str = MEMBER_ID,
             token: str = APPLICATION_TOKEN) -> dict[str, str]:
    """`auth[...]` of an application's event [fixtures event_ONCRMDEALUPDATE.app.json]."""
    return {"access_token": portal.access_token, "expires_in": "3600", "scope": "crm",
            "domain": DOMAIN, "server_endpoint": SERVER_ENDPOINT, "status": "L",
            "client_endpoint": CLIENT_ENDPOINT, "member_id": member_id,
            "application_token": token}


def event_body(name: str, object_id: int | str, *, ts: int = 1_766_047_200,
               auth: Mapping[str, str] | None = None) -> bytes:
    """The form body Bitrix24 posts for event `name` about object `object_id`, built from
    the event's sample: its `data` with the id replaced, `ts`, and `auth`
    (`webhook_auth()` when not given)."""
    sample = json.loads((FIXTURES / EVENT_FIXTURES[name]).read_text("utf-8"))
    data = sample["data"]
    for key in ("FIELDS", "FIELDS_AFTER", "FIELDS_BEFORE"):
        if isinstance(data.get(key), dict):
            data[key]["ID"] = str(object_id)
    if "ID" in data:
        data["ID"] = str(object_id)
    handler = {"event_handler_id": sample["event_handler_id"]} if (
        "event_handler_id" in sample) else {}
    return encode_form({"event": sample["event"], **handler, "data": data, "ts": str(ts),
                        "auth": dict(auth if auth is not None else webhook_auth())})


def sub_commands(calls: Iterable[Call]) -> list[tuple[str, ...]]:
    """The batch commands of `calls`, one tuple per batch."""
    return [call.commands for call in calls if call.method == "batch"]


# -- offline events (the review's queue: connectors/bitrix24/offline.py) -----------------

def queue_offline(portal: FakePortal, name: str, data: Mapping[str, Any], *,
                  user_id: str = "3") -> None:
    """The portal notes a change in the application's offline queue (as when the event is
    bound with `event_type: offline`): one record per event and object, holding only the
    latest change, which moves it to the end [D:api-reference/events/offline-events.md].
    Records as in `fixtures/rest/event.offline.get__*.json`; `user_id` made the change."""
    import hashlib  # here: this section is appended to the module

    with portal._lock:
        queue: list[dict[str, Any]] = vars(portal).setdefault("offline_queue", [])
        message_id = hashlib.sha256(f"{name} {json.dumps(data, sort_keys=True)}".encode()
                                    ).hexdigest()[:32]
        queue[:] = [record for record in queue if record["MESSAGE_ID"] != message_id]
        queue.append({"ID": str(portal._new_id()), "TIMESTAMP_X": _moment(portal._now()),
                      "EVENT_NAME": name, "EVENT_DATA": copy.deepcopy(dict(data)),
                      "EVENT_ADDITIONAL": {"user_id": user_id}, "MESSAGE_ID": message_id})


def _event_offline_get(portal: FakePortal, params: Mapping[str, Any]) -> Any:
    """`event.offline.get {clear: 1, limit}`: the first `limit` records (50 by default),
    deleted as they are returned [D:api-reference/events/event-offline-get.md]. `clear: 0`
    (the plan feature `rest_offline_extended`) is not modelled."""
    if str(params.get("clear", 1)) != "1":
        raise PortalError(400, "ERROR_NOT_MODELLED", "FakePortal models clear=1 only")
    limit = _int(params.get("limit")) or PAGE
    queue: list[dict[str, Any]] = vars(portal).setdefault("offline_queue", [])
    taken, queue[:] = queue[:limit], queue[limit:]
    return {"process_id": None, "events": copy.deepcopy(taken)}


_HANDLERS["event.offline.get"] = _event_offline_get
