"""A connection's request rate limit (``--max-requests-per-second``)."""

from __future__ import annotations

import time

__all__ = ["TokenBucket"]


class TokenBucket:
    """A token bucket: ``rate`` a second, bursts of up to ``max(rate, 1)``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self._tokens = self.capacity
        self._last = time.monotonic()

    def take(self) -> bool:
        """Spend one token if there is one."""
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
