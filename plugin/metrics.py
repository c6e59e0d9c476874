"""Prometheus metrics, one registry per app so tests and several apps in one process do not
share counters.

`Metrics` is also the connectors' `connectors.http.CallObserver`: the platform clients tell
it about every call they make, each retry included, so a storm of 429/503 the retries ride
out still shows in `clientguard_platform_errors_total`."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_received = Counter(
            "clientguard_events_received_total", "Webhook deliveries stored for processing",
            ["connector", "event"], registry=self.registry)
        self.events_duplicate = Counter(
            "clientguard_events_duplicate_total",
            "Redelivered webhook deliveries recognised and not stored again",
            ["connector"], registry=self.registry)
        self.events_ignored = Counter(
            "clientguard_events_ignored_total", "Webhook deliveries accepted and dropped",
            ["connector", "reason"], registry=self.registry)
        self.events_rejected = Counter(
            "clientguard_events_rejected_total", "Webhook deliveries refused",
            ["connector", "reason"], registry=self.registry)
        self.evaluation_seconds = Histogram(
            "clientguard_evaluation_seconds", "Time to evaluate one snapshot",
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1))
        self.evaluations = Counter(
            "clientguard_evaluations_total",
            "Evaluation runs of an engagement's waiting events, by outcome: done, gone (the "
            "ticket no longer exists), excluded (not an engagement), postponed (the platform "
            "could not be used), failed (an attempt used up)",
            ["connector", "outcome"], registry=self.registry)
        self.platform_errors = Counter(
            "clientguard_platform_errors_total",
            "Platform calls (every attempt) that failed, by HTTP status, or timeout/connection/"
            "error when unanswered",
            ["connector", "status"], registry=self.registry)
        self.platform_call_seconds = Histogram(
            "clientguard_platform_call_seconds",
            "Time of one platform call (every attempt), by HTTP method (Jira) or REST method "
            "(Bitrix24)",
            ["connector", "method"], registry=self.registry,
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
        self.leaks_prevented = Counter(
            "clientguard_leaks_prevented_total",
            "Sticky comments that read back client-visible and were deleted (alert on > 0)",
            ["connector"], registry=self.registry)
        self.comments = Counter(
            "clientguard_comments_total",
            "Sticky comment decisions: created, updated, deleted (all clean), skipped "
            "(unchanged), stopped (not written: a leak stopped writes to the ticket)",
            ["connector", "action"], registry=self.registry)
        self.catch_ups = Counter(
            "clientguard_catch_ups_total",
            "Evaluations the review asked for because the platform dates a change no "
            "evaluation saw and no event waits for: usually a webhook that never arrived",
            ["connector"], registry=self.registry)
        self.queue_depth = Gauge(
            "clientguard_queue_depth", "Jobs waiting in the queue", registry=self.registry)
        self.queue_errors = Counter(
            "clientguard_queue_errors_total",
            "Stored events whose job could not be queued (the sweep queues them)",
            registry=self.registry)
        self.intake_seconds = Histogram(
            "clientguard_intake_seconds", "Time to verify, parse and store one delivery",
            ["connector"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))

    def count_from_zero(self, connectors: Iterable[str]) -> None:
        """Show each connector's leak count from 0 on: a series that first appears at 1 is
        missed by an `increase()` alert, and the first leak is the one that matters."""
        for connector in connectors:
            self.leaks_prevented.labels(connector)

    def count_queue(self, pending: Callable[[], int]) -> None:
        """Set the queue depth from `pending()`; NaN when the queue cannot be asked (an
        unreachable queue shows in /readyz and the log; the metrics still answer)."""
        try:
            self.queue_depth.set(pending())
        except Exception:
            self.queue_depth.set(float("nan"))

    def platform_call(self, connector: str, method: str, status: str, seconds: float) -> None:
        """One attempt of a platform call (`connectors.http.CallObserver`): its time, and an
        error when it was answered with 400 or above or not answered at all."""
        self.platform_call_seconds.labels(connector, method).observe(seconds)
        if not (status.isdigit() and int(status) < 400):
            self.platform_error(connector, status)

    def platform_error(self, connector: str, status: str) -> None:
        """A failed call, or a failure inside an answered one
        (`connectors.http.CallObserver`)."""
        self.platform_errors.labels(connector, status).inc()
