"""A brake on guessing the node token through the login form: failed attempts per client address.

The token is 256 random bits, so guessing cannot succeed; the limit is there so that nothing can
hammer the form (or the database behind it) and so that a run of wrong tokens shows up as 429s.
After ``limit`` failures within ``window_s`` an address gets 429 with ``Retry-After`` — for a right
token too, so the answer says nothing about the guess — until the oldest failure ages out.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from colony.ratelimit import SlidingWindow

__all__ = ["LOGIN_FAILURES_PER_WINDOW", "LOGIN_WINDOW_S", "LoginLimiter"]

LOGIN_FAILURES_PER_WINDOW = 10
LOGIN_WINDOW_S = 60.0


class LoginLimiter:
    """Per-address sliding windows of failed logins; at most ``max_clients`` addresses are tracked."""

    def __init__(
        self,
        limit: int = LOGIN_FAILURES_PER_WINDOW,
        window_s: float = LOGIN_WINDOW_S,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window_s, self.max_clients, self._clock = limit, window_s, max_clients, clock
        self._windows: OrderedDict[str, SlidingWindow] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Whole seconds until ``client`` may try again; 0 when it may now."""
        with self._lock:
            window = self._windows.get(client)
        return 0 if window is None else math.ceil(window.retry_after())

    def failed(self, client: str) -> None:
        """Count a failed attempt of ``client``."""
        with self._lock:
            window = self._windows.get(client)
            if window is None:
                window = self._windows[client] = SlidingWindow(self.limit, self.window_s, clock=self._clock)
                while len(self._windows) > self.max_clients:
                    # The least recently failing address goes first; a flood of addresses cannot
                    # grow this without bound.
                    self._windows.popitem(last=False)
            else:
                self._windows.move_to_end(client)
        window.try_acquire()
