"""Typed errors at the platform boundary.

Three families: what we answer a platform that delivers a webhook (`DeliveryRejected`, with
the HTTP status to send back); what a platform answered us (`PlatformError`, raised by the
REST clients' single request choke point); and the sticky comment's safety stops
(`StickyRefused`, `LeakPrevented`), which every connector raises the same way.
"""

from __future__ import annotations


class DeliveryRejected(Exception):
    """A webhook delivery we refuse; `status` is the HTTP status to answer with."""

    status = 400
    reason = "malformed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedDelivery(DeliveryRejected):
    """The body is not what the platform sends (not JSON, not an object, no event name)."""


class BadSignature(DeliveryRejected):
    """The signature or token is missing or wrong."""

    status = 401
    reason = "signature"


class NotAnEngagement(Exception):
    """The ticket exists but lies outside what the agency made engagements (a Bitrix24 deal
    in a pipeline not in `deal_categories`): it is not evaluated, and nothing is written."""


class PlatformError(Exception):
    """The platform answered with an error (or not at all)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(PlatformError):
    """401/403: credentials or permissions are wrong; retrying will not help."""


class NotFound(PlatformError):
    """404: the issue, comment or deal does not exist (any more)."""


class Misrouted(PlatformError):
    """A 404 that is not the platform's own answer (an HTML page, an empty body): the base
    URL, or a proxy in between, is wrong; nothing is known about the resource asked for."""


class PayloadError(PlatformError):
    """400 and other 4xx: our request was wrong; retrying will not help."""


class Transient(PlatformError):
    """5xx, timeouts, refused connections: worth retrying later; `retry_after` seconds to
    wait when the platform said (a 503 may carry Retry-After too)."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class RateLimited(Transient):
    """429 or the platform's own limit signal."""


class Unresolvable(Transient):
    """The platform's host name does not resolve: far more often a typo in its URL than a
    resolver's hiccup, so a call does not retry it on the spot (a person running `doctor`
    hears at once); the service's events wait and are tried again later, as for any
    `Transient`."""


class ConnectorNotConfigured(Exception):
    """The platform's configuration section lacks what talking to it needs; the message
    names the key."""


class NotInstalled(ConnectorNotConfigured):
    """Configured, but no site has installed ClientGuard yet: the service must run so that
    one can (a Bitrix24 application's install callback)."""


class StickyRefused(Exception):
    """Nothing was written: the comment could not be made provably agency-internal
    (no `internal_visibility` configured, or the project type is unknown)."""


class LeakPrevented(Exception):
    """A written comment turned out readable by the client. `deleted` tells whether it was
    removed again; when False, it is still there and a person must act now."""

    def __init__(self, issue_key: str, comment_id: str, *, deleted: bool) -> None:
        outcome = "deleted it" if deleted else "could NOT delete it"
        super().__init__(f"comment {comment_id} on {issue_key} was client-visible after "
                         f"writing; {outcome}")
        self.issue_key = issue_key
        self.comment_id = comment_id
        self.deleted = deleted


class ExportError(ValueError):
    """A saved file is not what `clientguard check --connector … --input` reads; `str()`
    says what is wrong."""
