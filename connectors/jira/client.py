"""Jira REST client for Cloud (API v3) and Data Center (API v2).

Every call goes through `JiraClient.request`: the URL is always the configured site plus a
path, errors become the typed errors of `connectors.errors` (see `parse_errors`), idempotent
calls are retried under `connectors.http.RETRY_IDEMPOTENT`, and writes to one issue are
spaced to stay under Jira's per-issue write limits.

Comment bodies are passed through as given; the connector renders them:

- Cloud (`/rest/api/3`): an Atlassian Document Format document (a dict,
  `{"type": "doc", "version": 1, "content": [...]}`).
- Data Center (`/rest/api/2`): a wiki-markup string.
- JSM request comments (`/rest/servicedeskapi`, both flavours): a plain string.

Credentials live only in the `requests` auth object; they never reach a log record, an
exception message or `repr()`.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Required, TypedDict
from urllib.parse import quote, urlsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from connectors.errors import (
    AuthError,
    Misrouted,
    NotFound,
    PayloadError,
    PlatformError,
    RateLimited,
    Transient,
)
from connectors.http import (
    RETRY_IDEMPOTENT,
    CallObserver,
    new_session,
    platform_sleep,
    retry_after_seconds,
    send,
)
from connectors.mapping import as_time

log = logging.getLogger(__name__)

Flavour = Literal["cloud", "datacenter"]
API_PREFIX: dict[str, str] = {"cloud": "/rest/api/3", "datacenter": "/rest/api/2"}
JSM_PREFIX = "/rest/servicedeskapi"
PAGE_SIZE = 100
KEYS_PAGE_SIZE = 1000  # Cloud's search: up to 5,000 a page when only ids or keys are asked
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE"})

PER_ISSUE_WRITE_LIMITS: tuple[tuple[int, float], ...] = ((20, 2.0), (100, 30.0))
"""Jira Cloud's per-issue write limits (reason `jira-per-issue-on-write`): at most 20
writes in any 2 s and 100 in any 30 s to the same issue."""

_ERROR_TEXT_LIMIT = 200


class CommentVisibility(TypedDict, total=False):
    """Who may read a comment: a project role or a group, by name (`value`) or id
    (`identifier`: the group id, or the role name)."""

    type: Required[Literal["role", "group"]]
    value: str
    identifier: str


class BearerAuth(AuthBase):
    """`Authorization: Bearer <token>`, for Data Center personal access tokens."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(<hidden>)"


class IssueWriteSpacer:
    """Waits before a write to an issue until it stays within every per-issue window.

    `clock` (monotonic seconds) and `sleep` are injectable so tests run on a fake clock.
    Safe to share between threads: the bookkeeping is locked, the waiting is not."""

    def __init__(self, *, clock: Callable[[], float], sleep: Callable[[float], None],
                 limits: tuple[tuple[int, float], ...] = PER_ISSUE_WRITE_LIMITS) -> None:
        self._clock = clock
        self._sleep = sleep
        self._limits = limits
        self._longest_window = max(window for _, window in limits)
        self._writes: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_turn(self, issue: str) -> None:
        """Block until one more write to `issue` is allowed, then count it."""
        key = issue.upper()
        while True:
            with self._lock:
                now = self._clock()
                self._forget_before(now - self._longest_window)
                writes = self._writes.setdefault(key, deque())
                delay = self._delay(writes, now)
                if delay <= 0:
                    writes.append(now)
                    return
            log.debug("spacing writes to %s: waiting %.2f s", key, delay)
            self._sleep(delay)

    def _delay(self, writes: deque[float], now: float) -> float:
        delay = 0.0
        for limit, window in self._limits:
            recent = [at for at in writes if at > now - window]
            if len(recent) >= limit:
                delay = max(delay, recent[-limit] + window - now)
        return delay

    def _forget_before(self, horizon: float) -> None:
        for key in list(self._writes):
            writes = self._writes[key]
            while writes and writes[0] <= horizon:
                writes.popleft()
            if not writes:
                del self._writes[key]


def parse_errors(response: requests.Response, *, now: datetime | None = None) -> PlatformError:
    """The typed error for a Jira answer of 400 or above.

    Reads every error shape Jira returns: the REST `{"errorMessages": [...], "errors":
    {field: message}}`, JSM's `{"errorMessage": ...}`, the gateway's `{"message": ...}`,
    plain-text or HTML pages (5xx, proxies) and empty bodies. 429 carries `retry_after`
    from `Retry-After`, else from `X-RateLimit-Reset` (ISO 8601; gateway 429s may lack
    `Retry-After`). `now` is for tests; it defaults to the current time."""
    status = response.status_code
    method = response.request.method if response.request is not None else "?"
    message = (f"Jira answered {status} to {method} {urlsplit(response.url).path}: "
               f"{_error_detail(response)}")
    if status in (401, 403):
        return AuthError(message, status=status)
    if status == 404:  # Jira's REST API says what it did not find, in its error object
        return (NotFound(message, status=status) if _is_jira_error(response)
                else Misrouted(f"{message} (not Jira's REST API answering: check "
                               "jira.base_url and any proxy in between)", status=status))
    if status == 429:
        wait = _rate_limit_wait(response.headers, now or datetime.now(UTC))
        return RateLimited(message, status=status, retry_after=wait)
    if status >= 500 or status == 408:
        return Transient(message, status=status,
                         retry_after=retry_after_seconds(response.headers,
                                                         now=now or datetime.now(UTC)))
    return PayloadError(message, status=status)


def _is_jira_error(response: requests.Response) -> bool:
    """Whether the body is Jira's own error object (`errorMessages`/`errors`, or JSM's
    `errorMessage`), not a gateway's or a proxy's page or JSON."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and bool(
        {"errorMessages", "errors", "errorMessage"} & body.keys())


def _error_detail(response: requests.Response) -> str:
    text = response.text.strip()
    if not text:
        return response.reason or "empty body"
    try:
        data = response.json()
    except ValueError:
        return _readable(text)
    parts: list[str] = []
    if isinstance(data, dict):
        parts += [str(message) for message in data.get("errorMessages") or ()]
        errors = data.get("errors")
        if isinstance(errors, dict):
            parts += [f"{field}: {message}" for field, message in errors.items()]
        parts += [data[key] for key in ("errorMessage", "message")
                  if isinstance(data.get(key), str)]
    return "; ".join(parts) if parts else _readable(text)


def _readable(text: str) -> str:
    """A short one-line summary of a non-JSON body: an HTML page's title, else its text."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title:
        text = title.group(1)
    else:
        text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.IGNORECASE | re.DOTALL)
        text = re.sub(r"<[^>]+>", " ", text)
    text = " ".join(html.unescape(text).split())
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[:_ERROR_TEXT_LIMIT] + "…"


def _rate_limit_wait(headers: Mapping[str, str], now: datetime) -> float | None:
    wait = retry_after_seconds(headers, now=now)
    if wait is not None:
        return wait
    reset_at = as_time(headers.get("X-RateLimit-Reset"))
    return None if reset_at is None else max(0.0, (reset_at - now).total_seconds())


def changelog_is_complete(changelog: Mapping[str, Any]) -> bool:
    """Whether the `changelog` embedded in an issue (`expand=changelog`) holds every
    history. Cloud embeds at most 100; past that `iter_changelog` pages the rest."""
    histories = changelog.get("histories") or ()
    return changelog.get("startAt", 0) == 0 and len(histories) >= changelog.get(
        "total", len(histories))


def _segment(value: str | int) -> str:
    """One URL path segment: keys, ids and property keys come from payloads, so a `/` or
    `..` in them must not reach another resource."""
    return quote(str(value), safe="")


def _comma_list(values: Sequence[str]) -> str:
    if isinstance(values, str):
        raise TypeError("pass a sequence of names, not one string")
    return ",".join(values)


def _checked_visibility(visibility: CommentVisibility) -> CommentVisibility:
    if (not isinstance(visibility, Mapping) or visibility.get("type") not in ("role", "group")
            or not (visibility.get("value") or visibility.get("identifier"))):
        raise ValueError("a comment write needs a visibility: {'type': 'role' or 'group', "
                         "'value': <name>} (or 'identifier')")
    return visibility


class JiraClient:
    """One Jira site. `auth` is `(email, api_token)` for Cloud (basic auth) and the
    personal access token for Data Center (bearer). `sleep` and `clock` are injectable
    so tests never wait; `observer` is told about every attempt (`connectors.http.send`)."""

    def __init__(self, base_url: str, auth: tuple[str, str] | str, flavour: Flavour = "cloud",
                 session: requests.Session | None = None,
                 sleep: Callable[[float], None] = platform_sleep,
                 clock: Callable[[], float] = time.monotonic,
                 observer: CallObserver | None = None) -> None:
        if flavour not in API_PREFIX:
            raise ValueError(f"unknown Jira flavour {flavour!r}: 'cloud' or 'datacenter'")
        parts = urlsplit(base_url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"Jira base URL must be absolute (https://…), got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.flavour: Flavour = flavour
        self.api = API_PREFIX[flavour]
        self._auth = _auth_for(flavour, auth)
        self._session = session or new_session()
        self._retrying = RETRY_IDEMPOTENT.copy(sleep=sleep)
        self._write_spacer = IssueWriteSpacer(clock=clock, sleep=sleep)
        self._observer = observer

    def __repr__(self) -> str:
        return f"JiraClient({self.base_url!r}, flavour={self.flavour!r})"

    # -- the choke point ---------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, idempotent: bool | None = None,
                issue: str | None = None) -> Any:
        """Send one call to this site and return the decoded JSON body (None when empty).

        `path` is relative to the site (`/rest/api/3/myself`); absolute URLs, e.g. the
        `self` links in Jira's answers, are refused. `idempotent` defaults to True for
        GET/PUT/DELETE; only idempotent calls are retried. `issue` marks a write to that
        issue: it is spaced by the per-issue write limits. Raises the typed errors of
        `connectors.errors`."""
        if not path.startswith("/") or path.startswith("//"):
            raise ValueError(f"path must be relative to the Jira site, got {path!r}")
        method = method.upper()
        where = f"{method} {path}"
        url = self.base_url + path

        def attempt() -> Any:
            if issue is not None:
                self._write_spacer.wait_turn(issue)
            response = send(self._session, method, url, where=where, params=params, json=json,
                            auth=self._auth, headers={"Accept": "application/json"},
                            observer=self._observer, connector="jira")
            if response.status_code >= 400:
                raise parse_errors(response)
            return _decoded(response, where)

        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        return self._retrying(attempt) if idempotent else attempt()

    # -- reads: the snapshot of an engagement, the sweep, doctor, install --------------

    def get_issue(self, key_or_id: str, fields: Sequence[str] | None = None,
                  expand: Sequence[str] = ("changelog",)) -> dict[str, Any]:
        """The issue with `fields` (all navigable fields when None) and `expand`ed parts.
        Jira resolves moved issues itself: use the `key` in the answer."""
        params: dict[str, str] = {}
        if fields is not None:
            params["fields"] = _comma_list(fields)
        if expand:
            params["expand"] = _comma_list(expand)
        return self.request("GET", f"{self.api}/issue/{_segment(key_or_id)}", params=params)

    def iter_changelog(self, key: str, *, embedded: Mapping[str, Any] | None = None
                       ) -> Iterator[dict[str, Any]]:
        """Every changelog history of the issue.

        Pass `embedded` (the `changelog` of an issue from `get_issue`) to avoid requests:
        when it is complete (`changelog_is_complete`) it is used as is. Otherwise Cloud pages
        `/issue/{key}/changelog` (oldest first); Data Center, which has no such resource
        but always embeds the whole changelog, fetches the issue with `expand=changelog`."""
        if embedded is not None and changelog_is_complete(embedded):
            yield from embedded.get("histories") or ()
            return
        if self.flavour == "datacenter":
            issue = self.get_issue(key, fields=("created",), expand=("changelog",))
            yield from issue.get("changelog", {}).get("histories") or ()
            return
        yield from self._iter_offset_pages(
            f"{self.api}/issue/{_segment(key)}/changelog", "values")

    def iter_comments(self, key: str) -> Iterator[dict[str, Any]]:
        """Every comment, oldest first, with its properties (`expand=properties`) so a JSM
        internal note is recognisable by `sd.public.comment` as well as `jsdPublic`."""
        yield from self._iter_offset_pages(
            f"{self.api}/issue/{_segment(key)}/comment", "comments",
            {"orderBy": "created", "expand": "properties"})

    def iter_worklogs(self, key: str) -> Iterator[dict[str, Any]]:
        """Every worklog of the issue."""
        yield from self._iter_offset_pages(f"{self.api}/issue/{_segment(key)}/worklog",
                                           "worklogs")

    def search(self, jql: str, fields: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Every issue matching `jql` (which must be bounded, e.g. `updated >= -1d`), with
        `fields`. Cloud: `GET /search/jql` paged by `nextPageToken` (absent on the last
        page), larger pages when only ids or keys are asked (the listings of every open
        engagement); Data Center: `GET /search` paged by `startAt`."""
        params = {"jql": jql, "fields": _comma_list(fields)}
        if self.flavour == "datacenter":
            yield from self._iter_offset_pages(f"{self.api}/search", "issues", params)
            return
        page_size = KEYS_PAGE_SIZE if set(fields) <= {"id", "key"} else PAGE_SIZE
        token: str | None = None
        while True:
            page_params = {**params, "maxResults": page_size}
            if token:
                page_params["nextPageToken"] = token
            page = self.request("GET", f"{self.api}/search/jql", params=page_params)
            yield from page.get("issues") or ()
            token = page.get("nextPageToken")
            if not token or page.get("isLast"):
                return

    def list_fields(self) -> list[dict[str, Any]]:
        """Every system and custom field the account can see (`id`, `name`, `schema`)."""
        return self.request("GET", f"{self.api}/field")

    def myself(self) -> dict[str, Any]:
        """The account the credentials belong to: proves they work."""
        return self.request("GET", f"{self.api}/myself")

    # -- writes: the sticky comment ----------------------------------------------------

    def add_comment(self, key: str, body: Mapping[str, Any] | str,
                    visibility: CommentVisibility) -> dict[str, Any]:
        """Create a comment restricted to `visibility` (required: there is no way to write
        a comment everyone sees). `body`: ADF on Cloud, wiki markup on Data Center.
        Not retried: a lost answer could mean a duplicate; the caller finds its comment
        by the sticky marker on the next run."""
        return self.request(
            "POST", f"{self.api}/issue/{_segment(key)}/comment", issue=key,
            json={"body": self._checked_body(body), "visibility": _checked_visibility(visibility)})

    def update_comment(self, key: str, comment_id: str, body: Mapping[str, Any] | str,
                       visibility: CommentVisibility, notify_users: bool = False
                       ) -> dict[str, Any]:
        """Replace a comment's body, restating its `visibility` so an edit can never widen
        it. Silent by default (`notifyUsers=false`)."""
        return self.request(
            "PUT", f"{self.api}/issue/{_segment(key)}/comment/{_segment(comment_id)}",
            issue=key, params={"notifyUsers": "true" if notify_users else "false"},
            json={"body": self._checked_body(body), "visibility": _checked_visibility(visibility)})

    def delete_comment(self, key: str, comment_id: str) -> None:
        """Delete a comment. Raises `NotFound` when it is gone already, possibly by an
        earlier attempt of this very call."""
        self.request("DELETE",
                     f"{self.api}/issue/{_segment(key)}/comment/{_segment(comment_id)}",
                     issue=key)

    def set_comment_property(self, key: str, comment_id: str, property_key: str,
                             value: Any) -> None:
        """Set a property on a comment of issue `key`, e.g. `sd.public.comment` =
        `{"internal": True}` to make it a JSM internal note."""
        self.request("PUT", f"{self.api}/comment/{_segment(comment_id)}/properties/"
                            f"{_segment(property_key)}", issue=key, json=value)

    def add_servicedesk_internal_comment(self, key: str, body: str) -> dict[str, Any]:
        """Create a JSM internal note (`public: false`: agents see it, customers never do)
        on request `key`. `body` is a plain string on both flavours."""
        if not isinstance(body, str):
            raise TypeError("a JSM request comment body is a plain string")
        return self.request("POST", f"{JSM_PREFIX}/request/{_segment(key)}/comment", issue=key,
                            json={"body": body, "public": False})

    # -- helpers -----------------------------------------------------------------------

    def _checked_body(self, body: Mapping[str, Any] | str) -> Mapping[str, Any] | str:
        if self.flavour == "cloud" and not isinstance(body, Mapping):
            raise TypeError("Jira Cloud (API v3) takes a comment body as an ADF document")
        if self.flavour == "datacenter" and not isinstance(body, str):
            raise TypeError("Jira Data Center (API v2) takes a comment body as wiki markup")
        return body

    def iter_group_members(self, group: str) -> Iterator[dict[str, Any]]:
        """Every member of `group`, deactivated ones too (staff who left wrote comments
        that are still on the tickets). Cloud asks for the *Browse users and groups* global
        permission, Data Center for Jira administrator."""
        yield from self._iter_offset_pages(f"{self.api}/group/member", "values",
                                           {"groupname": group, "includeInactiveUsers": "true"})

    def _iter_offset_pages(self, path: str, items_key: str,
                           params: Mapping[str, Any] | None = None
                           ) -> Iterator[dict[str, Any]]:
        """Items of a `startAt`/`maxResults`/`total` paged resource, page by page."""
        start = 0
        while True:
            page = self.request("GET", path,
                                params={**(params or {}), "startAt": start,
                                        "maxResults": PAGE_SIZE})
            items = page.get(items_key) or []
            yield from items
            start += len(items)
            total = page.get("total")
            if (not items or page.get("isLast")
                    or (total is not None and start >= total)
                    or (total is None and len(items) < page.get("maxResults", PAGE_SIZE))):
                return


def _auth_for(flavour: Flavour, auth: tuple[str, str] | str) -> AuthBase:
    if flavour == "cloud":
        if not (isinstance(auth, tuple) and len(auth) == 2):
            raise ValueError("Jira Cloud needs auth=(email, api_token)")
        return HTTPBasicAuth(*auth)
    if not (isinstance(auth, str) and auth):
        raise ValueError("Jira Data Center needs auth=<personal access token>")
    return BearerAuth(auth)


def _decoded(response: requests.Response, where: str) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise PlatformError(f"{where}: Jira answered {response.status_code} with a body that "
                            f"is not JSON", status=response.status_code) from None
