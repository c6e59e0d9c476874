"""Our side of a portal's REST rate limit: a leaky bucket that mirrors the portal's own.

Bitrix24 counts every request in a per-portal counter that drains `Y` per second; above `X`
a request fails with `503 QUERY_LIMIT_EXCEEDED` (cloud: 2/s and 50, Enterprise 5/s and 250)
[D:limits.md]. `LeakyBucket` keeps the same counter on our side (`rate_per_second`, `burst`
from the `[bitrix24]` settings) and makes a request wait until it would not push the counter
over `burst`: sending at most `rate` per second on average never meets the limit.

Every thread of a process that calls one portal shares one bucket (`bucket_for(site, …)`, a
module-level registry): the job workers are threads of one huey consumer. The counter sits
behind `BucketState`: in the service it is `StoredBucketState`, kept in the service's
database, so `clientguard serve` and separate `clientguard worker`s share one count;
commands without the database keep it in memory. Other apps on our IP that call the same
portal (the portal counts per source IP) still make `503`s possible: `penalise()` is the
answer to one, it tells every process to slow down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from connectors.base import InstallationStore
from connectors.http import platform_sleep

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Level:
    """The counter: `level` requests counted as of `at` (seconds on the bucket's clock)."""

    level: float = 0.0
    at: float | None = None


class BucketState(Protocol):
    """Where a bucket's counter lives. `transact` runs `step` on the current counter and
    stores the counter it returns, atomically for every user of this state."""

    def transact(self, step: Callable[[Level], tuple[Level, T]]) -> T:
        ...


class MemoryBucketState:
    """The counter in this process, behind a lock: shared by all its threads."""

    def __init__(self) -> None:
        self._level = Level()
        self._lock = threading.Lock()

    def transact(self, step: Callable[[Level], tuple[Level, T]]) -> T:
        with self._lock:
            self._level, answer = step(self._level)
            return answer


class StoredBucketState:
    """The counter as an entry of the connector's installation store (the service's
    database), so every process calling the portal shares it. Its times are Unix seconds:
    a bucket on this state needs a wall clock (`bucket_for` gives it one)."""

    def __init__(self, store: InstallationStore, key: str) -> None:
        self._store, self._key = store, key
        self.shared_in = id(store)  # buckets on the same store share one registry entry

    def transact(self, step: Callable[[Level], tuple[Level, T]]) -> T:
        answers: list[T] = []

        def edit(stored: dict[str, Any] | None) -> dict[str, Any]:
            current = Level(float((stored or {}).get("level", 0.0)), (stored or {}).get("at"))
            new, answer = step(current)
            answers.append(answer)  # `change` may run `edit` again: the last one counts
            return {"level": new.level, "at": new.at}

        self._store.change(self._key, edit)
        return answers[-1]


class LeakyBucket:
    """Waits before a request until the portal's counter has room for it.

    `clock` (seconds, monotonic) and `sleep` are injectable so tests run on a fake clock.
    Safe to share between threads: the counter is locked, the waiting is not; after a
    wait the request asks again, so a `penalise()` in between is honoured."""

    def __init__(self, rate_per_second: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = platform_sleep,
                 state: BucketState | None = None) -> None:
        self.configure(rate_per_second, burst)
        self._clock = clock
        self._sleep = sleep
        self._state: BucketState = state or MemoryBucketState()

    def configure(self, rate_per_second: float, burst: int) -> None:
        """Change the limit (the settings were reloaded)."""
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("a leaky bucket needs rate_per_second > 0 and burst >= 1")
        self.rate_per_second = float(rate_per_second)
        self.burst = int(burst)

    def __repr__(self) -> str:
        return f"LeakyBucket(rate_per_second={self.rate_per_second}, burst={self.burst})"

    def acquire(self) -> float:
        """Block until one more request may go, count it, and return the seconds waited."""
        waited = 0.0
        while True:
            delay = self._state.transact(self._take)
            if delay <= 0:
                if waited:
                    log.debug("Bitrix24 rate limit: waited %.2f s", waited)
                return waited
            self._sleep(delay)
            waited += delay

    def penalise(self) -> None:
        """The portal answered `QUERY_LIMIT_EXCEEDED` although we kept count: its counter is
        fuller than ours (other processes or apps on our IP). Assume it is full, so every
        thread goes on at the drain rate only."""
        self._state.transact(self._fill)
        log.info("Bitrix24 answered QUERY_LIMIT_EXCEEDED: slowing every worker to %.1f req/s",
                 self.rate_per_second)

    def _drained(self, current: Level, now: float) -> float:
        if current.at is None:
            return 0.0
        return max(0.0, current.level - max(0.0, now - current.at) * self.rate_per_second)

    def _take(self, current: Level) -> tuple[Level, float]:
        now = self._clock()
        level = self._drained(current, now)
        if level + 1 <= self.burst:
            return Level(level + 1, now), 0.0
        return Level(level, now), (level + 1 - self.burst) / self.rate_per_second

    def _fill(self, current: Level) -> tuple[Level, None]:
        now = self._clock()
        return Level(max(self._drained(current, now), float(self.burst)), now), None


_BUCKETS: dict[tuple[str, int | None], LeakyBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def bucket_for(site: str, rate_per_second: float, burst: int,
               state: BucketState | None = None) -> LeakyBucket:
    """The one bucket of this process for portal `site`, created on first use — on `state`
    shared with other processes (then on the wall clock), else in memory; a later call with
    other limits reconfigures it."""
    where = getattr(state, "shared_in", None)
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get((site, where))
        if bucket is None:
            bucket = _BUCKETS[(site, where)] = (
                LeakyBucket(rate_per_second, burst) if state is None else
                LeakyBucket(rate_per_second, burst, clock=time.time, state=state))
        elif (bucket.rate_per_second, bucket.burst) != (float(rate_per_second), int(burst)):
            bucket.configure(rate_per_second, burst)
        return bucket


def forget_buckets() -> None:
    """Drop every bucket (tests; a process that stops serving all portals)."""
    with _BUCKETS_LOCK:
        _BUCKETS.clear()
