"""Process an engagement's stored events: one fresh snapshot, one evaluation, at most one
comment write — however many events arrived.

Order matters for "never lose an event": events are claimed (with a lease) in one short
transaction, the platform is read and written with no transaction open, and only then are
the events finished — in the transaction that saves the evaluation, so a run takes the
database's write lock twice, not three times. A crash anywhere leaves them claimable again
when the lease runs out.

The decision is made apart from the writing: `plan_comment` fetches, evaluates and says what
the sticky comment needs (`CommentPlan`), `carry_out` does it. `process` (events from the
queue) and `review` (the command line, where `--dry-run` only plans) share both.
"""

from __future__ import annotations

import enum
import logging
import textwrap
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.base import Connector, EngagementRef, Snapshot
from connectors.errors import (
    AuthError,
    LeakPrevented,
    Misrouted,
    NotAnEngagement,
    NotFound,
    Transient,
)
from connectors.markup import plain_text
from plugin.config import Config
from plugin.core.comment import StickyContent, sticky_content
from plugin.core.engine import Report, evaluate
from plugin.core.i18n import UI, Language
from plugin.metrics import Metrics
from plugin.pipeline.lease import Lease, LeaseLost
from plugin.storage import Database
from plugin.storage.models import EngagementRecord
from plugin.storage.repository import (
    GIVE_UP_AFTER,
    MAX_ATTEMPTS,
    EngagementInfo,
    claim_pending,
    close_engagement,
    fail,
    finish,
    get_engagement,
    is_pending,
    postpone,
    record_check,
    save_evaluation,
    set_sticky,
    stop_writes,
    waiting_count,
)

log = logging.getLogger(__name__)


class Action(enum.StrEnum):
    """What an evaluation does to the sticky comment."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"  # everything passes and the agency wants no comment then
    UNCHANGED = "unchanged"  # what a reader sees is what was written last: no write
    STOPPED = "stopped"  # a comment here turned out client-visible: no write until resumed


POSTPONED_BY = (Transient, AuthError, Misrouted)
"""Failures of the platform, not of the events: they are postponed (`repository.postpone`),
using up no attempt, and the sweep rings for them when their wait is over."""

METRIC_ACTION = {Action.CREATE: "created", Action.UPDATE: "updated",
                 Action.DELETE: "deleted", Action.UNCHANGED: "skipped",
                 Action.STOPPED: "stopped"}
NO_WRITE = (Action.UNCHANGED, Action.STOPPED)  # the sticky comment is left as it is


def said(prefix: str, action: Action, dry_run: bool) -> str:
    """The key of the message (`plugin.core.i18n.UI`) saying what `action` did
    (`<prefix>_update`), or on a dry run would do (`<prefix>_would_update`); an action that
    writes nothing reads the same either way."""
    would = "would_" if dry_run and action not in NO_WRITE else ""
    return f"{prefix}_{would}{action.value}"


@dataclass(frozen=True)
class CommentPlan:
    """One evaluation and what it means for the sticky comment, decided before anything is
    written: `action` with `content` on the ticket of `snapshot`."""

    snapshot: Snapshot
    report: Report
    content: StickyContent
    action: Action
    resumes: bool = False  # carried out, it lifts a stop after a leak (`check --resume`)

    def describe(self, audience: str, *, dry_run: bool, language: Language = "en") -> str:
        """`ACME-12: would update sticky comment 10206, as a JSM internal note` (`audience`
        in `language` too); on a dry run followed by the comment itself, indented."""
        comment = (UI["sticky_known"].render(language, id=self.snapshot.sticky_id)
                   if self.snapshot.sticky_id else UI["sticky_new"].render(language))
        what = UI[said("sticky", self.action, dry_run)].render(language, comment=comment)
        line = f"{self.snapshot.engagement.key}: {what}, {audience}"
        return f"{line}\n{textwrap.indent(plain_text(self.content), '    ')}" if dry_run else line


@dataclass(frozen=True)
class Processed:
    events: int  # how many stored events this evaluation answered
    wrote: bool  # the sticky comment was created or changed
    more_waiting: bool = False  # events arrived during the evaluation: evaluate again


def process(ref: EngagementRef, connector: Connector, database: Database, config: Config,
            metrics: Metrics, now: datetime | None = None) -> Processed:
    """Evaluate `ref` once for all its pending events (none pending: nothing to do)."""
    now = now or datetime.now(UTC)
    with database.session() as session, session.begin():
        claimed = claim_pending(session, ref, now, config.service.lease_seconds)
    if not claimed:
        return Processed(0, False)
    with database.reading() as session:  # only evaluations of `ref`, now ours alone, change it
        known = get_engagement(session, ref)
    with Lease(database, claimed, now, config.service.lease_seconds) as lease:
        try:
            plan = plan_comment(ref, connector, config, metrics, now, known)
        except (NotFound, NotAnEngagement) as gone:  # deleted, out of the account's sight,
            # or outside what the agency made engagements
            log.info("%s: %s; not evaluated again until an event brings it back",
                     _named(ref, known), gone)
            with database.session() as session, session.begin():
                close_engagement(session, ref)
                finish(session, claimed, now)
            outcome = "gone" if isinstance(gone, NotFound) else "excluded"
            metrics.evaluations.labels(ref.connector, outcome).inc()
            return Processed(len(claimed), False)
        except Exception as error:
            _give_back(lease, error, ref, known, database, metrics, now)
            raise
        try:
            if config.service.dry_run:
                log.info("dry run, %s %s", ref.connector,
                         plan.describe(connector.audience(plan.snapshot, "en"), dry_run=True))
                wrote = False
                with database.session() as session, session.begin():
                    finish(session, claimed, now)
            else:
                wrote = carry_out(plan, connector, database, config, metrics, now, lease)
        except LeaseLost as lost:  # the worker that has them now evaluates the ticket
            log.warning("%s: %s; this evaluation writes nothing more", _named(ref, known), lost)
            return Processed(0, False)
        except Exception as error:  # a 404 here is no proof the ticket is gone: a failure
            _give_back(lease, error, ref, known, database, metrics, now)
            raise
    metrics.evaluations.labels(ref.connector, "done").inc()
    with database.reading() as session:
        more_waiting = waiting_count(session, ref) > 0
    return Processed(len(claimed), wrote, more_waiting)


def _named(ref: EngagementRef, known: EngagementRecord | None) -> str:
    """The engagement as the log names it: its ref, and once an evaluation stored it, the
    key people know it by (`jira acme/10368 (ACME-12)`)."""
    if known is None or not known.display_key or known.display_key == ref.key:
        return str(ref)
    return f"{ref} ({known.display_key})"


def _give_back(lease: Lease, error: Exception, ref: EngagementRef,
               known: EngagementRecord | None, database: Database, metrics: Metrics,
               now: datetime) -> None:
    """Release the events of `lease` for a later attempt, never leave them claimed:
    postponed when the platform failed (`POSTPONED_BY`), else with an attempt used up —
    unless another worker holds them now, whose they are to release."""
    claimed = lease.ids
    name = _named(ref, known)
    if isinstance(error, LeakPrevented):
        metrics.leaks_prevented.labels(ref.connector).inc()
        log.error("ALERT %s: %s; nothing more is written to it until a person fixes the "
                  "visibility and runs `clientguard check <its key> --resume`", name, error)
    if not lease.held():
        log.warning("%s: this evaluation failed after another worker took its events over, "
                    "which evaluates the ticket: %s: %s", name, type(error).__name__, error)
        return
    reason = f"{type(error).__name__}: {error}"
    postponed = isinstance(error, POSTPONED_BY)
    with database.session() as session, session.begin():
        if postponed:
            retry_at, given_up = postpone(session, claimed, reason, now,
                                          getattr(error, "retry_after", None))
        else:
            given_up = fail(session, claimed, reason, now)
    if given_up:
        log.error("%s: %d of %d event(s) failed for good (%s; an event of the ticket, the "
                  "review or `clientguard check` evaluates it again): %s", name, given_up,
                  len(claimed), f"waited over {GIVE_UP_AFTER}" if postponed
                  else f"tried {MAX_ATTEMPTS} times", reason)
    if given_up < len(claimed):
        log.warning("%s: its events are tried again%s: %s", name,
                    f" from {retry_at:%H:%M:%S} UTC" if postponed else "", reason)
    metrics.evaluations.labels(ref.connector, "postponed" if postponed else "failed").inc()


def review(ref: EngagementRef, connector: Connector, database: Database, config: Config,
           metrics: Metrics, now: datetime, *, dry_run: bool = False,
           resume: bool = False) -> CommentPlan:
    """Evaluate `ref` now, outside the event queue (the command line): the plan `process`
    would make, carried out as `process` does unless `dry_run`, which writes nothing —
    neither to the platform nor to the database.

    To write, it takes its turn as the service's evaluations do (`_take_turn`): so the
    service and a `check` never both create the comment, and the stored events it answers
    are finished. `resume` plans as if writes were not stopped after a leak (a person fixed
    the visibility); the stop is lifted only by what follows succeeding — a write read back
    agency-internal, or the comment found on the ticket as written — and a new leak stops
    writes again."""
    if dry_run:
        with database.reading() as session:
            return plan_comment(ref, connector, config, metrics, now,
                                get_engagement(session, ref), resume=resume)
    claimed_at, claimed = _take_turn(ref, database, config.service.lease_seconds)
    known = None
    with Lease(database, claimed, claimed_at, config.service.lease_seconds) as lease:
        try:
            with database.reading() as session:
                known = get_engagement(session, ref)
            plan = plan_comment(ref, connector, config, metrics, now, known, resume=resume)
            carry_out(plan, connector, database, config, metrics, now, lease)
        except Exception as error:
            _give_back(lease, error, ref, known, database, metrics, datetime.now(UTC))
            raise
    return plan


TURN_POLL_SECONDS = 0.25


def _take_turn(ref: EngagementRef, database: Database, lease_seconds: float
               ) -> tuple[datetime, list[int]]:
    """Store a `review:check` event for `ref` and claim it with the engagement's other
    waiting events, as a job would; while the service evaluates the ticket, wait (at most
    its lease). Should the service take the check meanwhile, ask again: its evaluation may
    predate a change the person is checking for. Events arriving while the claim is held
    wait for the sweep to ring for them (within `STALE_AFTER_SECONDS`). Returns when it
    claimed them, and their ids."""
    asked: str | None = None
    while True:
        now = datetime.now(UTC)
        with database.session() as session, session.begin():
            if asked is None or not is_pending(session, ref, asked):
                asked = record_check(session, ref, now)
            claimed = claim_pending(session, ref, now, lease_seconds)
        if claimed:
            return now, claimed
        time.sleep(TURN_POLL_SECONDS)


def plan_comment(ref: EngagementRef, connector: Connector, config: Config, metrics: Metrics,
                 now: datetime, known: EngagementRecord | None, *,
                 resume: bool = False) -> CommentPlan:
    """Fetch, evaluate and decide; nothing is written. The comment is unchanged when it is
    still on the ticket as we left it and its content has the fingerprint stored for the
    last write (copies of it are deleted even then). Nothing is written while a leak stopped
    writes, unless `resume`."""
    snapshot = connector.fetch_snapshot(ref, known.sticky_comment_id if known else None)
    started = time.perf_counter()
    report = evaluate(snapshot.engagement, config, now)
    metrics.evaluation_seconds.observe(time.perf_counter() - started)
    content = sticky_content(report, config.language)
    if not snapshot.sticky_as_written:
        log.warning("%s %s: someone else changed the sticky comment %s (shared it with the "
                    "client or edited it); it is written again, agency-internal", ref.connector,
                    snapshot.engagement.key, snapshot.sticky_id)
    stopped = known is not None and known.writes_stopped and not resume
    if snapshot.duplicates and not stopped:
        log.warning("%s %s: %d more copies of the sticky comment (%s), to delete",
                    ref.connector, snapshot.engagement.key, len(snapshot.duplicates),
                    ", ".join(snapshot.duplicates))
    clean = not report.findings and not report.faulty
    if stopped:
        log.warning("%s %s: nothing is written here since a sticky comment turned out "
                    "client-visible (%s); once the visibility is fixed, `clientguard check "
                    "%s --resume` writes again", ref.connector, snapshot.engagement.key,
                    known.writes_stopped, snapshot.engagement.key)
        action = Action.STOPPED
    elif clean and config.service.comment_when_clean == "delete":
        action = Action.DELETE if snapshot.sticky_id is not None else Action.UNCHANGED
    elif snapshot.sticky_id is None:
        action = Action.CREATE
    elif (known is not None and content.fingerprint == known.sticky_hash
          and snapshot.sticky_as_written):
        action = Action.UNCHANGED
    else:
        action = Action.UPDATE
    return CommentPlan(snapshot, report, content, action,
                       resumes=resume and known is not None and bool(known.writes_stopped))


def carry_out(plan: CommentPlan, connector: Connector, database: Database, config: Config,
              metrics: Metrics, now: datetime, lease: Lease) -> bool:
    """Write the sticky comment unless the plan leaves it unchanged, then remember the
    evaluation (and the comment written) in the database and finish the stored events it
    answers, those of `lease`, all in one transaction. True when something was written.
    Raises `LeaseLost` before writing, or before the transaction after a write slow enough
    to outlast the lease, once the events are another worker's."""
    lease.check()
    snapshot, report = plan.snapshot, plan.report
    ref, wrote = snapshot.ref, plan.action not in NO_WRITE
    engagement = snapshot.engagement
    comment_id: str | None = None
    changed_at = engagement.updated  # the review's catch-up skips changes up to this one
    if plan.action is Action.DELETE:
        connector.delete_sticky(snapshot)
    elif wrote:
        try:
            written = connector.write_sticky(snapshot, plan.content)
        except LeakPrevented as leak:  # the next write would leak again: stop them here
            with database.session() as session, session.begin():
                stop_writes(session, ref, f"{now.astimezone(UTC):%Y-%m-%d %H:%M} UTC: {leak}")
            raise
        comment_id = written.comment_id
        if written.changed_at is not None:  # our own write, not a change to catch up
            changed_at = max(changed_at, written.changed_at)
    elif plan.action is Action.UNCHANGED and snapshot.duplicates:
        connector.delete_duplicates(snapshot)  # no rewrite (and no notification) for them
    metrics.comments.labels(ref.connector, METRIC_ACTION[plan.action]).inc()
    lease.check()
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
                           open=engagement.status_category.value != "done",
                           platform_updated_at=changed_at),
        )
        if wrote:
            set_sticky(session, ref, comment_id,
                       None if comment_id is None else plan.content.fingerprint)
        if plan.resumes:  # the write was read back internal, or the comment found as written
            stop_writes(session, ref, None)
        finish(session, lease.ids, now)
    return wrote
