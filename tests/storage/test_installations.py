"""What a connector keeps per installed site survives restarts, is shared by processes, and
changes atomically: a rotating OAuth refresh token is never lost to a concurrent writer."""

from __future__ import annotations

import threading

import pytest

from plugin.storage import Database, open_database
from plugin.storage.installations import ConflictingWrites, Installations


def test_a_new_site_is_stored_and_read_back(database: Database) -> None:
    portals = Installations(database, "bitrix24")
    assert portals.load("m1") is None

    stored = portals.change("m1", lambda _: {"application_token": "t1"})

    assert stored == {"application_token": "t1"}
    assert portals.load("m1") == {"application_token": "t1"}
    assert portals.sites() == ["m1"]


def test_sites_are_per_connector(database: Database) -> None:
    Installations(database, "bitrix24").change("m1", lambda _: {"a": 1})

    assert Installations(database, "other").sites() == []
    assert Installations(database, "other").load("m1") is None


def test_edit_sees_the_current_state_and_none_removes_it(database: Database) -> None:
    portals = Installations(database, "bitrix24")
    portals.change("m1", lambda _: {"count": 1})

    portals.change("m1", lambda state: {"count": state["count"] + 1})
    assert portals.load("m1") == {"count": 2}

    portals.change("m1", lambda _: None)
    assert portals.load("m1") is None
    assert portals.sites() == []


def test_concurrent_changes_from_many_threads_lose_nothing(database: Database) -> None:
    portals = Installations(database, "bitrix24")
    portals.change("m1", lambda _: {"count": 0})
    start = threading.Barrier(8)

    def add_ten() -> None:
        start.wait()
        for _ in range(10):
            portals.change("m1", lambda state: {"count": state["count"] + 1})

    threads = [threading.Thread(target=add_ten) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert portals.load("m1") == {"count": 80}


def test_a_write_by_another_process_in_between_makes_edit_run_again(
        database: Database, database_url: str) -> None:
    """The other process is a second engine on the same database: it writes while our edit
    runs (as another worker would while we wait for the token server)."""
    portals = Installations(database, "bitrix24")
    portals.change("m1", lambda _: {"refresh_token": "r1"})
    other = open_database(database_url)
    seen: list[str] = []

    def refresh(state: dict) -> dict:
        seen.append(state["refresh_token"])
        if len(seen) == 1:  # the other process rotates the token meanwhile
            Installations(other, "bitrix24").change("m1", lambda _: {"refresh_token": "r2"})
        return {"refresh_token": state["refresh_token"] + "+mine"}

    try:
        result = portals.change("m1", refresh)
    finally:
        other.close()

    assert seen == ["r1", "r2"]
    assert result == portals.load("m1") == {"refresh_token": "r2+mine"}


def test_endless_interference_is_reported_not_looped(database: Database,
                                                     database_url: str) -> None:
    portals = Installations(database, "bitrix24")
    portals.change("m1", lambda _: {"n": 0})
    other = Installations(open_database(database_url), "bitrix24")

    def always_overtaken(state: dict) -> dict:
        other.change("m1", lambda current: {"n": current["n"] + 1})
        return state

    with pytest.raises(ConflictingWrites, match="m1"):
        portals.change("m1", always_overtaken)
    other.database.close()


def test_two_processes_share_one_count_of_a_portals_requests(database: Database,
                                                            database_url: str) -> None:
    """Bitrix24 counts a portal's requests whichever process sends them: so do we."""
    from connectors.bitrix24.throttle import LeakyBucket, StoredBucketState

    other = open_database(database_url)
    now, slept = [1_000.0], []

    def sleep(seconds: float) -> None:  # one wall clock for both processes
        slept.append(seconds)
        now[0] += seconds

    def bucket(db: Database) -> LeakyBucket:
        return LeakyBucket(1.0, 3, clock=lambda: now[0], sleep=sleep,
                           state=StoredBucketState(Installations(db, "bitrix24"), "rate:m1"))

    here, there = bucket(database), bucket(other)
    try:
        assert [here.acquire(), there.acquire(), here.acquire()] == [0.0, 0.0, 0.0]
        assert there.acquire() == 1.0  # the burst of 3 is spent across both processes
    finally:
        other.close()
    assert slept == [1.0]
    assert Installations(database, "bitrix24").sites() == ["rate:m1"]
