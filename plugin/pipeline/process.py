"""Process an engagement's stored events: one fresh snapshot, one evaluation, at most one
comment write — however many events arrived.

Order matters for "never lose an event": events are claimed (with a lease) in one short
transaction, the platform is read and written with no transaction open, and only then are
the events finished. A crash anywhere leaves them claimable again when the lease runs out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.base import Connector, EngagementRef
from connectors.errors import LeakPrevented, PlatformError
from plugin.config import Config
from plugin.core.comment import sticky_content
from plugin.core.engine import evaluate
from plugin.metrics import Metrics
from plugin.storage import Database
from plugin.storage.repository import (
    EngagementInfo,
    claim_pending,
    fail,
    finish,
    get_engagement,
    save_evaluation,
    set_sticky,
)

log = logging.getLogger(__name__)

LEASE_SECONDS = 300.0  # longer than a slow snapshot plus retries; then another worker may try


@dataclass(frozen=True)
class Processed:
    events: int  # how many stored events this evaluation answered
    wrote: bool  # the sticky comment was created or changed


def process(ref: EngagementRef, connector: Connector, database: Database, config: Config,
            metrics: Metrics, now: datetime | None = None) -> Processed:
    """Evaluate `ref` once for all its pending events (none pending: nothing to do)."""
    now = now or datetime.now(UTC)
    with database.session() as session, session.begin():
        claimed = [event.id for event in claim_pending(session, ref, now, LEASE_SECONDS)]
        known = get_engagement(session, ref)
    if not claimed:
        return Processed(0, False)
    try:
        wrote = _evaluate_and_write(ref, connector, database, config, metrics, now,
                                    known.sticky_comment_id if known else None,
                                    known.sticky_hash if known else None)
    except Exception as error:  # released for a later attempt, never left claimed
        if isinstance(error, PlatformError):
            metrics.platform_errors.labels(ref.connector, str(error.status or "none")).inc()
        if isinstance(error, LeakPrevented):
            metrics.leaks_prevented.labels(ref.connector).inc()
            log.error("ALERT %s: %s", ref, error)
        with database.session() as session, session.begin():
            fail(session, claimed, f"{type(error).__name__}: {error}", now)
        raise
    with database.session() as session, session.begin():
        finish(session, claimed, now)
    return Processed(len(claimed), wrote)


def _evaluate_and_write(ref: EngagementRef, connector: Connector, database: Database,
                        config: Config, metrics: Metrics, now: datetime,
                        sticky_id: str | None, sticky_hash: str | None) -> bool:
    snapshot = connector.fetch_snapshot(ref, sticky_id)
    started = time.perf_counter()
    report = evaluate(snapshot.engagement, config, now)
    metrics.evaluation_seconds.observe(time.perf_counter() - started)
    content = sticky_content(report, config.language)
    unchanged = snapshot.sticky_id is not None and content.fingerprint == sticky_hash
    if unchanged:
        metrics.comments.labels(ref.connector, "skipped").inc()
    else:
        comment_id = connector.write_sticky(snapshot, content)
        metrics.comments.labels(ref.connector,
                                "updated" if snapshot.sticky_id else "created").inc()
    engagement = snapshot.engagement
    managers = engagement.roles.points_of_contact or ()
    with database.session() as session, session.begin():
        save_evaluation(
            session, ref, report.score, report.band.value,
            {result.rule.id: result.status.value
             for result in (*report.findings, *report.passed, *report.not_configured)},
            now.astimezone(config.calendar.zone),
            EngagementInfo(display_key=engagement.key, title=engagement.title,
                           client_key=engagement.client.key,
                           account_manager=managers[0].name if managers else None,
                           open=engagement.status_category.value != "done"),
        )
        if not unchanged:
            set_sticky(session, ref, comment_id, content.fingerprint)
    return not unchanged
