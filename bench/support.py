"""What the service benchmarks share: a stand-in for Jira Data Center, signed webhook bodies,
percentiles.

`FakeJira` serves issues built from tests/connectors/jira/fixtures/rest/issue__datacenter.json
with varied ids, keys and content, keeps the sticky comments written to it, counts every
call by kind, and makes the changes a person would make in Jira. It answers in-process
through `responses` (`mock_jira`) or over HTTPS on 127.0.0.1 (`https_jira`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import math
import random
import re
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import responses

FIXTURES = Path(__file__).parent.parent / "tests" / "connectors" / "jira" / "fixtures"
SECRET = "bench-hook-secret"
SERVICE_ACCOUNT = "clientguard"
ROLE = {"type": "role", "value": "Developers"}
STATUSES = [{"id": "1", "name": "Open", "statusCategory": {"key": "new"}},
            {"id": "3", "name": "In Progress", "statusCategory": {"key": "indeterminate"}},
            {"id": "6", "name": "Closed", "statusCategory": {"key": "done"}}]
ACCOUNT_MANAGER = "customfield_10100"
EMBEDDED_WORKLOGS = 20  # what Data Center embeds in an issue; the rest is paged
PATH = re.compile(r"/rest/api/2/(?:(?P<status>status)|(?P<search>search)|issue/(?P<issue>[^/]+)"
                  r"(?:/(?P<part>comment|worklog)(?:/(?P<comment>\d+))?)?)")
SINCE = re.compile(r"updated >= -(\d+)m")
COMMENT_SELF = re.compile(r"/issue/\d+/comment/")
SENTENCES = [
    "Could you send us the product feed credentials by Monday?",
    "We have updated the campaign structure and will send the report on Friday.",
    "The new landing page loads in 1.2 seconds on mobile now.",
    "Can we move the launch to the 15th because of the board meeting?",
    "We need the brand guidelines before we can finish the banner set.",
    "Vi har opdateret kampagnerne og sender rapporten fredag.",
    "Kan I sende os de nye produktbilleder inden onsdag?",
    "Мы обновили семантическое ядро, отчёт пришлём в пятницу.",
    "Пришлите, пожалуйста, доступы к рекламному кабинету до понедельника.",
    "Thanks, we will review the estimate with finance tomorrow.",
]


def jira_settings(base_url: str) -> dict[str, Any]:
    """The `[jira]` table for a Data Center site at `base_url`, as the e2e tests set it."""
    return {"site": "agency-dc", "base_url": base_url, "flavour": "datacenter",
            "personal_access_token": "bench-pat", "webhook_secret": SECRET,
            "service_account": SERVICE_ACCOUNT, "internal_visibility": ROLE,
            "agency_domains": ["agency.example"], "client_domains": ["acme.example"],
            "fields": {"account_manager": ACCOUNT_MANAGER,
                       "project_manager": "customfield_10101"}}


def signed(payload: dict[str, Any]) -> tuple[bytes, str]:
    """The body and its `X-Hub-Signature` header value."""
    body = json.dumps(payload).encode()
    return body, "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text("utf-8"))


def retarget(payload: dict[str, Any], issue_id: str, key: str) -> dict[str, Any]:
    """A copy of a webhook payload about the issue `issue_id` (`key`), wherever the event
    kind names its issue: `issue`, `worklog.issueId` or the URL in `comment.self`."""
    payload = copy.deepcopy(payload)
    if isinstance(payload.get("issue"), dict):
        payload["issue"].update(id=issue_id, key=key)
    if isinstance(payload.get("worklog"), dict):
        payload["worklog"]["issueId"] = issue_id
    comment = payload.get("comment")
    if isinstance(comment, dict) and isinstance(comment.get("self"), str):
        comment["self"] = COMMENT_SELF.sub(f"/issue/{issue_id}/comment/", comment["self"])
    return payload


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (`share` 0.5 for the median) of unsorted `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _jira_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


class FakeJira:
    """`tickets` issues of one Data Center site, with every call counted by kind."""

    def __init__(self, base_url: str, tickets: int = 100, seed: int = 7) -> None:
        self.base_url = base_url
        self.calls: Counter[str] = Counter()
        self.written: list[tuple[str, dict[str, Any]]] = []  # (issue id, our comment)
        self.needless_writes = 0  # a write although nothing changed since our last write
        self._version: Counter[str] = Counter()  # per issue: changes made by `change_*`
        self._written_version: dict[str, int | None] = {}
        self._fetched = threading.local()  # the version the calling worker last read
        self._next_id = 800000
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        template = fixture("rest/issue__datacenter.json")
        self._people = {"agency": template["fields"]["assignee"],
                        "client": template["fields"]["reporter"]}
        now = datetime.now(UTC)
        self.issues = {issue["id"]: issue for issue in
                       (self._issue(template, n, now) for n in range(tickets))}
        self.ids = list(self.issues)
        self._by_key = {issue["key"]: issue for issue in self.issues.values()}

    def _issue(self, template: dict[str, Any], n: int, now: datetime) -> dict[str, Any]:
        rng, issue = self._rng, copy.deepcopy(template)
        issue_id, key = str(30000 + n), f"{rng.choice(['PRJA', 'SHOE', 'WEB', 'SEO'])}-{n + 1}"
        fields = issue["fields"]
        issue.update(id=issue_id, key=key, self=f"{self.base_url}/rest/api/2/issue/{issue_id}")
        fields["summary"] = f"{rng.choice(['Landing page', 'SEO audit', 'Campaign'])} #{n}"
        fields["created"] = _jira_time(now - timedelta(days=rng.uniform(60, 200)))
        fields["duedate"] = (now + timedelta(days=rng.randint(-10, 60))).date().isoformat()
        if rng.random() < 0.2:
            fields[ACCOUNT_MANAGER] = None
        if rng.random() < 0.3:
            fields["attachment"] = []
        ages = sorted((rng.uniform(0.5, 50) for _ in range(rng.randint(3, 40))), reverse=True)
        comments = []
        for days in ages:
            client = rng.random() < 0.4
            comments.append(self._comment(issue_id, client, rng.choice(SENTENCES),
                                          now - timedelta(days=days),
                                          internal=not client and rng.random() < 0.3))
        fields["comment"] = {"comments": comments, "maxResults": len(comments),
                             "total": len(comments), "startAt": 0}
        worklog = fields["worklog"]["worklogs"][0]
        worklogs = [{**worklog, "id": str(600000 + n * 100 + i), "issueId": issue_id,
                     "timeSpentSeconds": rng.choice((1800, 3600, 7200)),
                     "started": _jira_time(now - timedelta(days=i + 1))}
                    for i in range(rng.choice((1, 5, 12, 20, 35, 60)))]
        issue["all_worklogs"] = worklogs  # not Jira's: the whole list, for the worklog pages
        fields["worklog"] = {"startAt": 0, "maxResults": EMBEDDED_WORKLOGS,
                             "total": len(worklogs), "worklogs": worklogs[:EMBEDDED_WORKLOGS]}
        return issue

    def _comment(self, issue_id: str, client: bool, text: str, at: datetime,
                 internal: bool = False) -> dict[str, Any]:
        self._next_id += 1
        comment_id = self._next_id
        person = self._people["client" if client else "agency"]
        comment = {"self": f"{self.base_url}/rest/api/2/issue/{issue_id}/comment/{comment_id}",
                   "id": str(comment_id), "author": person, "updateAuthor": person, "body": text,
                   "created": _jira_time(at), "updated": _jira_time(at)}
        if internal:
            comment["visibility"] = ROLE
        return comment

    # -- what a person does in Jira --------------------------------------------------------

    def change_comment(self, issue_id: str, client: bool) -> dict[str, Any]:
        """Add a comment by the client or the agency, now; returns it (for the webhook)."""
        with self._lock:
            comment = self._comment(issue_id, client, self._rng.choice(SENTENCES),
                                    datetime.now(UTC))
            self._add(self.issues[issue_id], comment)
            self._version[issue_id] += 1
            self.issues[issue_id]["fields"]["updated"] = comment["created"]
        return comment

    def change_account_manager(self, issue_id: str) -> None:
        """Clear the account manager, or set it again when it is cleared."""
        with self._lock:
            fields = self.issues[issue_id]["fields"]
            fields[ACCOUNT_MANAGER] = None if fields[ACCOUNT_MANAGER] else self._people["agency"]
            fields["updated"] = _jira_time(datetime.now(UTC))
            self._version[issue_id] += 1

    def change_unread(self, issue_id: str) -> None:
        """A change of something ClientGuard does not read (another field, a worklog's
        note): only the issue's `updated` moves."""
        with self._lock:
            self.issues[issue_id]["fields"]["updated"] = _jira_time(datetime.now(UTC))

    @staticmethod
    def _add(issue: dict[str, Any], comment: dict[str, Any]) -> None:
        page = issue["fields"]["comment"]
        page["comments"].append(comment)
        page["total"] = page["maxResults"] = len(page["comments"])

    @staticmethod
    def _remove(issue: dict[str, Any], comment_id: str) -> None:
        page = issue["fields"]["comment"]
        page["comments"] = [c for c in page["comments"] if c["id"] != comment_id]
        page["total"] = page["maxResults"] = len(page["comments"])

    # -- the REST API ----------------------------------------------------------------------

    def answer(self, method: str, url: str, body: bytes | str | None) -> tuple[int, str]:
        """Status and JSON text for one call; counted under its kind (`calls`)."""
        parts = urlsplit(url)
        match = PATH.fullmatch(parts.path)
        with self._lock:
            kind, status, answer = self._route(method, match, parse_qs(parts.query), body)
            self.calls[f"{kind} {parts.path}" if kind.startswith("unknown") else kind] += 1
            return status, json.dumps(answer)

    def _route(self, method: str, match: re.Match[str] | None, query: dict[str, list[str]],
               body: bytes | str | None) -> tuple[str, int, Any]:
        if match is None:
            return f"unknown {method}", 404, {"errorMessages": ["Not found"]}
        if match["status"] and method == "GET":
            return "read: status", 200, STATUSES
        if match["search"] and method == "GET":
            return "read: search", 200, self._search(query)
        issue = self.issues.get(match["issue"]) or self._by_key.get(match["issue"])
        if issue is None:
            return f"unknown {method}", 404, {"errorMessages": ["Issue Does Not Exist"]}
        part, comment_id = match["part"], match["comment"]
        if (part, method) == (None, "GET"):
            self._fetched.version = self._version[issue["id"]]
            return "read: issue", 200, {k: v for k, v in issue.items() if k != "all_worklogs"}
        if (part, method) == ("worklog", "GET"):
            start = int(query.get("startAt", ["0"])[0])
            worklogs = issue["all_worklogs"]
            return "read: worklog page", 200, {"startAt": start, "maxResults": 100,
                                              "total": len(worklogs),
                                              "worklogs": worklogs[start:start + 100]}
        ours = [c for _, c in self.written if c["id"] == comment_id]
        creates, updates = (method, comment_id) == ("POST", None), method == "PUT" and ours
        if part == "comment" and (creates or updates):
            return self._write(method, issue, comment_id, json.loads(body or "{}"))
        if part == "comment" and method == "GET" and ours:
            return "read: comment (read-back)", 200, ours[-1]
        if part == "comment" and method == "DELETE" and ours:
            self._remove(issue, comment_id)
            return "write: delete comment", 204, None
        return f"unknown {method}", 404, {"errorMessages": ["Not found"]}

    def _search(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """`GET /search` for the review's `updated >= -Nm` (one page: at most 100 issues)."""
        since = SINCE.search(query["jql"][0])
        oldest = datetime.now(UTC) - timedelta(minutes=int(since[1]) if since else 0)
        found = [{"id": issue["id"], "key": issue["key"],
                  "fields": {"updated": issue["fields"]["updated"]}}
                 for issue in self.issues.values()
                 if datetime.fromisoformat(issue["fields"]["updated"]) >= oldest]
        return {"startAt": 0, "maxResults": 100, "total": len(found), "issues": found}

    def _write(self, method: str, issue: dict[str, Any], comment_id: str | None,
               body: dict[str, Any]) -> tuple[str, int, Any]:
        if comment_id is None:
            self._next_id += 1
            comment_id = str(self._next_id)
        moment = _jira_time(datetime.now(UTC))
        before = [c for _, c in self.written if c["id"] == comment_id]
        author = {"name": SERVICE_ACCOUNT, "key": SERVICE_ACCOUNT, "displayName": "ClientGuard"}
        comment = {"self": f"{self.base_url}/rest/api/2/issue/{issue['id']}/comment/"
                           f"{comment_id}", "id": comment_id, "author": author,
                   "updateAuthor": author, "body": body.get("body"),
                   "visibility": body.get("visibility"),
                   "created": before[-1]["created"] if before else moment, "updated": moment}
        self._remove(issue, comment_id)
        self._add(issue, comment)
        self.written.append((issue["id"], comment))
        fetched = getattr(self._fetched, "version", None)
        if fetched is not None and fetched == self._written_version.get(issue["id"]):
            self.needless_writes += 1
        self._written_version[issue["id"]] = fetched
        if method == "POST":  # Jira gives the issue the new comment's time
            issue["fields"]["updated"] = moment
            return "write: create comment", 201, comment
        return "write: update comment", 200, comment

    def reads(self) -> int:
        return sum(n for kind, n in self.calls.items() if kind.startswith("read"))

    def writes(self) -> int:
        return sum(n for kind, n in self.calls.items() if kind.startswith("write"))


def mock_jira(mock: responses.RequestsMock, jira: FakeJira) -> None:
    """Let `jira` answer every call to its base URL made through `requests`."""

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        status, text = jira.answer(request.method, request.url, request.body)
        return status, {"Content-Type": "application/json"}, text

    pattern = re.compile(re.escape(jira.base_url) + r"/.*")
    for method in (responses.GET, responses.POST, responses.PUT, responses.DELETE):
        mock.add_callback(method, pattern, callback=reply)


@contextmanager
def https_jira(jira: FakeJira, directory: Path, port: int) -> Iterator[Path]:
    """Serve `jira` over HTTPS on 127.0.0.1:`port` with a throw-away self-signed certificate;
    yields the certificate, for `REQUESTS_CA_BUNDLE`."""
    cert, key = directory / "jira-cert.pem", directory / "jira-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the connector's session expects

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, text = jira.answer(self.command, self.path, self.rfile.read(length))
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
