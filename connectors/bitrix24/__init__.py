"""The Bitrix24 connector: a deal is the engagement; events in, a deal snapshot out (fetched
with `batch`), one agency-internal sticky timeline comment written back.

Two ways to connect (`Bitrix24Settings`): webhooks — one portal, named `settings.site` — or
a local application, where every portal that installs it is its own site, named by its
`member_id`, with its tokens in the service's installation store."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import (
    Delivery,
    EngagementRef,
    Event,
    Export,
    Ignored,
    InstallationStore,
    PageReply,
    PageRequest,
    Snapshot,
    Written,
)
from connectors.bitrix24 import comments, events
from connectors.bitrix24 import snapshot as deal_snapshot
from connectors.bitrix24.auth import Bitrix24Auth, PortalAuth, WebhookAuth
from connectors.bitrix24.client import Bitrix24Client
from connectors.bitrix24.offline import pull_offline
from connectors.bitrix24.settings import Bitrix24Settings, Bitrix24SettingsSchema
from connectors.bitrix24.snapshot import DealContext
from connectors.bitrix24.throttle import StoredBucketState, bucket_for
from connectors.errors import (
    ConnectorNotConfigured,
    ExportError,
    NotInstalled,
    PayloadError,
    PlatformError,
)
from connectors.http import CallObserver
from connectors.mapping import as_time
from plugin.core.comment import StickyContent
from plugin.core.i18n import Language, Text
from plugin.core.schema import decode_json

log = logging.getLogger(__name__)
ON_THE_TIMELINE = Text(  # who may read the sticky comment (`Bitrix24Connector.audience`)
    en="on the deal's timeline (employees with access to the deal)",
    ru="в ленте сделки (видят сотрудники с доступом к сделке)",
    da="på handlens tidslinje (medarbejdere med adgang til handlen)")
DEAL = 2  # CRM entity type id of deals
IN_PROGRESS = "P"  # stage semantics of a deal still being worked on
RATE_KEY = "rate:"  # installation-store entries holding a portal's shared request count


class Bitrix24Connector:
    """One `[bitrix24]` configuration behind the `connectors.base.Connector` interface."""

    name = "bitrix24"
    label = "Bitrix24"
    key_example = "410"
    settings_schema = Bitrix24SettingsSchema

    def __init__(self, settings: Bitrix24Settings, *,
                 observer: CallObserver | None = None) -> None:
        self.settings = settings
        self._observer = observer  # told of every call the portals' clients make
        self.installations: InstallationStore | None = None
        self._clients: dict[str, Bitrix24Client] = {}
        self._clients_lock = threading.Lock()
        self._catalogues = deal_snapshot.Catalogues()
        self.pages: Mapping[str, Callable[[PageRequest], PageReply]] = {
            "install": self._install_page}

    def attach(self, installations: InstallationStore) -> None:
        self.installations = installations

    # -- sites and clients -----------------------------------------------------------

    def sites(self) -> list[str]:
        """The portals events come from: the webhook's, or every portal that installed the
        app and has not uninstalled it."""
        if self.settings.mode == "webhook":
            return [self.settings.site]
        store = self._store()
        return [site for site in store.sites() if (store.load(site) or {}).get("installed")]

    def client_for(self, site: str) -> Bitrix24Client:
        """The portal's REST client (one per site, sharing the portal's throttle)."""
        with self._clients_lock:
            client = self._clients.get(site)
            if client is None:
                client = Bitrix24Client(self._auth_for(site), bucket_for(
                    site, self.settings.rate_per_second, self.settings.burst,
                    self._shared_count(site)), observer=self._observer)
                self._clients[site] = client
            return client

    def _shared_count(self, site: str) -> StoredBucketState | None:
        """The portal's request count in the service's database, shared by every process
        (kept beside the portals, under a key no portal has)."""
        if self.installations is None:
            return None
        return StoredBucketState(self.installations, f"{RATE_KEY}{site}")

    def _auth_for(self, site: str) -> Bitrix24Auth:
        settings = self.settings
        if settings.mode == "webhook":
            if settings.webhook_url is None:
                raise ConnectorNotConfigured(
                    "bitrix24 → webhook_url is needed to call the portal "
                    "(CLIENTGUARD_BITRIX24__WEBHOOK_URL), or client_id, client_secret and "
                    "public_url for the ClientGuard application (docs/bitrix24.md)")
            if site != settings.site:
                raise ConnectorNotConfigured(f"bitrix24: no portal {site!r} (webhook mode "
                                             f"serves {settings.site!r})")
            return WebhookAuth(settings.webhook_url, site=site)
        assert settings.client_id and settings.client_secret  # the schema requires both
        return PortalAuth(self._store(), site, settings.client_id, settings.client_secret)

    def _store(self) -> InstallationStore:
        if self.installations is None:
            raise ConnectorNotConfigured("bitrix24: portals are kept in the service's "
                                         "database, which this command has not opened")
        return self.installations

    def settings_for(self, site: str) -> Bitrix24Settings:
        """The settings with the portal's own bot user in app mode: the installing admin,
        whom ClientGuard writes as."""
        if self.settings.mode == "webhook" or self.installations is None:
            return self.settings
        user_id = (self.installations.load(site) or {}).get("user_id")
        if user_id is None:
            return self.settings
        return dataclasses.replace(self.settings, bot_user_id=str(user_id))

    # -- the service's interface (connectors.base.Connector) --------------------------

    def parse_delivery(self, delivery: Delivery) -> Event | Ignored:
        """Verify and read one event (see `events.parse_delivery`); portal lifecycle events
        are applied here and answered as ignored (there is nothing to evaluate)."""
        parsed = events.parse_delivery(delivery, self.settings, self._application_token)
        if isinstance(parsed, events.PortalChange):
            return Ignored(parsed.kind, self._apply(parsed))
        return parsed

    def _application_token(self, member_id: str) -> str | None:
        if self.installations is None:
            return None
        return (self.installations.load(member_id) or {}).get("application_token")

    def _install_page(self, request: PageRequest) -> PageReply:
        """The local application's initial installation path (`install.install_page`)."""
        from connectors.bitrix24.install import install_page

        return install_page(request, self.settings, self._store())

    def _apply(self, change: events.PortalChange) -> str:
        """Record an install, update or uninstall. An updated app has lost its bindings
        (Bitrix24 drops them on update): the portal is marked `needs_rebind`, and the
        worker's next review binds again — no REST calls while the webhook waits."""
        from connectors.bitrix24.install import apply_portal_change

        return apply_portal_change(change, self.settings, self._store(), self._verify)

    def _verify(self, auth: dict[str, Any]) -> bool:
        from connectors.bitrix24.install import verify_tokens

        return verify_tokens(auth, self.settings)

    def resolve(self, refs: list[EngagementRef]) -> dict[EngagementRef, EngagementRef | None]:
        """The deals indirect events belong to, one `batch` per portal (`resolve.py`)."""
        from connectors.bitrix24.resolve import resolve_owners

        found: dict[EngagementRef, EngagementRef | None] = {}
        for site in sorted({ref.site for ref in refs}):
            mine = [ref for ref in refs if ref.site == site]
            found.update(resolve_owners(self.client_for(site), mine,
                                        self.settings_for(site).bot_user_id))
        return found

    def fetch_snapshot(self, ref: EngagementRef, known_sticky_id: str | None) -> Snapshot:
        """The deal with its contacts, timeline, activities, tasks and invoices: one `batch`
        when the portal's catalogue is warm, two when cold."""
        client = self.client_for(ref.site)
        catalogue = self._catalogues.for_site(ref.site, self._portal_url(ref.site))
        return deal_snapshot.fetch_snapshot(client, ref, self.settings_for(ref.site), catalogue,
                                       known_sticky_id, datetime.now(UTC))

    def _portal_url(self, site: str) -> str | None:
        if self.settings.mode == "webhook":
            url = self.settings.webhook_url or ""
            return url.split("/rest/")[0] or None
        domain = (self._store().load(site) or {}).get("domain")
        return f"https://{domain}" if domain else None

    def recently_updated(self, minutes: int) -> dict[EngagementRef, datetime | None]:
        """What changed on every portal without an event: the review's catch-up (Bitrix24
        never posts an event again).

        Deals changed in the last `minutes`, with their `updatedTime`, and on portals whose
        offline events are bound (`offline_events`, app mode) what their offline queue names,
        with no time (`offline.pull_offline`: activities, tasks and comments leave
        `updatedTime` as it is; indirect keys are resolved by the pipeline). The queue is
        read last: what it hands over is deleted there, so nothing after it may fail. A
        portal's failure is logged and the others carry on; when every call failed, the
        first error is raised for the review to log."""
        since = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()
        found: dict[EngagementRef, datetime | None] = {}
        failed: list[tuple[str, str, PlatformError]] = []
        calls = 0
        for site in self.sites():
            self._bind_again_if_needed(site)
            calls += 1
            try:
                found.update({self._ref(site, deal): as_time(deal.get(
                    "updatedTime")) for deal in self._deals(site, {">updatedTime": since})})
            except PlatformError as error:
                failed.append((site, "recently updated deals", error))
            if self._offline_events(site):
                calls += 1
                try:
                    found.update(dict.fromkeys(pull_offline(
                        self.client_for(site), site,
                        bot_user_id=self.settings_for(site).bot_user_id)))
                except PlatformError as error:
                    failed.append((site, "offline events", error))
        if failed and len(failed) == calls:
            for site, what, error in failed[1:]:
                log.warning("Bitrix24 portal %s: cannot read %s: %s", site, what, error)
            raise failed[0][2]
        for site, what, error in failed:
            log.warning("Bitrix24 portal %s: cannot read %s: %s", site, what, error)
        return found

    def engagements_in_scope(self) -> None:
        """None: every evaluation reads the deal, and one outside `deal_categories` is
        `NotAnEngagement` there, for no extra call."""
        return None

    def _bind_again_if_needed(self, site: str) -> None:
        """After an app update, bind the events and placements again (`install`)."""
        if self.settings.mode != "app" or not (self._store().load(site) or {}).get(
                "needs_rebind"):
            return
        from connectors.bitrix24.install import rebind_portal

        try:
            rebind_portal(site, self.settings, self._store(), self.client_for(site))
        except PlatformError as error:
            log.warning("Bitrix24 portal %s: cannot bind events again: %s", site, error)

    def _offline_events(self, site: str) -> bool:
        """Whether the review reads the portal's offline queue: app mode, and the install
        bound offline events there."""
        if self.settings.mode != "app":
            return False
        return bool((self._store().load(site) or {}).get("offline_events"))

    def open_engagements(self, query: str | None) -> list[tuple[EngagementRef, str]]:
        """Every deal still in progress (stage semantics P) of the configured pipelines, on
        every portal. `query` is not used: Bitrix24 has no query language to pass on."""
        return [(self._ref(site, deal), f"DEAL-{deal['id']}") for site in self.sites()
                for deal in self._deals(site, {"stageSemanticId": IN_PROGRESS})]

    def _ref(self, site: str, deal: Mapping[str, Any]) -> EngagementRef:
        return EngagementRef(self.name, site, str(deal["id"]))

    def _deals(self, site: str, condition: dict[str, Any]) -> list[dict[str, Any]]:
        """The configured pipelines' deals matching `condition`: `id` and `updatedTime`."""
        where = dict(condition)
        if self.settings.deal_categories:
            where["@categoryId"] = [int(category) for category in self.settings.deal_categories]
        return self.client_for(site).list_all("crm.item.list", {
            "entityTypeId": DEAL, "select": ["id", "updatedTime"], "filter": where,
            "order": {"id": "ASC"}}, items_key="items")

    def audience(self, snapshot: Snapshot, language: Language) -> str:
        """Who may read the sticky comment: the deal's timeline is shown to the portal's
        employees with access to the deal, never to clients (contacts, extranet users)."""
        return ON_THE_TIMELINE.render(language)

    def delete_sticky(self, snapshot: Snapshot) -> None:
        """Remove the sticky comment and any duplicate (one already gone is fine)."""
        context: DealContext = snapshot.context
        client = self.client_for(snapshot.ref.site)
        if snapshot.sticky_id is not None:
            comments.delete_sticky(client, context.deal_id, snapshot.sticky_id)
        self.delete_duplicates(snapshot)

    def delete_duplicates(self, snapshot: Snapshot) -> None:
        comments.delete_stale(self.client_for(snapshot.ref.site), snapshot.context.deal_id,
                              snapshot.duplicates)

    def write_sticky(self, snapshot: Snapshot, content: StickyContent) -> Written:
        """Create or update the deal's sticky timeline comment, remove duplicates a crash
        left behind, and — when configured — notify the deal's responsible person. A
        timeline comment leaves the deal's `updatedTime` as it is: nothing to date."""
        context: DealContext = snapshot.context
        client = self.client_for(snapshot.ref.site)
        comment_id = comments.write_sticky(client, context.deal_id, snapshot.sticky_id,
                                           content, pin=self.settings.pin_sticky)
        self.delete_duplicates(snapshot)
        if self.settings.notify_responsible and context.responsible_id is not None:
            url = snapshot.engagement.url or ""
            try:
                comments.notify_responsible(client, context.responsible_id, context.deal_id,
                                            content, url, webhook=self.settings.mode == "webhook",
                                            title=snapshot.engagement.title)
            except Exception as error:  # the comment is written; a notification is a bonus
                log.warning("could not notify the responsible person of deal %s: %s",
                            context.deal_id, error)
        return Written(comment_id)

    # -- the command line (connectors.base.CommandLine) -------------------------------

    def ready(self) -> None:
        """Whether a portal installed the app is known only from the service's database:
        without it attached (`attach`), only the settings are checked."""
        if self.settings.mode == "webhook":
            self._auth_for(self.settings.site)
        elif self.installations is not None and not self.sites():
            raise NotInstalled("bitrix24: no portal has installed the ClientGuard "
                                         "application yet (clientguard install bitrix24)")

    def ref_for(self, key: str) -> EngagementRef:
        """Deal `key` (410 or DEAL-410) on the only portal; with several portals installed,
        `<member_id>:410`."""
        site, _, deal = key.rpartition(":")
        deal = deal.upper().removeprefix("DEAL-")
        if not (deal.isascii() and deal.isdigit()):
            raise ValueError(f"{key!r} is not a Bitrix24 deal id (e.g. 410 or DEAL-410)")
        sites = self.sites()
        if not site:
            if len(sites) != 1:
                raise ValueError(f"{len(sites)} portals are installed: name the deal as "
                                 f"<member_id>:{deal} ({', '.join(sites)})")
            site = sites[0]
        return EngagementRef(self.name, site, deal)

    def load_export(self, text: str) -> Export:
        """A saved deal: the results of its snapshot's batch calls by command key — the
        portal's batch answers as saved (one, or a list of them), or their `result.result`
        objects merged — as `clientguard check --connector bitrix24 --input FILE` reads
        (docs/bitrix24.md)."""
        results = _saved_results(decode_json(text, ExportError))
        site = self.settings.site
        catalogue = deal_snapshot.PortalCatalogue(
            self._portal_url(site) if self.settings.mode == "webhook" else None)
        try:
            catalogue.learn({key: ("", {}) for key in results}, results)
            deal_id = str(deal_snapshot.deal_item(results[deal_snapshot.DEAL]).get("id") or "0")
            engagement = deal_snapshot.build_engagement(
                EngagementRef(self.name, site, deal_id), results, self.settings, catalogue,
                datetime.now(UTC))
        except (KeyError, TypeError, ValueError, AttributeError, PayloadError) as error:
            raise ExportError(f"not a saved Bitrix24 deal as the snapshot answers it: "
                              f"{type(error).__name__} {error}") from None
        return Export(engagement, ())


def _saved_results(document: Any) -> dict[str, Any]:
    """The command results of a saved snapshot, whichever of the shapes it was saved in."""
    answers = document if isinstance(document, list) else [document]
    results: dict[str, Any] = {}
    for answer in answers:
        inner = answer.get("result") if isinstance(answer, dict) else None
        if isinstance(inner, dict) and isinstance(inner.get("result"), dict):
            results.update(inner["result"])  # a batch answer as the portal sent it
        elif isinstance(answer, dict):
            results.update(answer)
    if deal_snapshot.DEAL not in results:
        raise ExportError(f"not a saved Bitrix24 deal: no {deal_snapshot.DEAL!r} result (save "
                          "the portal's answers to the snapshot's batch calls)")
    return results
