"""What every platform REST client shares: the session, the retry policy, the wait.

A client sends through one choke point that raises the typed errors of
`connectors.errors`; this module decides which of those are worth another attempt
(`Transient`, which includes `RateLimited`, but not `Unresolvable`) and how long to wait:
the platform's own word (`Retry-After`, or a hint the client read from a platform header)
when it gives one, else exponential backoff with jitter. Attempts and total waiting are
both bounded: past the bound the typed error propagates and the queue retries the whole
event later.

`send` is also where every call is timed: each attempt, answered or not, is told to the
client's `CallObserver` (the service's metrics), so retries that a storm of 429/503 costs
show even when the call succeeds in the end.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_any,
)

from connectors.errors import PlatformError, Transient, Unresolvable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
USER_AGENT = "ClientGuard/0.1"

MAX_ATTEMPTS = 5
"""One call and up to four retries, as Atlassian's rate-limiting guide recommends."""
MAX_TOTAL_WAIT = 60.0
"""Seconds one call may spend waiting between attempts; a longer wait is the queue's job."""
BACKOFF_FIRST = 2.0
BACKOFF_CAP = 30.0
JITTER = (0.7, 1.3)

STOPPING = threading.Event()
"""Set when the service stops (`serve`): see `platform_sleep`."""


def platform_sleep(seconds: float) -> None:
    """The wait before a platform call (a retry's backoff, rate-limit spacing). Once the
    service is stopping it ends at once with `Transient`, so the job gives its events back
    (postponed, none lost) instead of holding the stop for up to `MAX_TOTAL_WAIT`."""
    if STOPPING.wait(seconds):
        raise Transient("the service is stopping; the events are retried after its restart")


class SessionWithTimeout(requests.Session):
    """A `requests.Session` that never waits forever (every request gets `timeout` unless
    the caller passes its own) and reads the environment once per host."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self.timeout = timeout
        self._environment: dict[tuple[Any, ...], dict[str, Any]] = {}

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)

    def merge_environment_settings(self, url: str | bytes | None, proxies: Any, stream: Any,
                                   verify: Any, cert: Any) -> dict[str, Any]:
        """requests' own merge, remembered per scheme and host. Why: requests reads the
        proxy variables, `no_proxy` and the CA bundle variables again for every call, walking
        the whole environment twice (0.19 ms with 35 variables) while holding the interpreter
        lock; the service's environment does not change while it runs. A call that brings
        its own proxies is merged afresh."""
        if proxies or not isinstance(url, str):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        known = self._environment.get(key)
        if known is None:
            known = self._environment[key] = super().merge_environment_settings(
                url, {}, stream, verify, cert)
        return {**known, "proxies": dict(known["proxies"])}


def new_session(timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT)
                ) -> requests.Session:
    """A session for one platform installation: connection pooling, our User-Agent,
    (connect, read) timeouts. Credentials are not stored on it; clients pass `auth` per
    request so a session can be shared without leaking one site's token to another."""
    session = SessionWithTimeout(timeout)
    session.headers["User-Agent"] = USER_AGENT
    return session


class CallObserver(Protocol):
    """Told about every platform call `send` makes, on the calling thread (the service's
    metrics implement it). Must be quick and must not raise."""

    def platform_call(self, connector: str, method: str, status: str, seconds: float) -> None:
        """One attempt of a call to `connector` ended after `seconds`. `method` is a bounded
        name of the call (the HTTP method, a REST method name), never a URL; `status` is the
        HTTP status answered ("200", "503") or, with no answer, "timeout", "connection" or
        "error"."""
        ...

    def platform_error(self, connector: str, status: str) -> None:
        """A failure `connector` reported inside a call answered 200 (a Bitrix24 batch
        command refused); `status` is a bounded name of what failed ("batch NotFound")."""
        ...


def send(session: requests.Session, method: str, url: str, *, where: str,
         observer: CallObserver | None = None, connector: str = "", call: str | None = None,
         **kwargs: Any) -> requests.Response:
    """Send one request; a timeout or a failed connection becomes `Transient`, any other
    failure to get an answer `PlatformError`.

    `where` names the call in the error ("GET /rest/api/3/myself"). The exception of
    `requests` is not chained: its text carries the full URL, which on some platforms
    (Bitrix24 inbound webhooks) contains the secret. Every attempt, answered or not, is told
    to `observer` as a call of `connector` named `call` (default: `method`)."""
    started = time.monotonic()
    status = "error"
    try:
        response = session.request(method, url, **kwargs)
        status = str(response.status_code)
        return response
    except requests.ConnectTimeout:
        status = "timeout"
        raise Transient(f"{where}: {_host(url)} did not accept a connection within "
                        f"{CONNECT_TIMEOUT:g} s") from None
    except requests.Timeout:
        status = "timeout"
        raise Transient(f"{where}: {_host(url)} did not answer in time") from None
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
        status = "connection"
        kind, why = _why_unreachable(error)
        raise kind(f"{where}: cannot reach {_host(url)}: {why}") from None
    except requests.RequestException as error:  # a redirect loop, a URL it cannot send to
        raise PlatformError(f"{where}: {type(error).__name__}") from None
    finally:
        seconds = time.monotonic() - started
        log.debug("%s -> %s in %.2f s", where, status, seconds)
        if observer is not None:
            observer.platform_call(connector, call or method, status, seconds)


def _host(url: str) -> str:
    """The host (and port) a URL names, without its user, path or query, which may carry a
    secret (a Bitrix24 inbound webhook's path does)."""
    parts = urlsplit(url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "?"


def _why_unreachable(error: BaseException) -> tuple[type[Transient], str]:
    """Why a connection failed, in words, and the error that says it (`Unresolvable` for a
    name that does not resolve): the cause found down the chain of wrapped errors (`requests`
    wraps urllib3's, which wraps the socket's), never their text, which names the whole
    URL."""
    seen: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in seen:
        seen.append(cause)
        reason = getattr(cause, "reason", None)
        wrapped = cause.args[0] if cause.args else None
        cause = (reason if isinstance(reason, BaseException)
                 else wrapped if isinstance(wrapped, BaseException)
                 else cause.__cause__ or cause.__context__)
    for cause in seen:
        if isinstance(cause, socket.gaierror):
            return Unresolvable, "its name does not resolve (a typo in the URL, or no DNS?)"
        if isinstance(cause, ConnectionRefusedError):
            return Transient, "the connection was refused (nothing listens on that port?)"
        if isinstance(cause, ssl.SSLError | requests.exceptions.SSLError):
            return Transient, ("TLS failed (a certificate not trusted here, or no HTTPS on that "
                               "port?)")
        if isinstance(cause, requests.exceptions.ProxyError):
            return Transient, "the proxy failed (HTTPS_PROXY?)"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return Transient, "the connection broke off mid-answer"
    return Transient, "the connection failed"


def retry_after_seconds(headers: Mapping[str, str], *, now: datetime) -> float | None:
    """Seconds to wait according to `Retry-After`: delta-seconds or an HTTP date
    (RFC 9110 §10.2.3); None when absent or unreadable. Never negative."""
    value = (headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_seconds(attempt: int, *, rng: Callable[[float, float], float] = random.uniform
                    ) -> float:
    """Exponential backoff with jitter after failed attempt number `attempt` (1-based):
    2, 4, 8, 16 … s capped at 30 s, each scaled by a random factor in 0.7–1.3."""
    base = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (attempt - 1))
    return base * rng(*JITTER)


def wait_for_platform(retry_state: RetryCallState) -> float:
    """The platform's own wait (`Transient.retry_after`) when given, else backoff."""
    error = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(error, Transient) and error.retry_after is not None:
        return error.retry_after
    return backoff_seconds(retry_state.attempt_number)


def out_of_time(retry_state: RetryCallState) -> bool:
    """Stop when the next wait would take the call past `MAX_TOTAL_WAIT`.

    Counts the larger of the wall-clock time since the first attempt and the waits already
    taken, so an injected (fake) sleep is bounded exactly like a real one."""
    spent = max(retry_state.seconds_since_start or 0.0, retry_state.idle_for)
    return spent + retry_state.upcoming_sleep > MAX_TOTAL_WAIT


def _log_retry(retry_state: RetryCallState) -> None:
    error = retry_state.outcome.exception() if retry_state.outcome else None
    log.info("%s; trying again in %.1f s (attempt %d of at most %d)", error,
             retry_state.upcoming_sleep, retry_state.attempt_number + 1, MAX_ATTEMPTS)


RETRY_IDEMPOTENT = Retrying(
    retry=retry_if_exception_type(Transient) & retry_if_not_exception_type(Unresolvable),
    wait=wait_for_platform,
    stop=stop_any(stop_after_attempt(MAX_ATTEMPTS), out_of_time),
    before_sleep=_log_retry,
    reraise=True,
)
"""The one retry policy for idempotent calls. Use `RETRY_IDEMPOTENT.copy(sleep=...)` to
inject the sleep (tests never sleep); the policy itself is declared only here."""
