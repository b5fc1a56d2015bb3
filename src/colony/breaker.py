"""A circuit breaker shared by model providers and tools.

Closed: calls pass. After ``failures`` consecutive failures it opens: calls are refused until
``cooldown_s`` has passed. Then it half-opens: one probe call is let through; success closes it,
failure opens it again for another cooldown. The clock is injectable so tests need no sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

__all__ = ["BreakerState", "CircuitBreaker"]

BreakerStateName = Literal["closed", "open", "half_open"]


class BreakerState(BaseModel):
    """What health pages show about one breaker."""

    state: BreakerStateName
    consecutive_failures: int
    opened_at: float | None
    retry_in_s: float


class CircuitBreaker:
    """Thread-safe consecutive-failure breaker with a half-open probe."""

    def __init__(
        self, failures: int = 3, cooldown_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False

    def _state_locked(self) -> BreakerStateName:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    @property
    def state(self) -> BreakerStateName:
        with self._lock:
            return self._state_locked()

    def allow(self) -> bool:
        """May a call go ahead now? In half-open state only one probe at a time is allowed."""
        with self._lock:
            state = self._state_locked()
            if state == "closed":
                return True
            if state == "half_open" and not self._probing:
                self._probing = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._opened_at = None
            self._probing = False

    def record_failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            if self._probing or self._consecutive >= self.failures:
                self._opened_at = self._clock()
            self._probing = False

    def snapshot(self) -> BreakerState:
        with self._lock:
            state = self._state_locked()
            retry_in = 0.0
            if state == "open" and self._opened_at is not None:
                retry_in = max(0.0, self.cooldown_s - (self._clock() - self._opened_at))
            return BreakerState(
                state=state,
                consecutive_failures=self._consecutive,
                opened_at=self._opened_at,
                retry_in_s=round(retry_in, 3),
            )
