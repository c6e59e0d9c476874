"""The portal's leaky bucket on our side, on a fake clock: nothing sleeps for real."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from connectors.bitrix24.throttle import (
    LeakyBucket,
    Level,
    MemoryBucketState,
    bucket_for,
    forget_buckets,
)
from tests.connectors.bitrix24.stores import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(100.0)


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    forget_buckets()
    yield
    forget_buckets()


def test_a_burst_goes_at_once_then_one_request_per_drain_interval(clock):
    bucket = LeakyBucket(2.0, 3, clock=clock, sleep=clock.sleep)
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire() == 0.5
    assert bucket.acquire() == 0.5
    assert clock.sleeps == [0.5, 0.5]
    assert clock.now == 101.0


def test_the_bucket_drains_while_idle(clock):
    bucket = LeakyBucket(2.0, 3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        bucket.acquire()
    clock.now += 1.0  # two requests drained
    assert [bucket.acquire() for _ in range(2)] == [0.0, 0.0]
    assert bucket.acquire() == 0.5


def test_penalise_assumes_the_portal_full(clock):
    bucket = LeakyBucket(2.0, 50, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    bucket.penalise()
    assert bucket.acquire() == 0.5
    assert bucket.acquire() == 0.5


def test_four_threads_never_exceed_rate_and_burst(clock):
    rate, burst = 2.0, 5
    bucket = LeakyBucket(rate, burst, clock=clock, sleep=clock.sleep)
    grants: list[float] = []
    grants_lock = threading.Lock()
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        for _ in range(15):
            bucket.acquire()
            with grants_lock:
                grants.append(clock())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)

    grants.sort()
    assert len(grants) == 60
    # Any window [t_i, t_j] holds at most burst + rate * (t_j - t_i) grants.
    for i, first in enumerate(grants):
        for j in range(i, len(grants)):
            allowed = burst + rate * (grants[j] - first)
            assert j - i + 1 <= allowed + 1e-9, (i, j, grants[i:j + 1])
    # and the bucket did let the work through at the drain rate, not slower than needed
    assert grants[-1] - grants[0] >= (60 - burst) / rate - 1e-9


def test_state_is_pluggable():
    seen: list[Level] = []

    class RecordingState(MemoryBucketState):
        def transact(self, step):
            def recording(level):
                seen.append(level)
                return step(level)
            return super().transact(recording)

    clock = FakeClock(100.0)
    bucket = LeakyBucket(1.0, 1, clock=clock, sleep=clock.sleep, state=RecordingState())
    bucket.acquire()
    bucket.acquire()
    assert seen == [Level(0.0, None), Level(1.0, 100.0), Level(1.0, 100.0)]
    assert clock.sleeps == [1.0]


def test_one_bucket_per_site_shared_by_the_process():
    first = bucket_for("acme", 2.0, 50)
    assert bucket_for("acme", 2.0, 50) is first
    assert bucket_for("other", 2.0, 50) is not first
    again = bucket_for("acme", 5.0, 250)  # settings reloaded: same bucket, new limit
    assert again is first
    assert (again.rate_per_second, again.burst) == (5.0, 250)


def test_a_bucket_needs_a_positive_limit():
    with pytest.raises(ValueError):
        LeakyBucket(0, 10)
    with pytest.raises(ValueError):
        LeakyBucket(2.0, 0)
