"""How a Bitrix24 REST call is authorised and where it goes.

Two ways, one small interface (`Bitrix24Auth`) the client calls:

- `WebhookAuth`: an incoming webhook. The secret is a path segment,
  `https://<portal>/rest/<user id>/<code>/<method>` [D:settings/how-to-call-rest-api/
  general-principles.md]; nothing goes into the body and nothing can be refreshed.
- `PortalAuth`: a local application installed on a portal (app mode). The portal's state
  lives in the `InstallationStore`; a call goes to its `client_endpoint` + method with
  `auth=<access_token>` in the JSON body. The access token lives 1 h, the refresh token 180
  days and rotates on every refresh [D:settings/oauth/auto-renewal.md]. Bitrix asks apps to
  refresh only when a call answers `expired_token` (refreshing on a schedule "risks having
  your application blocked"), so `refresh()` is only ever called by the client after that
  answer, and goes through `InstallationStore.change` so that concurrent workers refresh
  once and never lose a rotated refresh token.

Secrets (webhook code, tokens, `client_secret`, signed `urlMachine` links) never reach a log
record or an exception message: everything we format passes `redact()`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import requests

from connectors.base import InstallationStore
from connectors.errors import AuthError, PayloadError, Transient
from connectors.http import new_session, platform_sleep, send

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/token/"
REFRESH_RACE_SECONDS = 0.5  # how long a refresh race's winner may take to store its pair
"""The token endpoint on the portal's OAuth server. The server comes from the portal's stored
`server_endpoint` (`https://oauth.bitrix.info/rest/`, east region `https://oauth.bitrix24.tech/
rest/`); the endpoint is at the host's root, not under `/rest/`: `https://oauth.bitrix.info/
oauth/token/` [D:settings/oauth/index.md, auto-renewal.md]."""

REOPEN_HINT = ("a Bitrix24 administrator must open the ClientGuard application in the portal "
               "once (Applications → My applications → ClientGuard); opening it delivers new "
               "tokens")

_METHOD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
_HIDDEN = "<redacted>"
_SECRET_KEYS = (r"auth|access_token|refresh_token|client_secret|application_token|token"
                r"|auth_id|refresh_id")
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # a signed download link: its query carries a token, so the whole link is a secret
    (re.compile(r"""(["']?urlMachine["']?\s*[:=]\s*["']?)[^"'\s,}]+""", re.IGNORECASE),
     rf"\1{_HIDDEN}"),
    # an incoming webhook's code: /rest/<user id>/<code>/ (REST 3.0: /rest/api/<user>/<code>/)
    (re.compile(r"(/rest/(?:api/)?\d+/)[^/\s?#\"']+"), rf"\1{_HIDDEN}"),
    # key=value in query strings and form bodies (auth=…, auth[access_token]=…, token=…)
    (re.compile(rf"(?:(?<![A-Za-z0-9_])|(?<=%5B))((?:{_SECRET_KEYS})(?:\]|%5D)?=)[^&\s\"'#]+",
                re.IGNORECASE), rf"\1{_HIDDEN}"),
    # "key": "value" in JSON and dict reprs
    (re.compile(rf"""(["'](?:{_SECRET_KEYS})["']\s*:\s*["'])[^"']*""", re.IGNORECASE),
     rf"\1{_HIDDEN}"),
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every secret we know the shape of replaced by `<redacted>`: a webhook's
    code in `/rest/<user>/<code>/`, `auth=`/`access_token=`/`refresh_token=`/
    `client_secret=`/`token=` values in query strings or JSON, `urlMachine` links; plus each
    exact value in `secrets` (tokens and keys whose value we hold)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, _HIDDEN)
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class _RedactingFilter(logging.Filter):
    """Redacts a record's message in place. urllib3 logs every request line at DEBUG,
    including the query string, and the token request carries `client_secret` and
    `refresh_token` in its query (the documented form of that request is a GET)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_URLLIB3_FILTER = _RedactingFilter("clientguard-redact")


def install_log_redaction() -> None:
    """Attach the redacting filter to urllib3's request logger (idempotent)."""
    logger = logging.getLogger("urllib3.connectionpool")
    if _URLLIB3_FILTER not in logger.filters:
        logger.addFilter(_URLLIB3_FILTER)


install_log_redaction()


def checked_method(method: str) -> str:
    """A REST method name (`crm.deal.get`): it becomes a path segment, so nothing else."""
    if not isinstance(method, str) or not _METHOD.match(method):
        raise ValueError(f"not a Bitrix24 REST method name: {method!r}")
    return method


@dataclass(frozen=True)
class Prepared:
    """Where one call goes and what its body carries for authorisation. `token` is the
    access token used (None for a webhook): after `expired_token` the client passes it back
    to `refresh()`, which compares it with the stored one."""

    url: str = field(repr=False)
    body: Mapping[str, Any] = field(repr=False)
    token: str | None = field(default=None, repr=False)


class Bitrix24Auth(Protocol):
    """What the client needs from an authorisation mode."""

    site: str

    def prepare(self, method: str) -> Prepared:
        """The URL and authorisation body fields for `method`; raises `AuthError` when this
        portal cannot be called (not installed, no tokens)."""
        ...

    def refresh(self, expired_token: str | None) -> None:
        """The call made with `expired_token` answered `expired_token`: make a fresh token
        available to the next `prepare()`, or raise `AuthError`."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """Exact secret values to hide in messages, beyond what `redact` recognises."""
        ...


class WebhookAuth:
    """An incoming webhook: `webhook_url` is `https://<portal>/rest/<user id>/<code>/`."""

    def __init__(self, webhook_url: str, *, site: str = "bitrix24") -> None:
        parts = urlsplit(webhook_url)
        segments = [segment for segment in parts.path.split("/") if segment]
        if (parts.scheme != "https" or not parts.netloc or len(segments) < 3
                or segments[-3] != "rest" or not segments[-2].isdigit()):
            raise ValueError("webhook_url must be https://<portal>/rest/<user id>/<code>/, got "
                             + redact(repr(webhook_url)))
        self._base = webhook_url.rstrip("/") + "/"
        self._code = segments[-1]
        self.site = site
        self.user_id = segments[-2]

    def __repr__(self) -> str:
        return f"WebhookAuth(site={self.site!r}, user_id={self.user_id!r})"

    def prepare(self, method: str) -> Prepared:
        # No ".json" suffix: JSON is the default format [D:general-principles.md].
        return Prepared(url=self._base + checked_method(method), body={})

    def refresh(self, expired_token: str | None) -> None:
        raise AuthError("Bitrix24 said the webhook's token expired: the incoming webhook was "
                        "deleted, edited or has passed its expiry date; create a new one and "
                        "update bitrix24.webhook_url", status=401)

    def secrets(self) -> tuple[str, ...]:
        return (self._code,)


class PortalAuth:
    """A portal that installed our local application, named by its `member_id`.

    Its state in `store` is the JSON object described in `connectors.base`
    (`client_endpoint`, `server_endpoint`, `access_token`, `refresh_token`, `expires`,
    `installed`, …). `clock` gives Unix time, for `expires`."""

    def __init__(self, store: InstallationStore, member_id: str, client_id: str,
                 client_secret: str, session: requests.Session | None = None, *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = platform_sleep) -> None:
        if not member_id or not client_id or not client_secret:
            raise ValueError("PortalAuth needs member_id, client_id and client_secret")
        self._store = store
        self.site = member_id
        self.member_id = member_id
        self._client_id = client_id
        self._client_secret = client_secret
        self._session = session or new_session()
        self._clock = clock
        self._sleep = sleep
        self._seen_tokens: dict[str, None] = {}  # recent tokens, for exact redaction
        self._seen_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PortalAuth(member_id={self.member_id!r})"

    # -- the interface ------------------------------------------------------------------

    def prepare(self, method: str) -> Prepared:
        state = self._installed_state(self._store.load(self.member_id))
        token = state.get("access_token")
        if not token:
            raise AuthError(f"Bitrix24 portal {self.member_id} has no access token stored; "
                            f"{REOPEN_HINT}")
        self._remember(token, state.get("refresh_token"))
        return Prepared(url=_client_endpoint(state) + checked_method(method),
                        body={"auth": token}, token=token)

    def refresh(self, expired_token: str | None) -> None:
        """Refresh once for all workers: inside the store's atomic change, a stored token
        that differs from `expired_token` means another worker already refreshed (or an
        event delivered fresher tokens); it is used as is, without calling the token
        server. Otherwise the token server is asked and the rotated pair is stored."""
        asked = False

        def edit(state: dict[str, Any] | None) -> dict[str, Any]:
            nonlocal asked
            state = self._installed_state(state)
            if state.get("access_token") and state.get("access_token") != expired_token:
                return state
            asked = True
            return {**state, **self._request_tokens(state)}

        try:
            self._store.change(self.member_id, edit)
        except AuthError:
            if not self._refreshed_elsewhere(expired_token):
                raise
            log.debug("Bitrix24 portal %s: another process refreshed first", self.member_id)
            return
        if asked:
            log.info("Bitrix24 portal %s: access token refreshed", self.member_id)
        else:
            log.debug("Bitrix24 portal %s: token already refreshed elsewhere", self.member_id)

    def _refreshed_elsewhere(self, expired_token: str | None) -> bool:
        """After the token server refused our refresh token: did another process win the
        race with the same single-use token? Its new pair reaches the store moments after
        the server answered it, so look twice."""
        for wait in (0.0, REFRESH_RACE_SECONDS):
            self._sleep(wait)
            token = (self._store.load(self.member_id) or {}).get("access_token")
            if token and token != expired_token:
                return True
        return False

    def secrets(self) -> tuple[str, ...]:
        with self._seen_lock:
            return (self._client_secret, *self._seen_tokens)

    # -- tokens delivered by Bitrix24 ---------------------------------------------------

    def accept_tokens(self, fields: Mapping[str, Any]) -> bool:
        """Store tokens that arrived with an event or a placement frame (`access_token`,
        optional `refresh_token`, `expires` Unix time or `expires_in` seconds, optional
        `user_id`). Kept only when fresher than the stored ones (a later `expires`) and, when
        both are known, issued to the same user: event tokens belong to whoever acted, and
        ClientGuard must keep writing as one user. Returns whether they were stored."""
        access = fields.get("access_token")
        if not access:
            return False
        expires = _expiry(fields, self._clock())
        stored = False

        def edit(state: dict[str, Any] | None) -> dict[str, Any]:
            nonlocal stored
            state = self._installed_state(state)
            if _differs(state.get("user_id"), fields.get("user_id")):
                return state
            current = _number(state.get("expires"))
            if current is not None and (expires is None or expires <= current):
                return state
            stored = True
            new = {**state, "access_token": str(access)}
            if fields.get("refresh_token"):
                new["refresh_token"] = str(fields["refresh_token"])
            if expires is not None:
                new["expires"] = expires
            return new

        self._store.change(self.member_id, edit)
        if stored:
            self._remember(str(access), fields.get("refresh_token"))
        return stored

    # -- helpers ------------------------------------------------------------------------

    def _installed_state(self, state: dict[str, Any] | None) -> dict[str, Any]:
        if state is None or state.get("installed") is False:
            raise AuthError(f"Bitrix24 portal {self.member_id} is not installed")
        return state

    def _request_tokens(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """Ask the portal's OAuth server for a new pair with the stored refresh token.

        The documented request is a GET with every secret in the query string
        [D:settings/oauth/auto-renewal.md]; the URL is never formatted into a message, and
        urllib3's request-line log is redacted (`install_log_redaction`)."""
        refresh_token = state.get("refresh_token")
        if not refresh_token:
            raise AuthError(f"Bitrix24 portal {self.member_id} has no refresh token stored; "
                            f"{REOPEN_HINT}")
        self._remember(None, refresh_token)
        url = _token_url(state)
        where = f"GET {urlsplit(url).netloc}{TOKEN_PATH} (refresh for {self.member_id})"
        response = send(self._session, "GET", url, where=where, params={
            "grant_type": "refresh_token", "client_id": self._client_id,
            "client_secret": self._client_secret, "refresh_token": refresh_token},
            headers={"Accept": "application/json"})
        data = _json_or_none(response)
        error = data.get("error") if isinstance(data, dict) else None
        if response.status_code >= 400 or error or not isinstance(data, dict):
            raise self._token_error(response, data, where)
        if not data.get("access_token") or not data.get("refresh_token"):
            raise Transient(f"{where}: the answer carries no token pair",
                            status=response.status_code)
        self._remember(str(data["access_token"]), str(data["refresh_token"]))
        new: dict[str, Any] = {"access_token": str(data["access_token"]),
                               "refresh_token": str(data["refresh_token"])}
        expires = _expiry(data, self._clock())
        if expires is not None:
            new["expires"] = expires
        for key in ("client_endpoint", "server_endpoint", "scope", "user_id"):
            if data.get(key):
                new[key] = data[key]
        return new

    def _token_error(self, response: requests.Response, data: Any,
                     where: str) -> Exception:
        status = response.status_code
        if isinstance(data, dict):
            code = str(data.get("error") or "")
            detail = str(data.get("error_description") or "")
        else:
            code, detail = "", _short(response.text)
        text = redact(f"{where}: {status} {code} {detail}".rstrip(), self.secrets())
        if code.lower() in ("invalid_grant", "invalid_client", "expired_token",
                            "no_auth_found", "not_installed"):
            # invalid_grant: the refresh token is not (any more) valid, e.g. it expired after
            # 180 days unused or was rotated by a refresh whose answer we never got;
            # invalid_client: the app is not installed or its secret changed
            # [D:settings/oauth/error-codes.md]. Only new tokens from the portal help.
            return AuthError(f"{text}; {REOPEN_HINT}", status=status)
        if code.upper() == "PAYMENT_REQUIRED" or code.lower() in ("invalid_scope",
                                                                  "insufficient_scope"):
            return AuthError(text, status=status)
        if status >= 500 or status in (408, 429) or not code:
            return Transient(text, status=status)
        return PayloadError(text, status=status)

    def _remember(self, *tokens: str | None) -> None:
        with self._seen_lock:
            for token in tokens:
                if token:
                    self._seen_tokens.pop(token, None)
                    self._seen_tokens[token] = None
            while len(self._seen_tokens) > 8:  # only recent ones can appear in messages
                del self._seen_tokens[next(iter(self._seen_tokens))]


def _client_endpoint(state: Mapping[str, Any]) -> str:
    endpoint = _stored_https(state, "client_endpoint", "stored client_endpoint is not an "
                             "https URL: {value!r}")
    return endpoint if endpoint.endswith("/") else endpoint + "/"


def _token_url(state: Mapping[str, Any]) -> str:
    """The OAuth server's token endpoint, from the portal's stored `server_endpoint`."""
    server = _stored_https(state, "server_endpoint", "no https server_endpoint stored to "
                           f"refresh tokens at; {REOPEN_HINT}")
    return urljoin(server, TOKEN_PATH)


def _stored_https(state: Mapping[str, Any], key: str, problem: str) -> str:
    """The portal's stored URL `key`; AuthError saying `problem` (which may name the
    redacted `{value}`) unless it is an https URL."""
    value = str(state.get(key) or "")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise AuthError(f"Bitrix24 portal {state.get('member_id')}: "
                        + problem.format(value=redact(value)))
    return value


def _expiry(fields: Mapping[str, Any], now: float) -> int | None:
    """Unix time at which the access token expires: `expires`, else now + `expires_in`."""
    expires = _number(fields.get("expires"))
    if expires is not None:
        return int(expires)
    expires_in = _number(fields.get("expires_in"))
    return int(now + expires_in) if expires_in is not None else None


def _number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _differs(stored: Any, offered: Any) -> bool:
    return stored not in (None, "") and offered not in (None, "") and str(stored) != str(offered)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(re.sub(r"<[^>]+>", " ", text or "").split())
    return text if len(text) <= limit else text[:limit] + "…"
