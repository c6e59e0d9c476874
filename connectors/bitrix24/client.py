"""Bitrix24 REST client: the one choke point every call to a portal goes through.

`Bitrix24Client.call_full` sends `POST <endpoint>/<method>` with a JSON body
[D:settings/how-to-call-rest-api/general-principles.md]; the authorisation mode
(`connectors.bitrix24.auth`) says where to and what goes into the body. Every attempt first
waits its turn in the portal's leaky bucket (`connectors.bitrix24.throttle`). Errors become
the typed errors of `connectors.errors` (`parse_errors`, table in spec §4):

- `expired_token` (401): the auth refreshes (once for all workers) and the call is repeated
  once; a webhook cannot refresh, so it is an `AuthError`.
- `QUERY_LIMIT_EXCEEDED` (503): `RateLimited`; the bucket is told (`penalise`) so every
  thread slows down. `OPERATION_TIME_LIMIT` (429): `RateLimited` waiting until the method's
  `operating_reset_at` (or `Retry-After`). Both mean the portal refused before doing
  anything, so even a write is retried.
- 5xx, timeouts, refused connections, non-JSON pages: `Transient`, retried only for calls
  that are safe to repeat (`retry_safe`): reads, updates, deletes. A write (`*.add`, a chat
  message…) that failed ambiguously is not repeated here: it may have happened.
- auth codes → `AuthError`, not-found codes → `NotFound`, other 4xx → `PayloadError`.

Waiting is bounded by `connectors.http` (attempts and total seconds); past the bound the
typed error propagates and the queue retries the whole job later.
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from tenacity import retry_if_exception_type

from connectors.bitrix24.auth import Bitrix24Auth, checked_method, redact
from connectors.bitrix24.throttle import LeakyBucket
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
    USER_AGENT,
    CallObserver,
    new_session,
    platform_sleep,
    retry_after_seconds,
    send,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 50
"""List methods answer 50 records a page, always [D:settings/how-to-call-rest-api/
list-methods-pecularities.md]."""
BATCH_LIMIT = 50
"""At most 50 commands in one `batch`; more fail with ERROR_BATCH_LENGTH_EXCEEDED
[D:settings/how-to-call-rest-api/batch.md]."""

RETRY_REFUSED = RETRY_IDEMPOTENT.copy(retry=retry_if_exception_type(RateLimited))
"""The retry policy for calls that are not safe to repeat: only when the portal refused the
call before doing anything (rate or operating limit). Waits and bounds as
`connectors.http.RETRY_IDEMPOTENT`."""

_HEADERS = {"Accept": "application/json", "Content-Type": "application/json",
            "User-Agent": USER_AGENT}
_TEXT_LIMIT = 200

# Error codes by meaning [D:_includes/system-errors.md; D:error-codes.md; b24pysdk's map].
# Compared upper-cased: the platform spells some lower-case (`insufficient_scope`).
EXPIRED_TOKEN = "EXPIRED_TOKEN"
QUERY_LIMIT_EXCEEDED = "QUERY_LIMIT_EXCEEDED"
OPERATION_TIME_LIMIT = "OPERATION_TIME_LIMIT"
RATE_LIMIT_CODES = frozenset({QUERY_LIMIT_EXCEEDED, OPERATION_TIME_LIMIT,
                              "OVERLOAD_LIMIT"})  # 503, manual block: refused as well
AUTH_CODES = frozenset({
    "NO_AUTH_FOUND", "INVALID_CREDENTIALS", "ACCESS_DENIED", "INSUFFICIENT_SCOPE",
    "INVALID_SCOPE", "WRONG_AUTH_TYPE", "USER_ACCESS_ERROR", "ACCESS_ERROR", "INVALID_TOKEN",
    "AUTHORIZATION_ERROR", "APPLICATION_NOT_FOUND", "ERROR_OAUTH", "PAYMENT_REQUIRED",
    "PORTAL_DELETED", "ALLOWED_ONLY_INTRANET_USER", "METHOD_CONFIRM_DENIED",
    "METHOD_CONFIRM_WAITING", "NOT_INSTALLED", "INVALID_GRANT", "INVALID_CLIENT",
    "WRONG_CLIENT"})
NOT_FOUND_CODES = frozenset({"ERROR_METHOD_NOT_FOUND", "NOT_FOUND", "OWNER_NOT_FOUND",
                             "ERROR_MANIFEST_IS_NOT_AVAILABLE", "ERROR_NOT_FOUND"})
TRANSIENT_CODES = frozenset({"INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER"})

# Which calls may be repeated after an ambiguous failure (a timeout, a 5xx: the call may have
# run). Unknown methods are not: repeating a write could duplicate it.
_SAFE_SUFFIXES = (".get", ".list", ".fields", ".getlist", ".getfields", ".update", ".delete",
                  ".set", ".pin", ".unpin", ".unbind")
_SAFE_METHODS = frozenset({"app.info", "profile", "user.current", "user.get", "methods",
                           "method.get", "scope", "server.time", "events", "feature.get",
                           "batch"})
_UNSAFE_METHODS = frozenset({
    "event.offline.get",  # deletes what it returns (clear=1 by default)
})
_REFERENCE = re.compile(r"^\$result(\[[A-Za-z0-9_]+\])+$")
_BATCH_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_LIMIT_WORDS = re.compile(r"QUERY_LIMIT_EXCEEDED|OPERATION_TIME_LIMIT|OVERLOAD_LIMIT"
                          r"|operation time limit|too many requests", re.IGNORECASE)


class TokenExpired(AuthError):
    """401 `expired_token`: the access token is over its hour. The client refreshes and
    repeats; it escapes only when that is impossible."""


def error_code(error: BaseException) -> str | None:
    """The Bitrix24 error code (`QUERY_LIMIT_EXCEEDED`, `NOT_FOUND`, …) a typed error was
    made from, upper-cased; None for errors without one (timeouts, non-JSON pages)."""
    return getattr(error, "code", None)


def retry_safe(method: str) -> bool:
    """Whether `method` may be repeated after a timeout or a 5xx: reads (`*.get`, `*.list`,
    `*.fields`, `app.info`, `profile`…) and idempotent writes (`*.update`, `*.delete`,
    `*.set`); not `*.add` or anything unknown."""
    name = method.lower()
    if name in _UNSAFE_METHODS:
        return False
    return name in _SAFE_METHODS or name.endswith(_SAFE_SUFFIXES)


def typed_error(code: str | None, description: str | None, *, status: int | None,
                where: str, retry_after: float | None = None) -> PlatformError:
    """The typed error for one Bitrix24 error (`{"error", "error_description"}`), from the
    code first, then the HTTP status (None inside a batch). The message names `where` and
    the code; it is not redacted here (see `parse_errors`)."""
    key = (code or "").upper()
    description = (description or "").strip()
    said = " ".join(part for part in (str(status) if status is not None else "", code) if part)
    message = f"{where}: Bitrix24 answered {said or 'an error'}" + (
        f": {description}" if description else "")
    error: PlatformError
    if key == EXPIRED_TOKEN:
        error = TokenExpired(message, status=status)
    elif key in RATE_LIMIT_CODES:
        error = RateLimited(message, status=status, retry_after=retry_after)
    elif key in AUTH_CODES:
        error = AuthError(message, status=status)
    elif key in NOT_FOUND_CODES or (not key and description.lower().startswith("not found")):
        # crm.timeline.comment.add answers 400 NOT_FOUND; batch sub-errors come with an empty
        # code and "Not found" [fixtures response_batch.json]
        error = NotFound(message, status=status)
    elif key in TRANSIENT_CODES:
        error = Transient(message, status=status, retry_after=retry_after)
    elif status in (401, 403):
        error = AuthError(message, status=status)
    elif status == 404:  # no Bitrix24 error code said what is missing: not the portal's REST
        error = Misrouted(f"{message} (not the portal's REST API answering: check the "
                          "webhook or portal URL and any proxy in between)", status=status)
    elif status == 429:
        error = RateLimited(message, status=status, retry_after=retry_after)
    elif status is not None and (status >= 500 or status == 408):
        error = Transient(message, status=status, retry_after=retry_after)
    else:
        error = PayloadError(message, status=status)
    error.code = key or None  # type: ignore[attr-defined]
    return error


def parse_errors(response: requests.Response, *, where: str, now: float | None = None,
                 secrets: tuple[str, ...] = ()) -> PlatformError:
    """The typed error for a Bitrix24 answer that is an error: HTTP 400 and above, or any
    answer whose JSON has an `error` (some come with 200).

    Reads `{"error": CODE, "error_description": …}`, REST 3.0's `{"error": {"code",
    "message", "validation"}}`, HTML or text pages (limit pages from box portals, proxies)
    and empty bodies. Waits: `OPERATION_TIME_LIMIT` until the `time.operating_reset_at` in
    the body [D:limits.md], else `Retry-After`; other limits and 5xx: `Retry-After` when
    given. `now` is Unix time (tests); the message is redacted with `secrets`."""
    now = time.time() if now is None else now
    status = response.status_code
    header_wait = retry_after_seconds(response.headers, now=datetime.fromtimestamp(now, UTC))
    data = _json(response)
    if _is_error(data):
        code, description = _error_fields(data["error"], data)
        retry_after = header_wait
        if (code or "").upper() == OPERATION_TIME_LIMIT:
            reset = _operating_reset_at(data)
            if reset is not None:
                retry_after = max(0.0, reset - now)
        error = typed_error(code, description, status=status, where=where,
                            retry_after=retry_after)
    else:
        text = _readable(response.text) if response.text.strip() else (response.reason or "")
        found = _LIMIT_WORDS.search(response.text or "")
        code = None
        if found:
            word = found.group(0).upper()
            code = (word if word in RATE_LIMIT_CODES
                    else OPERATION_TIME_LIMIT if "OPERATION" in word else QUERY_LIMIT_EXCEEDED)
        shape = "not JSON" if data is None else "not a JSON object"
        detail = f"{text or 'empty body'} ({shape})"
        if code is None and status < 400:
            error = Transient(f"{where}: Bitrix24 answered {status} with a body that is "
                              f"{shape}: {text or 'empty'}", status=status)
            error.code = None  # type: ignore[attr-defined]
        else:
            error = typed_error(code, detail, status=status, where=where,
                                retry_after=header_wait)
    return _redacted(error, secrets)


@dataclass(frozen=True)
class Envelope:
    """A successful answer: `result`, and for list methods `total` and `next` (the `start`
    of the next page, absent on the last); `time` is the timing block (`operating`,
    `operating_reset_at`…)."""

    result: Any
    total: int | None = None
    next: int | None = None
    time: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class BatchResult:
    """What one `batch` answered, by command key.

    `results[key]` for commands that succeeded; `errors[key]` a typed error for those that
    failed (`NotFound`, `AuthError`, `RateLimited` for an operating limit…); `totals`,
    `nexts`, `times` for list commands. `unmapped_errors` holds errors the answer did not
    tie to a key (not seen so far: see `_by_key`). A key in none of them did not run
    (`halt` stopped the batch)."""

    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, PlatformError] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    nexts: dict[str, int] = field(default_factory=dict)
    times: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    unmapped_errors: list[PlatformError] = field(default_factory=list)

    def value(self, key: str) -> Any:
        """The result of command `key`; raises its typed error when it failed, and
        `PayloadError` when it did not run."""
        if key in self.results:
            return self.results[key]
        if key in self.errors:
            raise self.errors[key]
        raise PayloadError(f"batch command {key!r} did not run")


class Bitrix24Client:
    """One portal's REST API. `throttle` is the portal's shared bucket
    (`throttle.bucket_for(site, …)`); `sleep` and `clock` (Unix seconds) are injectable so
    tests never wait; `observer` is told about every attempt, named by its REST method
    (`connectors.http.send`)."""

    def __init__(self, auth: Bitrix24Auth, throttle: LeakyBucket,
                 session: requests.Session | None = None, *,
                 sleep: Callable[[float], None] = platform_sleep,
                 clock: Callable[[], float] = time.time,
                 observer: CallObserver | None = None) -> None:
        self._auth = auth
        self._throttle = throttle
        self._session = session or new_session()
        self._clock = clock
        self._retry_safe = RETRY_IDEMPOTENT.copy(sleep=sleep)
        self._retry_refused = RETRY_REFUSED.copy(sleep=sleep)
        self._observer = observer

    def __repr__(self) -> str:
        return f"Bitrix24Client({self._auth!r})"

    @property
    def site(self) -> str:
        return self._auth.site

    @property
    def throttle(self) -> LeakyBucket:
        """The portal's shared bucket this client waits in (for instruments)."""
        return self._throttle

    # -- the choke point ----------------------------------------------------------------

    def call_full(self, method: str, params: Mapping[str, Any] | None = None, *,
                  repeatable: bool | None = None) -> Envelope:
        """Call `method` with `params` (the JSON body) and return the whole answer.

        `repeatable` overrides `retry_safe(method)`: whether a timeout or 5xx may be
        retried. Raises the typed errors of `connectors.errors`."""
        checked_method(method)
        if repeatable is None:
            repeatable = retry_safe(method)
        body = dict(params or {})
        retrying = self._retry_safe if repeatable else self._retry_refused
        return retrying(self._attempt, method, body)

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call `method` and return its `result`."""
        return self.call_full(method, params).result

    def iter_list(self, method: str, params: Mapping[str, Any] | None = None, *,
                  items_key: str | None = None) -> Iterator[Any]:
        """Every record of a list method, page by page (`start` = the previous `next`).

        `items_key` names where a page's records are when `result` is an object:
        `crm.item.list` → `"items"`, `tasks.task.list` → `"tasks"`. For large scans prefer
        an ID window (`filter[>ID]`, `start=-1`) [D:settings/performance/huge-data.md]."""
        params = dict(params or {})
        start = int(params.pop("start", 0) or 0)
        while True:
            page = self.call_full(method, {**params, "start": start})
            items = _page_items(page.result, items_key, method)
            yield from items
            if page.next is None or not items:
                return
            if page.next <= start:
                raise PayloadError(f"{method}: Bitrix24 answered next={page.next} after "
                                   f"start={start}")
            start = page.next

    def list_all(self, method: str, params: Mapping[str, Any] | None = None, *,
                 items_key: str | None = None) -> list[Any]:
        """Every record of a list method, as a list (see `iter_list`)."""
        return list(self.iter_list(method, params, items_key=items_key))

    def batch(self, commands: Mapping[str, tuple[str, Mapping[str, Any]]], *,
              halt: bool = False) -> BatchResult:
        """Run up to 50 commands in one request: `{key: (method, params)}`.

        Each command's params are encoded as a PHP query string (`encode_query`); a value
        `$result[key][FIELD]` refers to an earlier command's result. The batch counts once
        against the rate limit; each command counts against its own method's operating
        time [D:limits.md]. Retried like a read when every command is `retry_safe`.
        Raises `ValueError` above 50 commands: callers split."""
        if not commands:
            return BatchResult()
        if len(commands) > BATCH_LIMIT:
            raise ValueError(f"a batch takes at most {BATCH_LIMIT} commands, got "
                             f"{len(commands)}: split it")
        cmd: dict[str, str] = {}
        for key, (method, params) in commands.items():
            if not isinstance(key, str) or not _BATCH_KEY.match(key):
                raise ValueError(f"batch command key must be 1–64 letters, digits or '_': "
                                 f"{key!r}")
            if checked_method(method).lower() == "batch":
                raise ValueError("a batch cannot contain a batch")
            query = encode_query(params or {})
            cmd[key] = f"{method}?{query}" if query else method
        repeatable = all(retry_safe(method) for method, _ in commands.values())
        page = self.call_full("batch", {"halt": 1 if halt else 0, "cmd": cmd},
                              repeatable=repeatable)
        decoded = decode_batch(page.result, commands, secrets=self._auth.secrets())
        if self._observer is not None:  # the batch answered 200: its failures count apart
            for error in (*decoded.errors.values(), *decoded.unmapped_errors):
                self._observer.platform_error("bitrix24", f"batch {type(error).__name__}")
        return decoded

    # -- one attempt --------------------------------------------------------------------

    def _attempt(self, method: str, body: Mapping[str, Any]) -> Envelope:
        where = f"POST {method}"
        refreshed = False
        while True:
            self._throttle.acquire()  # first: a long wait may see a fresher token after it
            prepared = self._auth.prepare(method)
            response = send(self._session, "POST", prepared.url, where=where,
                            json={**body, **prepared.body}, headers=_HEADERS,
                            observer=self._observer, connector="bitrix24", call=method)
            try:
                return self._envelope(response, where)
            except TokenExpired:
                if refreshed:
                    raise AuthError(f"{where}: Bitrix24 still answers expired_token after a "
                                    f"token refresh", status=401) from None
                self._auth.refresh(prepared.token)
                refreshed = True
            except RateLimited as error:
                if error_code(error) == QUERY_LIMIT_EXCEEDED:
                    self._throttle.penalise()
                raise

    def _envelope(self, response: requests.Response, where: str) -> Envelope:
        data = _json(response)
        if response.status_code >= 400 or not isinstance(data, dict) or _is_error(data):
            raise parse_errors(response, where=where, now=self._clock(),
                               secrets=self._auth.secrets())
        timing = data.get("time")
        return Envelope(result=data.get("result"), total=_int(data.get("total")),
                        next=_int(data.get("next")),
                        time=timing if isinstance(timing, dict) else {})


# -- batch encoding and decoding --------------------------------------------------------

def encode_query(params: Mapping[str, Any]) -> str:
    """`params` as PHP's `http_build_query` writes them, which is how a batch command's
    parameters are read (`parse_str`): `{"filter": {">ID": 5}, "select": ["ID", "TITLE"]}` →
    `filter[%3EID]=5&select[0]=ID&select[1]=TITLE`.

    Lists are indexed (`select[0]`), so lists of objects keep their members together; True
    and False are 1 and 0; None and empty lists or objects are left out, as PHP does. A
    value that is exactly a reference to an earlier command (`$result[get][ID]`) is left
    as is, like the docs' JSON example; any other value is percent-encoded (the portal
    decodes before it substitutes references, the docs' double-encoded URL example shows)
    [D:settings/how-to-call-rest-api/batch.md]."""
    pairs: list[str] = []

    def walk(name: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{name}[{quote(str(key), safe='')}]", inner)
        elif isinstance(value, list | tuple):
            for index, inner in enumerate(value):
                walk(f"{name}[{index}]", inner)
        elif isinstance(value, bool):
            pairs.append(f"{name}={1 if value else 0}")
        else:
            text = str(value)
            pairs.append(f"{name}={text if _REFERENCE.match(text) else quote(text, safe='')}")

    for key, value in params.items():
        walk(quote(str(key), safe=""), value)
    return "&".join(pairs)


def decode_batch(answer: Any, commands: Mapping[str, tuple[str, Mapping[str, Any]]], *,
                 secrets: tuple[str, ...] = ()) -> BatchResult:
    """Read a batch's `result` (`result`, `result_error`, `result_total`, `result_next`,
    `result_time`) into a `BatchResult`."""
    if not isinstance(answer, dict):
        raise PayloadError("batch: Bitrix24 answered a result that is not an object")
    keys = list(commands)
    decoded = BatchResult()
    decoded.results, _ = _by_key(answer.get("result"), keys)
    raw_errors, unmapped = _by_key(answer.get("result_error"), keys)
    for key, raw in raw_errors.items():
        code, description = _error_fields(raw, raw if isinstance(raw, dict) else {})
        decoded.errors[key] = _redacted(typed_error(
            code, description, status=None, where=f"batch {key} ({commands[key][0]})"),
            secrets)
    for raw in unmapped:
        code, description = _error_fields(raw, raw if isinstance(raw, dict) else {})
        decoded.unmapped_errors.append(_redacted(
            typed_error(code, description, status=None, where="batch"), secrets))
    totals, _ = _by_key(answer.get("result_total"), keys)
    nexts, _ = _by_key(answer.get("result_next"), keys)
    times, _ = _by_key(answer.get("result_time"), keys)
    decoded.totals = {key: value for key, value in
                      ((key, _int(value)) for key, value in totals.items()) if value is not None}
    decoded.nexts = {key: value for key, value in
                     ((key, _int(value)) for key, value in nexts.items()) if value is not None}
    decoded.times = {key: value for key, value in times.items() if isinstance(value, dict)}
    for key in decoded.errors:
        decoded.results.pop(key, None)
    return decoded


def _by_key(container: Any, keys: list[str]) -> tuple[dict[str, Any], list[Any]]:
    """A per-command part of a batch answer as `{key: value}`, plus values tied to no key.

    The portal builds these parts as PHP arrays keyed by the command keys, and PHP turns a
    numeric key into an integer: when the keys present are exactly 0, 1, … n-1 (commands
    named "0", "1", …), JSON gets a *list*, and an empty part is `[]` too. Position i of a
    list is therefore command "i" (the captured fixture: commands 0, 1, 35943; errors for 0
    and 1 came as a list) [fixtures response_batch.json, fast_bitrix24's test]."""
    if isinstance(container, dict):
        mapped = {str(key): value for key, value in container.items()}
    elif isinstance(container, list):
        mapped = {str(index): value for index, value in enumerate(container)}
    else:
        return {}, []
    known = set(keys)
    return ({key: value for key, value in mapped.items() if key in known},
            [value for key, value in mapped.items() if key not in known])


# -- helpers ----------------------------------------------------------------------------

def _page_items(result: Any, items_key: str | None, method: str) -> list[Any]:
    if items_key is not None:
        if isinstance(result, dict):
            items = result.get(items_key) or []
        elif result in (None, []):
            items = []
        else:
            raise PayloadError(f"{method}: expected result.{items_key}, got "
                               f"{type(result).__name__}")
    elif isinstance(result, list):
        items = result
    elif result in (None, {}):
        items = []
    else:
        raise ValueError(f"{method} answers an object: pass items_key (e.g. 'items')")
    if not isinstance(items, list):
        raise PayloadError(f"{method}: result.{items_key} is not a list")
    return items


def _error_fields(error: Any, data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(code, description) from the classic shape or REST 3.0's `{"error": {"code",
    "message", "validation": [{"message", "field"}]}}`."""
    if isinstance(error, dict):
        code = error.get("code") or error.get("error")
        parts = [str(error.get("message") or error.get("error_description") or "")]
        for item in error.get("validation") or ():
            if isinstance(item, dict) and item.get("message"):
                parts.append(str(item["message"]))
        return (str(code) if code else None), "; ".join(part for part in parts if part)
    description = data.get("error_description")
    return ((str(error) if error else None),
            (str(description) if description is not None else None))


def _is_error(data: Any) -> bool:
    """An error answer: `error` present (even empty: batch-style "" codes) and no `result`."""
    return (isinstance(data, dict) and data.get("error") is not None
            and "result" not in data)


def _operating_reset_at(data: Mapping[str, Any]) -> float | None:
    timing = data.get("time")
    if not isinstance(timing, dict):
        return None
    try:
        return float(timing["operating_reset_at"])
    except (KeyError, TypeError, ValueError):
        return None


def _redacted(error: PlatformError, secrets: tuple[str, ...]) -> PlatformError:
    text = str(error)
    clean = redact(text, secrets)
    if clean != text:
        error.args = (clean, *error.args[1:])
    return error


def _json(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "", [], {}) else None
    except (TypeError, ValueError):
        return None


def _readable(text: str) -> str:
    """A short one-line summary of a non-JSON body: an HTML page's title, else its text."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title and title.group(1).strip():
        text = title.group(1)
    else:
        text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.IGNORECASE | re.DOTALL)
        text = re.sub(r"<[^>]+>", " ", text)
    text = " ".join(html.unescape(text).split())
    return text if len(text) <= _TEXT_LIMIT else text[:_TEXT_LIMIT] + "…"
