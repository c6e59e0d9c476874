"""Connect a Bitrix24 portal: the local application's install page, the portal lifecycle
events, and the text of `clientguard install bitrix24`.

A *local application* (server-side, with UI) has two addresses in the portal's form
[D:local-integrations/serverside-local-app-with-ui.md]: the *initial installation path*
(`/apps/bitrix24/install`, served by `install_page`), which the portal opens in a frame for
the administrator until the page calls `BX24.installFinish()`, and the *handler path* (the
Health check page), opened from then on. Until `installFinish` the portal delivers no event
and shows no placement [D:settings/app-installation/installation-finish.md], so the page binds
everything first and finishes only when every binding held.

Nothing the frame posts is trusted by itself: its `AUTH_ID` is checked with `app.info` at the
OAuth server (not at the portal, whose address the request names), which says which
application (`client_id`), which portal (`member_id`, `domain`) and which user the token
belongs to, and whether the portal considers the application installed yet
[D:settings/oauth/simple-way.md; PY:b24pysdk credentials/oauth_placement_data.py]. The
installing administrator becomes the user ClientGuard writes as.

A "script only" local application gets no page: right after saving, the portal POSTs
`auth[access_token]`, `auth[refresh_token]`, … to the same path, the application counts as
installed at once and `installFinish` does not exist there
[D:settings/app-installation/local-apps/installation-callback.md]. `install_page` serves
both.

Tokens never reach a log record, an exception message or a page.
"""

from __future__ import annotations

import contextlib
import hmac
import html
import json
import logging
import re
import textwrap
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from connectors.base import InstallationStore, PageReply, PageRequest
from connectors.bitrix24.auth import Bitrix24Auth, Prepared, checked_method, redact
from connectors.bitrix24.client import (
    BATCH_LIMIT,
    BatchResult,
    Bitrix24Client,
    error_code,
    parse_errors,
)
from connectors.bitrix24.events import EVENT_HANDLERS, MEMBER_ID, PortalChange
from connectors.bitrix24.form import parse_form
from connectors.bitrix24.settings import Bitrix24Settings
from connectors.bitrix24.throttle import bucket_for
from connectors.errors import AuthError, BadSignature, MalformedDelivery, PlatformError, Transient
from connectors.http import new_session, send
from plugin.core.i18n import Language, Text
from plugin.manifest import load_manifest

log = logging.getLogger(__name__)

DEFAULT_OAUTH_SERVER = "https://oauth.bitrix.info/rest/"
"""Where `app.info` is asked when the request names no server: the simplified-flow example
posts no `SERVER_ENDPOINT` [D:settings/oauth/simple-way.md]."""
OAUTH_SERVERS = frozenset({"oauth.bitrix.info", "oauth.bitrix24.tech"})
"""The OAuth servers a portal may name as its `server_endpoint`: `oauth.bitrix.info` (the
English docs, non-.ru portals), `oauth.bitrix24.tech` (the Russian docs and b24phpsdk's east
region) [spec §1.2]. The address arrives in the very request being checked, so any other
host is refused: a forger would simply name a server that vouches for him."""

BX24_SCRIPT = "//api.bitrix24.com/api/v1/"
"""The BX24 JS library the install page loads for `BX24.installFinish()`
[D:sdk/bx24-js-sdk/system-functions/bx24-install-finish.md]."""

WEBHOOK_ONLY_EVENTS = frozenset({"ONAPPINSTALL", "ONAPPUPDATE", "ONAPPUNINSTALL"})
APP_ONLY_EVENTS = frozenset({"ONCRMDEALMOVETOCATEGORY"})
"""Subscribable "only through the application and event.bind", not by an outgoing webhook
[D:api-reference/crm/deals/events/index.md]."""

TOKEN_KEYS = ("access_token", "refresh_token", "expires", "application_token")
"""What an uninstall drops: the portal revoked the application, and its application token
must not verify anything any more."""

_DOMAIN = re.compile(r"(?i)^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+"
                     r"(:[0-9]{1,5})?$")

# Placement titles by the manifest's English title. The manifest holds one (English) title;
# `LANG_ALL` gives the portal's Russian and Danish users theirs. Kept here, not in
# plugin/core/i18n.py, whose `UI` holds the words of the report.
PLACEMENT_TITLES: dict[str, Text] = {
    "Health check": Text(en="Health check", ru="Проверка качества сервиса", da="Sundhedstjek"),
}

PAGE: dict[str, Text] = {
    "installed": Text(en="ClientGuard is installed", ru="ClientGuard установлен",
                      da="ClientGuard er installeret"),
    "installed_intro": Text(
        en="ClientGuard now checks this portal's deals and writes its warnings as the "
           "administrator who installed it (user {user_id}).",
        ru="ClientGuard теперь проверяет сделки этого портала и пишет предупреждения от имени "
           "администратора, который его установил (пользователь {user_id}).",
        da="ClientGuard tjekker nu portalens handler og skriver sine advarsler som den "
           "administrator, der installerede det (bruger {user_id})."),
    "events": Text(en="Events sent to {handler}:", ru="События, которые портал отправляет на "
                   "{handler}:", da="Hændelser, som portalen sender til {handler}:"),
    "placements": Text(en="Buttons and tabs:", ru="Кнопки и вкладки:", da="Knapper og faner:"),
    "missing": Text(en="Not available on this portal, skipped: {events}",
                    ru="Недоступны на этом портале, пропущены: {events}",
                    da="Ikke tilgængelige på denne portal, sprunget over: {events}"),
    "not_installed": Text(en="ClientGuard is not installed yet",
                          ru="ClientGuard ещё не установлен",
                          da="ClientGuard er ikke installeret endnu"),
    "answered": Text(en="Bitrix24 answered: {detail}", ru="Ответ Bitrix24: {detail}",
                     da="Bitrix24 svarede: {detail}"),
    "unreachable": Text(en="Bitrix24 could not be reached: {detail}",
                        ru="Не удалось связаться с Bitrix24: {detail}",
                        da="Bitrix24 kunne ikke nås: {detail}"),
    "reopen": Text(
        en="Then open ClientGuard again (Applications → My applications): the installation "
           "picks up where it stopped.",
        ru="Затем снова откройте ClientGuard (Приложения → Мои приложения): установка "
           "продолжится с того места, где остановилась.",
        da="Åbn derefter ClientGuard igen (Programmer → Mine programmer): installationen "
           "fortsætter, hvor den stoppede."),
    "advice_admin": Text(
        en="Only a Bitrix24 administrator can install ClientGuard: ask one to open it.",
        ru="Установить ClientGuard может только администратор Bitrix24: попросите "
           "администратора открыть приложение.",
        da="Kun en Bitrix24-administrator kan installere ClientGuard: bed en administrator "
           "om at åbne det."),
    "advice_scope": Text(
        en="The local application lacks a permission. Edit it (Applications → Developer "
           "resources → Integrations), grant {scopes}, save and reinstall.",
        ru="Локальному приложению не хватает прав. Откройте его (Приложения → Разработчикам → "
           "Интеграции), выдайте права {scopes}, сохраните и переустановите.",
        da="Det lokale program mangler en tilladelse. Rediger det (Programmer → "
           "Udviklerressourcer → Integrationer), giv {scopes}, gem og geninstaller."),
    "advice_app": Text(
        en="Bitrix24 allows this only to the local application itself: open ClientGuard "
           "from Applications, not through a webhook.",
        ru="Bitrix24 разрешает это только самому локальному приложению: откройте ClientGuard "
           "из раздела «Приложения», а не через вебхук.",
        da="Bitrix24 tillader kun dette for selve det lokale program: åbn ClientGuard fra "
           "Programmer, ikke via en webhook."),
    "advice_other": Text(
        en="Try again in a few minutes; if it keeps failing, send this page to whoever runs "
           "ClientGuard.",
        ru="Повторите через несколько минут; если ошибка повторяется, перешлите эту страницу "
           "тому, кто обслуживает ClientGuard.",
        da="Prøv igen om et par minutter; bliver det ved med at fejle, så send denne side "
           "til den, der driver ClientGuard."),
    "refused": Text(en="Request refused", ru="Запрос отклонён", da="Anmodningen er afvist"),
    "refused_body": Text(
        en="ClientGuard could not confirm that this page was opened by its own application on "
           "this portal ({reason}). Open ClientGuard from Bitrix24 (Applications → My "
           "applications).",
        ru="ClientGuard не смог подтвердить, что страницу открыло его собственное приложение "
           "на этом портале ({reason}). Откройте ClientGuard из Bitrix24 (Приложения → Мои "
           "приложения).",
        da="ClientGuard kunne ikke bekræfte, at siden blev åbnet af dets eget program på denne "
           "portal ({reason}). Åbn ClientGuard fra Bitrix24 (Programmer → Mine programmer)."),
    "already": Text(
        en="ClientGuard is already installed on this portal. To install it again, use "
           "Reinstall in the application's card (Applications → Developer resources → "
           "Integrations).",
        ru="ClientGuard уже установлен на этом портале. Чтобы установить его заново, нажмите "
           "«Переустановить» в карточке приложения (Приложения → Разработчикам → Интеграции).",
        da="ClientGuard er allerede installeret på denne portal. Vil du installere det igen, "
           "så brug Geninstaller på programmets kort (Programmer → Udviklerressourcer → "
           "Integrationer)."),
    "not_app": Text(
        en="ClientGuard is configured for webhooks, not as a local application: set "
           "[bitrix24] client_id, client_secret and public_url, then restart it.",
        ru="ClientGuard настроен на вебхуки, а не на локальное приложение: задайте в "
           "[bitrix24] client_id, client_secret и public_url и перезапустите его.",
        da="ClientGuard er sat op til webhooks, ikke som lokalt program: angiv [bitrix24] "
           "client_id, client_secret og public_url, og genstart det."),
}


class Refused(Exception):
    """The token is not one the portal issued to this application (another `client_id`,
    another portal, an OAuth server we do not know): nothing is stored."""


class BadPublicUrl(ValueError):
    """The public URL of ClientGuard is not one a portal can deliver to."""


@dataclass(frozen=True)
class AppInfo:
    """What the OAuth server's `app.info` says about a token. `installed` is None when the
    answer does not say."""

    client_id: str
    member_id: str
    domain: str
    user_id: str | None
    scope: str
    installed: bool | None


@dataclass(frozen=True)
class Failure:
    """One binding the portal refused: what (`event.bind ONCRMDEALADD`), the error code."""

    what: str
    code: str | None
    message: str


@dataclass(frozen=True)
class Binding:
    """What `bind_portal` did. `events_missing`: events the portal does not know
    (`ERROR_EVENT_NOT_FOUND`: an older box, a module switched off), skipped; `unbound`:
    stale registrations removed (another handler URL, an event no longer in the manifest).

    `offline_*`: the same events registered as offline events, the review's queue of changes
    (`offline.py`). They are a bonus: a refusal (`offline_refused`: not an administrator,
    the plan) is no failure, so it never stops an installation."""

    handler: str
    events_bound: tuple[str, ...] = ()
    events_kept: tuple[str, ...] = ()
    events_missing: tuple[str, ...] = ()
    placements_bound: tuple[str, ...] = ()
    placements_kept: tuple[str, ...] = ()
    unbound: tuple[str, ...] = ()
    failures: tuple[Failure, ...] = ()
    offline_bound: tuple[str, ...] = ()
    offline_kept: tuple[str, ...] = ()
    offline_missing: tuple[str, ...] = ()
    offline_refused: tuple[Failure, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def offline_events(self) -> bool:
        """Whether the portal queues offline events for ClientGuard: at least one is
        registered (a partial refusal still leaves a queue worth reading)."""
        return bool(self.offline_kept or self.offline_bound)

    @property
    def events(self) -> tuple[str, ...]:
        return self.events_kept + self.events_bound

    @property
    def placements(self) -> tuple[str, ...]:
        return self.placements_kept + self.placements_bound

    def summary(self) -> str:
        """One line for the log: counts and codes, nothing secret."""
        parts = [f"{len(self.events_bound)} events bound, {len(self.events_kept)} kept",
                 f"{len(self.placements_bound)} placements bound, "
                 f"{len(self.placements_kept)} kept"]
        if self.unbound:
            parts.append(f"{len(self.unbound)} stale removed")
        if self.events_missing:
            parts.append("unknown to the portal: " + ", ".join(self.events_missing))
        parts.append(f"{len(self.offline_bound)} offline events bound, "
                     f"{len(self.offline_kept)} kept")
        if self.offline_missing:
            parts.append("unknown offline: " + ", ".join(self.offline_missing))
        if self.offline_refused:
            parts.append("offline refused: " + "; ".join(
                f"{failure.what} ({failure.code})" for failure in self.offline_refused))
        if self.failures:
            parts.append("refused: " + "; ".join(f"{failure.what} ({failure.code})"
                                                  for failure in self.failures))
        return ", ".join(parts)


class InstallAuth:
    """The token the portal delivered with the install request, for the calls of that request
    only: the portal is stored `installed: False` until they succeed, and `PortalAuth`
    refuses to call a portal in that state. It cannot be refreshed (it is minutes old)."""

    def __init__(self, member_id: str, client_endpoint: str, token: str) -> None:
        self.site = member_id
        self._endpoint = client_endpoint if client_endpoint.endswith("/") else client_endpoint + "/"
        self._token = token

    def __repr__(self) -> str:
        return f"InstallAuth(member_id={self.site!r})"

    def prepare(self, method: str) -> Prepared:
        return Prepared(url=self._endpoint + checked_method(method), body={"auth": self._token},
                        token=self._token)

    def refresh(self, expired_token: str | None) -> None:
        raise AuthError(f"Bitrix24 portal {self.site}: the token delivered with the install "
                        "page has expired; open the application again", status=401)

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)


ClientWith = Callable[[Bitrix24Auth], Bitrix24Client]


# -- verifying a token ----------------------------------------------------------------

def oauth_server(server_endpoint: str | None) -> str:
    """`https://<host>/rest/` for a known OAuth server named by the request, else `Refused`."""
    parts = urlsplit(str(server_endpoint or "").strip())
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or host not in OAUTH_SERVERS or parts.port not in (None, 443):
        raise Refused(f"the OAuth server {redact(str(server_endpoint or ''))!r} is not one of "
                      f"{', '.join(sorted(OAUTH_SERVERS))}")
    return f"https://{host}/rest/"


def check_app_info(token: str, server_endpoint: str | None, member_id: str,
                   domain: str | None, settings: Bitrix24Settings,
                   session: requests.Session | None = None) -> AppInfo:
    """Ask the OAuth server whose `token` this is, and refuse (`Refused`) unless it is this
    application's (`client_id`) on portal `member_id` (and `domain`, when given).

    `GET <server>app.info?auth=<token>`, as b24pysdk's `BitrixOAuthRequester.get_app_info`
    [PY:b24pysdk api/requesters/bitrix_oauth_requester.py]; the answer is
    `{"result": {"client_id", "scope", "expires", "user_id", "install": {"installed",
    "domain", "member_id", "client_endpoint", …}}}`. The OAuth server, not the portal: its
    answer is trusted, the portal's address is what is being checked. Raises the typed
    errors of `connectors.errors` for the server's own errors (an unknown or expired token:
    `AuthError`), with the token redacted."""
    url = oauth_server(server_endpoint) + "app.info"
    where = f"GET {urlsplit(url).netloc}/rest/app.info (portal {member_id})"
    response = send(session or new_session(), "GET", url, where=where, params={"auth": token},
                    headers={"Accept": "application/json"})
    try:
        data = response.json() if response.content else None
    except ValueError:
        data = None
    if (response.status_code >= 400 or not isinstance(data, dict) or "result" not in data
            or data.get("error")):
        raise parse_errors(response, where=where, secrets=(token,))
    result = data["result"]
    install = result.get("install") if isinstance(result, dict) else None
    if not isinstance(result, dict) or not isinstance(install, dict):
        raise Refused("app.info answered without the installation it belongs to")
    info = AppInfo(
        client_id=str(result.get("client_id") or ""),
        member_id=str(install.get("member_id") or ""),
        domain=str(install.get("domain") or "").lower(),
        user_id=None if result.get("user_id") in (None, "") else str(result["user_id"]),
        scope=str(result.get("scope") or install.get("scope") or ""),
        installed=install.get("installed") if isinstance(install.get("installed"), bool)
        else None)
    if info.client_id != settings.client_id:
        raise Refused(f"the token belongs to application {info.client_id or '(none)'!r}, "
                      f"not to {settings.client_id!r}")
    if info.member_id != member_id:
        raise Refused(f"the token belongs to portal {info.member_id or '(none)'!r}, not to "
                      f"{member_id!r}")
    if domain and info.domain != domain.lower():
        raise Refused(f"the token belongs to {info.domain or '(no domain)'!r}, not to "
                      f"{domain.lower()!r}")
    return info


def verify_tokens(auth: Mapping[str, Any], settings: Bitrix24Settings,
                  session: requests.Session | None = None) -> bool:
    """Whether an event's `auth` fields (`access_token`, `server_endpoint`, `member_id`,
    `domain`) are this application's on that portal, by `app.info`: how an ONAPPINSTALL or
    ONAPPUPDATE whose application token is not the stored one is checked
    [D:api-reference/events/safe-event-handlers.md]. Any failure is False, logged without
    the token."""
    token = str(auth.get("access_token") or "")
    member_id = str(auth.get("member_id") or "")
    if not token or not member_id or settings.mode != "app":
        return False
    try:
        check_app_info(token, auth.get("server_endpoint"), member_id,
                       str(auth.get("domain") or "") or None, settings, session)
    except (Refused, PlatformError) as error:
        log.warning("Bitrix24 portal %s: token not confirmed: %s", member_id,
                    redact(str(error), (token,)))
        return False
    return True


# -- binding events and placements --------------------------------------------------------

def public_base(public_url: str | None) -> str:
    """`public_url` without a trailing slash; `BadPublicUrl` unless absolute https (Bitrix24
    delivers to public https only [D:api-reference/events/index.md])."""
    if not public_url:
        raise BadPublicUrl("no public URL: give --url https://… (where the portal reaches "
                           "this ClientGuard) or set bitrix24.public_url")
    parts = urlsplit(str(public_url).strip())
    if parts.scheme != "https" or not parts.netloc:
        raise BadPublicUrl(f"the public URL must be https://…, got {public_url!r}")
    if parts.query or parts.fragment:
        raise BadPublicUrl(f"the public URL must have no query or fragment, got {public_url!r}")
    return f"https://{parts.netloc}{parts.path.rstrip('/')}"


def placement_titles(title: str) -> dict[str, str]:
    """The manifest's (English) title in every language ClientGuard speaks."""
    text = PLACEMENT_TITLES.get(title)
    if text is None:
        return {"en": title, "ru": title, "da": title}
    return {"en": text.en, "ru": text.ru, "da": text.da}


def bind_portal(client: Bitrix24Client, settings: Bitrix24Settings,
                manifest: Mapping[str, Any] | None = None) -> Binding:
    """Make the portal's registrations exactly the manifest's: every event bound to
    `public_url` + handler path, every placement to its page; stale ones removed.

    Two calls: `event.get` and `placement.get` in one `batch`, then the `event.unbind`,
    `placement.unbind`, `event.bind` and `placement.bind` calls that are missing in another
    (50 commands a batch), so a reinstall binds nothing twice. Bindings are dropped when the
    application is updated or deleted and must be made again by each version's installer
    [D:api-reference/events/event-bind.md]. No `auth_type`: events carry the token of the
    user who acted, whose id tells ClientGuard's own comments from people's (`events.py`).

    The manifest's engagement events (those `events.EVENT_HANDLERS` maps: deals,
    activities, tasks, timeline comments, smart items) are also bound as offline events
    (`event_type: offline`, no handler), which the review pulls (`offline.py`): online
    events that are lost are never sent again. `event.get` lists those with `offline: 1`
    [D:api-reference/events/event-get.md]; they are matched by name, and other offline
    registrations are left alone. Only an administrator may bind them, and the plan may not
    allow them [D:api-reference/events/event-bind.md, offline-events.md]: a refusal lands in
    `offline_refused`, not in `failures`. Raises the client's typed errors when the lists
    cannot be read (a non-administrator gets `AuthError` from `placement.get`)."""
    spec = (manifest or load_manifest())["platforms"]["bitrix24"]
    base = public_base(settings.public_url)
    handler = base + spec["handler"]
    wanted_events = list(dict.fromkeys(str(event).upper() for event in spec["events"]))
    wanted_offline = [name for name in wanted_events if name in EVENT_HANDLERS]
    wanted_placements = {placement["code"]: (base + placement["path"], placement["title"])
                         for placement in spec["placements"]}

    found = client.batch({"events": ("event.get", {}), "placements": ("placement.get", {})})
    kept_events: list[str] = []
    kept_offline: list[str] = []
    stale_events: list[tuple[str, str, str]] = []
    for row in found.value("events") or ():
        if not isinstance(row, dict):
            continue
        name = str(row.get("event") or "").upper()
        if str(row.get("offline") or "0") not in ("0", ""):
            if name in wanted_offline and name not in kept_offline:
                kept_offline.append(name)
            continue
        url = str(row.get("handler") or "")
        auth_type = str(row.get("auth_type") or "0")
        if name in wanted_events and url == handler and auth_type == "0":
            if name not in kept_events:  # a duplicate: unbinding it would drop both
                kept_events.append(name)
        elif (name, url, auth_type) not in stale_events:
            stale_events.append((name, url, auth_type))
    kept_placements: list[str] = []
    stale_placements: list[tuple[str, str]] = []
    for row in found.value("placements") or ():
        if not isinstance(row, dict):
            continue
        code, url = str(row.get("placement") or ""), str(row.get("handler") or "")
        if code in wanted_placements and url == wanted_placements[code][0]:
            if code not in kept_placements:
                kept_placements.append(code)
        elif (code, url) not in stale_placements:
            stale_placements.append((code, url))

    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    what: dict[str, str] = {}
    for index, (name, url, auth_type) in enumerate(stale_events):
        key = f"unbind_event_{index}"
        commands[key] = ("event.unbind", {"event": name, "handler": url,
                                          "auth_type": auth_type})
        what[key] = f"event.unbind {name} {url}"
    for index, (code, url) in enumerate(stale_placements):
        key = f"unbind_placement_{index}"
        commands[key] = ("placement.unbind", {"PLACEMENT": code, "HANDLER": url})
        what[key] = f"placement.unbind {code} {url}"
    for name in wanted_events:
        if name not in kept_events:
            key = f"bind_{name}"
            commands[key] = ("event.bind", {"event": name, "handler": handler})
            what[key] = f"event.bind {name}"
    for code, (url, title) in wanted_placements.items():
        if code not in kept_placements:
            titles = placement_titles(title)
            key = f"placement_{code}"
            commands[key] = ("placement.bind", {
                "PLACEMENT": code, "HANDLER": url, "TITLE": titles["en"],
                "LANG_ALL": {language: {"TITLE": text} for language, text in titles.items()}})
            what[key] = f"placement.bind {code}"
    for name in wanted_offline:
        if name not in kept_offline:
            key = f"offline_{name}"
            commands[key] = ("event.bind", {"event": name, "event_type": "offline"})
            what[key] = f"event.bind {name} (offline)"

    bound_events: list[str] = []
    missing: list[str] = []
    bound_placements: list[str] = []
    unbound: list[str] = []
    failures: list[Failure] = []
    bound_offline: list[str] = []
    missing_offline: list[str] = []
    refused_offline: list[Failure] = []
    keys = list(commands)
    for start in range(0, len(keys), BATCH_LIMIT):
        chunk = {key: commands[key] for key in keys[start:start + BATCH_LIMIT]}
        answer = client.batch(chunk)
        for key, (method, params) in chunk.items():
            if params.get("event_type") == "offline":
                _offline_outcome(answer, key, what[key], params["event"], bound_offline,
                                 missing_offline, refused_offline)
                continue
            error = answer.errors.get(key)
            if error is not None:
                text = str(error)
                code = error_code(error)
                if method == "event.bind" and code == "ERROR_EVENT_NOT_FOUND":
                    missing.append(params["event"])
                elif method == "event.bind" and "already binded" in text.lower():
                    bound_events.append(params["event"])  # another install page was first
                elif method == "placement.bind" and "already binded" in text.lower():
                    bound_placements.append(params["PLACEMENT"])
                else:
                    failures.append(Failure(what[key], code, text))
            elif key not in answer.results:
                failures.append(Failure(what[key], None, f"batch: {what[key]} did not run"))
            elif method == "placement.bind" and answer.results[key] is False:
                failures.append(Failure(what[key], None, "placement.bind answered false"))
            elif method == "event.bind":
                bound_events.append(params["event"])
            elif method == "placement.bind":
                bound_placements.append(params["PLACEMENT"])
            else:
                unbound.append(what[key].split(" ", 1)[1])
    return Binding(handler=handler, events_bound=tuple(bound_events),
                   events_kept=tuple(kept_events), events_missing=tuple(missing),
                   placements_bound=tuple(bound_placements),
                   placements_kept=tuple(kept_placements), unbound=tuple(unbound),
                   failures=tuple(failures), offline_bound=tuple(bound_offline),
                   offline_kept=tuple(kept_offline), offline_missing=tuple(missing_offline),
                   offline_refused=tuple(refused_offline))


def _offline_outcome(answer: BatchResult, key: str, what: str, event: str, bound: list[str],
                     missing: list[str], refused: list[Failure]) -> None:
    """File one offline `event.bind` of a batch under bound, missing or refused."""
    error = answer.errors.get(key)
    if error is None and key in answer.results:
        bound.append(event)
    elif error is not None and error_code(error) == "ERROR_EVENT_NOT_FOUND":
        missing.append(event)
    elif error is not None and "already binded" in str(error).lower():
        bound.append(event)  # another install page was first
    elif error is not None:
        refused.append(Failure(what, error_code(error), str(error)))
    else:
        refused.append(Failure(what, None, f"batch: {what} did not run"))


def rebind_portal(member_id: str, settings: Bitrix24Settings, store: InstallationStore,
                  client: Bitrix24Client, manifest: Mapping[str, Any] | None = None) -> Binding:
    """Bind again after ONAPPUPDATE (which drops every binding) with the portal's stored
    tokens (`client` is the connector's client for `member_id`), record whether offline
    events are registered (`offline_events`), and clear the portal's `needs_rebind` once
    every binding held. Raises the client's typed errors."""
    binding = bind_portal(client, settings, manifest)

    def renewed(state: dict[str, Any] | None) -> dict[str, Any] | None:
        if state is None:
            return None
        return {**{key: value for key, value in state.items()
                   if key != "needs_rebind" or not binding.ok},
                "offline_events": binding.offline_events}

    store.change(member_id, renewed)
    log.log(logging.INFO if binding.ok else logging.WARNING, "Bitrix24 portal %s: %s: %s",
            member_id, "bindings renewed" if binding.ok else "renewing bindings failed",
            binding.summary())
    return binding


# -- the install page -------------------------------------------------------------------

def install_page(request: PageRequest, settings: Bitrix24Settings, store: InstallationStore,
                 client_with: ClientWith | None = None,
                 session: requests.Session | None = None, *,
                 clock: Callable[[], float] = time.time,
                 manifest: Mapping[str, Any] | None = None) -> PageReply:
    """The local application's initial installation path, `/apps/bitrix24/install`.

    The frame's POST carries `AUTH_ID`, `AUTH_EXPIRES`, `REFRESH_ID`, `SERVER_ENDPOINT`,
    `APPLICATION_TOKEN`, `APPLICATION_SCOPE`, `member_id`, `status`; the query `DOMAIN`,
    `PROTOCOL`, `LANG`, `APP_SID` [D:local-integrations/serverside-local-app-with-ui.md;
    D:settings/oauth/simple-way.md]. The token is checked with `app.info` (403 otherwise,
    nothing stored), the portal stored `installed: False`, every event and placement bound
    (`bind_portal`) with the delivered token, and only when all held is the portal marked
    installed and the page answered that calls `BX24.installFinish()`. A refused binding
    answers 200 (the portal shows the page) explaining what to do, without `installFinish`.

    A "script only" install (a form of `auth[...]` fields) is stored and bound alike and
    answered with JSON. `client_with` builds the REST client for an auth (tests); by
    default the real client on the portal's shared bucket."""
    if settings.mode != "app" or not settings.client_id or not settings.public_url:
        return _page(503, "en", "not_installed", [_para("not_app", "en")])
    if client_with is None:
        def client_with(auth: Bitrix24Auth) -> Bitrix24Client:
            return Bitrix24Client(auth, bucket_for(auth.site, settings.rate_per_second,
                                                   settings.burst), session)
    try:
        script = _script_fields(request)
    except MalformedDelivery as error:
        return _json(400, {"installed": False, "error": str(error)})
    if script is not None:
        return _script_install(script, settings, store, client_with, session, clock, manifest)
    return _frame_install(request, settings, store, client_with, session, clock, manifest)


@dataclass(frozen=True)
class _Offer:
    """An installer's tokens, from the frame's POST or a script-only callback."""

    member_id: str
    domain: str
    token: str
    server_endpoint: str
    stored: dict[str, Any]  # kept besides: refresh token, expiry, scope, application token
    channel: str  # how it came, for the log


@dataclass(frozen=True)
class _NotInstalled:
    """Why an offer was not installed. 403: refused, nothing stored; 503: the OAuth server
    did not answer; 200: stored but the portal refused bindings (`failures`)."""

    status: int
    reason: str  # without the token
    transient: bool = False
    failures: tuple[Failure, ...] = ()


def _verify(offer: _Offer, settings: Bitrix24Settings,
            session: requests.Session | None) -> AppInfo | _NotInstalled:
    """`check_app_info`, its refusals as `_NotInstalled` (logged, token redacted)."""
    try:
        return check_app_info(offer.token, offer.server_endpoint, offer.member_id,
                              offer.domain, settings, session)
    except PlatformError as error:
        reason = redact(str(error), (offer.token,))
        log.warning("Bitrix24 %s for portal %s refused: %s", offer.channel, offer.member_id,
                    reason)
        transient = isinstance(error, Transient)
        return _NotInstalled(503 if transient else 403, reason, transient)
    except Refused as error:
        reason = redact(str(error), (offer.token,))
        log.warning("Bitrix24 %s for portal %s refused: %s", offer.channel, offer.member_id,
                    reason)
        return _NotInstalled(403, reason)


def _store_and_bind(offer: _Offer, info: AppInfo, settings: Bitrix24Settings,
                    store: InstallationStore, client_with: ClientWith,
                    clock: Callable[[], float], manifest: Mapping[str, Any] | None
                    ) -> Binding | _NotInstalled:
    """Store the verified offer (`installed: False`), bind every event and placement with
    its token, and mark the portal installed only when all held."""
    _store_new(store, offer.member_id, {
        **offer.stored, "domain": offer.domain, "server_endpoint": offer.server_endpoint,
        "access_token": offer.token, "scope": info.scope or offer.stored.get("scope"),
        "user_id": info.user_id}, clock)
    client = client_with(InstallAuth(offer.member_id, _client_endpoint(offer.domain),
                                     offer.token))
    try:
        binding = bind_portal(client, settings, manifest)
    except PlatformError as error:
        failures: tuple[Failure, ...] = (Failure("event.get/placement.get", error_code(error),
                                                 str(error)),)
        transient = isinstance(error, Transient)
    else:
        if binding.ok:
            _mark_installed(store, offer.member_id, binding)
            log.info("Bitrix24 portal %s (%s) installed by user %s (%s): %s", offer.member_id,
                     offer.domain, info.user_id, offer.channel, binding.summary())
            return binding
        failures, transient = tuple(binding.failures), False
    summary = redact("; ".join(f"{failure.what}: {failure.code or failure.message}"
                               for failure in failures), (offer.token,))
    log.warning("Bitrix24 portal %s not installed: %s", offer.member_id, summary)
    return _NotInstalled(200, summary, transient, failures)


def _frame_install(request: PageRequest, settings: Bitrix24Settings, store: InstallationStore,
                   client_with: ClientWith, session: requests.Session | None,
                   clock: Callable[[], float], manifest: Mapping[str, Any] | None) -> PageReply:
    form, query = request.form, request.query
    language = _language(query.get("LANG") or form.get("LANG"))
    token = form.get("AUTH_ID") or ""
    member_id = form.get("member_id") or ""
    domain = (query.get("DOMAIN") or form.get("DOMAIN") or "").lower()
    if request.method != "POST" or not token or not member_id or not domain:
        return _refused(400, language, "the request carries no AUTH_ID, member_id and DOMAIN: "
                        "it was not sent by Bitrix24")
    if not MEMBER_ID.fullmatch(member_id) or not _DOMAIN.fullmatch(domain):
        return _refused(400, language, "member_id or DOMAIN is malformed")
    offer = _Offer(member_id, domain, token,
                   form.get("SERVER_ENDPOINT") or DEFAULT_OAUTH_SERVER,
                   {"application_token": form.get("APPLICATION_TOKEN"),
                    "refresh_token": form.get("REFRESH_ID"),
                    "expires_in": form.get("AUTH_EXPIRES") or "3600",
                    "scope": form.get("APPLICATION_SCOPE")}, "install")
    info = _verify(offer, settings, session)
    if isinstance(info, _NotInstalled):
        if info.transient:
            return _page(503, language, "not_installed", [
                _para("unreachable", language, detail=info.reason), _para("reopen", language)])
        return _refused(info.status, language, info.reason)
    if info.installed is True:
        # The portal opens the installation path only while the application is not
        # installed [D:settings/app-installation/local-apps/installation-master.md]; an
        # installed portal's token here was taken from a frame (any user's): storing it
        # would replace the installer's tokens and stop the portal.
        log.warning("Bitrix24 install for portal %s refused: the portal says the application "
                    "is installed already", member_id)
        return _page(403, language, "refused", [_para("already", language)])
    outcome = _store_and_bind(offer, info, settings, store, client_with, clock, manifest)
    if isinstance(outcome, _NotInstalled):
        return _bind_failed(language, outcome, token)
    return _finished_page(language, outcome, info.user_id)


def _script_install(auth: Mapping[str, Any], settings: Bitrix24Settings,
                    store: InstallationStore, client_with: ClientWith,
                    session: requests.Session | None, clock: Callable[[], float],
                    manifest: Mapping[str, Any] | None) -> PageReply:
    """The "script only" install callback: the backend posts the installer's tokens; no
    browser, no `installFinish` [D:settings/app-installation/local-apps/
    installation-callback.md]."""
    token = str(auth.get("access_token") or "")
    member_id = str(auth.get("member_id") or "")
    domain = str(auth.get("domain") or "").lower()
    if not token or not member_id or not domain:
        return _json(400, {"installed": False, "error": "auth[access_token], auth[member_id] "
                           "and auth[domain] are required"})
    if not MEMBER_ID.fullmatch(member_id) or not _DOMAIN.fullmatch(domain):
        return _json(400, {"installed": False, "error": "auth[member_id] or auth[domain] is "
                           "malformed"})
    offer = _Offer(member_id, domain, token,
                   auth.get("server_endpoint") or DEFAULT_OAUTH_SERVER,
                   {key: auth.get(key) for key in ("application_token", "refresh_token",
                                                   "expires", "expires_in", "scope")},
                   "install callback")
    info = _verify(offer, settings, session)
    if isinstance(info, _NotInstalled):
        return _json(info.status, {"installed": False, "error": info.reason})
    stored = store.load(member_id)
    offered = str(auth.get("application_token") or "")
    if (stored and stored.get("installed") and stored.get("application_token")
            and not hmac.compare_digest(offered.encode(),
                                        str(stored["application_token"]).encode())):
        # A script-only application is installed at once, so app.info cannot tell a real
        # callback from a replayed token; an installed portal keeps its installation
        # unless the callback knows its application token.
        log.warning("Bitrix24 install callback for portal %s refused: the portal is installed "
                    "with another application token", member_id)
        return _json(403, {"installed": False, "error": "the portal is installed already"})
    outcome = _store_and_bind(offer, info, settings, store, client_with, clock, manifest)
    if isinstance(outcome, _NotInstalled):
        return _json(outcome.status, {"installed": False, "error": outcome.reason})
    return _json(200, {"installed": True, "events": list(outcome.events),
                       "placements": list(outcome.placements)})


def _script_fields(request: PageRequest) -> dict[str, Any] | None:
    """The `auth[...]` table of a script-only install callback, or None for a frame POST.

    Read from the raw body (`parse_form`, strict); a web layer that parsed the form first
    leaves the body empty (Werkzeug does not keep it), so the flat `auth[…]` form fields
    are read the same way then."""
    body = request.body
    if not body and any(key.startswith("auth[") for key in request.form):
        body = urllib.parse.urlencode(list(request.form.items())).encode("ascii")
    if not body or (b"auth%5B" not in body and b"auth[" not in body):
        return None
    auth = parse_form(body).get("auth")
    if not isinstance(auth, dict):
        return None
    return {key: value for key, value in auth.items() if isinstance(value, str)}


# -- stored state -----------------------------------------------------------------------

def _client_endpoint(domain: str) -> str:
    return f"https://{domain}/rest/"


def _expiry(fields: Mapping[str, Any], now: float) -> int | None:
    """Unix time the access token expires: `expires`, else now + `expires_in`."""
    for key, offset in (("expires", 0.0), ("expires_in", now)):
        try:
            value = float(fields.get(key) or "")
        except (TypeError, ValueError):
            continue
        return int(offset + value)
    return None


def _store_new(store: InstallationStore, member_id: str, fields: Mapping[str, Any],
               clock: Callable[[], float]) -> None:
    """Store a verified installation, `installed: False` until its bindings hold. What the
    state had besides (another module's keys) stays; the previous user's tokens do not."""
    server = oauth_server(fields.get("server_endpoint"))  # checked by check_app_info
    expires = _expiry(fields, clock())

    def edit(state: dict[str, Any] | None) -> dict[str, Any]:
        new = {key: value for key, value in (state or {}).items()
               if key not in ("uninstalled_at", "needs_rebind", *TOKEN_KEYS)}
        if state and state.get("application_token") and not fields.get("application_token"):
            new["application_token"] = state["application_token"]
        new.update({"member_id": member_id, "domain": fields["domain"],
                    "client_endpoint": _client_endpoint(fields["domain"]),
                    "server_endpoint": server, "access_token": fields["access_token"],
                    "installed": False})
        for key in ("application_token", "refresh_token", "scope", "user_id"):
            if fields.get(key):
                new[key] = str(fields[key])
        if expires is not None:
            new["expires"] = expires
        return new

    store.change(member_id, edit)


def _mark_installed(store: InstallationStore, member_id: str, binding: Binding) -> None:
    """Every binding held: the portal is installed; `offline_events` says whether the review
    may read its offline queue."""
    store.change(member_id, lambda state: None if state is None else {
        **state, "installed": True, "offline_events": binding.offline_events})


# -- portal lifecycle events ------------------------------------------------------------

def apply_portal_change(change: PortalChange, settings: Bitrix24Settings,
                        store: InstallationStore, verify: Callable[[dict[str, Any]], bool], *,
                        clock: Callable[[], float] = time.time) -> str:
    """Apply ONAPPINSTALL, ONAPPUPDATE or ONAPPUNINSTALL to the portal's stored state and say
    what was done (one line for the log; no token in it).

    - install / update: unless `change.verified` (its application token is the stored one),
      `verify(auth + member_id)` must confirm the access token (`verify_tokens`: app.info),
      else `BadSignature`. The application token and the tokens are stored; tokens only when
      issued to the stored user (event tokens belong to whoever acted) and fresher than the
      stored ones. The portal's addresses are kept as stored (a new portal: derived from its
      verified domain): a delivery cannot redirect ClientGuard's calls. `installed` is left
      as it is (a new portal: False): only the install page, which binds, installs.
    - update: Bitrix24 drops every binding on an update [D:api-reference/events/
      event-bind.md], so the state gets `needs_rebind: True`: the worker binds again
      (`rebind_portal`), not the webhook that carried the update.
    - uninstall: `installed: False`, tokens and application token dropped, `uninstalled_at`
      (ISO UTC) set; the rest stays for the record."""
    member_id = change.member_id
    auth = change.auth
    if change.kind == "uninstall":
        when = datetime.fromtimestamp(clock(), UTC).isoformat(timespec="seconds")

        def uninstall(state: dict[str, Any] | None) -> dict[str, Any] | None:
            if state is None:
                return None
            kept = {key: value for key, value in state.items() if key not in TOKEN_KEYS}
            return {**kept, "installed": False, "uninstalled_at": when}

        store.change(member_id, uninstall)
        log.info("Bitrix24 portal %s uninstalled the application", member_id)
        return f"portal {member_id}: uninstalled; tokens dropped"

    if not change.verified and not verify({**auth, "member_id": member_id}):
        raise BadSignature(f"ONAPP{change.kind.upper()} for portal {member_id}: its "
                           "application token is not the stored one and the OAuth server "
                           "did not confirm its access token")
    now = clock()
    outcome: dict[str, Any] = {}

    def edit(state: dict[str, Any] | None) -> dict[str, Any]:
        new = dict(state or {})
        new["member_id"] = member_id
        if state is None:
            new["installed"] = False
        domain = str(auth.get("domain") or "").lower()
        if not new.get("domain") and _DOMAIN.fullmatch(domain):
            new["domain"] = domain
        if not new.get("client_endpoint") and new.get("domain"):
            new["client_endpoint"] = _client_endpoint(new["domain"])
        if not new.get("server_endpoint"):
            with contextlib.suppress(Refused):
                new["server_endpoint"] = oauth_server(auth.get("server_endpoint"))
        if auth.get("application_token"):
            outcome["application_token"] = new.get("application_token") != auth[
                "application_token"]
            new["application_token"] = auth["application_token"]
        # A new installation (the portal not installed here) brings its installer's tokens;
        # on an installed portal only the stored user's are taken.
        outcome["tokens"] = _take_tokens(new, auth, now, any_user=change.kind == "install"
                                         and not new.get("installed"))
        if change.kind == "install":
            new.pop("uninstalled_at", None)
        else:
            new["needs_rebind"] = True
        return new

    store.change(member_id, edit)
    parts = [f"portal {member_id}: {change.kind} recorded",
             "tokens stored" if outcome.get("tokens") else "tokens kept",
             "application token changed" if outcome.get("application_token")
             else "application token unchanged"]
    if change.kind == "update":
        parts.append("bindings must be renewed (needs_rebind)")
    description = "; ".join(parts)
    log.info("Bitrix24 %s", description)
    return description


def _take_tokens(state: dict[str, Any], auth: Mapping[str, Any], now: float, *,
                 any_user: bool = False) -> bool:
    """Put the event's tokens into `state` when they are the stored user's (or either user is
    unknown, or `any_user`) and expire later than the stored ones; whether they were taken."""
    access = auth.get("access_token")
    if not access:
        return False
    stored_user, offered_user = state.get("user_id"), auth.get("user_id")
    if (not any_user and stored_user not in (None, "") and offered_user not in (None, "")
            and str(stored_user) != str(offered_user)):
        return False
    expires = _expiry(auth, now)
    current = state.get("expires")
    if isinstance(current, int | float) and (expires is None or expires <= current):
        return False
    state["access_token"] = str(access)
    if auth.get("refresh_token"):
        state["refresh_token"] = str(auth["refresh_token"])
    if expires is not None:
        state["expires"] = expires
    if offered_user not in (None, "") and (any_user or stored_user in (None, "")):
        state["user_id"] = str(offered_user)
    if auth.get("scope"):
        state["scope"] = str(auth["scope"])
    return True


def _secrets(auth: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(auth[key]) for key in ("access_token", "refresh_token",
                                            "application_token") if auth.get(key))


# -- pages ------------------------------------------------------------------------------

def _language(lang: str | None) -> Language:
    code = (lang or "").strip().lower()[:2]
    return "ru" if code == "ru" else "da" if code == "da" else "en"


def _para(key: str, language: Language, **params: Any) -> str:
    text = PAGE[key].render(language, **{name: html.escape(str(value))
                                         for name, value in params.items()})
    return f"<p>{text}</p>"


def _page(status: int, language: Language, title: str, parts: list[str], *,
          finish: bool = False) -> PageReply:
    """A page the portal shows in its frame. Never `X-Frame-Options` or a framing CSP: the
    portal must be able to frame it [D:api-reference/widgets/_includes/widget_data.md]."""
    head = f'<script src="{BX24_SCRIPT}"></script>' if finish else ""
    script = ("<script>BX24.init(function(){ BX24.installFinish(); });</script>"
              if finish else "")
    body = (f'<!DOCTYPE html>\n<html lang="{language}"><head><meta charset="utf-8">'
            f"<title>ClientGuard</title>{head}</head>\n<body>\n"
            f"<h1>{html.escape(PAGE[title].render(language))}</h1>\n" + "\n".join(parts)
            + f"\n{script}</body></html>\n")
    return PageReply(status, body, headers={"Cache-Control": "no-store"})


def _refused(status: int, language: Language, reason: str) -> PageReply:
    return _page(status, language, "refused", [_para("refused_body", language, reason=reason)])


def _finished_page(language: Language, binding: Binding, user_id: str | None) -> PageReply:
    items = "".join(f"<li>{html.escape(event)}</li>" for event in binding.events)
    placements = "".join(f"<li>{html.escape(code)}</li>" for code in binding.placements)
    parts = [_para("installed_intro", language, user_id=user_id or "?"),
             _para("events", language, handler=binding.handler), f"<ul>{items}</ul>",
             _para("placements", language), f"<ul>{placements}</ul>"]
    if binding.events_missing:
        parts.append(_para("missing", language, events=", ".join(binding.events_missing)))
    return _page(200, language, "installed", parts, finish=True)


def _bind_failed(language: Language, outcome: _NotInstalled, token: str) -> PageReply:
    """Explain a refused binding: 200 (the portal shows it), no `installFinish`, the portal
    stays `installed: False`."""
    failures = outcome.failures
    parts = [_para("unreachable" if outcome.transient else "answered", language,
                   detail=redact(failure.message, (token,))) for failure in failures[:5]]
    codes = {failure.code for failure in failures}
    advice = []
    if codes & {"ACCESS_DENIED", "USER_ACCESS_ERROR", "ACCESS_ERROR"}:
        advice.append(_para("advice_admin", language))
    if codes & {"INSUFFICIENT_SCOPE", "INVALID_SCOPE"}:
        scopes = ", ".join(load_manifest()["platforms"]["bitrix24"]["scopes"])
        advice.append(_para("advice_scope", language, scopes=scopes))
    if "WRONG_AUTH_TYPE" in codes:
        advice.append(_para("advice_app", language))
    parts += advice or [_para("advice_other", language)]
    parts.append(_para("reopen", language))
    return _page(200, language, "not_installed", parts)


def _json(status: int, data: Mapping[str, Any]) -> PageReply:
    return PageReply(status, json.dumps(data, ensure_ascii=False), "application/json")


# -- `clientguard install bitrix24` -------------------------------------------------------

def render_setup(settings: Bitrix24Settings, public_url: str | None = None,
                 manifest: Mapping[str, Any] | None = None) -> str:
    """What `clientguard install bitrix24` prints: the local application to create in the
    portal and the `[bitrix24]` settings that go with it, then the webhook alternative.
    Everything comes from `manifest.json` (paths, events, placements, scopes), so the text
    and the install page cannot disagree. `public_url` (the command's `--url`) overrides
    `settings.public_url`; raises `BadPublicUrl`."""
    spec = (manifest or load_manifest())["platforms"]["bitrix24"]
    base = public_base(public_url or settings.public_url)
    scopes = list(spec["scopes"])
    events = [str(event).upper() for event in spec["events"]]
    placements = spec["placements"]
    page = placements[0]["path"] if placements else spec["install"]
    hook_events = [event for event in events
                   if event not in WEBHOOK_ONLY_EVENTS and event not in APP_ONLY_EVENTS]
    hook_scopes = [scope for scope in scopes if scope != "placement"]
    lines = [
        f"Bitrix24: connect a portal to ClientGuard at {base}",
        "",
        "A. Local application (recommended: events, REST calls and the Health check button)",
        "  In the portal: Applications → Developer resources → Other → Local application",
        "    Type: server; leave \"Script only (no user interface)\" off",
        f"    Your handler path: {base}{page}",
        f"    Initial installation path: {base}{spec['install']}",
        "    Menu item text (English): ClientGuard",
        f"    Assign permissions (scopes): {', '.join(scopes)}",
        "  Save: the application card shows its client_id (local.…) and client_secret.",
        "  Configure ClientGuard and restart it:",
        "    [bitrix24]",
        f'    client_id = "{settings.client_id or "local.…"}"',
        f'    public_url = "{base}"',
        "    and in the environment: CLIENTGUARD_BITRIX24__CLIENT_SECRET=<client_secret>",
        "  Then open the application in the portal as an administrator: its install page",
        "  checks the token with the OAuth server, binds what follows and finishes the",
        "  installation. That administrator is the user ClientGuard writes as.",
        f"    {len(events)} events → {base}{spec['handler']}",
        *_placement_lines(base, placements),
        "",
        "B. Webhooks (quick start: one portal, no Health check button)",
        "  Applications → Developer resources → Other → Incoming webhook",
        f"    Assign permissions (scopes): {', '.join(hook_scopes)}",
        "    Copy its REST URL https://<portal>/rest/<user id>/<code>/; ClientGuard writes as",
        "    that user.",
        "  Applications → Developer resources → Other → Outgoing webhook",
        f"    Handler URL: {base}{spec['handler']}",
        textwrap.fill(", ".join(hook_events), width=96, initial_indent="    Events: ",
                      subsequent_indent="      ", break_on_hyphens=False),
        "    Copy its application token.",
        "  Configure ClientGuard and restart it:",
        "    [bitrix24]",
        f'    site = "{settings.site}"',
        "    and in the environment:",
        "    CLIENTGUARD_BITRIX24__WEBHOOK_URL=https://<portal>/rest/<user id>/<code>/",
        "    CLIENTGUARD_BITRIX24__OUTGOING_TOKEN=<application token>",
        *(f"  {event} reaches applications only: a deal moved to another pipeline\n"
          "  is caught by the review instead." for event in sorted(APP_ONLY_EVENTS)
          if event in events),
        "",
        f"Now configured: {_configured(settings)}",
    ]
    return "\n".join(lines) + "\n"


def _placement_lines(base: str, placements: list[Mapping[str, Any]]) -> list[str]:
    """The placements grouped by page and title, two lines each."""
    groups: dict[tuple[str, str], list[str]] = {}
    for placement in placements:
        groups.setdefault((placement["path"], placement["title"]), []).append(placement["code"])
    lines = []
    for (path, title), codes in groups.items():
        lines += [f"    placements {', '.join(codes)} (\"{title}\")", f"      → {base}{path}"]
    return lines


def _configured(settings: Bitrix24Settings) -> str:
    if settings.mode == "app":
        return f"local application {settings.client_id}"
    if settings.webhook_url or settings.outgoing_token:
        return f"webhooks (site {settings.site})"
    return "nothing yet ([bitrix24] has neither client_id nor webhook_url)"


__all__ = [
    "AppInfo", "BadPublicUrl", "Binding", "Failure", "InstallAuth", "Refused",
    "apply_portal_change", "bind_portal", "check_app_info", "install_page", "oauth_server",
    "public_base", "rebind_portal", "render_setup", "verify_tokens",
]
