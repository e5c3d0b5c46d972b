"""Per-user token bucket for job submissions, kept in memory.

In memory on purpose: it guards one API process against bursts without a database write per request. With
several API processes each enforces the limit on its own, so the effective limit is N times the setting; the
active-jobs quota (stored in the database) is the hard limit across processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from service.errors import RateLimited


class TokenBucket:
    def __init__(
        self, *, rate_per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self._state: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """Spend one token for ``key`` or raise ``RateLimited`` with the seconds until the next one."""
        with self._lock:
            now = self.clock()
            tokens, last = self._state.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                wait = (1.0 - tokens) / self.rate
                self._state[key] = (tokens, now)
                raise RateLimited(
                    f"submit rate limit reached (submit_rate_per_minute={self.rate * 60:g}, "
                    f"submit_burst={self.burst}); retry in {wait:.1f} s",
                    limit="submit_rate_per_minute",
                    value=self.rate * 60,
                    retry_after=wait,
                )
            self._state[key] = (tokens - 1.0, now)
