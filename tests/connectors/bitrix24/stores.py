"""Test doubles of the Bitrix24 tests.

`MemoryInstallationStore`: an in-memory `InstallationStore`; `change` holds one lock for the
whole read-edit-write, like the database's row lock, so concurrent edits are serialised; an
exception inside `edit` leaves the state untouched. Values are deep-copied in and out, so a
test cannot change stored state by accident.

`FakeClock`: seconds that move only when someone sleeps, so nothing waits for real."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any


class MemoryInstallationStore:
    def __init__(self, states: dict[str, dict[str, Any]] | None = None) -> None:
        self._states: dict[str, dict[str, Any]] = copy.deepcopy(states or {})
        self._lock = threading.RLock()
        self.changes = 0  # how many `change` calls completed (wrote or not)

    def load(self, site: str) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self._states.get(site))

    def change(self, site: str,
               edit: Callable[[dict[str, Any] | None], dict[str, Any] | None]
               ) -> dict[str, Any] | None:
        with self._lock:
            new = edit(copy.deepcopy(self._states.get(site)))
            if new is None:
                self._states.pop(site, None)
            else:
                self._states[site] = copy.deepcopy(new)
            self.changes += 1
            return copy.deepcopy(new)

    def sites(self) -> list[str]:
        with self._lock:
            return sorted(self._states)


class FakeClock:
    """Seconds (monotonic or Unix, as the test starts it) that move only when someone
    sleeps; safe to share between threads (a sleeping thread moves everyone's time, which
    only makes time pass faster). Records every sleep."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds
