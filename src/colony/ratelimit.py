"""Sliding-window rate limits, used for per-tool call limits and per-provider RPM / RPD.

A window keeps the timestamps of accepted events (a deque); `try_acquire` drops the ones older
than the window and accepts when fewer than ``limit`` remain. Exact, O(1) amortized, and the
clock is injectable so tests need no sleeps.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

__all__ = ["SlidingWindow"]


class SlidingWindow:
    """At most ``limit`` events in any ``window_s`` seconds."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        history: Iterable[float] = (),
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._events: deque[float] = deque(sorted(history))
        self._lock = threading.Lock()

    def _trim(self, now: float) -> None:
        horizon = now - self.window_s
        while self._events and self._events[0] <= horizon:
            self._events.popleft()

    def try_acquire(self) -> bool:
        """Record an event and return True, or return False if the window is full."""
        with self._lock:
            now = self._clock()
            self._trim(now)
            if len(self._events) >= self.limit:
                return False
            self._events.append(now)
            return True

    def record_past(self, ages_s: Iterable[float]) -> None:
        """Count events that happened ``age`` seconds ago (e.g. read back from the database
        after a restart), so a per-day limit is not reset by restarting the process."""
        with self._lock:
            now = self._clock()
            merged = sorted([*self._events, *(now - a for a in ages_s if 0 <= a < self.window_s)])
            self._events = deque(merged)

    def used(self) -> int:
        with self._lock:
            self._trim(self._clock())
            return len(self._events)

    def retry_after(self) -> float:
        """Seconds until the next event would be accepted (0 when one would be now)."""
        with self._lock:
            now = self._clock()
            self._trim(now)
            if len(self._events) < self.limit:
                return 0.0
            return max(0.0, self._events[0] + self.window_s - now)
